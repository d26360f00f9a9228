"""Calibration of the corner flags and of the corners' error risk, on evaluated images.

A corner of an evaluated image (``vertkp.evaluation.scoring.ImageEvaluation``) carries its
error against the label and the prediction's signals: heatmap confidence, detection score
and, with test-time augmentation, the passes' spread. This module turns them into a table
(:func:`corner_table`), raises the flags ``vertkp predict`` would (:func:`flag_masks`),
scores them and the logistic error risk (:func:`evaluate_calibration`, metrics.json
"calibration"), and fits the defaults on a tuning set (:func:`choose_thresholds`,
:func:`fit_corner_uncertainty`; ``vertkp benchmark tta``). The statistics are
``vertkp.evaluation.calibration``'s.
"""
from __future__ import annotations

from typing import Dict, Mapping, Optional, Tuple

import numpy as np

from ..flags import corner_flags, default_thresholds
from ..grading import vertebra_width
from .calibration import LARGE_ERROR_PCT_WIDTH, calibration_report, logistic_risk

__all__ = [
    "ERROR_RISK_MODELS",
    "SPREAD_CAP_PCT",
    "risk_features",
    "error_risk",
    "corner_table",
    "flag_masks",
    "risk_signals",
    "evaluate_calibration",
    "choose_thresholds",
    "fit_corner_uncertainty",
]


# Logistic model of the probability that a corner is off by more than 5% of its vertebra's
# width (:data:`LARGE_ERROR_PCT_WIDTH`), on the features of
# :func:`risk_features`: (weights, bias) without and with test-time augmentation. Fitted on
# realistic phantoms by `vertkp benchmark tta` (README, "Test-time augmentation and review flags").
ERROR_RISK_MODELS = {
    "single": ((6.233, 2.902), -4.368),
    "tta": ((4.772, 0.772, 0.401), -4.547),
}
# A spread over this, % of the width, counts as this much in the risk (one pass alone: this).
SPREAD_CAP_PCT = 10.0


def risk_features(confidence, score, spread_pct=None) -> np.ndarray:
    """Features [n, 2] (1 - corner confidence, 1 - detection score) or, with TTA spreads
    (% of the width, NaN: one pass alone found the vertebra), [n, 3] with the spread
    capped at :data:`SPREAD_CAP_PCT`. All inputs broadcast to [n]."""
    conf = np.asarray(confidence, dtype=np.float64).reshape(-1)
    sc = np.broadcast_to(np.asarray(score, dtype=np.float64), conf.shape)
    cols = [1.0 - conf, 1.0 - sc]
    if spread_pct is not None:
        sp = np.asarray(spread_pct, dtype=np.float64).reshape(-1)
        cols.append(np.clip(np.nan_to_num(sp, nan=SPREAD_CAP_PCT), 0.0, SPREAD_CAP_PCT))
    return np.stack(cols, axis=1)


def error_risk(confidence, score, spread_pct=None, model: Optional[tuple] = None) -> np.ndarray:
    """Probability [n] that each corner's error exceeds 5% of its vertebra's width, by the
    logistic ``model`` (weights, bias) on :func:`risk_features`; None: the fitted one of
    :data:`ERROR_RISK_MODELS` (``spread_pct`` None: the one without TTA)."""
    weights, bias = model or ERROR_RISK_MODELS["single" if spread_pct is None else "tta"]
    return logistic_risk(risk_features(confidence, score, spread_pct), np.asarray(weights, dtype=np.float64), bias)


def corner_table(images) -> Optional[Dict[str, np.ndarray]]:
    """The matched, labelled corners of evaluated images (``ImageEvaluation``) as columns
    [n]: "error_px", "width_px" (the GT vertebra's width), "error_pct_width" (their ratio,
    %), "confidence", "score", "spread_pct" (TTA spread over the predicted vertebra's
    width, %; NaN: one pass alone found it, or no TTA). None when the predictions carry no
    corner confidence."""
    if not images or any(im.pred_corner_confidence is None for im in images):
        return None
    cols = {k: [] for k in ("error_px", "width_px", "error_pct_width", "confidence", "score", "spread_pct")}
    for im in images:
        ok = np.isfinite(im.errors_px)  # labelled and matched
        gt_w = vertebra_width(im.truth.corners)[:, None]
        pred_w = np.full(len(im.pred_corners), np.nan)
        matched = np.all(np.isfinite(im.pred_corners), axis=(1, 2))
        if matched.any():
            pred_w[matched] = vertebra_width(im.pred_corners[matched])
        spread = im.pred_corner_spread if im.pred_corner_spread is not None else np.full(im.errors_px.shape, np.nan)
        cols["error_px"].append(im.errors_px[ok])
        cols["width_px"].append(np.broadcast_to(gt_w, ok.shape)[ok])
        with np.errstate(invalid="ignore", divide="ignore"):
            cols["error_pct_width"].append((100.0 * im.errors_px / gt_w)[ok])
            cols["spread_pct"].append((100.0 * spread / pred_w[:, None])[ok])
        cols["confidence"].append(im.pred_corner_confidence[ok])
        cols["score"].append(np.broadcast_to(im.pred_scores[:, None], ok.shape)[ok])
    table = {k: np.concatenate(v) if v else np.zeros(0) for k, v in cols.items()}
    keep = np.isfinite(table["error_pct_width"])  # a GT vertebra without an endplate has no width
    return {k: v[keep] for k, v in table.items()}


def flag_masks(table: Mapping[str, np.ndarray], thresholds, tta: bool) -> Dict[str, np.ndarray]:
    """Per corner of :func:`corner_table`, the flags ``vertkp predict`` raises at ``thresholds``
    (``vertkp.flags.corner_flags``): "low_confidence_vertebra", "low_confidence_corner", with
    ``tta`` "unstable_corner" (spread over the threshold, or one pass alone), and "any"."""
    flags = corner_flags(table["confidence"], table["score"], table["spread_pct"], thresholds, tta)
    flags["any"] = np.any(np.stack(list(flags.values())), axis=0)
    return flags


def risk_signals(table: Mapping[str, np.ndarray], tta: bool, model: Optional[tuple] = None) -> Dict[str, np.ndarray]:
    """The risks whose AUROC :func:`evaluate_calibration` reports: "heatmap_confidence"
    (1 - confidence), "detection_score" (1 - score), with ``tta`` "tta_spread" (NaN: the cap,
    :data:`SPREAD_CAP_PCT`), and "combined" (:func:`error_risk` with ``model``)."""
    out = {"heatmap_confidence": 1.0 - table["confidence"], "detection_score": 1.0 - table["score"]}
    if tta:
        out["tta_spread"] = np.nan_to_num(table["spread_pct"], nan=SPREAD_CAP_PCT)
    out["combined"] = error_risk(table["confidence"], table["score"], table["spread_pct"] if tta else None, model)
    return out


def evaluate_calibration(images, thresholds=None) -> Optional[dict]:
    """``metrics.json["calibration"]``: :func:`calibration_report` of the matched corners of
    evaluated images, with the flags at ``thresholds`` (None: the calibrated defaults of the
    predictions' mode, ``vertkp.flags.default_thresholds``) and the error risk model's
    probability; plus "tta" (whether the predictions carry TTA spreads) and "thresholds".
    None when the predictions carry no corner signals."""
    table = corner_table(images)
    if table is None:
        return None
    tta = any(im.pred_corner_spread is not None for im in images)
    thresholds = default_thresholds(tta) if thresholds is None else thresholds
    signals = risk_signals(table, tta)
    report = calibration_report(table["error_pct_width"], signals, flag_masks(table, thresholds, tta),
                                probability=signals["combined"])
    report["tta"] = tta
    report["thresholds"] = {k: float(getattr(thresholds, k)) for k in ("corner", "vertebra", "spread_pct")}
    return report


def choose_thresholds(table: Mapping[str, np.ndarray], recall_pct: Optional[float], tta: bool,
                      corner_grid=None, vertebra_grid=None, spread_grid=None,
                      max_flag_rate: Optional[float] = None) -> dict:
    """The flag thresholds (corner, vertebra, spread_pct) that flag the fewest corners of
    :func:`corner_table` while every flag together catches at least ``recall_pct`` of its
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
    conf, score = table["confidence"], table["score"]
    sp = table["spread_pct"]
    best = {"corner": None, "vertebra": None, "spread_pct": None, "recall": float("nan"), "flag_rate": float("nan")}
    key = None
    for t_s in spread_grid:
        base = (np.isnan(sp) | (np.nan_to_num(sp, nan=0.0) > t_s)) if t_s is not None else np.zeros(large.shape, bool)
        for t_v in vertebra_grid:
            with_v = base | (score < t_v)
            flagged = with_v[None, :] | (conf[None, :] < np.asarray(corner_grid)[:, None])  # [corner grid, n]
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
    """(floor_pct_width, spread_factor) of ``vertkp.grading.uncertainty.CornerUncertainty``
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
