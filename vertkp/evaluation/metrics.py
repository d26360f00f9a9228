"""Metric arithmetic over plain arrays: error statistics, SDR, detection, grade agreement,
the tails of the errors and the scores of predicted levels.

The dict keys these functions return are the metric names of metrics.json and of
detectron2's flat results (``vertkp.evaluation.metric_names.METRICS``).

Rates (SDR, precision, recall, F1, grade accuracy) are in percent, 0-100.
Errors are Euclidean distances in px, or in mm after multiplying by the
image's pixel spacing (mm/px).
"""
from __future__ import annotations

from typing import Dict, Iterable, Optional, Sequence

import numpy as np

from ..grading.slip import GRADE_NAMES, GRADES
from ..grading.vertebrae import vertebra_width

__all__ = [
    "mean_vertebra_width",
    "error_stats",
    "success_detection_rate",
    "detection_scores",
    "confusion_matrix",
    "quadratic_weighted_kappa",
    "slip_agreement",
    "SLIP_TAIL_PP",
    "CORNER_OFF_WIDTH",
    "slip_tails",
    "corners_off_width",
    "level_scores",
]

# The tails of the slip error: pairs whose |pred - true slip| exceeds each, percentage points
# (``slip_off10_pct``, ``slip_off20_pct``; a Meyerding grade spans 25 pp).
SLIP_TAIL_PP = (10.0, 20.0)
# A corner is off when its error exceeds this fraction of its vertebra's width
# (``vertkp.grading.vertebra_width``): ``corners_off10pct_width``.
CORNER_OFF_WIDTH = 0.10


def error_stats(errors: Iterable[float]) -> Dict[str, Optional[float]]:
    """Mean, median and standard deviation (population, ddof=0) of finite errors.

    Returns a dict with "mean", "median", "std" (None when there is no
    error) and "n" (the number of errors).
    """
    e = np.asarray(list(errors) if not isinstance(errors, np.ndarray) else errors, dtype=np.float64).ravel()
    e = e[np.isfinite(e)]
    if e.size == 0:
        return {"mean": None, "median": None, "std": None, "n": 0}
    return {"mean": float(e.mean()), "median": float(np.median(e)), "std": float(e.std()), "n": int(e.size)}


def success_detection_rate(errors: np.ndarray, thresholds: Sequence[float]) -> Optional[Dict[float, float]]:
    """SDR: percent of landmarks whose error is at most each threshold.

    SDR(t) = 100 * #{i : e_i <= t} / n, over every labelled GT landmark;
    a landmark that was not found must be passed as +inf (a failure at every
    threshold). NaN entries (unlabelled) are ignored.

    Returns:
        dict threshold -> percent, or None when there is no landmark.
    """
    e = np.asarray(errors, dtype=np.float64).ravel()
    e = e[~np.isnan(e)]
    if e.size == 0:
        return None
    return {float(t): float(100.0 * np.count_nonzero(e <= t) / e.size) for t in thresholds}


def detection_scores(tp: int, fp: int, fn: int) -> Dict[str, float]:
    """det_precision = TP / (TP + FP), det_recall = TP / (TP + FN) and
    det_F1 = 2 P R / (P + R), in percent, with the counts det_TP, det_FP, det_FN.
    An empty denominator gives 0 (there is nothing to credit), except that no GT
    and no prediction at all gives 100."""
    counts = {"det_TP": int(tp), "det_FP": int(fp), "det_FN": int(fn)}
    if tp == fp == fn == 0:
        return {"det_precision": 100.0, "det_recall": 100.0, "det_F1": 100.0, **counts}
    p = 100.0 * tp / (tp + fp) if tp + fp else 0.0
    r = 100.0 * tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * p * r / (p + r) if p + r else 0.0
    return {"det_precision": float(p), "det_recall": float(r), "det_F1": float(f1), **counts}


def confusion_matrix(gt: Sequence[int], pred: Sequence[int], labels: Sequence[int] = GRADES) -> np.ndarray:
    """Counts [K, K]: row = GT class, column = predicted class, in ``labels`` order.

    Raises:
        ValueError: a value not in ``labels``, or different lengths.
    """
    g, p = list(gt), list(pred)
    if len(g) != len(p):
        raise ValueError(f"gt and pred have different lengths ({len(g)} and {len(p)})")
    index = {lab: k for k, lab in enumerate(labels)}
    m = np.zeros((len(labels), len(labels)), dtype=np.int64)
    for a, b in zip(g, p):
        if a not in index or b not in index:
            raise ValueError(f"grade {a if a not in index else b!r} is not one of {list(labels)}")
        m[index[a], index[b]] += 1
    return m


def quadratic_weighted_kappa(matrix: np.ndarray) -> Optional[float]:
    """Cohen's kappa with quadratic weights, from a confusion matrix [K, K].

    With O the observed proportions (matrix / n), E = outer(row sums, column
    sums) of O (the proportions expected by chance) and weights
    w_ij = (i - j)^2 / (K - 1)^2 over the ordinal class indices:

        kappa = 1 - sum(w * O) / sum(w * E)

    The normalisation (K - 1)^2 cancels, and classes nobody used add zero to
    both sums, so the value does not depend on which unused classes the
    matrix lists. When the observed weighted disagreement is 0 (every pair in
    agreement) kappa is 1, also in the degenerate case of a single class
    where E's disagreement is 0 too (there 1 - 0/0 is otherwise undefined).

    Returns:
        kappa in [-1, 1], or None for an empty matrix.
    """
    m = np.asarray(matrix, dtype=np.float64)
    n = m.sum()
    if n == 0:
        return None
    k = m.shape[0]
    i, j = np.indices((k, k))
    w = (i - j) ** 2 / max(k - 1, 1) ** 2
    o = m / n
    e = np.outer(o.sum(axis=1), o.sum(axis=0))
    num, den = float((w * o).sum()), float((w * e).sum())
    if num == 0:
        return 1.0
    return 1.0 - num / den


def slip_agreement(gt_slip: Sequence[float], pred_slip: Sequence[float], gt_grade: Sequence[int],
                   pred_grade: Sequence[int], n_unscored: int = 0) -> dict:
    """Agreement of predicted with GT slip over the scored pairs.

    * slip_MAE_pp: mean |pred_slip - gt_slip|, in percentage points.
    * grade_acc: percent of pairs with the same grade (-1..5).
    * kappa: :func:`quadratic_weighted_kappa` over the 7 ordinal grades.
    * n_pairs: pairs scored; n_unscored_pairs: GT pairs that could not be
      scored (a vertebra of the pair was missed).
    * grade_confusion: {"labels": grade names, "matrix": rows GT, columns
      prediction}.
    Values are None when no pair was scored.
    """
    gs, ps = np.asarray(gt_slip, dtype=np.float64), np.asarray(pred_slip, dtype=np.float64)
    cm = confusion_matrix(gt_grade, pred_grade)
    n = len(gs)
    return {
        "slip_MAE_pp": float(np.mean(np.abs(ps - gs))) if n else None,
        "grade_acc": float(100.0 * np.mean(np.asarray(gt_grade) == np.asarray(pred_grade))) if n else None,
        "kappa": quadratic_weighted_kappa(cm),
        "n_pairs": int(n),
        "n_unscored_pairs": int(n_unscored),
        "grade_confusion": {"labels": [GRADE_NAMES[g] for g in GRADES], "matrix": cm.tolist()},
    }


def mean_vertebra_width(corners: Sequence[np.ndarray]) -> float:
    """Mean ``vertkp.grading.vertebra_width`` (mean length of the labelled endplates)
    over every vertebra of every image, px (NaN when none has an endplate).

    Args:
        corners: per image, float [N, 4, 2] corners TL, TR, BL, BR; NaN where unlabelled
            (``ImageTruth.corners``).
    """
    w = np.concatenate([vertebra_width(c) for c in corners] or [np.zeros(0)])
    w = w[np.isfinite(w)]
    return float(w.mean()) if w.size else float("nan")


def slip_tails(gt_slip: Sequence[float], pred_slip: Sequence[float],
               thresholds: Sequence[float] = SLIP_TAIL_PP) -> Dict[str, Optional[float]]:
    """The slip errors' tails: for each threshold t (``f"{t:g}"`` in the names),
    ``n_slip_off<t>`` the scored pairs with |pred - gt| > t percentage points and
    ``slip_off<t>_pct`` their percentage of the scored pairs (None when none was scored)."""
    d = np.abs(np.asarray(pred_slip, dtype=np.float64) - np.asarray(gt_slip, dtype=np.float64))
    out: Dict[str, Optional[float]] = {}
    for t in thresholds:
        n = int(np.count_nonzero(d > t))
        out[f"slip_off{float(t):g}_pct"] = float(100.0 * n / d.size) if d.size else None
        out[f"n_slip_off{float(t):g}"] = n
    return out


def corners_off_width(errors: np.ndarray, widths: np.ndarray, fraction: float = CORNER_OFF_WIDTH) -> Optional[float]:
    """Percent of the matched labelled corners whose error exceeds ``fraction`` x their
    vertebra's width.

    Args:
        errors: [N, 4] px per GT corner: NaN unlabelled, +inf missed vertebra (both left out).
        widths: [N] px, each GT vertebra's width; a vertebra without one (NaN) is left out.

    Returns:
        percent, or None when no corner counts.
    """
    e = np.asarray(errors, dtype=np.float64).reshape(-1, 4)
    w = np.asarray(widths, dtype=np.float64).reshape(-1, 1)
    counted = np.isfinite(e) & np.isfinite(w) & (w > 0)
    if not counted.any():
        return None
    return float(100.0 * np.count_nonzero(counted & (e > fraction * w)) / np.count_nonzero(counted))


def level_scores(outcomes: Iterable[Optional[str]]) -> Dict[str, Optional[float]]:
    """How predictions name the levels of matched GT vertebrae with a known level.

    Args:
        outcomes: per such vertebra "right", "unnamed" (no level predicted) or "wrong";
            None entries (not matched, GT level unknown) are left out.

    Returns:
        level_acc (percent right; unnamed is not right), level_wrong_pct (percent named
        wrongly), level_named_pct (percent named at all), n_level_scored; the percentages
        None when no vertebra counts.
    """
    o = [x for x in outcomes if x is not None]
    n = len(o)

    def pct(k):
        return float(100.0 * k / n) if n else None

    return {"level_acc": pct(o.count("right")), "level_wrong_pct": pct(o.count("wrong")),
            "level_named_pct": pct(n - o.count("unnamed")), "n_level_scored": n}
