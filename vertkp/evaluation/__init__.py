"""Scoring vertebra corner predictions: matching, MRE, SDR, detection, slip agreement.

Pure numpy/scipy; nothing in this package's modules imports torch or
detectron2 except ``vertkp.evaluation.evaluator`` (the detectron2
``DatasetEvaluator``, imported by name: ``from vertkp.evaluation.evaluator import
VertebraKeypointEvaluator``).

    ground_truth   load_ground_truth (the one loader of vertkp COCO files), apply_pixel_spacing
    predictions    load_predictions (COCO keypoint results)
    matching       match_vertebrae (Hungarian on mean corner distance, gated)
    metrics        error statistics, SDR, detection, kappa, slip agreement, tails, level naming (plain arrays)
    agreement      Bland-Altman, ICC(A,1) with its CI, Pearson r, slip per level / grade (plain arrays)
    bootstrap      percentile bootstrap 95% CIs from per-image sums, resampling patients or images
    scoring        EvaluationSettings, evaluate_image
    metric_names   METRICS, the name (and unit) of every metric
    dataset        evaluate_dataset -> metrics.json
    report, plots  the files: metrics.json, CSVs, PNGs; format_summary
    table          the results table of vertkp evaluate --table md|latex|csv
    cli            vertkp evaluate (evaluate_files)
"""
from .agreement import LOA_Z, bland_altman, icc_a1, measure_agreement, pearson_r, slip_groups
from .bootstrap import CI_METRICS, bootstrap_ci95
from .dataset import DatasetEvaluation, evaluate_dataset, flat_metrics
from .metric_names import METRICS, threshold_key
from .ground_truth import (
    EvaluationInputError,
    GroundTruth,
    ImageTruth,
    apply_pixel_spacing,
    load_ground_truth,
)
from .matching import DEFAULT_GATE_FACTOR, DEFAULT_SCORE_THRESHOLD, Matching, match_vertebrae, mean_corner_distance
from .metrics import (
    confusion_matrix,
    corners_off_width,
    detection_scores,
    error_stats,
    level_scores,
    quadratic_weighted_kappa,
    slip_agreement,
    slip_tails,
    success_detection_rate,
)
from ..modeling.outputs import ImagePredictions
from .predictions import load_predictions
from .report import PER_LANDMARK_COLUMNS, PER_PAIR_AP_COLUMNS, PER_PAIR_COLUMNS, format_summary, write_evaluation
from .scoring import (
    DEFAULT_BOOTSTRAP,
    DEFAULT_SDR_THRESHOLDS_MM,
    DEFAULT_SDR_THRESHOLDS_PX,
    EvaluationSettings,
    ImageEvaluation,
    evaluate_image,
)
from .table import TABLE_FORMATS, format_results_table

__all__ = [
    "LOA_Z", "bland_altman", "icc_a1", "measure_agreement", "pearson_r", "slip_groups",
    "CI_METRICS", "bootstrap_ci95",
    "METRICS", "DatasetEvaluation", "evaluate_dataset", "flat_metrics", "threshold_key",
    "EvaluationInputError", "GroundTruth", "ImageTruth", "apply_pixel_spacing", "load_ground_truth",
    "DEFAULT_GATE_FACTOR", "DEFAULT_SCORE_THRESHOLD", "Matching", "match_vertebrae", "mean_corner_distance",
    "confusion_matrix", "detection_scores", "error_stats", "quadratic_weighted_kappa", "slip_agreement",
    "success_detection_rate", "slip_tails", "corners_off_width", "level_scores", "ImagePredictions", "load_predictions",
    "PER_LANDMARK_COLUMNS", "PER_PAIR_AP_COLUMNS", "PER_PAIR_COLUMNS", "format_summary", "write_evaluation",
    "DEFAULT_BOOTSTRAP", "DEFAULT_SDR_THRESHOLDS_MM", "DEFAULT_SDR_THRESHOLDS_PX", "EvaluationSettings",
    "ImageEvaluation", "evaluate_image", "TABLE_FORMATS", "format_results_table",
]
