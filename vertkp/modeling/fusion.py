"""Test-time augmentation arithmetic: mirror predictions back and fuse the passes.

numpy only; ``vertkp.modeling.test_time_augmentation`` runs the network passes around it.

Coordinates: detectron2's continuous image coordinates (pixel i covers
[i, i + 1), so a horizontal mirror of an image W px wide maps x to W - x),
corners in canonical order TL, TR, BL, BR (``vertkp.keypoints``). A mirror
swaps image-left and image-right, so it also swaps TL<->TR and BL<->BR
(:data:`FLIP_PERMUTATION`).

Fusion (:func:`fuse_passes`) is symmetric in its passes: the same passes in
any order give the same result, which is what makes flip TTA exactly
flip-equivariant (the passes of a mirrored image are the mirrored passes of
the image).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import List, Sequence

import numpy as np

from ..keypoints import KEYPOINT_FLIP_MAP, KEYPOINT_NAMES, NUM_KEYPOINTS

__all__ = [
    "TTA_MODES",
    "SCALE_FACTORS",
    "FLIP_PERMUTATION",
    "UNMATCHED_RULES",
    "DEFAULT_UNMATCHED",
    "DEFAULT_MATCH_IOU",
    "DEFAULT_OUTLIER_PCT",
    "fuse_corners",
    "Pass",
    "FusedPrediction",
    "mirror_pass",
    "box_iou",
    "cluster_scores",
    "fuse_passes",
]


def _flip_permutation() -> tuple:
    perm = list(range(NUM_KEYPOINTS))
    for a, b in KEYPOINT_FLIP_MAP:
        i, j = KEYPOINT_NAMES.index(a), KEYPOINT_NAMES.index(b)
        perm[i], perm[j] = j, i
    return tuple(perm)


# The values of `vertkp predict --tta` and the VertebraPredictor's ``tta``: "none" one pass, "flip"
# the image and its mirror, "flip,scale" both at each of SCALE_FACTORS times the test size; each is
# a setting of detectron2's TEST.AUG keys (vertkp.modeling.test_time_augmentation.set_tta_mode).
TTA_MODES = ("none", "flip", "flip,scale")
# "flip,scale": TEST.AUG.MIN_SIZES are these factors of INPUT.MIN_SIZE_TEST.
SCALE_FACTORS = (0.8, 1.0, 1.2)
# Corner k of a mirrored prediction is corner FLIP_PERMUTATION[k] of the original: (1, 0, 3, 2).
FLIP_PERMUTATION = _flip_permutation()
# What happens to a vertebra that not every pass found: "penalize" keeps it with its score
# summed over the passes that found it and divided by all passes (a missing pass counts 0);
# "keep" keeps its mean score; "drop" removes it.
UNMATCHED_RULES = ("penalize", "keep", "drop")
DEFAULT_UNMATCHED = "penalize"
# Two passes' detections are the same vertebra at a box IoU of at least this.
DEFAULT_MATCH_IOU = 0.5
# A pass's corner further than this from the most confident pass's corner, in % of the fused
# box's width, is an outlier (its heatmap peaked elsewhere) and left out of the corner's mean.
DEFAULT_OUTLIER_PCT = 10.0


@dataclass
class Pass:
    """One network pass, in the coordinates of the image it was asked about.

    Attributes:
        boxes: float [N, 4] x0, y0, x1, y1, px.
        scores: float [N] detection scores in [0, 1].
        corners: float [N, 4, 2] px, TL, TR, BL, BR.
        corner_confidence: float [N, 4] in [0, 1] (``vertkp.inference.result.corner_confidence``).
    """

    boxes: np.ndarray
    scores: np.ndarray
    corners: np.ndarray
    corner_confidence: np.ndarray

    def __post_init__(self):
        self.boxes = np.asarray(self.boxes, dtype=np.float64).reshape(-1, 4)
        n = len(self.boxes)
        self.scores = np.asarray(self.scores, dtype=np.float64).reshape(n)
        self.corners = np.asarray(self.corners, dtype=np.float64).reshape(n, NUM_KEYPOINTS, 2)
        self.corner_confidence = np.asarray(self.corner_confidence, dtype=np.float64).reshape(n, NUM_KEYPOINTS)


@dataclass
class FusedPrediction:
    """The fused vertebrae, highest score first.

    Attributes:
        boxes, scores, corners, corner_confidence: as :class:`Pass`; corners and
            boxes are score-weighted means over the passes that found the
            vertebra, corner confidences plain means.
        corner_spread: float [N, 4] px, the passes' disagreement on each corner: the
            root-mean-square distance of their corners from the fused corner
            (half the distance between them for two passes of equal score);
            NaN when one pass alone found the vertebra.
        n_found: int [N], how many passes found the vertebra.
        n_passes: how many passes were fused.
    """

    boxes: np.ndarray
    scores: np.ndarray
    corners: np.ndarray
    corner_confidence: np.ndarray
    corner_spread: np.ndarray
    n_found: np.ndarray
    n_passes: int


def mirror_pass(p: Pass, width: float) -> Pass:
    """A pass on the mirrored image, in the original image's coordinates (and back):
    x -> width - x, boxes' x0 and x1 exchanged, corners renamed by :data:`FLIP_PERMUTATION`.

    Args:
        width: image width, px (detectron2 continuous coordinates).
    """
    boxes = p.boxes.copy()
    boxes[:, [0, 2]] = width - p.boxes[:, [2, 0]]
    corners = p.corners[:, FLIP_PERMUTATION].copy()
    corners[..., 0] = width - corners[..., 0]
    return Pass(boxes, p.scores.copy(), corners, p.corner_confidence[:, FLIP_PERMUTATION].copy())


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of boxes a [N, 4] against b [M, 4] (x0, y0, x1, y1): float [N, M]."""
    a = np.asarray(a, dtype=np.float64).reshape(-1, 4)
    b = np.asarray(b, dtype=np.float64).reshape(-1, 4)
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(rb - lt, 0, None), axis=-1)
    area_a = np.prod(np.clip(a[:, 2:] - a[:, :2], 0, None), axis=-1)
    area_b = np.prod(np.clip(b[:, 2:] - b[:, :2], 0, None), axis=-1)
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0)


def _clusters(passes: Sequence[Pass], iou: float) -> List[List[tuple]]:
    """Greedy matching across passes: the highest-scoring unassigned detection opens a
    cluster and takes, from each other pass, its unassigned detection of highest box IoU
    (at least ``iou``). Returns clusters of (pass index, detection index)."""
    pooled = [(k, i) for k, p in enumerate(passes) for i in range(len(p.scores))]
    pooled.sort(key=lambda ki: -passes[ki[0]].scores[ki[1]])  # stable: ties keep pass order
    taken = [np.zeros(len(p.scores), dtype=bool) for p in passes]
    out = []
    for k, i in pooled:
        if taken[k][i]:
            continue
        taken[k][i] = True
        cluster = [(k, i)]
        seed = passes[k].boxes[i:i + 1]
        for q, other in enumerate(passes):
            if q == k or not len(other.scores):
                continue
            ious = box_iou(seed, other.boxes)[0]
            ious[taken[q]] = -1.0
            j = int(np.argmax(ious))
            if ious[j] >= iou:
                taken[q][j] = True
                cluster.append((q, j))
        out.append(cluster)
    return out


def fuse_corners(corners: np.ndarray, weights: np.ndarray, confidence: np.ndarray, gate_px: float) -> tuple:
    """One vertebra's corners from several passes.

    For each corner, the pass with the highest heatmap confidence is the anchor; the fused
    corner is the weighted mean of the passes within ``gate_px`` of the anchor (a pass whose
    heatmap peaked elsewhere is left out), and the spread is the root-mean-square distance of
    every pass's corner from it (outliers included: they are what the spread should show).

    Args:
        corners: [m, 4, 2] px, one row per pass.
        weights: [m] (detection scores) >= 0.
        confidence: [m, 4] heatmap confidences.
        gate_px: outlier distance, px.

    Returns:
        (fused [4, 2] px, spread [4] px; NaN when m == 1).
    """
    m = len(corners)
    fused = np.empty((NUM_KEYPOINTS, 2))
    for k in range(NUM_KEYPOINTS):
        anchor = corners[int(np.argmax(confidence[:, k])), k]
        near = np.linalg.norm(corners[:, k] - anchor, axis=-1) <= gate_px
        w = weights * near
        fused[k] = (w @ corners[:, k]) / w.sum() if w.sum() > 0 else corners[near, k].mean(axis=0)
    spread = (np.sqrt(np.mean(np.sum((corners - fused) ** 2, axis=-1), axis=0)) if m > 1
              else np.full(NUM_KEYPOINTS, np.nan))
    return fused, spread


def cluster_scores(passes: Sequence[Pass], clusters: Sequence[Sequence[tuple]],
                   unmatched: str = DEFAULT_UNMATCHED) -> np.ndarray:
    """The fused score of each cluster (:func:`_clusters`), from its members' detection scores
    alone: their sum over the number of passes ("penalize"), their mean ("keep"), or as
    "penalize" but NaN for a cluster not every pass found ("drop": it is removed)."""
    if unmatched not in UNMATCHED_RULES:
        raise ValueError(f"unmatched must be one of {UNMATCHED_RULES}, got {unmatched!r}")
    out = np.empty(len(clusters))
    for c, cluster in enumerate(clusters):
        s = np.array([passes[k].scores[i] for k, i in cluster])
        out[c] = s.mean() if unmatched == "keep" else s.sum() / len(passes)
        if unmatched == "drop" and len(cluster) < len(passes):
            out[c] = np.nan
    return out


def fuse_passes(passes: Sequence[Pass], *, iou: float = DEFAULT_MATCH_IOU, unmatched: str = DEFAULT_UNMATCHED,
                outlier_pct: float = DEFAULT_OUTLIER_PCT) -> FusedPrediction:
    """Fuse passes of one image (all in its coordinates: mirror the mirrored ones back
    first, :func:`mirror_pass`) into one prediction.

    Matched detections (:func:`_clusters`, box IoU >= ``iou``) become one vertebra:
    corners by :func:`fuse_corners` (score-weighted, outliers over ``outlier_pct`` % of the box
    width left out), score-weighted mean box, mean corner confidence; its score is the sum of
    the members' scores over the number of passes, so a vertebra found by every pass keeps
    its mean score and one found by fewer is penalised (``unmatched``: "penalize"); "keep"
    gives every vertebra the mean score of the passes that found it; "drop" removes the
    vertebrae not every pass found (:func:`cluster_scores`).

    """
    if not passes:
        raise ValueError("fuse_passes needs at least one pass")
    n_passes = len(passes)
    rows = []
    clusters = _clusters(passes, iou)
    for cluster, score in zip(clusters, cluster_scores(passes, clusters, unmatched)):
        if np.isnan(score):  # "drop": not found by every pass
            continue
        s = np.array([passes[k].scores[i] for k, i in cluster])
        w = s / s.sum() if s.sum() > 0 else np.full(len(s), 1.0 / len(s))
        corners = np.stack([passes[k].corners[i] for k, i in cluster])  # [m, 4, 2]
        conf = np.stack([passes[k].corner_confidence[i] for k, i in cluster])  # [m, 4]
        box = np.tensordot(w, np.stack([passes[k].boxes[i] for k, i in cluster]), axes=1)
        fused, spread = fuse_corners(corners, w, conf, outlier_pct / 100.0 * max(box[2] - box[0], 1.0))
        rows.append((score, box, fused, conf.mean(axis=0), spread, len(cluster)))
    rows.sort(key=lambda r: -r[0])
    if not rows:
        z = np.zeros((0, NUM_KEYPOINTS))
        return FusedPrediction(np.zeros((0, 4)), np.zeros(0), np.zeros((0, NUM_KEYPOINTS, 2)), z, z.copy(),
                               np.zeros(0, dtype=int), n_passes)
    return FusedPrediction(
        boxes=np.array([r[1] for r in rows]), scores=np.array([r[0] for r in rows]),
        corners=np.array([r[2] for r in rows]), corner_confidence=np.array([r[3] for r in rows]),
        corner_spread=np.array([r[4] for r in rows]), n_found=np.array([r[5] for r in rows], dtype=int),
        n_passes=n_passes)
