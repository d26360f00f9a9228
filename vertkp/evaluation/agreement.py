"""Agreement of predicted with true measurements, over plain arrays: Bland-Altman, ICC(A,1),
Pearson r, and the slip agreement per level or per grade.

Every function takes the true and the predicted values of the same items (scored pairs)
in the same order and returns None for what the data do not define (fewer than 2 items,
no variance).

* Bland-Altman (Bland & Altman, *Lancet* 1986;327(8476):307-310): the differences
  d_i = pred_i - true_i; bias = mean(d); SD = the sample standard deviation of d
  (ddof=1); 95% limits of agreement bias -+ 1.96 SD.
* ICC(A,1): two-way model, absolute agreement, single measure (McGraw & Wong,
  *Psychol Methods* 1996;1(1):30-46, case 2A; Shrout & Fleiss, *Psychol Bull*
  1979;86(2):420-428, ICC(2,1)), with its F-distribution confidence interval from
  McGraw & Wong (:func:`icc_a1`).
* Pearson's product-moment correlation r.
"""
from __future__ import annotations

import math
from typing import Dict, Hashable, List, Optional, Sequence

import numpy as np
from scipy.special import fdtri

from ..grading.slip import GRADE_NAMES, GRADES

__all__ = [
    "LOA_Z",
    "GRADE_ORDER",
    "bland_altman",
    "icc_a1",
    "pearson_r",
    "measure_agreement",
    "slip_groups",
]

# Half-width of the 95% limits of agreement in SDs of the differences (Bland & Altman 1986).
LOA_Z = 1.96
# The true grades in ordinal order, by name: the order of metrics.json's "slip_by_grade".
GRADE_ORDER = tuple(GRADE_NAMES[g] for g in GRADES)


def _pair_arrays(truth, pred):
    t = np.asarray(truth, dtype=np.float64).ravel()
    p = np.asarray(pred, dtype=np.float64).ravel()
    if t.shape != p.shape:
        raise ValueError(f"truth and pred have different lengths ({t.size} and {p.size})")
    if not (np.all(np.isfinite(t)) and np.all(np.isfinite(p))):
        raise ValueError("agreement needs finite values; leave out the items that lack one")
    return t, p


def bland_altman(truth: Sequence[float], pred: Sequence[float]) -> Dict[str, Optional[float]]:
    """Bland-Altman statistics of pred against truth, in the unit of the values.

    With d = pred - truth over the n items: bias = mean(d); sd = sqrt(sum((d -
    bias)^2) / (n - 1)), the sample SD (ddof=1); loa_low, loa_high = bias -+
    :data:`LOA_Z` * sd, the 95% limits of agreement.

    Returns:
        {"n", "bias", "sd", "loa_low", "loa_high"}; bias is None when n = 0, the
        others when n < 2 (an SD of 0 gives limits equal to the bias).
    """
    t, p = _pair_arrays(truth, pred)
    d = p - t
    n = int(d.size)
    bias = float(d.mean()) if n else None
    sd = float(d.std(ddof=1)) if n >= 2 else None
    return {"n": n, "bias": bias, "sd": sd,
            "loa_low": None if sd is None else bias - LOA_Z * sd,
            "loa_high": None if sd is None else bias + LOA_Z * sd}


def icc_a1(ratings, alpha: float = 0.05) -> dict:
    """ICC(A,1) of an n targets x k raters table, with its (1 - alpha) confidence interval.

    Two-way ANOVA of the table x [n, k] (grand mean m, row means r_i, column
    means c_j): MSR = k sum (r_i - m)^2 / (n - 1) (targets), MSC = n sum (c_j - m)^2
    / (k - 1) (raters), MSE = sum (x_ij - r_i - c_j + m)^2 / ((n - 1)(k - 1)).

        ICC(A,1) = (MSR - MSE) / (MSR + (k - 1) MSE + k (MSC - MSE) / n)

    (McGraw & Wong 1996, case 2A; = Shrout & Fleiss 1979's ICC(2,1)). Confidence
    interval (McGraw & Wong 1996, Table 7, case 2A), with p the ICC above,
    a = k p / (n (1 - p)), b = 1 + k p (n - 1) / (n (1 - p)) and Satterthwaite's
    v = (a MSC + b MSE)^2 / ((a MSC)^2 / (k - 1) + (b MSE)^2 / ((n - 1)(k - 1))):

        low  = n (MSR - F1 MSE) / (F1 (k MSC + (k n - k - n) MSE) + n MSR),  F1 = F(1 - alpha/2; n - 1, v)
        high = n (F2 MSR - MSE) / (k MSC + (k n - k - n) MSE + n F2 MSR),    F2 = F(1 - alpha/2; v, n - 1)

    For our use k = 2 (columns: true and predicted values). When MSE = MSC = 0
    (every rating agrees exactly) the ICC is 1 and the interval [1, 1], the
    limit of the formulas.

    Args:
        ratings: [n, k] finite values, rows targets, columns raters.
        alpha: 0.05 for a 95% interval.

    Returns:
        {"icc_a1", "icc_a1_ci95": [low, high], "n", "k", "ms_rows", "ms_columns",
        "ms_error", "df_v"}; icc_a1 is None when n < 2, k < 2 or the denominator
        is 0 (no variance at all), and the bounds are None where the interval is
        undefined.
    """
    x = np.asarray(ratings, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"ratings must be a table [n targets, k raters], got shape {x.shape}")
    if not np.all(np.isfinite(x)):
        raise ValueError("ratings must be finite; leave out the targets that lack one")
    n, k = x.shape
    out = {"icc_a1": None, "icc_a1_ci95": [None, None], "n": int(n), "k": int(k),
           "ms_rows": None, "ms_columns": None, "ms_error": None, "df_v": None}
    if n < 2 or k < 2:
        return out
    m = x.mean()
    r, c = x.mean(axis=1), x.mean(axis=0)
    msr = float(k * np.sum((r - m) ** 2) / (n - 1))
    msc = float(n * np.sum((c - m) ** 2) / (k - 1))
    mse = float(np.sum((x - r[:, None] - c[None, :] + m) ** 2) / ((n - 1) * (k - 1)))
    out.update(ms_rows=msr, ms_columns=msc, ms_error=mse)
    den = msr + (k - 1) * mse + k * (msc - mse) / n
    if den <= 0:
        return out
    icc = (msr - mse) / den
    out["icc_a1"] = float(icc)
    if mse == 0 and msc == 0:
        out["icc_a1_ci95"] = [1.0, 1.0]
        return out
    if icc >= 1:
        return out
    a = k * icc / (n * (1 - icc))
    b = 1 + k * icc * (n - 1) / (n * (1 - icc))
    v = (a * msc + b * mse) ** 2 / ((a * msc) ** 2 / (k - 1) + (b * mse) ** 2 / ((n - 1) * (k - 1)))
    if not (math.isfinite(v) and v > 0):
        return out
    f1 = float(fdtri(n - 1, v, 1 - alpha / 2))  # F quantile: fdtri(dfn, dfd, p)
    f2 = float(fdtri(v, n - 1, 1 - alpha / 2))
    mixed = k * msc + (k * n - k - n) * mse
    low = n * (msr - f1 * mse) / (f1 * mixed + n * msr)
    high = n * (f2 * msr - mse) / (mixed + n * f2 * msr)
    out.update(icc_a1_ci95=[float(low), float(high)], df_v=float(v))
    return out


def pearson_r(x: Sequence[float], y: Sequence[float]) -> Optional[float]:
    """Pearson's r = sum(dx dy) / sqrt(sum(dx^2) sum(dy^2)), dx, dy the deviations from the
    means; None when n < 2 or either variable is constant."""
    a, b = _pair_arrays(x, y)
    if a.size < 2:
        return None
    da, db = a - a.mean(), b - b.mean()
    den = math.sqrt(float(np.sum(da * da)) * float(np.sum(db * db)))
    return float(np.sum(da * db) / den) if den > 0 else None


def measure_agreement(truth: Sequence[float], pred: Sequence[float], unit: str) -> dict:
    """Bland-Altman, ICC(A,1) and Pearson r of one measure: an entry of metrics.json's
    "agreement".

    Args:
        truth, pred: the true and predicted values of the same items.
        unit: the key suffix, the unit of the differences ("pp" for slip %, "px",
            "mm", "deg").

    Returns:
        {"n", "bias_<unit>", "sd_<unit>" (ddof=1), "loa_low_<unit>",
        "loa_high_<unit>", "icc_a1", "icc_a1_ci95": [low, high], "pearson_r"}.
    """
    t, p = _pair_arrays(truth, pred)
    ba = bland_altman(t, p)
    icc = icc_a1(np.stack([t, p], axis=1))
    return {"n": ba["n"], f"bias_{unit}": ba["bias"], f"sd_{unit}": ba["sd"],
            f"loa_low_{unit}": ba["loa_low"], f"loa_high_{unit}": ba["loa_high"],
            "icc_a1": icc["icc_a1"], "icc_a1_ci95": icc["icc_a1_ci95"], "pearson_r": pearson_r(t, p)}


def slip_groups(gt_slip: Sequence[float], pred_slip: Sequence[float], gt_grade: Sequence[int],
                pred_grade: Sequence[int], groups: Sequence[Optional[Hashable]],
                order: Optional[Sequence[Hashable]] = None) -> Dict[Hashable, dict]:
    """The slip agreement of each group of pairs (a level, a true grade).

    Args:
        gt_slip, pred_slip: slip % of the scored pairs.
        gt_grade, pred_grade: their grades (-1..5).
        groups: each pair's group; None leaves the pair out.
        order: the groups in the order wanted (any other follows, in first-seen order).

    Returns:
        group -> {"n", "bias_pp", "sd_pp" (ddof=1), "loa_low_pp", "loa_high_pp",
        "slip_MAE_pp", "grade_acc" (percent)}, for the groups that have a pair.
    """
    gs, ps = _pair_arrays(gt_slip, pred_slip)
    gg, pg = np.asarray(gt_grade), np.asarray(pred_grade)
    if not (len(gg) == len(pg) == len(groups) == gs.size):
        raise ValueError("gt_slip, pred_slip, gt_grade, pred_grade and groups must have one entry per pair")
    seen: List[Hashable] = []
    for g in groups:
        if g is not None and g not in seen:
            seen.append(g)
    wanted = list(order or ())
    ranked = [g for g in wanted if g in seen] + [g for g in seen if g not in wanted]
    out = {}
    for g in ranked:
        sel = np.array([x == g for x in groups], dtype=bool)
        ba = bland_altman(gs[sel], ps[sel])
        out[g] = {"n": ba["n"], "bias_pp": ba["bias"], "sd_pp": ba["sd"], "loa_low_pp": ba["loa_low"],
                  "loa_high_pp": ba["loa_high"], "slip_MAE_pp": float(np.mean(np.abs(ps[sel] - gs[sel]))),
                  "grade_acc": float(100.0 * np.mean(gg[sel] == pg[sel]))}
    return out
