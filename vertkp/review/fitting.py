"""How the operating points are fitted: on the corner table of a tuning set (``vertkp benchmark tta``).

:func:`fit_operating_point` fits all that ``vertkp.review.OPERATING_POINTS`` holds for one TTA
mode: the flag thresholds (:func:`choose_thresholds` at :data:`TARGET_RECALL`, and at
:data:`TARGET_FLAG_RATE`), the corner error model (:func:`fit_corner_uncertainty`) and the
logistic error risk (``vertkp.review.statistics.fit_logistic``); :func:`fitted_point` makes an
:class:`OperatingPoint` of it, to measure on another set (``vertkp.review.calibration``).
"""
from __future__ import annotations

from dataclasses import replace
from typing import Mapping, Optional, Sequence, Tuple

import numpy as np

from .calibration import pair_doubts, risk_features
from .flags import FlagThresholds, corner_flags
from .operating_points import OperatingPoint
from .statistics import LARGE_ERROR_PCT_WIDTH, fit_logistic, threshold_for_recall
from .uncertainty import CornerUncertainty

__all__ = ["TARGET_RECALL", "TARGET_FLAG_RATE", "TARGET_GRADE_RECALL", "GRADE_DOUBT_FLOORS", "MIN_INTERVAL_COVERAGE",
           "choose_thresholds", "choose_grade_doubt",
           "fit_corner_uncertainty", "fit_operating_point", "fit_grade_doubt", "fitted_point"]

# The flags together should catch this share of the large-error corners, percent...
TARGET_RECALL = 90.0
# ... while flagging at most this share of all corners (the target), percent.
TARGET_FLAG_RATE = 15.0
# borderline_grade should catch this share of the wrongly graded pairs, percent ...
TARGET_GRADE_RECALL = 80.0
# ... with the corner error floor (% of the width) among these that flags the fewest pairs while
# the 95% slip intervals still hold the true slip of at least MIN_INTERVAL_COVERAGE % of them.
GRADE_DOUBT_FLOORS = (0.5, 0.75, 1.0, 1.25, 1.5, 2.0, 2.5)
MIN_INTERVAL_COVERAGE = 90.0


def choose_thresholds(table: Mapping[str, np.ndarray], recall_pct: Optional[float], tta: bool,
                      corner_grid=None, vertebra_grid=None, spread_grid=None,
                      max_flag_rate: Optional[float] = None) -> dict:
    """The flag thresholds (corner, vertebra, spread_pct) that flag the fewest corners of
    ``vertkp.review.corner_table`` while every flag together catches at least ``recall_pct`` of its
    large errors (ties: the higher recall); or, with ``max_flag_rate`` instead, those that
    catch the most while flagging at most that share (ties: the fewer flagged). Searched
    over the grids (defaults: corner
    confidence 0.05-0.95 by 0.025, vertebra score 0.5-0.95 by 0.05, spread 0.5-10% of the
    width by 0.25; without ``tta`` no spread).

    Returns:
        {"corner", "vertebra", "spread_pct" (None without tta), "recall", "flag_rate"} (percent);
        the thresholds are None when no combination reaches the recall.
    """
    large = table["error_pct_width"] > LARGE_ERROR_PCT_WIDTH
    corner_grid = np.arange(0.05, 0.951, 0.025) if corner_grid is None else np.asarray(corner_grid)
    vertebra_grid = np.arange(0.5, 0.951, 0.05) if vertebra_grid is None else np.asarray(vertebra_grid)
    spread_grid = (np.arange(0.5, 10.01, 0.25) if spread_grid is None else np.asarray(spread_grid)) if tta else [None]
    conf, score, sp = (table[k][None, :] for k in ("confidence", "score", "spread_pct"))
    best = {"corner": None, "vertebra": None, "spread_pct": None, "recall": float("nan"), "flag_rate": float("nan")}
    key = None
    for t_s in spread_grid:
        for t_v in vertebra_grid:
            # the flags' own rule (corner_flags), the corner thresholds as a column: [corner grid, n]
            grid = FlagThresholds(corner=np.asarray(corner_grid)[:, None], vertebra=t_v, spread_pct=t_s)
            flagged = np.logical_or.reduce(np.broadcast_arrays(*corner_flags(conf, score, sp, grid, tta).values()))
            recall = 100.0 * (flagged & large).sum(axis=1) / max(int(large.sum()), 1)
            rate = 100.0 * flagged.mean(axis=1) if flagged.shape[1] else np.zeros(len(corner_grid))
            ok = recall >= recall_pct if max_flag_rate is None else rate <= max_flag_rate
            for k in np.flatnonzero(ok):
                cand = (rate[k], -recall[k]) if max_flag_rate is None else (-recall[k], rate[k])
                if key is None or cand < key:
                    key = cand
                    best = {"corner": float(corner_grid[k]), "vertebra": float(t_v),
                            "spread_pct": None if t_s is None else float(t_s),
                            "recall": float(recall[k]), "flag_rate": float(rate[k])}
    return best


def fit_corner_uncertainty(errors_px, width_px, spread_px, trim_pct: float = 2.0,
                           floor_grid=None, factor_grid=None) -> Tuple[float, float]:
    """(floor_pct_width, spread_factor) of :class:`~vertkp.review.uncertainty.CornerUncertainty`
    that maximise the likelihood of the corners' errors under an isotropic Gaussian with per-axis
    SD sqrt((floor/100 w)^2 + (factor s)^2), leaving out the largest ``trim_pct`` % of errors
    (a corner put on its neighbour is not a Gaussian error). Grid search (defaults: floor 0.25-8%
    by 0.05, factor 0-4 by 0.05).

    Args:
        errors_px: [n] corner errors (distance to the label), px.
        width_px: [n] the vertebrae's widths, px.
        spread_px: [n] TTA spreads, px (NaN, or no TTA: 0).
    """
    e = np.asarray(errors_px, dtype=np.float64).reshape(-1)
    w = np.asarray(width_px, dtype=np.float64).reshape(-1)
    s = np.nan_to_num(np.asarray(spread_px, dtype=np.float64).reshape(-1), nan=0.0)
    ok = np.isfinite(e) & np.isfinite(w) & (w > 0)
    e, w, s = e[ok], w[ok], s[ok]
    if not e.size:
        raise ValueError("fit_corner_uncertainty needs at least one finite error")
    keep = e <= np.percentile(e, 100.0 - trim_pct)
    e, w, s = e[keep], w[keep], s[keep]
    floors = np.arange(0.25, 8.001, 0.05) if floor_grid is None else np.asarray(floor_grid, dtype=np.float64)
    factors = np.arange(0.0, 4.001, 0.05) if factor_grid is None else np.asarray(factor_grid, dtype=np.float64)
    ll = np.empty((len(floors), len(factors)))
    spread_var = (factors[:, None] * s) ** 2  # [G, n]
    for i, f in enumerate(floors):  # one floor at a time: [G, n] in memory
        var = (f / 100.0 * w) ** 2 + spread_var
        # 2-D isotropic Gaussian of the error vector: log-likelihood -log(var) - e^2 / (2 var) per corner
        ll[i] = np.sum(-np.log(var) - e ** 2 / (2.0 * var), axis=-1)
    i, j = np.unravel_index(int(np.argmax(ll)), ll.shape)
    return float(floors[i]), float(factors[j])


def fit_operating_point(table: Mapping[str, np.ndarray], tta: bool) -> dict:
    """Everything an operating point holds, fitted on the corners of a tuning set
    (``vertkp.review.corner_table``); JSON-ready.

    Returns:
        {"risk_model": {"weights": [2 or 3 floats], "bias": float},
         "uncertainty": {"floor_pct_width": % of the width, "spread_factor": per px of spread (0 without tta)},
         "thresholds": :func:`choose_thresholds` at :data:`TARGET_RECALL`,
         "thresholds_at_target_flag_rate": the same at most :data:`TARGET_FLAG_RATE` flagged}.
    """
    large = table["error_pct_width"] > LARGE_ERROR_PCT_WIDTH
    weights, bias = fit_logistic(risk_features(table["confidence"], table["score"],
                                               table["spread_pct"] if tta else None), large)
    # the spread in px on the GT width: close enough to fit on
    spread_px = table["spread_pct"] / 100.0 * table["width_px"] if tta else np.zeros(len(large))
    floor, factor = fit_corner_uncertainty(table["error_px"], table["width_px"], spread_px)
    return {"risk_model": {"weights": [float(v) for v in weights], "bias": float(bias)},
            "uncertainty": {"floor_pct_width": floor, "spread_factor": factor if tta else 0.0},
            "thresholds": choose_thresholds(table, TARGET_RECALL, tta),
            "thresholds_at_target_flag_rate": choose_thresholds(table, None, tta, max_flag_rate=TARGET_FLAG_RATE)}


def fitted_point(fit: Mapping, which: str = "thresholds") -> Optional[OperatingPoint]:
    """The :class:`OperatingPoint` of :func:`fit_operating_point` with the thresholds ``fit[which]``
    ("thresholds" or "thresholds_at_target_flag_rate"; no spread threshold: the default);
    None when those reached no thresholds."""
    th = fit[which]
    if th["corner"] is None:
        return None
    spread = {} if th["spread_pct"] is None else {"spread_pct": th["spread_pct"]}
    return OperatingPoint(FlagThresholds(corner=th["corner"], vertebra=th["vertebra"], **spread),
                          CornerUncertainty(**fit["uncertainty"]),
                          (tuple(fit["risk_model"]["weights"]), fit["risk_model"]["bias"]))


def choose_grade_doubt(tables: Mapping[float, Mapping[str, np.ndarray]], recall_pct: float = TARGET_GRADE_RECALL,
                       min_coverage_pct: float = MIN_INTERVAL_COVERAGE) -> dict:
    """Of :func:`vertkp.review.pair_doubts` tables keyed by corner error floor (% of the width), the
    floor and ``grade_doubt`` threshold (``threshold_for_recall``: flag ``grade_doubt >= t``) that
    flag the fewest pairs while catching ``recall_pct`` % of the wrongly graded ones, among the
    floors whose slip intervals hold the true slip of at least ``min_coverage_pct`` % of the pairs
    (none: the floor of the best coverage). Ties go to the first floor given.

    Returns:
        {"floor_pct_width", "grade_doubt", "flagged_pct", "recall_pct", "coverage_pct", "n_pairs",
        "n_wrong_grade"}; {} when no pair is graded wrong.
    """
    rows = []
    for floor, d in tables.items():
        wrong = np.asarray(d["wrong_grade"], dtype=bool)
        if not wrong.any():
            return {}
        doubt = np.asarray(d["grade_doubt"], dtype=np.float64)
        t = threshold_for_recall(doubt, wrong, recall_pct)
        flagged = doubt >= t
        rows.append({"floor_pct_width": float(floor), "grade_doubt": float(t),
                     "flagged_pct": 100.0 * float(flagged.mean()),
                     "recall_pct": 100.0 * float((flagged & wrong).sum()) / float(wrong.sum()),
                     "coverage_pct": 100.0 * float(np.mean(d["covered"])),
                     "n_pairs": int(wrong.size), "n_wrong_grade": int(wrong.sum())})
    covering = [r for r in rows if r["coverage_pct"] >= min_coverage_pct]
    if not covering:
        return max(rows, key=lambda r: r["coverage_pct"])
    return min(covering, key=lambda r: r["flagged_pct"])


def fit_grade_doubt(images, uncertainty: CornerUncertainty, recall_pct: float = TARGET_GRADE_RECALL,
                    floors: Sequence[float] = GRADE_DOUBT_FLOORS,
                    min_coverage_pct: float = MIN_INTERVAL_COVERAGE) -> dict:
    """:func:`choose_grade_doubt` over the scored lateral pairs of evaluated images
    (``vertkp.evaluation.ImageEvaluation``), each floor of ``floors`` replacing ``uncertainty``'s
    ``floor_pct_width`` (its spread factor kept)."""
    tables = {float(f): pair_doubts(images, replace(uncertainty, floor_pct_width=float(f))) for f in floors}
    return choose_grade_doubt(tables, recall_pct, min_coverage_pct)
