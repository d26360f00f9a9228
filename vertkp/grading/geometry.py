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
    "order_spine",
    "orient_vertebrae",
    "find_gaps",
]

# Vertebral levels vertkp knows, cranial to caudal; consecutive entries are
# anatomical neighbours.
LEVELS = ("T11", "T12", "L1", "L2", "L3", "L4", "L5", "S1")
# A pair (U over L) is a gap, i.e. not anatomical neighbours, when the disc
# space between U's inferior and L's superior endplate is taller than this
# fraction of the vertebral body height. A normal lumbar disc is about 0.3-0.5
# body heights (mean of anterior and posterior); a missed vertebra leaves at
# least one body height (a body plus two discs, about 1.3-1.6).
DEFAULT_GAP_FACTOR = 0.7
# A spine whose axis is more than this many degrees from the image vertical is
# treated as rotated: image-based corner names then carry no anatomy.
ROTATED_DEG = 45.0


def level_index(level) -> Optional[int]:
    """Position of a level name in :data:`LEVELS` ("L1" -> 2), or None.

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


@dataclass(frozen=True)
class SpineOrder:
    """Cranio-caudal order of the vertebrae of one image (see :func:`order_spine`).

    Attributes:
        order: indices into the input, cranial first.
        axis: unit caudal direction ``s`` of the whole spine, [2].
        local_axes: unit caudal direction at each vertebra, [N, 2] (input order).
        rotated: the axis is more than ``ROTATED_DEG`` from the image vertical.
        direction_method: how the cranial end was chosen: "levels" (the data's
            vertebra levels), "image_up" (cranial is up in the image),
            "size_trend" (rotated image: lumbar bodies grow caudally) or
            "single" (one vertebra).
        direction_confidence: 1.0 for "levels" and "image_up" (the radiograph
            convention; only levels can catch an upside-down image); for
            "size_trend" 0.5 + 0.5 |r| with r the correlation of body size with
            position (0.5 = a coin toss).
        notes: anything the caller should know (levels out of order, ...).
    """

    order: np.ndarray
    axis: np.ndarray
    local_axes: np.ndarray
    rotated: bool
    direction_method: str
    direction_confidence: float
    notes: tuple = ()


def _principal_axis(points: np.ndarray) -> np.ndarray:
    centred = points - points.mean(axis=0)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    a = vt[0]
    if a[1] < 0 or (abs(a[1]) < 1e-12 and a[0] < 0):
        a = -a  # point down the image (or right when exactly horizontal)
    return a / np.linalg.norm(a)


def order_spine(centres, levels: Optional[Sequence] = None, sizes=None) -> SpineOrder:
    """Order vertebrae cranial to caudal along the spine, not by image y.

    The spine axis is the principal direction of the vertebra centres (a
    lumbar spine's centres lie along a gentle arc, so their projections on the
    chord are in anatomical order whatever the tilt or rotation of the image).
    The vertebrae are sorted by their projection on that axis; which end is
    cranial is decided, in this order of preference, by:

    1. the data's levels, when at least two vertebrae carry different known
       levels (the axis is turned so that level index grows along it);
    2. the image: cranial is up (smaller y) when the axis is within
       ``ROTATED_DEG`` of the vertical;
    3. on rotated images, body size: lumbar bodies grow from L1 to L5, so the
       end with the larger bodies is caudal.

    Args:
        centres: [N, 2] vertebra centres, px.
        levels: optional [N] level names ("L1".."S1", None when unknown).
        sizes: optional [N] body sizes (e.g. sqrt(area)), NaN when unknown;
            used only by rule 3.

    Returns:
        :class:`SpineOrder`.
    """
    c = np.asarray(centres, dtype=np.float64).reshape(-1, 2)
    n = len(c)
    notes = []
    if n == 0:
        return SpineOrder(np.zeros(0, int), np.array([0.0, 1.0]), np.zeros((0, 2)), False, "single", 0.5)
    if n == 1:
        return SpineOrder(np.zeros(1, int), np.array([0.0, 1.0]), np.array([[0.0, 1.0]]), False, "single", 0.5)
    a = _principal_axis(c)
    tilt_deg = math.degrees(math.acos(min(1.0, abs(float(a[1])))))
    rotated = tilt_deg > ROTATED_DEG
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
        method, conf = "image_up", 1.0
    if method is None:
        s = np.asarray(sizes, dtype=np.float64) if sizes is not None else np.full(n, np.nan)
        ok = np.isfinite(s)
        r = float(np.corrcoef(t[ok], s[ok])[0, 1]) if ok.sum() >= 2 and np.ptp(s[ok]) > 0 else float("nan")
        if np.isfinite(r) and r != 0:
            if r < 0:
                a = -a
            method, conf = "size_trend", (0.5 + 0.5 * abs(r)) if ok.sum() >= 3 else 0.5
        else:
            method, conf = "size_trend", 0.5
            notes.append("rotated image with no usable size trend: cranial end is a guess")
    t = c @ a
    order = np.argsort(t, kind="stable")
    # local caudal direction: central differences of the ordered centres
    oc = c[order]
    local = np.empty((n, 2))
    for k in range(n):
        lo, hi = max(k - 1, 0), min(k + 1, n - 1)
        d = _unit(oc[hi] - oc[lo], fallback=a)
        local[order[k]] = d if d @ a > 0 else a
    return SpineOrder(order, a, local, rotated, method, float(conf), tuple(notes))


def orient_vertebrae(corners: np.ndarray, spine: SpineOrder) -> np.ndarray:
    """Re-derive each vertebra's corner names in the spine frame.

    Returns an array [N, 4, 2] in the order (superior & spine-left,
    superior & spine-right, inferior & spine-left, inferior & spine-right),
    NaN where a corner is unlabelled. For an upright image whose cranial end
    is up this equals the canonical TL, TR, BL, BR input.

    Rules, for a vertebra with all four corners:

    * Endplates (which two opposite sides): on an upright spine, the data's
      grouping (TL-TR and BL-BR) is kept: canonical TL/TR are "superior" in
      the image sense and the converter already checked the grouping. On a
      rotated spine (``spine.rotated``) image names carry no anatomy, so the
      endplates are the pair of opposite sides whose connecting axis
      (midpoint to midpoint) is closer in angle to the local spine axis.
    * Superior endplate: on an upright spine, TL-TR unless the spine's cranial
      end is at the image bottom (known only from levels), then BL-BR; on a
      rotated spine, the endplate whose midpoint projects further cranially on
      the local axis.
    * Spine-left corner of each endplate: the one further along
      ``left_of(c_v)``, with c_v the vertebra's own caudal axis (midpoint of
      its superior to midpoint of its inferior endplate), so that tilted
      vertebrae (S1 at 30-50 degrees) keep their names.

    A vertebra with missing corners keeps the data's grouping and superior
    label (TL/TR superior, or swapped on an upside-down spine); its left/right
    are decided along the local spine axis.
    """
    c = np.asarray(corners, dtype=np.float64)
    out = np.full_like(c, np.nan)
    flip_upright = (not spine.rotated) and spine.axis[1] < 0
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
                sup, inf = (q[2:], q[:2]) if flip_upright else (q[:2], q[2:])
            cv = _unit(_mid(*inf) - _mid(*sup), fallback=s_loc)
        else:
            sup, inf = (q[2:], q[:2]) if flip_upright else (q[:2], q[2:])
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
            rec.update(gap=(il - iu) != 1, method="levels")
        elif _has(o[u, 2:]) and _has(o[l, :2]):
            sup_l = o[l, :2]
            nrm = _endplate_normal_cranial(sup_l, -spine.local_axes[l])
            h_ref = next((h for h in (heights[u], heights[l], median_h) if np.isfinite(h) and h > 0),
                         0.6 * float(np.linalg.norm(sup_l[1] - sup_l[0])))
            if nrm is not None and h_ref > 0:
                h_d = float(np.mean((o[u, 2:] - _mid(*sup_l)) @ nrm))
                ratio = h_d / h_ref
                rec.update(gap=ratio > gap_factor, method="geometry", disc_ratio=ratio)
        out.append(rec)
    return out
