"""Scoring vertebra corner predictions: matching, MRE, SDR, detection, slip agreement.

Pure numpy/scipy; nothing here imports detectron2 or torch. The detectron2
evaluator lives in ``vertkp.evaluation.evaluator`` and is imported only when
asked for (``from vertkp.evaluation import VertebraKeypointEvaluator`` works
when detectron2 is installed).

Entry points:
    load_ground_truth, load_predictions, load_pixel_spacing, apply_pixel_spacing
    evaluate_dataset(truths, predictions, EvaluationSettings(...)) -> DatasetEvaluation
    write_evaluation(result, output_dir), format_summary(result.metrics)
"""
from .io import (  # noqa: F401
    EvaluationInputError,
    GroundTruth,
    ImagePredictions,
    ImageTruth,
    apply_pixel_spacing,
    load_ground_truth,
    load_pixel_spacing,
    load_predictions,
    truths_from_dataset_dicts,
)
from .matching import DEFAULT_GATE_FACTOR, Matching, match_vertebrae, mean_corner_distance, vertebra_size  # noqa: F401
from .metrics import (  # noqa: F401
    GRADE_LABELS,
    confusion_matrix,
    corner_errors,
    detection_scores,
    error_stats,
    quadratic_weighted_kappa,
    slip_agreement,
    success_detection_rate,
)
from .report import (  # noqa: F401
    PER_LANDMARK_COLUMNS,
    PER_PAIR_AP_COLUMNS,
    PER_PAIR_COLUMNS,
    format_summary,
    write_csv,
    write_evaluation,
    write_metrics_json,
)
from .scoring import (  # noqa: F401
    DEFAULT_SCORE_THRESHOLD,
    DEFAULT_SDR_THRESHOLDS_MM,
    DEFAULT_SDR_THRESHOLDS_PX,
    DatasetEvaluation,
    EvaluationSettings,
    ImageEvaluation,
    evaluate_dataset,
    evaluate_image,
    flat_metrics,
    threshold_key,
)


def __getattr__(name):
    # The detectron2 evaluator is imported on first use only, so that this
    # package works without detectron2.
    if name == "VertebraKeypointEvaluator":
        from .evaluator import VertebraKeypointEvaluator

        return VertebraKeypointEvaluator
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
