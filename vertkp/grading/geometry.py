"""Spine geometry from vertebral corners: order, orientation, gaps.

Coordinates are image pixels, x to the right and y downwards, as in the COCO
files (no +0.5 shift). A spine is an array ``corners[N, 4, 2]`` in the
canonical order TL, TR, BL, BR of ``vertkp.keypoints`` with unlabelled corners
set to NaN.

Three directions are used throughout:

* ``s``, the caudal direction: a unit vector pointing along the spine from the
  cranial end (L1) towards the caudal end (S1).
* ``left_of(s) = (-s_y, s_x)``: the "spine-left" direction, perpendicular to
  ``s``. For an upright image (``s = (0, 1)``) it is image-left ``(-1, 0)``;
  for a rotated image it is the side that would be on the left once the image
  is turned so that the cranial end is up.
* the vertebra's own caudal axis, ``mid(inferior endplate) - mid(superior
  endplate)``, used to tell the left and right corner of each endplate apart.

``orient_vertebrae`` re-derives the corner names in that spine frame: index 0
superior & spine-left, 1 superior & spine-right, 2 inferior & spine-left, 3
inferior & spine-right. For an upright image this is exactly the canonical
TL, TR, BL, BR order, so ``vertkp.keypoints.anatomical_corners`` applies to
the result unchanged: facing "left" means anterior is spine-left.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np

__all__ = [
    "LEVELS",
    "DEFAULT_GAP_FACTOR",
    "ROTATED_DEG",
    "SpineOrder",
    "level_index",
    "left_of",
    "vertebra_centres",
    "vertebra_heights",
    "vertebra_sizes",
    "canonical_up_axes",
    "order_spine",
    "orient_vertebrae",
    "find_gaps",
]

# Vertebral levels vertkp knows, cranial to caudal; consecutive entries are
# anatomical neighbours.
LEVELS = tuple(f"T{k}" for k in range(1, 13)) + ("L1", "L2", "L3", "L4", "L5", "S1")
# A pair (U over L) is a gap, i.e. not anatomical neighbours, when the disc
# space between U's inferior and L's superior endplate is taller than this
# fraction of the vertebral body height. A normal lumbar disc is about 0.3-0.5
# body heights (mean of anterior and posterior); a missed vertebra leaves at
# least one body height (a body plus two discs, about 1.3-1.6).
DEFAULT_GAP_FACTOR = 0.7
# Whether an image is rotated (its "TL-TR" sides are walls, not endplates) is
# voted by how the bodies stack (``order_spine``); with fewer than two 4-corner
# bodies there is no vote, and the image counts as rotated when the spine axis
# is more than this many degrees from the image vertical (or from the one
# body's TL-TR -> BL-BR axis).
ROTATED_DEG = 45.0


def level_index(level) -> Optional[int]:
    """Position of a level name in :data:`LEVELS` ("T12" -> 11, "L1" -> 12), or None.

    Accepts upper or lower case and surrounding blanks; anything else (None,
    "", unknown names) gives None.
    """
    if not isinstance(level, str):
        return None
    name = level.strip().upper()
    return LEVELS.index(name) if name in LEVELS else None


def left_of(direction) -> np.ndarray:
    """The vector rotated so that, looking along ``direction``, it points left.

    In image coordinates (y down): ``left_of((0, 1)) == (-1, 0)``: facing down
    the image, the left is image-left. Works on arrays [..., 2].
    """
    d = np.asarray(direction, dtype=np.float64)
    return np.stack([-d[..., 1], d[..., 0]], axis=-1)


def _unit(v, fallback=None):
    v = np.asarray(v, dtype=np.float64)
    n = float(np.hypot(v[0], v[1])) if np.all(np.isfinite(v)) else 0.0
    if n < 1e-12:
        return None if fallback is None else np.asarray(fallback, dtype=np.float64)
    return v / n


def _mid(a, b):
    return 0.5 * (np.asarray(a) + np.asarray(b))


def _has(p) -> bool:
    return bool(np.all(np.isfinite(p)))


def vertebra_centres(corners: np.ndarray) -> np.ndarray:
    """Mean of the labelled (finite) corners of each vertebra: [N, 4, 2] -> [N, 2].

    Raises:
        ValueError: a vertebra with no labelled corner.
    """
    c = np.asarray(corners, dtype=np.float64)
    ok = np.all(np.isfinite(c), axis=-1)
    if np.any(~ok.any(axis=1)):
        bad = np.flatnonzero(~ok.any(axis=1)).tolist()
        raise ValueError(f"vertebrae {bad} have no labelled corner; drop them before grading")
    with np.errstate(invalid="ignore"):
        return np.nanmean(c, axis=1)


def vertebra_heights(corners: np.ndarray) -> np.ndarray:
    """Body height |mid(BL, BR) - mid(TL, TR)| in px per vertebra; NaN unless all 4 corners exist."""
    c = np.asarray(corners, dtype=np.float64)
    return np.linalg.norm(_mid(c[:, 2], c[:, 3]) - _mid(c[:, 0], c[:, 1]), axis=-1)


def _quad_area(q: np.ndarray) -> float:
    """Area of the quadrilateral TL, TR, BR, BL (shoelace formula), px^2."""
    poly = q[[0, 1, 3, 2]]
    x, y = poly[:, 0], poly[:, 1]
    return 0.5 * abs(float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))))


def vertebra_sizes(corners: np.ndarray) -> np.ndarray:
    """sqrt(area) in px of each vertebra with 4 labelled corners, NaN otherwise."""
    c = np.asarray(corners, dtype=np.float64)
    out = np.full(len(c), np.nan)
    for i, q in enumerate(c):
        if _has(q):
            out[i] = math.sqrt(_quad_area(q))
    return out


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
            "size_trend" (rotated image: lumbar bodies grow caudally) or
            "single" (one vertebra or none).
        direction_confidence: 1.0 for "levels", "superior_endplates" and
            "image_up" (the radiograph convention; only levels can catch an
            upside-down image); for "size_trend" 0.5 + 0.5 |r| with r the
            correlation of body size with position along the spine (0.5 = a
            coin toss).
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
    4. "size_trend" (rotated): lumbar bodies grow from L1 to L5, so the end
       with the larger bodies (sqrt of area) is caudal.

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
    if n == 2 and not rotated and u_mean is not None:
        a = -u_mean
    sizes = vertebra_sizes(corners)
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
        s = sizes
        ok = np.isfinite(s)
        varies = ok.sum() >= 2 and np.ptp(s[ok]) > 1e-6 * float(np.max(np.abs(s[ok])))
        r = float(np.corrcoef(t[ok], s[ok])[0, 1]) if varies else float("nan")
        if np.isfinite(r) and r != 0:
            if r < 0:
                a = -a
            method, conf = "size_trend", (0.5 + 0.5 * abs(r)) if ok.sum() >= 3 else 0.5
        else:
            method, conf = "size_trend", 0.5
            notes.append("rotated image with no usable size trend: the cranial end is a guess")
    upside_down = bool(not rotated and u_ok.any() and float(np.sum(u[u_ok] @ a)) > 0)
    t = c @ a
    if rotated or not u_ok.any():
        order = np.argsort(t, kind="stable")
    else:
        order = _stack_order(c, -u if not upside_down else u, a, t)
    # local caudal direction: central differences of the ordered centres
    oc = c[order]
    local = np.empty((n, 2))
    for k in range(n if not (n == 2 and u_mean is not None and not rotated) else 0):
        lo, hi = max(k - 1, 0), min(k + 1, n - 1)
        d = _unit(oc[hi] - oc[lo], fallback=a)
        local[order[k]] = d if d @ a > 0 else a
    if n == 2 and u_mean is not None and not rotated:
        local[:] = a  # two bodies: their own axis, not the (slip-tilted) line between centres
    return SpineOrder(order, a, local, rotated, method, float(conf), upside_down, tuple(notes))


def orient_vertebrae(corners: np.ndarray, spine: SpineOrder) -> np.ndarray:
    """Re-derive each vertebra's corner names in the spine frame.

    Returns an array [N, 4, 2] in the order (superior & spine-left,
    superior & spine-right, inferior & spine-left, inferior & spine-right),
    NaN where a corner is unlabelled. For an upright image whose cranial end
    is up this equals the canonical TL, TR, BL, BR input.

    Rules, for a vertebra with all four corners:

    * Endplates (which two opposite sides): unless ``spine.rotated``, the
      data's grouping (TL-TR and BL-BR) is kept: canonical TL/TR are
      "superior" in the image sense and the converter already checked the
      grouping. On a rotated image, image names carry no anatomy, so the
      endplates are the pair of opposite sides whose connecting axis
      (midpoint to midpoint) is closer in angle to the local spine axis.
    * Superior endplate: unless rotated, TL-TR, or BL-BR for every vertebra
      when ``spine.upside_down`` (levels say the cranial end is where the
      data's inferior endplates face); on a rotated image, the endplate whose
      midpoint projects further cranially on the local axis.
    * Spine-left corner of each endplate: the one further along
      ``left_of(c_v)``, with c_v the vertebra's own caudal axis (midpoint of
      its superior to midpoint of its inferior endplate), so that tilted
      vertebrae (S1 at 30-50 degrees) keep their names.

    A vertebra with missing corners keeps the data's grouping and superior
    label (TL/TR superior, swapped when upside down); its left/right are
    decided along the local spine axis.
    """
    c = np.asarray(corners, dtype=np.float64)
    out = np.full_like(c, np.nan)
    swap = spine.upside_down
    for i, q in enumerate(c):
        s_loc = spine.local_axes[i] if len(spine.local_axes) else spine.axis
        has = np.all(np.isfinite(q), axis=-1)
        if has.all():
            if spine.rotated:
                groupings = [((0, 1), (2, 3)), ((0, 2), (1, 3))]

                def misalign(g):
                    ax = _unit(_mid(*q[list(g[1])]) - _mid(*q[list(g[0])]))
                    return 2.0 if ax is None else 1.0 - abs(float(ax @ s_loc))

                g = min(groupings, key=misalign)
                e1, e2 = q[list(g[0])], q[list(g[1])]
                if _mid(*e1) @ s_loc <= _mid(*e2) @ s_loc:
                    sup, inf = e1, e2
                else:
                    sup, inf = e2, e1
            else:
                sup, inf = (q[2:], q[:2]) if swap else (q[:2], q[2:])
            cv = _unit(_mid(*inf) - _mid(*sup), fallback=s_loc)
        else:
            sup, inf = (q[2:], q[:2]) if swap else (q[:2], q[2:])
            cv = s_loc
        lv = left_of(cv)
        for k, plate in ((0, sup), (2, inf)):
            if _has(plate):
                if plate[0] @ lv >= plate[1] @ lv:
                    out[i, k], out[i, k + 1] = plate[0], plate[1]
                else:
                    out[i, k], out[i, k + 1] = plate[1], plate[0]
            else:
                # one corner of this endplate is missing: keep what there is,
                # on the side it lies relative to the vertebra's centre
                for p in plate:
                    if _has(p):
                        ctr = np.nanmean(q, axis=0)
                        j = k if (p - ctr) @ lv >= 0 else k + 1
                        out[i, j] = p
    return out


def _endplate_normal_cranial(plate: np.ndarray, cranial: np.ndarray):
    """Unit normal of a 2-corner endplate pointing to the cranial side."""
    e = _unit(plate[1] - plate[0])
    if e is None:
        return None
    nrm = np.array([-e[1], e[0]])
    return nrm if nrm @ cranial >= 0 else -nrm


def find_gaps(oriented: np.ndarray, spine: SpineOrder, levels: Optional[Sequence] = None,
              gap_factor: float = DEFAULT_GAP_FACTOR):
    """Decide, for each consecutive pair along ``spine.order``, if it is a gap.

    A gap means the two vertebrae are not anatomical neighbours (a vertebra
    between them was missed or not annotated), so they must not form a pair.

    Rules, first that applies:

    1. "levels": both vertebrae have known levels: a gap when their level
       indices do not differ by exactly 1.
    2. "geometry": U has an inferior and L a superior endplate: the disc
       height h_d = mean over U's two inferior corners of their signed
       distance to the line of L's superior endplate, measured along its
       cranial normal (so a forward slip does not inflate it and a vertebra
       that fell below the endplate gives h_d < 0). A gap when
       h_d > gap_factor * h_ref, with h_ref the body height of U (else of L,
       else the median body height of the image, else 0.6 x L's endplate
       width, the usual lumbar height/width ratio).
    3. "unknown": neither is possible; assumed neighbours (such a pair has no
       measurable endplates anyway).

    Args:
        oriented: [N, 4, 2] from :func:`orient_vertebrae`.
        spine: the :class:`SpineOrder` used to build ``oriented``.
        levels: optional [N] level names.
        gap_factor: see :data:`DEFAULT_GAP_FACTOR`.

    Returns:
        list of dicts, one per consecutive pair cranial to caudal, with
        "upper", "lower" (input indices), "gap" (bool), "method" and
        "disc_ratio" (h_d / h_ref, None unless "geometry").
    """
    o = np.asarray(oriented, dtype=np.float64)
    heights = vertebra_heights(o)
    finite_h = heights[np.isfinite(heights) & (heights > 0)]
    median_h = float(np.median(finite_h)) if len(finite_h) else float("nan")
    out = []
    order = list(spine.order)
    for u, l in zip(order, order[1:]):
        iu = level_index(levels[u]) if levels is not None else None
        il = level_index(levels[l]) if levels is not None else None
        rec = {"upper": int(u), "lower": int(l), "gap": False, "method": "unknown", "disc_ratio": None}
        if iu is not None and il is not None:
            rec.update(gap=bool((il - iu) != 1), method="levels")
        elif _has(o[u, 2:]) and _has(o[l, :2]):
            sup_l = o[l, :2]
            nrm = _endplate_normal_cranial(sup_l, -spine.local_axes[l])
            h_ref = next((h for h in (heights[u], heights[l], median_h) if np.isfinite(h) and h > 0),
                         0.6 * float(np.linalg.norm(sup_l[1] - sup_l[0])))
            if nrm is not None and h_ref > 0:
                h_d = float(np.mean((o[u, 2:] - _mid(*sup_l)) @ nrm))
                ratio = h_d / h_ref
                rec.update(gap=bool(ratio > gap_factor), method="geometry", disc_ratio=float(ratio))
        out.append(rec)
    return out
