"""Primitives over corner arrays: the spine-left direction and per-vertebra dimensions.

Coordinates are image pixels, x to the right and y downwards, as in the COCO
files (no +0.5 shift). A spine is an array ``corners[N, 4, 2]`` in the
canonical order TL, TR, BL, BR of ``vertkp.keypoints``, with unlabelled
corners set to NaN (``docs/clinical.md``, "Corners and facing").

Dimensions, one word each, all [N, 4, 2] -> [N] px (or px^2):

* size: largest distance between two labelled corners (``vertebra_size``);
* width: mean length of the labelled endplates (``vertebra_width``);
* height: distance between the endplate midpoints (``vertebra_heights``);
* area: the quadrilateral's area (``vertebra_area``).
"""
from __future__ import annotations

import numpy as np

from ..keypoints import OUTLINE_ORDER

__all__ = [
    "left_of",
    "vertebra_centres",
    "vertebra_heights",
    "vertebra_width",
    "vertebra_size",
    "vertebra_area",
    "canonical_up_axes",
]


def left_of(direction) -> np.ndarray:
    """The vector rotated so that, looking along ``direction``, it points left.

    In image coordinates (y down): ``left_of((0, 1)) == (-1, 0)``: facing down
    the image, the left is image-left. Works on arrays [..., 2].
    """
    d = np.asarray(direction, dtype=np.float64)
    return np.stack([-d[..., 1], d[..., 0]], axis=-1)


def _unit(v, fallback=None):
    """``v / |v|`` for a vector [2]; ``fallback`` (None unless given) when v is zero or not finite."""
    v = np.asarray(v, dtype=np.float64)
    n = float(np.hypot(v[0], v[1])) if np.all(np.isfinite(v)) else 0.0
    if n < 1e-12:
        return None if fallback is None else np.asarray(fallback, dtype=np.float64)
    return v / n


def _mid(a, b):
    return 0.5 * (np.asarray(a) + np.asarray(b))


def _finite(*points) -> bool:
    """Every coordinate of every given point (or array of points) is finite."""
    return all(bool(np.all(np.isfinite(p))) for p in points)


def vertebra_centres(corners: np.ndarray) -> np.ndarray:
    """Mean of the labelled (finite) corners of each vertebra: [N, 4, 2] -> [N, 2].

    Raises:
        ValueError: a vertebra with no labelled corner.
    """
    c = np.asarray(corners, dtype=np.float64)
    empty = ~np.all(np.isfinite(c), axis=-1).any(axis=1)
    if np.any(empty):
        raise ValueError(f"vertebrae {np.flatnonzero(empty).tolist()} have no labelled corner; "
                         "drop them before grading")
    return np.nanmean(c, axis=1)


def vertebra_heights(corners: np.ndarray) -> np.ndarray:
    """Body height |mid(BL, BR) - mid(TL, TR)| in px per vertebra; NaN unless all 4 corners exist."""
    c = np.asarray(corners, dtype=np.float64)
    return np.linalg.norm(_mid(c[:, 2], c[:, 3]) - _mid(c[:, 0], c[:, 1]), axis=-1)


def vertebra_width(corners: np.ndarray) -> np.ndarray:
    """Mean length of the labelled endplates, |TR - TL| and |BR - BL|: [N, 4, 2] -> [N] px.

    The one endplate's length when only one has both corners, NaN when none has.
    """
    c = np.asarray(corners, dtype=np.float64).reshape(-1, 4, 2)
    lengths = np.linalg.norm(c[:, [1, 3]] - c[:, [0, 2]], axis=-1)  # [N, 2]: superior, inferior
    ok = np.isfinite(lengths)
    n = ok.sum(axis=1)
    return np.where(n > 0, np.where(ok, lengths, 0.0).sum(axis=1) / np.maximum(n, 1), np.nan)


def vertebra_size(corners: np.ndarray) -> np.ndarray:
    """Largest distance between two labelled (finite) corners: [N, 4, 2] -> [N] px.

    NaN for a vertebra with fewer than two labelled corners (or all of them
    at one point).
    """
    c = np.asarray(corners, dtype=np.float64).reshape(-1, 4, 2)
    d = np.linalg.norm(c[:, :, None, :] - c[:, None, :, :], axis=-1).reshape(len(c), 16)
    d = np.where(np.isfinite(d), d, -1.0)
    out = d.max(axis=1) if len(c) else np.zeros(0)
    return np.where(out > 0, out, np.nan)


def vertebra_area(corners: np.ndarray) -> np.ndarray:
    """Area of the quadrilateral TL, TR, BR, BL (shoelace formula): [N, 4, 2] -> [N] px^2.

    NaN unless all 4 corners exist.
    """
    c = np.asarray(corners, dtype=np.float64).reshape(-1, 4, 2)
    poly = c[:, list(OUTLINE_ORDER)]  # around the outline
    x, y = poly[..., 0], poly[..., 1]
    return 0.5 * np.abs(np.sum(x * np.roll(y, -1, axis=1) - y * np.roll(x, -1, axis=1), axis=1))


def canonical_up_axes(corners: np.ndarray) -> np.ndarray:
    """Unit axis mid(TL, TR) - mid(BL, BR) of each vertebra: [N, 4, 2] -> [N, 2].

    It points from the data's inferior to its superior endplate ("up" in the
    image sense of the canonical order); NaN unless all 4 corners exist.
    """
    c = np.asarray(corners, dtype=np.float64)
    u = _mid(c[:, 0], c[:, 1]) - _mid(c[:, 2], c[:, 3])
    n = np.linalg.norm(u, axis=-1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n > 1e-12, u / n, np.nan)
