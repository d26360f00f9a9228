"""How well review flags and risk scores catch the corners with a large error, over plain arrays.

A corner's error is in % of its vertebra's width; it is a *large error* (the positive
class) when the error exceeds :data:`LARGE_ERROR_PCT_WIDTH`. A *risk* is any score where
higher means more likely large (TTA disagreement as is, heatmap confidence as
``1 - confidence``); a *flag* is a boolean per corner (send it to review).

* AUROC by ranks (Mann-Whitney U), ties counted as 1/2 (:func:`auroc`).
* Recall, flag rate and precision of a flag, in percent 0-100 (:func:`flag_stats`).
* The risk threshold that reaches a wanted recall, tuned on one set to apply on another
  (:func:`threshold_for_recall`).
* Reliability bins and the expected calibration error of a probability of a large error
  (:func:`reliability_bins`, :func:`expected_calibration_error`; Naeini et al., AAAI
  2015; Guo et al., ICML 2017), and a small L2-penalised logistic regression to make
  one from several signals (:func:`fit_logistic`, :func:`logistic_risk`).

Pure numpy; the reliability diagram is ``vertkp.evaluation.plots.reliability_plot``.
"""
from __future__ import annotations

import math
from typing import Dict, Mapping, Optional, Tuple

import numpy as np

from ..flags import corner_flags, default_thresholds
from ..grading import vertebra_width

__all__ = [
    "LARGE_ERROR_PCT_WIDTH",
    "auroc",
    "flag_stats",
    "threshold_for_recall",
    "reliability_bins",
    "expected_calibration_error",
    "bins_calibration_error",
    "fit_logistic",
    "logistic_risk",
    "calibration_report",
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

# A corner whose error exceeds this, in % of its vertebra's width, is a large error.
LARGE_ERROR_PCT_WIDTH = 5.0


def _values(x, name: str, n: Optional[int] = None) -> np.ndarray:
    v = np.asarray(x, dtype=np.float64).ravel()
    if n is not None and v.size != n:
        raise ValueError(f"{name} has {v.size} entries, expected {n} (one per corner)")
    if np.isnan(v).any():
        raise ValueError(f"{name} has {int(np.isnan(v).sum())} NaN value(s); leave out the corners "
                         "that lack one, or give them a risk that says what to do with them")
    return v


def _labels(x, name: str, n: Optional[int] = None) -> np.ndarray:
    v = np.asarray(x).ravel()
    if n is not None and v.size != n:
        raise ValueError(f"{name} has {v.size} entries, expected {n} (one per corner)")
    if v.dtype != bool:
        if not np.isin(v, (0, 1)).all():
            raise ValueError(f"{name} must be boolean (or 0/1), got values {np.unique(v)[:5].tolist()}")
        v = v.astype(bool)
    return v


def _pct(num: int, den: int) -> float:
    return float(100.0 * num / den) if den else math.nan


def auroc(risk, positive) -> float:
    """Area under the ROC curve of a risk score for boolean labels.

    AUROC = P(risk of a positive > risk of a negative) + P(equal) / 2, from the mid-ranks
    R_i of the risks (ties share their average rank): (sum of the positives' R_i -
    n1 (n1 + 1) / 2) / (n1 n0), Mann-Whitney's U over n1 n0. O(n log n).

    Args:
        risk: [n] scores, higher = more likely positive; +-inf allowed, NaN not.
        positive: [n] booleans (or 0/1).

    Returns:
        AUROC in [0, 1]; NaN when there is no positive or no negative.

    Raises:
        ValueError: a NaN risk, or risk and positive of different lengths.
    """
    r = _values(risk, "risk")
    y = _labels(positive, "positive", r.size)
    n1 = int(y.sum())
    n0 = y.size - n1
    if n1 == 0 or n0 == 0:
        return math.nan
    _, inverse, counts = np.unique(r, return_inverse=True, return_counts=True)
    mid_rank = np.cumsum(counts) - (counts - 1) / 2.0  # 1-based average rank of each distinct value
    u = float(mid_rank[inverse.ravel()][y].sum()) - n1 * (n1 + 1) / 2.0
    return u / (n1 * n0)


def flag_stats(flagged, positive) -> Dict[str, float]:
    """How a boolean flag catches the positives.

    Returns:
        {"recall": % of positives flagged, "flag_rate": % of all corners flagged,
        "precision": % of flagged corners that are positive (percentages 0-100, NaN
        where the denominator is 0), "n", "n_positive", "n_flagged" (ints)}.
    """
    y = _labels(positive, "positive")
    f = _labels(flagged, "flagged", y.size)
    n, n_pos, n_flag = int(y.size), int(y.sum()), int(f.sum())
    tp = int(np.count_nonzero(f & y))
    return {"recall": _pct(tp, n_pos), "flag_rate": _pct(n_flag, n), "precision": _pct(tp, n_flag),
            "n": n, "n_positive": n_pos, "n_flagged": n_flag}


def threshold_for_recall(risk, positive, recall_pct: float) -> float:
    """The largest threshold t such that flagging risk >= t catches at least recall_pct % of
    the positives.

    With k = ceil(recall_pct / 100 * n_positive), t is the k-th largest risk among the
    positives (a tie there only adds positives); any larger t catches fewer than k. Tune
    it on one set and flag ``risk >= t`` on another.

    Args:
        risk: [n] scores, higher = more likely positive; NaN not allowed.
        positive: [n] booleans (or 0/1).
        recall_pct: the recall wanted, in percent, 0 < recall_pct <= 100.

    Returns:
        t, in the unit of the risk; NaN when there is no positive.
    """
    if not 0.0 < recall_pct <= 100.0:
        raise ValueError(f"recall_pct is a percentage in (0, 100], got {recall_pct}")
    r = _values(risk, "risk")
    y = _labels(positive, "positive", r.size)
    pos = np.sort(r[y])[::-1]
    if pos.size == 0:
        return math.nan
    k = int(np.ceil(recall_pct * pos.size / 100.0 - 1e-9))  # the tolerance keeps 70% of 10 at 7
    return float(pos[min(max(k, 1), pos.size) - 1])


def _probabilities(probability, name: str = "probability") -> np.ndarray:
    p = _values(probability, name)
    if ((p < 0) | (p > 1)).any():
        raise ValueError(f"{name} must lie in [0, 1]; got values from {p.min():g} to {p.max():g}")
    return p


def reliability_bins(probability, positive, n_bins: int = 10) -> Dict[str, np.ndarray]:
    """Predicted against observed positive rate in equal-width bins of the probability.

    Bin i holds edges[i] <= p < edges[i + 1], the last one also p = 1.

    Args:
        probability: [n] predicted probability of a positive, in [0, 1].
        positive: [n] booleans (or 0/1).
        n_bins: number of bins over [0, 1].

    Returns:
        {"edges": [n_bins + 1] float, "mean_predicted": [n_bins] mean probability in the
        bin, "observed_rate": [n_bins] fraction (0-1) of positives in the bin,
        "count": [n_bins] int}; the means are NaN in empty bins.
    """
    if int(n_bins) < 1:
        raise ValueError(f"n_bins must be at least 1, got {n_bins}")
    n_bins = int(n_bins)
    p = _probabilities(probability)
    y = _labels(positive, "positive", p.size)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    idx = np.clip(np.searchsorted(edges, p, side="right") - 1, 0, n_bins - 1)
    count = np.bincount(idx, minlength=n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_p = np.bincount(idx, weights=p, minlength=n_bins) / count
        observed = np.bincount(idx, weights=y.astype(np.float64), minlength=n_bins) / count
    return {"edges": edges, "mean_predicted": mean_p, "observed_rate": observed, "count": count.astype(np.int64)}


def bins_calibration_error(bins: Mapping[str, np.ndarray]) -> float:
    """The expected calibration error of :func:`reliability_bins` (count-weighted mean |observed -
    predicted|, probability units); NaN without corners."""
    count = np.asarray(bins["count"], dtype=np.float64)
    if count.sum() == 0:
        return math.nan
    gap = np.abs(np.asarray(bins["observed_rate"], dtype=np.float64) - np.asarray(bins["mean_predicted"],
                                                                                   dtype=np.float64))
    return float(np.sum(count[count > 0] * gap[count > 0]) / count.sum())


def expected_calibration_error(probability, positive, n_bins: int = 10) -> float:
    """ECE = sum over bins of count * |observed_rate - mean_predicted| / n, over the bins of
    :func:`reliability_bins`; in probability units (0-1). NaN when n = 0."""
    return bins_calibration_error(reliability_bins(probability, positive, n_bins))


def _log_loss(z: np.ndarray, y: np.ndarray) -> float:
    return float(np.mean(np.logaddexp(0.0, z) - y * z))


def fit_logistic(features, positive, l2: float = 1e-3, iterations: int = 50) -> Tuple[np.ndarray, float]:
    """L2-penalised logistic regression by Newton's method (IRLS) with step halving.

    The features are standardised internally (each column minus its mean, over its SD,
    ddof=0; a constant column is only centred), and the fit minimises

        mean_i [log(1 + exp(z_i)) - y_i z_i] + l2 / 2 * |w_std|^2,   z_i = x_std_i . w_std + b_std

    (the bias is not penalised). The L2 term keeps the weights finite on separable data,
    and penalises every feature alike whatever its unit. The weights and bias returned
    are mapped back to the raw features, so ``logistic_risk(features, w, b)`` takes the
    features as given. Deterministic: no random start.

    Args:
        features: [n, d] finite values (a [n] array is one feature).
        positive: [n] booleans (or 0/1), both classes present.
        l2: penalty on the standardised weights, > 0 for separable data.
        iterations: most Newton steps; stops early when the gradient is ~0.

    Returns:
        (weights [d], bias), for the raw features.
    """
    x = np.asarray(features, dtype=np.float64)
    x = x.reshape(-1, 1) if x.ndim == 1 else x
    if x.ndim != 2:
        raise ValueError(f"features must be [n, d], got shape {x.shape}")
    if not np.all(np.isfinite(x)):
        raise ValueError("features must be finite; leave out the corners that lack a signal")
    y = _labels(positive, "positive", x.shape[0]).astype(np.float64)
    if y.sum() == 0 or y.sum() == y.size:
        raise ValueError("fit_logistic needs both positives and negatives; "
                         f"got {int(y.sum())} positive(s) of {y.size}")
    if l2 < 0:
        raise ValueError(f"l2 must be >= 0, got {l2}")
    n, d = x.shape
    mu, sd = x.mean(axis=0), x.std(axis=0)
    sd = np.where(sd > 0, sd, 1.0)
    a = np.hstack([(x - mu) / sd, np.ones((n, 1))])  # last column: the bias
    penalty = np.full(d + 1, float(l2))
    penalty[-1] = 0.0
    theta = np.zeros(d + 1)
    theta[-1] = math.log(y.mean() / (1.0 - y.mean()))  # the best constant model

    def objective(t):
        return _log_loss(a @ t, y) + 0.5 * float(np.sum(penalty * t * t))

    current = objective(theta)
    for _ in range(int(iterations)):
        z = a @ theta
        p = np.exp(-np.logaddexp(0.0, -z))
        grad = a.T @ (p - y) / n + penalty * theta
        if np.max(np.abs(grad)) < 1e-10:
            break
        hess = (a * (p * (1.0 - p))[:, None]).T @ a / n + np.diag(penalty)
        step = np.linalg.solve(hess + 1e-12 * np.eye(d + 1), grad)
        scale = 1.0
        while scale > 1e-8:
            trial = theta - scale * step
            value = objective(trial)
            if value <= current:
                break
            scale *= 0.5
        else:
            break  # no descent left: at the optimum to rounding
        theta, current = trial, value
    w = theta[:d] / sd
    return w, float(theta[d] - np.sum(w * mu))


def logistic_risk(features, weights, bias: float) -> np.ndarray:
    """Probability 1 / (1 + exp(-(features . weights + bias))), computed without overflow.

    Args:
        features: [n, d] raw features (a [n] array is one feature).
        weights: [d], bias: from :func:`fit_logistic`.

    Returns:
        [n] probabilities in [0, 1].
    """
    x = np.asarray(features, dtype=np.float64)
    x = x.reshape(-1, 1) if x.ndim == 1 else x
    z = x @ np.asarray(weights, dtype=np.float64).ravel() + float(bias)
    return np.exp(-np.logaddexp(0.0, -z))


def calibration_report(errors_pct_width, signals: Mapping[str, np.ndarray], flags: Mapping[str, np.ndarray],
                       probability=None, n_bins: int = 10) -> dict:
    """How the signals and flags of a set of corners catch their large errors; JSON-ready.

    Args:
        errors_pct_width: [n] corner errors in % of the vertebra width; +inf (a corner
            that was not found) counts as large, NaN is refused.
        signals: name -> [n] risk (higher = more likely large); for a confidence pass
            ``1 - confidence``.
        flags: name -> [n] booleans.
        probability: optional [n] predicted probability of a large error, in [0, 1].
        n_bins: reliability bins over [0, 1].

    Returns:
        {"large_error_pct_width": 5.0,
         "n_corners": int, "n_large": int (error > 5.0),
         "large_share_pct": 100 n_large / n_corners (NaN when n_corners = 0),
         "auroc": {signal name: AUROC or NaN},
         "flags": {flag name: {"recall", "flag_rate", "precision" (percent),
                               "n", "n_positive", "n_flagged"}},
         and, only when probability is given,
         "reliability": {"edges": [n_bins + 1], "mean_predicted": [n_bins],
                         "observed_rate": [n_bins] (fraction 0-1), "count": [n_bins] ints}
                        (means NaN in empty bins),
         "ece": float (probability units, 0-1)}.
        Plain floats, ints and lists in the signals' and flags' order; NaN where undefined.
    """
    e = _values(errors_pct_width, "errors_pct_width")
    n = int(e.size)
    large = e > LARGE_ERROR_PCT_WIDTH
    n_large = int(large.sum())
    out = {"large_error_pct_width": float(LARGE_ERROR_PCT_WIDTH), "n_corners": n, "n_large": n_large,
           "large_share_pct": _pct(n_large, n),
           "auroc": {str(k): auroc(_values(v, f"signal {k!r}", n), large) for k, v in signals.items()},
           "flags": {str(k): flag_stats(_labels(v, f"flag {k!r}", n), large) for k, v in flags.items()}}
    if probability is not None:
        bins = reliability_bins(_values(probability, "probability", n), large, n_bins)
        out["reliability"] = {"edges": [float(v) for v in bins["edges"]],
                              "mean_predicted": [float(v) for v in bins["mean_predicted"]],
                              "observed_rate": [float(v) for v in bins["observed_rate"]],
                              "count": [int(v) for v in bins["count"]]}
        out["ece"] = bins_calibration_error(bins)
    return out


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


def error_risk(confidence, score, spread_pct=None) -> np.ndarray:
    """Probability [n] that each corner's error exceeds 5% of its vertebra's width
    (:data:`ERROR_RISK_MODELS`; ``spread_pct`` None: the model without TTA)."""
    weights, bias = ERROR_RISK_MODELS["single" if spread_pct is None else "tta"]
    z = risk_features(confidence, score, spread_pct) @ np.asarray(weights, dtype=np.float64) + bias
    return 1.0 / (1.0 + np.exp(-z))


def corner_table(images) -> Optional[Dict[str, np.ndarray]]:
    """The matched, labelled corners of evaluated images (``ImageEvaluation``) as columns
    [n]: "error_pct_width" (error over the GT vertebra's width, %), "confidence", "score",
    "spread_pct" (TTA spread over the predicted vertebra's width, %; NaN: one pass alone
    found it, or no TTA). None when the predictions carry no corner confidence."""
    if not images or any(im.pred_corner_confidence is None for im in images):
        return None
    cols = {k: [] for k in ("error_pct_width", "confidence", "score", "spread_pct")}
    for im in images:
        ok = np.isfinite(im.errors_px)  # labelled and matched
        gt_w = vertebra_width(im.truth.corners)[:, None]
        pred_w = np.full(len(im.pred_corners), np.nan)
        matched = np.all(np.isfinite(im.pred_corners), axis=(1, 2))
        if matched.any():
            pred_w[matched] = vertebra_width(im.pred_corners[matched])
        spread = im.pred_corner_spread if im.pred_corner_spread is not None else np.full(im.errors_px.shape, np.nan)
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


def risk_signals(table: Mapping[str, np.ndarray], tta: bool) -> Dict[str, np.ndarray]:
    """The risks whose AUROC :func:`evaluate_calibration` reports: "heatmap_confidence"
    (1 - confidence), "detection_score" (1 - score), with ``tta`` "tta_spread" (NaN: the cap,
    :data:`SPREAD_CAP_PCT`), and "combined" (:func:`error_risk`)."""
    out = {"heatmap_confidence": 1.0 - table["confidence"], "detection_score": 1.0 - table["score"]}
    if tta:
        out["tta_spread"] = np.nan_to_num(table["spread_pct"], nan=SPREAD_CAP_PCT)
    out["combined"] = error_risk(table["confidence"], table["score"], table["spread_pct"] if tta else None)
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
