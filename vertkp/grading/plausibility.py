"""Plausibility of one image's vertebrae: the rules a spine obeys, as small pure functions over arrays.

One home for the rules: ``vertkp audit`` checks labels with them (``vertkp.audit.checks``
adds annotation ids and severities) and ``vertkp predict`` checks predictions
(``vertkp.inference.result``). :func:`shape_problems` and :func:`pair_problems` run them.

Corners are [N, 4, 2] px in the canonical order TL, TR, BL, BR (``vertkp.keypoints``;
image coordinates, x right, y down, as in the COCO files), NaN where unlabelled. The
quadrilateral of a vertebra is its outline TL -> TR -> BR -> BL. The polygon checks
(tiny, duplicate, overlapping, self-intersecting, non-convex) take vertebrae with all
4 corners labelled; a vertebra with only its superior endplate (BUU-LSPINE's S1) has
no quadrilateral and takes part in the order, slip and outside-image checks only.
"""
from __future__ import annotations

import warnings
from typing import List, NamedTuple, Optional, Set, Tuple

import numpy as np
import shapely

from ..keypoints import KEYPOINT_NAMES, OUTLINE_ORDER, segments_cross
from .vertebrae import vertebra_area

__all__ = [
    "TINY_AREA_FRACTION", "TINY_BOX_PX", "DUPLICATE_IOU", "OVERLAP_IOU", "NON_CONVEX_MIN_DEFICIT",
    "IMPLAUSIBLE_SLIP_PCT", "MIN_DISC_HEIGHT_PX", "MIN_ENDPLATE_RATIO",
    "full_corners", "outlines", "corner_box_sides", "tiny_masks", "quad_polygons", "iou_pairs",
    "crossing_sides", "reflex_corners", "hull_fraction", "corners_outside", "signed_disc_height",
    "Problem", "shape_problems", "pair_problems",
]

# A vertebra is tiny when its area is under this fraction of the median area of the
# 4-corner vertebrae of its image (lumbar bodies of one image differ by well under 2x) ...
TINY_AREA_FRACTION = 0.20
# ... or when the tight axis-aligned box of its corners is smaller than this, px, as
# (longer side, shorter side), so that rotated images count alike (a real body in a
# 640 px Mendeley image is about 59-176 x 40-112 px).
TINY_BOX_PX = (15.0, 10.0)
# Two quadrilaterals of one image with IoU above this are one vertebra annotated twice.
DUPLICATE_IOU = 0.5
# Above this IoU (and not above DUPLICATE_IOU) two vertebrae overlap: neighbouring
# bodies are separated by a disc and share at most a sliver of their outlines.
OVERLAP_IOU = 0.2
# A simple quadrilateral is non-convex when its convex hull is larger than it by more
# than this fraction of the hull's area (a smaller deficit is a nearly straight side).
NON_CONVEX_MIN_DEFICIT = 1e-3
# |slip %| (on AP views, |lateral displacement %|) above this between neighbours is
# implausible: beyond Meyerding IV, rarer than a misordered or mislabelled vertebra.
IMPLAUSIBLE_SLIP_PCT = 100.0
# A vertebral body's two endplates (TL-TR and BL-BR) are about as long as each other: on realistic
# phantoms the shorter is at least 73% of the longer; a shorter one under this fraction of the
# longer is a corner on another body (a compression fracture shortens a body's height, not an
# endplate).
MIN_ENDPLATE_RATIO = 0.5
# A disc height (the upper vertebra's inferior corners above the line of the lower one's
# superior endplate, mean, px) below this is implausible: the endplates cross.
MIN_DISC_HEIGHT_PX = 0.0
# Corner indices (TL, TR, BL, BR = 0, 1, 2, 3) around the quadrilateral: TL, TR, BR, BL.


def full_corners(corners: np.ndarray) -> np.ndarray:
    """[N, 4, 2] -> [N] bool: all 4 corners labelled (finite)."""
    c = np.asarray(corners, dtype=np.float64).reshape(-1, 4, 2)
    return np.all(np.isfinite(c), axis=(1, 2))


def outlines(corners: np.ndarray) -> np.ndarray:
    """[N, 4, 2] canonical corners -> [N, 4, 2] around the quadrilateral (TL, TR, BR, BL)."""
    return np.asarray(corners, dtype=np.float64).reshape(-1, 4, 2)[:, list(OUTLINE_ORDER)]


def corner_box_sides(corners: np.ndarray) -> np.ndarray:
    """(longer, shorter) side of the tight axis-aligned box of each vertebra's labelled
    corners, px: [N, 4, 2] -> [N, 2]; NaN for a vertebra without a labelled corner."""
    c = np.asarray(corners, dtype=np.float64).reshape(-1, 4, 2)
    if not len(c):
        return np.zeros((0, 2))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN rows give NaN
        extent = np.nanmax(c, axis=1) - np.nanmin(c, axis=1)  # [N, 2]: width, height
    return np.sort(extent, axis=1)[:, ::-1]


def tiny_masks(areas: np.ndarray, box_sides: np.ndarray, median_area: float,
               area_fraction: float = TINY_AREA_FRACTION, box_px=TINY_BOX_PX) -> Tuple[np.ndarray, np.ndarray]:
    """Which vertebrae are tiny, by area and by box: ([N] bool, [N] bool).

    Args:
        areas: [N] px^2 (``vertkp.grading.vertebra_area``).
        box_sides: [N, 2] (longer, shorter) px (:func:`corner_box_sides`).
        median_area: the image's median vertebra area, px^2.

    A vertebra is small by area when area < area_fraction * median_area, by box when
    longer < box_px[0] or shorter < box_px[1]; NaN values are never small.
    """
    a = np.asarray(areas, dtype=np.float64)
    s = np.asarray(box_sides, dtype=np.float64).reshape(-1, 2)
    with np.errstate(invalid="ignore"):
        by_area = a < area_fraction * float(median_area)
        by_box = (s[:, 0] < box_px[0]) | (s[:, 1] < box_px[1])
    return by_area & np.isfinite(a), by_box & np.all(np.isfinite(s), axis=1)


def quad_polygons(corners: np.ndarray) -> np.ndarray:
    """shapely Polygons of 4-corner vertebrae ([N, 4, 2], all finite), outline order, made
    valid (a bow-tie becomes its two triangles) so that areas and intersections are defined."""
    return shapely.make_valid(shapely.polygons(outlines(corners)))


def iou_pairs(corners: np.ndarray, min_iou: float = OVERLAP_IOU) -> List[Tuple[int, int, float]]:
    """Pairs (i, j, IoU), i < j, of quadrilaterals ([N, 4, 2], all finite) with IoU > min_iou.

    IoU = area(A & B) / area(A | B) of the outlines (:func:`quad_polygons`). Only pairs
    whose corner boxes overlap are intersected.
    """
    c = np.asarray(corners, dtype=np.float64).reshape(-1, 4, 2)
    n = len(c)
    if n < 2:
        return []
    lo, hi = c.min(axis=1), c.max(axis=1)
    i, j = np.triu_indices(n, k=1)
    touch = np.all((lo[i] < hi[j]) & (lo[j] < hi[i]), axis=1)
    i, j = i[touch], j[touch]
    if not len(i):
        return []
    polys = quad_polygons(c)
    areas = shapely.area(polys)
    inter = shapely.area(shapely.intersection(polys[i], polys[j]))
    union = areas[i] + areas[j] - inter
    with np.errstate(invalid="ignore", divide="ignore"):
        iou = np.where(union > 0, inter / union, 0.0)
    keep = iou > min_iou
    return [(int(a), int(b), float(v)) for a, b, v in zip(i[keep], j[keep], iou[keep])]


def crossing_sides(corners: np.ndarray) -> Optional[Tuple[str, str]]:
    """The two opposite sides of one quadrilateral ([4, 2] canonical corners) that cross,
    as corner-name pairs (("TL-TR", "BR-BL") or ("TR-BR", "BL-TL")); None when its outline
    is simple (shapely). ("", "") when the outline touches itself without a proper
    crossing (coincident or collinear corners)."""
    o = outlines(corners)[0]
    if bool(shapely.is_simple(shapely.linearrings(o))):
        return None
    names = [KEYPOINT_NAMES[k] for k in OUTLINE_ORDER]
    for a in (0, 1):  # side a (a -> a+1) against the opposite side (a+2 -> a+3)
        if segments_cross(o[a], o[a + 1], o[a + 2], o[(a + 3) % 4]):
            return (f"{names[a]}-{names[a + 1]}", f"{names[a + 2]}-{names[(a + 3) % 4]}")
    return ("", "")


def reflex_corners(corners: np.ndarray) -> List[str]:
    """Names of the reflex corners (interior angle > 180 degrees) of one simple
    quadrilateral ([4, 2] canonical corners): the turn at the corner has the opposite
    sign to the outline's orientation (shoelace area)."""
    o = outlines(corners)[0]
    prev, nxt = np.roll(o, 1, axis=0), np.roll(o, -1, axis=0)
    turn = (o[:, 0] - prev[:, 0]) * (nxt[:, 1] - o[:, 1]) - (o[:, 1] - prev[:, 1]) * (nxt[:, 0] - o[:, 0])
    orientation = np.sign(np.sum(o[:, 0] * nxt[:, 1] - nxt[:, 0] * o[:, 1]))
    return [KEYPOINT_NAMES[OUTLINE_ORDER[k]] for k in range(4) if np.sign(turn[k]) == -orientation != 0]


def hull_fraction(corners: np.ndarray) -> float:
    """Area of one quadrilateral ([4, 2]) over the area of its convex hull (1.0 when convex)."""
    poly = shapely.polygons(outlines(corners)[0])
    hull = float(shapely.area(shapely.convex_hull(poly)))
    return float(shapely.area(poly)) / hull if hull > 0 else 1.0


def corners_outside(corners: np.ndarray, width: float, height: float) -> np.ndarray:
    """[N, 4] bool: a labelled corner outside [0, width] x [0, height] (px, borders inside)."""
    c = np.asarray(corners, dtype=np.float64).reshape(-1, 4, 2)
    with np.errstate(invalid="ignore"):
        out = (c[..., 0] < 0) | (c[..., 0] > width) | (c[..., 1] < 0) | (c[..., 1] > height)
    return out & np.all(np.isfinite(c), axis=-1)


def signed_disc_height(upper_inferior: np.ndarray, lower_superior: np.ndarray, caudal: np.ndarray) -> float:
    """Signed disc height between two neighbours, px.

    Args:
        upper_inferior: [2, 2] the upper vertebra's inferior corners.
        lower_superior: [2, 2] the lower vertebra's superior corners.
        caudal: [2] the spine's caudal direction at the lower vertebra.

    Returns:
        the mean signed distance of ``upper_inferior`` from the line of
        ``lower_superior``, along that line's normal that points cranially
        (against ``caudal``): positive when the upper vertebra sits above the lower
        one's endplate, negative when its inferior endplate lies below it; NaN for a
        zero-length endplate or missing corners.
    """
    u, lo = np.asarray(upper_inferior, dtype=np.float64), np.asarray(lower_superior, dtype=np.float64)
    e = lo[1] - lo[0]
    norm = float(np.hypot(*e))
    if not (np.all(np.isfinite(u)) and np.all(np.isfinite(lo))) or norm < 1e-12:
        return float("nan")
    n = np.array([-e[1], e[0]]) / norm
    if n @ np.asarray(caudal, dtype=np.float64) > 0:
        n = -n
    return float(np.mean((u - lo.mean(axis=0)) @ n))


class Problem(NamedTuple):
    """One broken rule: its code (``self_intersecting``, ``non_convex``, ``misshapen_vertebra``, ``tiny_vertebra``,
    ``duplicate_vertebra``, ``overlapping_vertebrae``, ``implausible_slip``), the input
    indices of the vertebrae involved, and what was measured, in words."""

    code: str
    members: Tuple[int, ...]
    detail: str


def shape_problems(corners: np.ndarray) -> Tuple[List[Problem], Set[Tuple[int, int]]]:
    """``self_intersecting``, ``non_convex``, ``misshapen_vertebra``, ``tiny_vertebra``, ``duplicate_vertebra`` and
    ``overlapping_vertebrae`` over the 4-corner vertebrae of ``corners`` ([N, 4, 2] px, NaN
    where unlabelled); also the pairs of input indices (i < j) found duplicate or overlapping."""
    c_all = np.asarray(corners, dtype=np.float64).reshape(-1, 4, 2)
    full = np.flatnonzero(full_corners(c_all))
    c = c_all[full]
    out = []
    for k, q in enumerate(c):
        sides = crossing_sides(q)
        if sides is not None:
            what = f"sides {sides[0]} and {sides[1]} cross" if sides[0] else \
                "the outline touches itself (coincident or collinear corners)"
            out.append(Problem("self_intersecting", (int(full[k]),), what))
            continue
        frac = hull_fraction(q)
        if 1.0 - frac > NON_CONVEX_MIN_DEFICIT:
            out.append(Problem("non_convex", (int(full[k]),),
                               f"reflex corner {', '.join(reflex_corners(q))}; the outline covers {100 * frac:.1f}% "
                               "of its convex hull"))
        top, bottom = np.linalg.norm(q[1] - q[0]), np.linalg.norm(q[3] - q[2])
        if min(top, bottom) < MIN_ENDPLATE_RATIO * max(top, bottom):
            out.append(Problem("misshapen_vertebra", (int(full[k]),),
                               f"endplates TL-TR {top:.1f} px and BL-BR {bottom:.1f} px: the shorter is under "
                               f"{100 * MIN_ENDPLATE_RATIO:g}% of the longer"))
    if len(c):
        areas = vertebra_area(c)
        median = float(np.median(areas))
        sides = corner_box_sides(c)
        small_area, small_box = tiny_masks(areas, sides, median)
        for k in np.flatnonzero(small_area | small_box):
            parts = []
            if small_area[k]:
                parts.append(f"area {areas[k]:.0f} px^2 is {100 * areas[k] / median:.1f}% of the image's median "
                             f"{median:.0f} px^2")
            if small_box[k]:
                parts.append(f"corner box {sides[k, 0]:.1f} x {sides[k, 1]:.1f} px is under "
                             f"{TINY_BOX_PX[0]:g} x {TINY_BOX_PX[1]:g} px")
            out.append(Problem("tiny_vertebra", (int(full[k]),), "; ".join(parts)))
    overlapping = set()
    for a, b, iou in iou_pairs(c, OVERLAP_IOU):
        kind = "duplicate_vertebra" if iou > DUPLICATE_IOU else "overlapping_vertebrae"
        out.append(Problem(kind, (int(full[a]), int(full[b])), f"IoU {iou:.2f}"))
        overlapping.add((int(full[a]), int(full[b])))
    return out, overlapping


def pair_problems(grading, skip: Set[Tuple[int, int]] = frozenset()) -> List[Problem]:
    """``implausible_slip``: neighbours (``vertkp.grading.SpineGrading.pairs``) with |slip| (AP:
    |lateral displacement|) > IMPLAUSIBLE_SLIP_PCT, or a signed disc height
    (:func:`signed_disc_height`) < MIN_DISC_HEIGHT_PX. Pairs of input indices in ``skip``
    (found duplicate or overlapping, whose disc is negative by construction) are left out."""
    out = []
    for p in grading.pairs:
        if (min(p.upper, p.lower), max(p.upper, p.lower)) in skip:
            continue
        parts = []
        value = p.slip_pct if grading.view == "lateral" else p.lateral_displacement_pct
        if value is not None and abs(value) > IMPLAUSIBLE_SLIP_PCT:
            parts.append(f"{'slip' if grading.view == 'lateral' else 'lateral displacement'} {value:.1f}%")
        h = signed_disc_height(grading.oriented[p.upper, 2:], grading.oriented[p.lower, :2],
                               grading.spine.local_axes[p.lower])
        if np.isfinite(h) and h < MIN_DISC_HEIGHT_PX:
            parts.append(f"disc height {h:.1f} px")
        if parts:
            out.append(Problem("implausible_slip", (int(p.upper), int(p.lower)), ", ".join(parts)))
    return out
