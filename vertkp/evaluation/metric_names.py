"""The names of every metric.

Every scalar metric has one name, used alike at the top level of metrics.json,
in detectron2's results (``{"vertkp": {name: float}}``, logged as
"vertkp/<name>"), in ``demo_summary.json`` and in the README: :data:`METRICS`.
"""
from __future__ import annotations

import re
from typing import Dict, Optional

from ..keypoints import KEYPOINT_NAMES

__all__ = ["METRICS", "threshold_key", "metric_unit"]

# Scalar metric name (``<t>`` a threshold as written by ``threshold_key``, ``<corner>``
# one of TL, TR, BL, BR) -> (unit, meaning). Rates are percentages, 0-100.
METRICS: Dict[str, tuple] = {
    "n_images": ("count", "images scored"),
    "n_images_with_spacing": ("count", "images with a pixel spacing (the mm metrics are over these)"),
    "n_gt_vertebrae": ("count", "ground-truth vertebrae"),
    "n_gt_corners": ("count", "labelled ground-truth corners"),
    "n_predictions": ("count", "predicted vertebrae at or above the score threshold"),
    "n_matched": ("count", "ground-truth vertebrae matched to a prediction"),
    "MRE_px": ("px", "mean radial error: mean distance of matched corners to their truth"),
    "MRE_px_median": ("px", "median of the same distances"),
    "MRE_px_std": ("px", "population standard deviation of the same distances"),
    "MRE_pct_width": ("percent", "MRE_px as a percentage of the mean width of the ground-truth vertebrae "
                                 "(mean length of their endplates)"),
    "MRE_px_<corner>": ("px", "MRE of one corner (TL, TR, BL, BR)"),
    "MRE_mm": ("mm", "MRE over the images with a pixel spacing"),
    "MRE_mm_median": ("mm", "median error over the images with a pixel spacing"),
    "MRE_mm_std": ("mm", "standard deviation over the images with a pixel spacing"),
    "SDR_px@<t>": ("percent", "successful detection rate: labelled corners within t px (a missed vertebra's "
                              "corners fail)"),
    "SDR_mm@<t>": ("percent", "labelled corners within t mm, over the images with a pixel spacing"),
    "det_precision": ("percent", "matched predictions / predictions"),
    "det_recall": ("percent", "matched ground-truth vertebrae / ground-truth vertebrae"),
    "det_F1": ("percent", "harmonic mean of det_precision and det_recall"),
    "det_TP": ("count", "matched pairs"),
    "det_FP": ("count", "unmatched predictions"),
    "det_FN": ("count", "unmatched ground-truth vertebrae"),
    "n_gt_S1": ("count", "ground-truth vertebrae whose level is S1"),
    "n_missed_S1": ("count", "ground-truth S1 vertebrae not matched to a prediction"),
    "corners_off10pct_width": ("percent", "labelled corners of matched vertebrae whose error exceeds 10% of their "
                                          "vertebra's width (mean length of its endplates)"),
    "slip_MAE_pp": ("percentage points", "mean absolute difference of predicted and true slip % over scored lateral pairs"),
    "grade_acc": ("percent", "scored lateral pairs with the true grade (retrolisthesis, none, I-V)"),
    "kappa": ("kappa", "quadratic-weighted Cohen kappa of the grades"),
    "n_pairs": ("count", "lateral pairs scored (both vertebrae matched)"),
    "n_unscored_pairs": ("count", "measurable lateral ground-truth pairs with a missed vertebra"),
    "slip_bias_pp": ("percentage points", "Bland-Altman bias: mean of predicted minus true slip % over scored "
                                          "lateral pairs"),
    "slip_sd_pp": ("percentage points", "sample standard deviation (ddof=1) of the same differences"),
    "slip_loa_low_pp": ("percentage points", "lower 95% limit of agreement: slip_bias_pp - 1.96 slip_sd_pp"),
    "slip_loa_high_pp": ("percentage points", "upper 95% limit of agreement: slip_bias_pp + 1.96 slip_sd_pp"),
    "slip_icc_a1": ("ICC", "ICC(A,1) of predicted and true slip %: two-way, absolute agreement, single measure"),
    "slip_icc_a1_ci95_low": ("ICC", "lower bound of its 95% confidence interval (F distribution)"),
    "slip_icc_a1_ci95_high": ("ICC", "upper bound of its 95% confidence interval (F distribution)"),
    "slip_pearson_r": ("r", "Pearson correlation of predicted and true slip %"),
    "slip_off10_pct": ("percent", "scored lateral pairs whose predicted slip is more than 10 percentage points "
                                  "from the true one"),
    "slip_off20_pct": ("percent", "scored lateral pairs whose predicted slip is more than 20 percentage points "
                                  "from the true one"),
    "n_slip_off10": ("count", "scored lateral pairs off by more than 10 percentage points"),
    "n_slip_off20": ("count", "scored lateral pairs off by more than 20 percentage points"),
    "lateral_displacement_MAE_pp": ("percentage points", "mean absolute difference of predicted and true "
                                                         "lateral displacement % over scored AP pairs"),
    "lateral_side_acc": ("percent", "scored AP pairs whose side (left, right, none) is right"),
    "n_ap_pairs": ("count", "AP pairs scored"),
    "n_unscored_ap_pairs": ("count", "measurable AP ground-truth pairs with a missed vertebra"),
    "level_acc": ("percent", "predictions naming levels: matched ground-truth vertebrae with a level whose "
                             "predicted level is right (unnamed counts as not right)"),
    "level_wrong_pct": ("percent", "predictions naming levels: the same vertebrae named a wrong level"),
    "level_named_pct": ("percent", "predictions naming levels: the same vertebrae named a level at all"),
    "n_level_scored": ("count", "predictions naming levels: matched ground-truth vertebrae with a level"),
    "MRE_px_ci95_low": ("px", "lower bound of the bootstrap 95% confidence interval of MRE_px"),
    "MRE_px_ci95_high": ("px", "upper bound of the bootstrap 95% confidence interval of MRE_px"),
    "det_F1_ci95_low": ("percent", "lower bound of the bootstrap 95% confidence interval of det_F1"),
    "det_F1_ci95_high": ("percent", "upper bound of the bootstrap 95% confidence interval of det_F1"),
    "grade_acc_ci95_low": ("percent", "lower bound of the bootstrap 95% confidence interval of grade_acc"),
    "grade_acc_ci95_high": ("percent", "upper bound of the bootstrap 95% confidence interval of grade_acc"),
    "slip_MAE_pp_ci95_low": ("percentage points", "lower bound of the bootstrap 95% confidence interval of "
                                                  "slip_MAE_pp"),
    "slip_MAE_pp_ci95_high": ("percentage points", "upper bound of the bootstrap 95% confidence interval of "
                                                   "slip_MAE_pp"),
    "kappa_ci95_low": ("kappa", "lower bound of the bootstrap 95% confidence interval of kappa"),
    "kappa_ci95_high": ("kappa", "upper bound of the bootstrap 95% confidence interval of kappa"),
    "flag_recall": ("percent", "predictions with corner signals: large-error corners (over 5% of the vertebra "
                               "width) that a flag catches at the default thresholds"),
    "flag_rate": ("percent", "predictions with corner signals: matched corners flagged at the default thresholds"),
    "risk_auroc": ("AUROC", "predictions with corner signals: AUROC of the combined error risk for large-error "
                            "corners"),
    "truth_MRE_px": ("px", "phantoms (--truth): MRE against the exact corners instead of the labels"),
    "truth_MRE_pct_width": ("percent", "phantoms (--truth): MRE_pct_width against the exact corners"),
    "truth_SDR_px@<t>": ("percent", "phantoms (--truth): SDR against the exact corners"),
    "truth_det_F1": ("percent", "phantoms (--truth): det_F1 against the exact corners"),
    "truth_slip_MAE_pp": ("percentage points", "phantoms (--truth): slip_MAE_pp against the exact slips"),
    "truth_grade_acc": ("percent", "phantoms (--truth): grade_acc against the exact grades"),
    "truth_slip_off10_pct": ("percent", "phantoms (--truth): slip_off10_pct against the exact slips"),
    "truth_slip_off20_pct": ("percent", "phantoms (--truth): slip_off20_pct against the exact slips"),
    "truth_corners_off10pct_width": ("percent", "phantoms (--truth): corners_off10pct_width against the exact "
                                                "corners"),
    "label_MRE_px": ("px", "phantoms (--truth): the labels' own MRE against the exact corners (the floor "
                           "label noise puts under MRE_px)"),
    "label_SDR_px@<t>": ("percent", "phantoms (--truth): the labels' own SDR against the exact corners"),
}


def threshold_key(t: float) -> str:
    """How a threshold is written in metric names: 6.0 -> "6", 2.5 -> "2.5"."""
    return f"{float(t):g}"


def _pattern(name: str) -> "re.Pattern":
    corners = "|".join(KEYPOINT_NAMES)
    return re.compile("^" + re.escape(name).replace("<corner>", f"(?:{corners})")
                      .replace("<t>", r"[0-9.]+(?:e[-+]?[0-9]+)?") + "$")


_PATTERNS = {name: _pattern(name) for name in METRICS}


def metric_unit(name: str) -> Optional[str]:
    """The unit of a scalar metric name ("SDR_px@6" -> "percent"), None when it is not one."""
    for entry, pattern in _PATTERNS.items():
        if pattern.match(name):
            return METRICS[entry][0]
    return None
