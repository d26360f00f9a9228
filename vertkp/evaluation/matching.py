"""One-to-one matching of predicted to ground-truth vertebrae in one image."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import linear_sum_assignment

from ..grading import vertebra_size

__all__ = ["DEFAULT_SCORE_THRESHOLD", "DEFAULT_GATE_FACTOR", "Matching", "mean_corner_distance", "match_vertebrae"]

# Detections scoring under this are not vertebrae: the evaluator ignores them and
# ``vertkp predict`` drops them (both by default).
DEFAULT_SCORE_THRESHOLD = 0.5

# A prediction may match a GT vertebra only if its mean corner distance is at
# most this fraction of the GT vertebra's size (``vertkp.grading.vertebra_size``:
# the largest distance between two of its labelled corners, the body diagonal, or
# the endplate width of a 2-corner S1). The neighbouring vertebra lies about 0.7 diagonals away, so
# 0.5 keeps a prediction from being credited to the wrong level.
DEFAULT_GATE_FACTOR = 0.5


@dataclass
class Matching:
    """Result of :func:`match_vertebrae`.

    Attributes:
        gt_to_pred: int [N], the matched prediction of each GT vertebra or -1.
        pred_to_gt: int [M], the matched GT vertebra of each prediction or -1.
        cost: float [N, M], mean corner distance in px.
        gate: float [N], the largest admissible cost per GT vertebra, px.
    """

    gt_to_pred: np.ndarray
    pred_to_gt: np.ndarray
    cost: np.ndarray
    gate: np.ndarray

    @property
    def n_matched(self) -> int:
        return int(np.sum(self.gt_to_pred >= 0))


def mean_corner_distance(gt: np.ndarray, pred: np.ndarray) -> np.ndarray:
    """Mean Euclidean distance over the labelled corners of each GT vertebra.

    Args:
        gt: [N, 4, 2], NaN where unlabelled.
        pred: [M, 4, 2], all finite.

    Returns:
        [N, M] px.
    """
    g = np.asarray(gt, dtype=np.float64)
    p = np.asarray(pred, dtype=np.float64)
    d = np.linalg.norm(g[:, None] - p[None], axis=-1)  # [N, M, 4], NaN where unlabelled
    lab = np.isfinite(d)
    n_lab = lab.sum(axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n_lab > 0, np.where(lab, d, 0.0).sum(axis=-1) / n_lab, np.inf)


def match_vertebrae(gt: np.ndarray, pred: np.ndarray, gate_factor: float = DEFAULT_GATE_FACTOR) -> Matching:
    """Match predictions to GT vertebrae one to one (Hungarian algorithm).

    Cost = :func:`mean_corner_distance`. A pair is admissible when its cost
    is at most ``gate_factor * vertebra_size(gt)`` (GT vertebrae with fewer
    than two labelled corners use the median size of the image's others).
    Among admissible pairs the assignment first maximises the number of
    matches, then minimises their total cost (inadmissible pairs cost more
    than all admissible ones together).

    Args:
        gt: [N, 4, 2] GT corners px, NaN where unlabelled.
        pred: [M, 4, 2] predicted corners px (already score-filtered).
        gate_factor: see :data:`DEFAULT_GATE_FACTOR`.
    """
    g = np.asarray(gt, dtype=np.float64).reshape(-1, 4, 2)
    p = np.asarray(pred, dtype=np.float64).reshape(-1, 4, 2)
    n, m = len(g), len(p)
    size = vertebra_size(g)
    if np.any(~np.isfinite(size)):
        med = np.nanmedian(size) if np.any(np.isfinite(size)) else np.inf
        size = np.where(np.isfinite(size), size, med)
    gate = gate_factor * size
    cost = mean_corner_distance(g, p)
    g2p, p2g = np.full(n, -1), np.full(m, -1)
    if n and m:
        ok = cost <= gate[:, None]
        if ok.any():
            big = float(np.sum(cost[ok])) + 1.0
            rows, cols = linear_sum_assignment(np.where(ok, cost, big))
            keep = ok[rows, cols]
            g2p[rows[keep]] = cols[keep]
            p2g[cols[keep]] = rows[keep]
    return Matching(g2p, p2g, cost, gate)
