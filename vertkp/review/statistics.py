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

Pure numpy; ``vertkp.review.calibration`` applies all this to predicted corners, and
``vertkp.evaluation.plots.reliability_plot`` draws the reliability diagram.
"""
from __future__ import annotations

import math
from typing import Dict, Mapping, Optional, Tuple

import numpy as np


__all__ = [
    "LARGE_ERROR_PCT_WIDTH",
    "auroc",
    "percent",
    "flag_stats",
    "threshold_for_recall",
    "reliability_bins",
    "expected_calibration_error",
    "bins_calibration_error",
    "fit_logistic",
    "logistic_risk",
    "calibration_report",
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


def percent(num: int, den: int) -> float:
    """100 num / den; NaN when ``den`` is 0."""
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
    return {"recall": percent(tp, n_pos), "flag_rate": percent(n_flag, n), "precision": percent(tp, n_flag),
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
           "large_share_pct": percent(n_large, n),
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
