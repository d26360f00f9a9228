"""What a model predicts for one image, as numpy arrays, and the one conversion of detectron2's
output (``Instances``) to it.

numpy only (``Instances`` is read by its fields, detectron2 is not imported). Coordinates: px of
the input image, x right, y down. Corners are in the COCO files' convention (a pixel's centre
at its integer index): :func:`predictions_from_instances` removes detectron2's
``DETECTRON2_KEYPOINT_OFFSET`` here, and nowhere else. Boxes (x0, y0, x1, y1) are detectron2's
continuous coordinates, which the COCO files' boxes share.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional

import numpy as np

from ..keypoint_decoding import corner_confidence
from ..keypoints import DETECTRON2_KEYPOINT_OFFSET, NUM_KEYPOINTS

__all__ = ["ImagePredictions", "predictions_from_instances"]


@dataclass
class ImagePredictions:
    """Predicted vertebrae of one image.

    Attributes:
        corners: float [M, 4, 2] px, TL, TR, BL, BR.
        scores: float [M] detection scores in [0, 1].
        corner_confidence: float [M, 4] in [0, 1], each corner's heatmap confidence
            (``vertkp.keypoint_decoding.corner_confidence``); None where the predictions do not
            carry it (COCO results files).
        corner_spread: float [M, 4] px, the test-time augmentation passes' disagreement
            (``vertkp.modeling.fusion``; NaN: one pass alone found the vertebra); None
            without test-time augmentation.
        boxes: float [M, 4] px; None where the predictions do not carry them.
        levels: [M] the level each predicted vertebra is named ("L5", "S1", ... of
            ``vertkp.anatomy.LEVELS``), or None for one left positional ("#k from bottom");
            the list itself None where the predictions name no level (the default). The
            evaluator scores it (``level_acc``, ``level_wrong_pct``, ``level_named_pct``).
    """

    corners: np.ndarray
    scores: np.ndarray
    corner_confidence: Optional[np.ndarray] = None
    corner_spread: Optional[np.ndarray] = None
    boxes: Optional[np.ndarray] = None
    levels: Optional[List[Optional[str]]] = None

    def __post_init__(self):
        if self.levels is not None and len(self.levels) != len(self.scores):
            raise ValueError(f"levels has {len(self.levels)} entries for {len(self.scores)} predicted vertebrae: "
                             "give one level name (or None) per vertebra, aligned with corners, or levels=None")

    @classmethod
    def empty(cls) -> "ImagePredictions":
        return cls(np.zeros((0, NUM_KEYPOINTS, 2)), np.zeros(0))


def predictions_from_instances(instances, *, file_coordinates: bool = True) -> ImagePredictions:
    """One image's model output (detectron2 ``Instances`` with ``pred_keypoints``, or None:
    nothing) as float64 copies.

    The corner confidence is the fused one of test-time augmentation
    (``vertkp.modeling.test_time_augmentation``) where the instances carry it, else computed
    from ``pred_keypoint_heatmaps``, else None (another model's output); the spread only comes
    with test-time augmentation.

    Args:
        file_coordinates: corners in the COCO files' coordinates (detectron2's offset
            removed); False keeps detectron2's (what the test-time augmentation fuses).
    """
    if instances is None or not instances.has("pred_keypoints") or len(instances) == 0:
        return ImagePredictions(np.zeros((0, NUM_KEYPOINTS, 2)), np.zeros(0), np.zeros((0, NUM_KEYPOINTS)), None,
                                np.zeros((0, 4)))
    inst = instances.to("cpu")
    corners = inst.pred_keypoints[:, :, :2].detach().numpy().astype(np.float64)  # a copy: never in place
    if file_coordinates:
        corners -= DETECTRON2_KEYPOINT_OFFSET
    spread = None
    if inst.has("corner_confidence"):
        confidence = inst.corner_confidence.numpy().astype(np.float64)
        spread = inst.corner_spread.numpy().astype(np.float64)
    elif inst.has("pred_keypoint_heatmaps"):
        confidence = corner_confidence(inst.pred_keypoint_heatmaps.detach().float().numpy())
    else:
        confidence = None
    return ImagePredictions(corners, inst.scores.detach().numpy().astype(np.float64), confidence, spread,
                            inst.pred_boxes.tensor.detach().numpy().astype(np.float64))
