"""Scoring vertebra corner predictions: matching, MRE, SDR, detection, slip agreement.

Pure numpy/scipy; nothing in this package's modules imports torch or
detectron2 except ``vertkp.evaluation.evaluator`` (the detectron2
``DatasetEvaluator``, imported by name: ``from vertkp.evaluation.evaluator import
VertebraKeypointEvaluator``).

    ground_truth   load_ground_truth (the one loader of vertkp COCO files), apply_pixel_spacing
    predictions    load_predictions (COCO keypoint results)
    matching       match_vertebrae (Hungarian on mean corner distance, gated)
    metrics        error statistics, SDR, detection, kappa, slip agreement (plain arrays)
    scoring        EvaluationSettings, evaluate_image
    dataset        evaluate_dataset -> metrics.json; METRICS, the name of every metric
    report, plots  the files: metrics.json, CSVs, PNGs; format_summary
    cli            vertkp evaluate (evaluate_files)
"""
from .dataset import METRICS, DatasetEvaluation, evaluate_dataset, flat_metrics, threshold_key
from .ground_truth import EvaluationInputError, GroundTruth, ImageTruth, apply_pixel_spacing, load_ground_truth
from .matching import DEFAULT_GATE_FACTOR, DEFAULT_SCORE_THRESHOLD, Matching, match_vertebrae, mean_corner_distance
from .metrics import (
    confusion_matrix,
    detection_scores,
    error_stats,
    quadratic_weighted_kappa,
    slip_agreement,
    success_detection_rate,
)
from .predictions import ImagePredictions, load_predictions
from .report import PER_LANDMARK_COLUMNS, PER_PAIR_AP_COLUMNS, PER_PAIR_COLUMNS, format_summary, write_evaluation
from .scoring import (
    DEFAULT_SDR_THRESHOLDS_MM,
    DEFAULT_SDR_THRESHOLDS_PX,
    EvaluationSettings,
    ImageEvaluation,
    evaluate_image,
)

__all__ = [
    "METRICS", "DatasetEvaluation", "evaluate_dataset", "flat_metrics", "threshold_key",
    "EvaluationInputError", "GroundTruth", "ImageTruth", "apply_pixel_spacing", "load_ground_truth",
    "DEFAULT_GATE_FACTOR", "DEFAULT_SCORE_THRESHOLD", "Matching", "match_vertebrae", "mean_corner_distance",
    "confusion_matrix", "detection_scores", "error_stats", "quadratic_weighted_kappa", "slip_agreement",
    "success_detection_rate", "ImagePredictions", "load_predictions",
    "PER_LANDMARK_COLUMNS", "PER_PAIR_AP_COLUMNS", "PER_PAIR_COLUMNS", "format_summary", "write_evaluation",
    "DEFAULT_SDR_THRESHOLDS_MM", "DEFAULT_SDR_THRESHOLDS_PX", "EvaluationSettings", "ImageEvaluation",
    "evaluate_image",
]
