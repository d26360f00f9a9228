"""Inference: a trained model plus the grading, X-ray in, graded spine out.

* :class:`VertebraPredictor` (``predictor``, detectron2): config + weights ->
  callable on images (paths or arrays; grey or colour; 8 or 16 bit) returning
  :class:`SpinePrediction` (``result``): vertebrae with corners and scores,
  graded pairs, facing, flags. Exported here when detectron2 is installed.
* numpy only: ``result`` (what a prediction is, the flags), ``overlay``
  (``draw_overlay``, the picture), ``outputs`` (predictions.json, report.csv,
  COCO results), ``stream`` (predictions.jsonl, the line per image they are written
  from: resume, shards, finalize), ``review_page`` (review.html, the run's page for a
  person), ``inputs`` (a run's image files and what the command
  line says of each, as an ``ImageRecord``); ``run`` one predict run into its folder
  (``predict_files``), for one process or several; ``cli`` is ``vertkp predict``.
* The model's side (its test-time augmentation, the conversion of its output to arrays)
  is ``vertkp.modeling``'s.
"""
from .. import HAS_DETECTRON2
from .overlay import draw_overlay
from .result import FLAGS, FlagThresholds, PairResult, SpinePrediction, VertebraResult, build_prediction

__all__ = [
    "SpinePrediction", "VertebraResult", "PairResult", "FLAGS", "FlagThresholds", "build_prediction",
    "draw_overlay",
]

if HAS_DETECTRON2:
    from .predictor import VertebraPredictor

    __all__.append("VertebraPredictor")
