"""Cranio-caudal order of the vertebrae of one image: :func:`order_spine`.

Corners are [N, 4, 2] px in the canonical order TL, TR, BL, BR (image
coordinates, x right, y down, NaN where unlabelled). The spine axis ``s`` is
the caudal direction: a unit vector pointing along the spine from the cranial
end (L1) towards the caudal end (S1); ``left_of(s)`` is "spine-left"
(image-left when ``s = (0, 1)``).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np

from ..anatomy import level_index
from .vertebrae import _unit, canonical_up_axes, vertebra_area, vertebra_centres

__all__ = ["ROTATED_DEG", "SpineOrder", "order_spine"]

# Whether an image is rotated (its "TL-TR" sides are walls, not endplates) is
# voted by how the bodies stack (``order_spine``); with fewer than two 4-corner
# bodies there is no vote, and the image counts as rotated when the spine axis
# is more than this many degrees from the image vertical (or from the one
# body's TL-TR -> BL-BR axis).
ROTATED_DEG = 45.0


@dataclass(frozen=True)
class SpineOrder:
    """Cranio-caudal order of the vertebrae of one image (see :func:`order_spine`).

    Attributes:
        order: indices into the input, cranial first.
        axis: unit caudal direction ``s`` of the whole spine, [2].
        local_axes: unit caudal direction at each vertebra, [N, 2] (input order).
        rotated: the data's corner names do not follow the spine (the
            vertebrae's TL-TR sides run along the spine: a rotated image), so
            ``orient_vertebrae`` re-derives the endplates from the spine axis.
        direction_method: how the cranial end was chosen: "levels" (the data's
            vertebra levels), "superior_endplates" (the side the data's
            superior endplates face, i.e. up in the image), "image_up" (no
            vertebra with 4 corners: cranial is up in the image),
            "area_trend" (rotated image: lumbar bodies grow caudally) or
            "single" (one vertebra or none).
        direction_confidence: 1.0 for "levels", "superior_endplates" and
            "image_up" (the radiograph convention; only levels can catch an
            upside-down image); for "area_trend" 0.5 + 0.5 |r| with r the
            correlation of sqrt(body area) with position along the spine
            (0.5 = a coin toss).
        upside_down: the levels put the cranial end where the data's
            inferior endplates face (``orient_vertebrae`` swaps them).
        notes: anything the caller should know (levels out of order, ...).
    """

    order: np.ndarray
    axis: np.ndarray
    local_axes: np.ndarray
    rotated: bool
    direction_method: str
    direction_confidence: float
    upside_down: bool = False
    notes: tuple = ()


def _principal_axis(points: np.ndarray) -> np.ndarray:
    centred = points - points.mean(axis=0)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    a = vt[0]
    if a[1] < 0 or (abs(a[1]) < 1e-12 and a[0] < 0):
        a = -a  # point down the image (or right when exactly horizontal)
    return a / np.linalg.norm(a)


def _interval_gaps(bodies: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Gap between the corner projections on v of every two bodies, [M, M] px.

    gap[i, j] = max(min_j - max_i, min_i - max_j): positive when the two
    bodies' extents along v are separated, negative when they overlap.
    """
    p = bodies @ v  # [M, 4]
    lo, hi = p.min(axis=1), p.max(axis=1)
    return np.maximum(lo[None, :] - hi[:, None], lo[:, None] - hi[None, :])


def _rotated_vote(full: np.ndarray, u_mean: np.ndarray) -> Optional[bool]:
    """Are the data's names across the spine? Vote over pairs of 4-corner bodies.

    Bodies of one spine are stacked along the spine axis (separated by their
    discs) and overlap across it (offsets from lordosis or a slip stay under
    a body width up to grade IV). For every pair of bodies, the axis on which
    their corner projections have the larger gap (``_interval_gaps``) is
    their stacking axis: u (the data's TL-TR -> BL-BR direction) or perp(u).
    More pairs stacked across u than along it: the image is rotated. None
    when there is no pair. Two bodies alone with a slip beyond 100% can look
    rotated: such a spine needs its levels or a third vertebra.
    """
    m = len(full)
    if m < 2:
        return None
    iu = np.triu_indices(m, k=1)
    g_along = _interval_gaps(full, u_mean)[iu]
    g_across = _interval_gaps(full, np.array([-u_mean[1], u_mean[0]]))[iu]
    across = int(np.count_nonzero(g_across > g_along))
    return across > len(g_along) - across


def _stack_order(c: np.ndarray, caudal_axes: np.ndarray, a: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Cranio-caudal order from pairwise comparisons along the bodies' own axes.

    Vertebra i is cranial to j when (c_j - c_i) . v_ij > 0, v_ij the sum of
    the two bodies' unit caudal axes (the one that exists, or the spine axis
    ``a`` when neither does). Each vertebra scores the number of others it is
    cranial to; the order is by decreasing score, ties by the projection
    ``t`` on ``a``. A high-grade slip moves L5 forward and down the sacral
    slope, far enough to pass S1's centre along the spine's chord, but not
    along L5's and S1's own axes.
    """
    n = len(c)
    ok = np.all(np.isfinite(caudal_axes), axis=1)
    ax = np.where(ok[:, None], caudal_axes, 0.0)
    v = ax[:, None, :] + ax[None, :, :]  # [n, n, 2]
    weak = np.linalg.norm(v, axis=-1) < 1e-9
    v[weak] = a
    d = np.einsum("ijk,ijk->ij", c[None, :, :] - c[:, None, :], v)  # (c_j - c_i) . v_ij
    upper = np.triu(np.ones((n, n), dtype=bool), k=1)
    i_wins = upper & (d > 0)
    j_wins = upper & ~(d > 0)
    score = i_wins.sum(axis=1) + j_wins.sum(axis=0)
    return np.lexsort((t, -score))


def order_spine(corners, levels: Optional[Sequence] = None) -> SpineOrder:
    """Order vertebrae cranial to caudal along the spine, not by image y.

    The spine axis is the principal direction of the vertebra centres (a
    lumbar spine's centres lie along a gentle arc); with only two vertebrae
    on an image that is not rotated it is their mean body axis instead (a
    large slip puts two centres on a diagonal). On an image that is not
    rotated the vertebrae are ordered by pairwise comparisons along their
    own axes (``_stack_order``, robust to high-grade slips); on a rotated
    one by their projection on the spine axis.

    The image counts as rotated when the data's corner names run across the
    spine (``_rotated_vote``: the bodies are stacked across their own
    TL-TR -> BL-BR axis); with fewer than two 4-corner bodies, when the axis
    is more than ``ROTATED_DEG`` from the image vertical. Which end is cranial
    is decided, in this order of preference, by:

    1. "levels": at least two vertebrae carry different known levels (the
       axis is turned so that level index grows along it);
    2. "superior_endplates" (not rotated): the end the data's superior
       endplates face (sum of ``canonical_up_axes`` . axis); the canonical
       order puts the superior endplate up in the image, so this is "cranial
       is up", made robust to strongly tilted spines;
    3. "image_up" (not rotated, no 4-corner body): cranial is up (smaller y);
    4. "area_trend" (rotated): lumbar bodies grow from L1 to L5, so the end
       with the larger bodies (sqrt of ``vertebra_area``) is caudal.

    Args:
        corners: [N, 4, 2] px in canonical order, NaN where unlabelled.
        levels: optional [N] level names ("L1".."S1", None when unknown).

    Returns:
        :class:`SpineOrder`.
    """
    corners = np.asarray(corners, dtype=np.float64).reshape(-1, 4, 2)
    n = len(corners)
    notes = []
    if n <= 1:
        return SpineOrder(np.zeros(n, int), np.array([0.0, 1.0]), np.tile([0.0, 1.0], (n, 1)), False, "single", 0.5)
    c = vertebra_centres(corners)
    a = _principal_axis(c)
    u = canonical_up_axes(corners)
    u_ok = np.all(np.isfinite(u), axis=1)
    u_mean = None
    if u_ok.any():
        uu = u[u_ok] * np.where(u[u_ok] @ u[u_ok][0] < 0, -1.0, 1.0)[:, None]
        u_mean = _unit(uu.sum(axis=0))
    rotated = _rotated_vote(corners[u_ok], u_mean) if u_mean is not None else None
    if rotated is None and u_mean is not None:
        rotated = float(np.median(np.abs(u[u_ok] @ a))) < math.cos(math.radians(ROTATED_DEG))
    if rotated is None:
        rotated = math.degrees(math.acos(min(1.0, abs(float(a[1]))))) > ROTATED_DEG
    two_bodies = n == 2 and not rotated and u_mean is not None
    if two_bodies:
        a = -u_mean
    t = c @ a
    idx = [level_index(lv) for lv in levels] if levels is not None else [None] * n
    known = [(t[i], idx[i]) for i in range(n) if idx[i] is not None]
    method, conf = None, 0.5
    if len({k for _, k in known}) >= 2:
        tk = np.array([p for p, _ in known])
        lk = np.array([k for _, k in known], dtype=np.float64)
        r = float(np.corrcoef(tk, lk)[0, 1])
        if np.isfinite(r) and r != 0:
            if r < 0:
                a = -a
            method, conf = "levels", 1.0
            ordered_levels = [k for _, k in sorted(zip(list(tk * np.sign(r)), list(lk)))]
            if any(x >= y for x, y in zip(ordered_levels, ordered_levels[1:])):
                notes.append("the data's levels are not in order along the spine")
    if method is None and not rotated:
        if u_ok.any() and abs(float(np.sum(u[u_ok] @ a))) > 1e-9:
            if float(np.sum(u[u_ok] @ a)) > 0:  # superior endplates face +a: +a is cranial
                a = -a
            method, conf = "superior_endplates", 1.0
        else:
            method, conf = "image_up", 1.0
    if method is None:
        s = np.sqrt(vertebra_area(corners))
        ok = np.isfinite(s)
        varies = ok.sum() >= 2 and np.ptp(s[ok]) > 1e-6 * float(np.max(np.abs(s[ok])))
        r = float(np.corrcoef(t[ok], s[ok])[0, 1]) if varies else float("nan")
        if np.isfinite(r) and r != 0:
            if r < 0:
                a = -a
            method, conf = "area_trend", (0.5 + 0.5 * abs(r)) if ok.sum() >= 3 else 0.5
        else:
            method, conf = "area_trend", 0.5
            notes.append("rotated image with no usable area trend: the cranial end is a guess")
    upside_down = bool(not rotated and u_ok.any() and float(np.sum(u[u_ok] @ a)) > 0)
    t = c @ a
    if rotated or not u_ok.any():
        order = np.argsort(t, kind="stable")
    else:
        order = _stack_order(c, -u if not upside_down else u, a, t)
    local = np.empty((n, 2))
    if two_bodies:
        local[:] = a  # two bodies: their own axis, not the (slip-tilted) line between centres
    else:  # local caudal direction: central differences of the ordered centres
        oc = c[order]
        for k in range(n):
            lo, hi = max(k - 1, 0), min(k + 1, n - 1)
            d = _unit(oc[hi] - oc[lo], fallback=a)
            local[order[k]] = d if d @ a > 0 else a
    return SpineOrder(order, a, local, rotated, method, float(conf), upside_down, tuple(notes))
