"""The Mendeley dataset's two label formats, each reader beside its writer.

Image-based corner orders (``vertkp.keypoints``: canonical TL, TR, BL, BR):
  JSON  {"boxes", "keypoints": [[[x, y, v] x 4] ...], "labels"}: BL, BR, TL, TR,
        absolute pixels (``JSON_ORDER``).
  TXT   YOLO-pose, 17 numbers a line "cls cx cy w h x1 y1 v1 ... x4 y4 v4":
        TL, BL, BR, TR, normalised by image width/height (``TXT_ORDER``).
Neither order is trusted blindly: ``vertkp.keypoints.canonical_order`` checks it
against the geometry (``vertkp.data.conversion.builder``), and every correction is
reported. Many images carry both files ("twins"): :func:`compare_twins` says
how far apart they are.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Optional, Sequence, Tuple

import numpy as np
from scipy.optimize import linear_sum_assignment

from ...conversion.builder import SourceVertebra, order_corners
from ....files import InvalidInput, read_input_json, read_input_text

__all__ = ["JSON_ORDER", "TXT_ORDER", "JSON_SUPERIOR", "TXT_SUPERIOR", "read_json_labels", "format_json_labels",
           "read_txt_labels", "format_txt_labels", "txt_label_corners", "compare_twins"]

# Each label format's corner order, as indices into the canonical TL, TR, BL, BR.
JSON_ORDER = (2, 3, 0, 1)  # BL, BR, TL, TR
TXT_ORDER = (0, 2, 3, 1)  # TL, BL, BR, TR
# Indices of the superior endplate (left first) in each format's corner order.
JSON_SUPERIOR = (JSON_ORDER.index(0), JSON_ORDER.index(1))  # (2, 3)
TXT_SUPERIOR = (TXT_ORDER.index(0), TXT_ORDER.index(1))  # (0, 3)


def _visibility(path, where: str, k: int, x: float, y: float, v: float) -> int:
    """COCO flag of a source corner: v > 0 -> 2; v == 0 with coordinates ->
    1 (labelled, not visible). v == 0 at (0, 0) is an absent corner, which a
    4-corner vertebra cannot have."""
    if v > 0:
        return 2
    if x == 0 and y == 0:
        raise InvalidInput(path, f"corner {k + 1} is absent (v=0 at 0,0); a vertebra needs its 4 corners", where)
    return 1


def read_json_labels(path) -> list:
    """Vertebrae of one JSON label file (absolute pixel coordinates).

    Raises:
        InvalidInput: an unreadable file, text that is not UTF-8 (a byte-order mark is
            fine), malformed/truncated JSON, missing keys, a vertebra with other than 4
            corners of 3 numbers, boxes/keypoints count mismatch.
    """
    path = Path(path)
    data = read_input_json(path)
    if not isinstance(data, dict) or not isinstance(data.get("keypoints"), list):
        raise InvalidInput(path, 'expected an object with a "keypoints" list')
    kps = data["keypoints"]
    boxes = data.get("boxes")
    labels = data.get("labels")
    for name, seq in (("boxes", boxes), ("labels", labels)):
        if seq is not None and (not isinstance(seq, list) or len(seq) != len(kps)):
            raise InvalidInput(path, f'"{name}" has {len(seq) if isinstance(seq, list) else "no"} entries '
                               f'but "keypoints" has {len(kps)}')
    out = []
    for n, vert in enumerate(kps):
        where = f"vertebra {n + 1}"
        if not isinstance(vert, list) or len(vert) != 4:
            got = len(vert) if isinstance(vert, list) else type(vert).__name__
            raise InvalidInput(path, f"expected 4 corners, got {got}", where)
        pts, flags = [], []
        for k, c in enumerate(vert):
            if (
                not isinstance(c, list)
                or len(c) != 3
                or not all(isinstance(t, (int, float)) and not isinstance(t, bool) for t in c)
            ):
                raise InvalidInput(path, f"corner {k + 1} is not [x, y, v] numbers: {c!r}", where)
            x, y, v = (float(t) for t in c)
            pts.append((x, y))
            flags.append(_visibility(path, where, k, x, y, v))
        label = labels[n] if labels is not None else None
        out.append(
            SourceVertebra(
                np.array(pts), JSON_SUPERIOR, where,
                source_label=None if label is None else [label], coco_visibility=flags,
            )
        )
    return out


def format_json_labels(corners) -> str:
    """The text of a JSON label file of canonical corners [K, 4, 2] (TL, TR, BL, BR), pixels.

    The inverse of :func:`read_json_labels`: corners stored in ``JSON_ORDER``
    (BL, BR, TL, TR) with visibility 1, each box the tight box of its 4
    corners, labels all 0. Coordinates are written exactly (shortest repr).
    """
    boxes, kps = [], []
    for q in np.asarray(corners, dtype=np.float64).reshape(-1, 4, 2):
        boxes.append([float(q[:, 0].min()), float(q[:, 1].min()), float(q[:, 0].max()), float(q[:, 1].max())])
        kps.append([[float(q[i, 0]), float(q[i, 1]), 1] for i in JSON_ORDER])
    return json.dumps({"boxes": boxes, "keypoints": kps, "labels": [0] * len(kps)})


def read_txt_labels(path, width: int, height: int) -> list:
    """Vertebrae of one YOLO-pose TXT label file, de-normalised to pixels by
    the image ``width`` and ``height`` (x = nx * width, y = ny * height).

    Raises:
        InvalidInput: an unreadable file, text that is not UTF-8 (a byte-order mark is
            fine), a line that is not 17 numbers, a non-numeric value.
    """
    path = Path(path)
    text = read_input_text(path)
    out = []
    for n, line in enumerate(text.splitlines()):
        if not line.strip():
            continue
        where = f"line {n + 1}"
        fields = line.split()
        if len(fields) != 17:
            raise InvalidInput(path, f"expected 17 numbers (cls cx cy w h + 4 x [x y v]), got {len(fields)}", where)
        try:
            vals = [float(f) for f in fields]
        except ValueError:
            bad = next(f for f in fields if not _is_float(f))
            raise InvalidInput(path, f"not a number: {bad!r}", where) from None
        k = np.array(vals[5:]).reshape(4, 3)
        pts = k[:, :2] * np.array([width, height], dtype=np.float64)
        flags = [_visibility(path, where, i, k[i, 0], k[i, 1], k[i, 2]) for i in range(4)]
        cls = vals[0]
        out.append(
            SourceVertebra(
                pts, TXT_SUPERIOR, where,
                source_label=[int(cls) if cls.is_integer() else cls], coco_visibility=flags,
            )
        )
    return out


def _txt_fields(corners, width: int, height: int, decimals: Optional[int]):
    """Per vertebra: (normalised corner strings [4][2], pixel corners [4, 2] read back from them)."""
    size = np.array([width, height], dtype=np.float64)
    out = []
    for q in np.asarray(corners, dtype=np.float64).reshape(-1, 4, 2):
        if decimals is None:
            norm = [[repr(float(v)) for v in p] for p in q / size]
        else:
            norm = [[f"{v:.{decimals}f}" for v in p] for p in np.round(q / size, decimals)]
        out.append((norm, np.array([[float(t) for t in p] for p in norm]) * size))
    return out


def txt_label_corners(corners, width: int, height: int, decimals: Optional[int] = None) -> np.ndarray:
    """The canonical corners [K, 4, 2], pixels, that :func:`read_txt_labels` gets back from
    ``format_txt_labels(corners, width, height, decimals)``: each written value times the
    image width (x) or height (y)."""
    return np.array([back for _, back in _txt_fields(corners, width, height, decimals)]).reshape(-1, 4, 2)


def format_txt_labels(corners, width: int, height: int, decimals: Optional[int] = None) -> str:
    """The text of a YOLO-pose TXT label file of canonical corners [K, 4, 2], pixels.

    The inverse of :func:`read_txt_labels`: one line per vertebra, ``cls cx cy
    w h x1 y1 v1 .. x4 y4 v4``, corners in ``TXT_ORDER`` (TL, BL, BR, TR)
    normalised by the image ``width`` (x) and ``height`` (y); the box is the
    tight box of the corners as read back (:func:`txt_label_corners`); cls 0,
    v 1. Every value but cls is written with ``decimals`` decimals, or exactly
    (shortest repr) when None.
    """
    def number(v: float) -> str:
        return repr(float(v)) if decimals is None else f"{v:.{decimals}f}"

    lines = []
    for norm, back in _txt_fields(corners, width, height, decimals):
        lo, hi = back.min(axis=0), back.max(axis=0)
        box = [(lo[0] + hi[0]) / 2 / width, (lo[1] + hi[1]) / 2 / height, (hi[0] - lo[0]) / width,
               (hi[1] - lo[1]) / height]
        fields = ["0"] + [number(v) for v in box]
        for i in TXT_ORDER:
            fields += [norm[i][0], norm[i][1], number(1.0)]
        lines.append(" ".join(fields) + "\n")
    return "".join(lines)


def _is_float(s: str) -> bool:
    try:
        float(s)
        return True
    except ValueError:
        return False


def compare_twins(used: Sequence[SourceVertebra], other: Sequence[SourceVertebra]) -> Tuple[Optional[float], str]:
    """How far apart two label files of one image are, after canonical ordering.

    Vertebrae are paired one to one by the least total mean corner distance
    (Hungarian). Returns (the largest corner distance over the pairs, px; "")
    when both files hold the same number of vertebrae, else (None, what differs).

    Raises:
        ValueError: a vertebra whose corners are degenerate.
    """
    if len(used) != len(other):
        return None, f"{len(used)} vertebrae in the used file, {len(other)} in the other"
    if not used:
        return 0.0, ""
    a = np.stack([order_corners(v)[0] for v in used])
    b = np.stack([order_corners(v)[0] for v in other])
    d = np.linalg.norm(a[:, None] - b[None], axis=-1)  # [N, N, 4] corner distances
    rows, cols = linear_sum_assignment(d.mean(axis=-1))
    return float(d[rows, cols].max()), ""
