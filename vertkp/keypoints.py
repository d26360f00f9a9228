"""The four vertebral corners: names, COCO metadata and the canonical order.

Coordinate convention: image pixels, x to the right, y downwards, as the source
annotation gives them, in every file vertkp reads or writes and in every numpy
function. detectron2 differs by :data:`DETECTRON2_KEYPOINT_OFFSET`: its COCO
loader adds 0.5 to keypoint x and y (pixel i covers [i, i + 1), its centre is
i + 0.5), its ``pred_keypoints`` are in those coordinates, and its COCOEvaluator
subtracts 0.5 again when it writes results. The detectron2 glue (the evaluator,
the predictor) converts with this one constant.

Canonical order (the order of ``keypoints`` in every COCO file vertkp writes):

    TL, TR, BL, BR = superior-left, superior-right, inferior-left, inferior-right

"superior"/"inferior" are the vertebra's own endplates; "left"/"right" are as
seen in the image, measured along the vertebra's own endplate axis, so the
names stay right for vertebrae tilted by anything under 90 degrees (S1 is often
tilted 30-50 degrees). Which side is anterior depends on the facing of the
image; ``anatomical_corners`` turns image names into anatomical ones.
"""
from __future__ import annotations

import numpy as np

__all__ = [
    "KEYPOINT_NAMES",
    "KEYPOINT_FLIP_MAP",
    "KEYPOINT_CONNECTION_RULES",
    "OUTLINE_ORDER",
    "SKELETON",
    "OKS_SIGMAS",
    "NUM_KEYPOINTS",
    "DETECTRON2_KEYPOINT_OFFSET",
    "CanonicalOrder",
    "canonical_order",
    "segments_cross",
    "anatomical_corners",
]

KEYPOINT_NAMES = ("TL", "TR", "BL", "BR")
NUM_KEYPOINTS = len(KEYPOINT_NAMES)
# A horizontal flip swaps image-left and image-right.
KEYPOINT_FLIP_MAP = (("TL", "TR"), ("BL", "BR"))
# The corners around the body's outline, TL -> TR -> BR -> BL (indices into TL, TR, BL, BR).
OUTLINE_ORDER = (0, 1, 3, 2)
# COCO skeleton (1-based indices): the outline TL-TR-BR-BL-TL.
SKELETON = [[OUTLINE_ORDER[k] + 1, OUTLINE_ORDER[(k + 1) % 4] + 1] for k in range(4)]
# detectron2 visualizer rules: (name, name, RGB colour).
KEYPOINT_CONNECTION_RULES = [
    ("TL", "TR", (255, 80, 80)),
    ("TR", "BR", (80, 200, 255)),
    ("BR", "BL", (80, 255, 80)),
    ("BL", "TL", (80, 200, 255)),
]
# OKS sigmas, one per corner. COCO's sharpest landmarks (eyes, nose) use about
# 0.025 and shoulders 0.079; vertebral corners are well defined but the corner
# of a rounded endplate is less sharp than an eye, so vertkp uses 0.05. With
# COCO's OKS (kappa = 2 sigma, scale = sqrt(area of the corner quadrilateral)),
# an error of 5% of that scale then scores OKS 0.61 and 10% scores 0.14.
OKS_SIGMAS = (0.05, 0.05, 0.05, 0.05)
# detectron2 keypoint coordinates = vertkp (file) coordinates + this, px.
DETECTRON2_KEYPOINT_OFFSET = 0.5


class CanonicalOrder:
    """Result of :func:`canonical_order`.

    Attributes:
        corners: float array [4, 2], (x, y) in TL, TR, BL, BR order.
        agreed: True when the source order gave the same corner names.
        reason: why the geometry overruled the source order ("" when agreed).
    """

    __slots__ = ("corners", "agreed", "reason")

    def __init__(self, corners: np.ndarray, agreed: bool, reason: str = ""):
        self.corners = corners
        self.agreed = agreed
        self.reason = reason


def _cross(a: np.ndarray, b: np.ndarray) -> float:
    return float(a[0] * b[1] - a[1] * b[0])


def segments_cross(p1, p2, p3, p4) -> bool:
    """Segment p1-p2 meets segment p3-p4 at a point inside both (a proper crossing); points [2], px."""
    d1, d2 = _cross(p2 - p1, p3 - p1), _cross(p2 - p1, p4 - p1)
    d3, d4 = _cross(p4 - p3, p1 - p3), _cross(p4 - p3, p2 - p3)
    return d1 * d2 < 0 and d3 * d4 < 0


def _order_endplates(sup: np.ndarray, inf: np.ndarray) -> np.ndarray:
    """Order two endplates (each [2, 2]) into TL, TR, BL, BR.

    ``sup`` must be the superior endplate. Left/right is decided along the
    vertebra's right axis r: the unit vector perpendicular to the up axis
    u = mid(sup) - mid(inf), rotated so that it points to image-right for an
    upright vertebra (u = (0, -1) gives r = (1, 0)).
    """
    u = sup.mean(axis=0) - inf.mean(axis=0)
    r = np.array([-u[1], u[0]])
    sup = sup[np.argsort(sup @ r, kind="stable")]
    inf = inf[np.argsort(inf @ r, kind="stable")]
    return np.concatenate([sup, inf]).astype(np.float64)


def _angle(edge: np.ndarray) -> float:
    """Angle of a 2-point edge from the image horizontal, in degrees [0, 90]."""
    d = np.abs(edge[1] - edge[0])
    return float(np.degrees(np.arctan2(d[1], d[0])))


def canonical_order(points, superior=(0, 1)) -> CanonicalOrder:
    """Put 4 corners of one vertebra into the canonical TL, TR, BL, BR order.

    Args:
        points: array-like [4, 2] of (x, y) pixels in the source's order.
        superior: the two indices that the source says form the superior
            (image-upper) endplate, source-left first; the other two, in
            index order, form the inferior one.

    The rule (documented in datasets/README.md):
      1. Endplates: the source's grouping is kept when its two endplates are
         opposite sides of the quadrilateral, unless they are both steeper than
         60 degrees while the other two sides are both flatter than 30 degrees
         (the source named the walls). If they cross (the source paired
         diagonal corners) or are near-vertical in that way, the corners are
         re-paired by geometry: of the ways to split the quadrilateral into
         two opposite sides, the one whose sides are the flatter in the image.
         Between 30 and 60 degrees geometry cannot tell an endplate from a
         wall (a tilted S1 looks like that), so the source's grouping stands.
      2. Superior endplate: the one whose midpoint is higher in the image
         (smaller y). This holds for any tilt under 90 degrees.
      3. Left/right: along the vertebra's own endplate axis (see
         ``_order_endplates``), so tilted vertebrae keep their names.
    ``agreed`` tells whether the source order already was canonical; when it
    was not, ``reason`` says which of the three steps overruled it.

    Raises:
        ValueError: a shape other than [4, 2], non-finite values, or a
            degenerate quadrilateral (coincident corners, zero area).
    """
    p = np.asarray(points, dtype=np.float64)
    if p.shape != (4, 2):
        raise ValueError(f"a vertebra needs 4 corners of (x, y), got shape {p.shape}")
    if not np.all(np.isfinite(p)):
        raise ValueError("corner coordinates are not finite")
    i, j = superior
    k, m = [n for n in range(4) if n not in (i, j)]
    source = np.stack([p[i], p[j], p[k], p[m]])
    sup, inf = source[:2], source[2:]
    reason = ""
    if segments_cross(sup[0], sup[1], inf[0], inf[1]):
        reason = "source corner grouping pairs diagonal corners"
    else:
        walls = (np.stack([sup[0], inf[0]]), np.stack([sup[1], inf[1]]))
        if segments_cross(*walls[0], *walls[1]):
            walls = (np.stack([sup[0], inf[1]]), np.stack([sup[1], inf[0]]))
        if min(_angle(sup), _angle(inf)) > 60 and max(_angle(walls[0]), _angle(walls[1])) < 30:
            reason = "source endplates are near-vertical and its walls near-horizontal"
    if reason:
        splits = [(sup, inf)] + [
            (np.stack([sup[0], inf[0]]), np.stack([sup[1], inf[1]])),
            (np.stack([sup[0], inf[1]]), np.stack([sup[1], inf[0]])),
        ]
        splits = [s for s in splits if not segments_cross(s[0][0], s[0][1], s[1][0], s[1][1])]
        sup, inf = min(splits, key=lambda s: _angle(s[0]) + _angle(s[1]))
    if sup[:, 1].mean() > inf[:, 1].mean():
        reason = reason or "source superior endplate lies below its inferior endplate"
        sup, inf = inf, sup
    out = _order_endplates(sup, inf)
    dists = [np.linalg.norm(out[q] - out[s]) for q in range(4) for s in range(q + 1, 4)]
    area = 0.5 * abs(_cross(out[1] - out[2], out[3] - out[0]))  # diagonals TR-BL, BR-TL
    if min(dists) < 1e-6 or area < 1e-6:
        raise ValueError("degenerate vertebra: coincident corners or zero area")
    agreed = not reason and bool(np.array_equal(out, source))
    if not agreed and not reason:
        reason = "source left/right order is swapped"
    return CanonicalOrder(out, agreed, reason)


def anatomical_corners(corners: np.ndarray, facing: str) -> dict:
    """Map canonical corners [.., 4, 2] to anatomical names.

    Args:
        corners: array [..., 4, 2] in TL, TR, BL, BR order.
        facing: "left" (anterior is image-left, the BUU lateral convention)
            or "right".

    Returns:
        dict with arrays [..., 2] under "anterior_superior",
        "posterior_superior", "anterior_inferior", "posterior_inferior".
    """
    c = np.asarray(corners, dtype=np.float64)
    if facing == "left":
        a_s, p_s, a_i, p_i = 0, 1, 2, 3
    elif facing == "right":
        a_s, p_s, a_i, p_i = 1, 0, 3, 2
    else:
        raise ValueError(f"facing must be 'left' or 'right', got {facing!r}")
    return {
        "anterior_superior": c[..., a_s, :],
        "posterior_superior": c[..., p_s, :],
        "anterior_inferior": c[..., a_i, :],
        "posterior_inferior": c[..., p_i, :],
    }
