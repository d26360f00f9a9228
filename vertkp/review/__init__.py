"""Review: when a prediction calls for a human look, and how wrong a corner is likely to be.

Pure numpy, above ``vertkp.grading``; ``vertkp.inference`` raises the flags and
``vertkp.evaluation`` reports their calibration from here. One job per module:

* ``flags``: the flag codes (``FLAGS``), ``FlagThresholds`` and the per-corner rule
  (``corner_flags``, ``flag_masks``);
* ``uncertainty``: the corner error model (``CornerUncertainty``, ``corner_sd_px``, px)
  and the slip distribution it gives (``slip_distribution``, percentage points; its interval
  ``CornerUncertainty.interval``), an image's risk from its grades (``image_risk``);
* ``operating_points``: ``OPERATING_POINTS``, per TTA mode ("none", "flip", "flip,scale") the
  thresholds, the error model and the error risk the code ships with;
* ``statistics``: AUROC, flag recall / rate / precision, reliability and ECE, the logistic fit,
  over plain arrays;
* ``calibration``: those on evaluated images (``corner_table``, ``evaluate_calibration``:
  metrics.json "calibration"; ``pair_doubts``, ``slip_interval_stats``);
* ``fitting``: the fit of an operating point on a tuning set (``fit_operating_point``,
  ``fit_grade_doubt``), which ``vertkp benchmark tta`` and ``review`` run.
"""
from .calibration import (SPREAD_CAP_PCT, calibration_at, corner_table, error_risk, evaluate_calibration,
                          pair_doubts, risk_features, risk_signals, slip_interval_stats)
from .fitting import (GRADE_DOUBT_FLOORS, TARGET_FLAG_RATE, TARGET_GRADE_RECALL, TARGET_RECALL, choose_thresholds,
                      fit_corner_uncertainty, fit_grade_doubt, fit_operating_point, fitted_point)
from .flags import FLAGS, FlagThresholds, corner_flags, flag_masks
from .operating_points import OPERATING_POINTS, OperatingPoint
from .statistics import (LARGE_ERROR_PCT_WIDTH, auroc, bins_calibration_error, calibration_report,
                         expected_calibration_error, fit_logistic, flag_stats, logistic_risk, reliability_bins,
                         threshold_for_recall)
from .uncertainty import (CornerUncertainty, corner_sd_px, follow_orientation, image_risk, slip_distribution,
                          spread_pct_width)

__all__ = [
    # flags, operating points
    "FLAGS", "FlagThresholds", "corner_flags", "flag_masks", "OperatingPoint", "OPERATING_POINTS",
    # uncertainty
    "CornerUncertainty", "corner_sd_px", "spread_pct_width", "follow_orientation", "slip_distribution", "image_risk",
    # statistics
    "LARGE_ERROR_PCT_WIDTH", "auroc", "flag_stats", "threshold_for_recall", "reliability_bins",
    "expected_calibration_error", "bins_calibration_error", "fit_logistic", "logistic_risk", "calibration_report",
    # calibration
    "SPREAD_CAP_PCT", "risk_features", "error_risk", "corner_table", "risk_signals", "calibration_at",
    "evaluate_calibration", "pair_doubts", "slip_interval_stats",
    # fitting
    "TARGET_RECALL", "TARGET_FLAG_RATE", "TARGET_GRADE_RECALL", "GRADE_DOUBT_FLOORS", "choose_thresholds",
    "fit_corner_uncertainty", "fit_operating_point", "fit_grade_doubt",
    "fitted_point",
]
