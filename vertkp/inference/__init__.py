"""Inference: a trained model plus the grading, X-ray in, graded spine out.

* :class:`VertebraPredictor` (``predictor``): config + weights -> callable on
  images (paths or arrays; grey or colour; 8 or 16 bit) returning
  :class:`SpinePrediction` (``result``): vertebrae with corners and scores,
  graded pairs, facing, flags.
* ``overlay.draw_overlay``: the picture; ``outputs``: predictions.json,
  report.csv, COCO results; ``cli``: ``tools/predict.py``.

Importing this package does not import detectron2 (the predictor does, when built).
"""
from .images import ImageReadError, load_image, read_xray, to_gray8
from .overlay import draw_overlay
from .predictor import DEFAULT_SCORE_THRESHOLD, VertebraPredictor
from .result import FLAGS, FlagThresholds, PairResult, SpinePrediction, VertebraResult, build_prediction, corner_confidence

__all__ = [
    "VertebraPredictor", "DEFAULT_SCORE_THRESHOLD", "SpinePrediction", "VertebraResult", "PairResult",
    "FLAGS", "FlagThresholds", "build_prediction", "corner_confidence", "draw_overlay",
    "ImageReadError", "read_xray", "load_image", "to_gray8",
]
