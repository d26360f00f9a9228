"""Keypoint test-time augmentation: :class:`KeypointRCNNWithTTA`, in the shape of detectron2's
``GeneralizedRCNNWithTTA`` (which refuses keypoint models).

Configured by detectron2's own keys, read wherever a model is evaluated or predicts (the trainer's
evaluations, ``--eval-only``, ``VertebraPredictor``, the benchmarks):

  TEST.AUG.ENABLED    wrap the model (False: one pass, the model as it is)
  TEST.AUG.MIN_SIZES  shortest-edge sizes of the passes, px, ``INPUT.MIN_SIZE_TEST`` among them:
                      the test input (the mapper's, at ``INPUT.MIN_SIZE_TEST``) rescaled by
                      size / ``INPUT.MIN_SIZE_TEST``; empty (vertkp's configs): the test size
                      alone, so that it follows ``INPUT.MIN_SIZE_TEST``
  TEST.AUG.FLIP       every size also mirrored; vertkp's augmentation is built on the mirror,
                      so it must be True when ENABLED (:func:`tta_mode`)

``vertkp predict --tta`` and the predictor's ``tta`` name three settings of them
(:func:`set_tta_mode`, ``vertkp.modeling.fusion.TTA_MODES``). Each pass goes through the model's
public ``inference`` and comes back in the input image's pixels; mirrored passes are mirrored
back and all are fused (``vertkp.modeling.fusion``). Since the passes of a mirrored image are
exactly the mirrored passes of the image and the fusion is symmetric in its passes, the result
is flip-equivariant.

The wrapper returns what the model returns (``[{"instances": Instances}]``, detectron2's
coordinates) with ``pred_boxes``, ``scores``, ``pred_classes``, ``pred_keypoints`` (x, y,
fused corner confidence) and three more fields: ``corner_confidence`` [R, 4], ``corner_spread``
[R, 4] (px; NaN where one pass alone found the vertebra) and ``tta_found`` [R] (how many passes
found it); ``vertkp.modeling.outputs.predictions_from_instances`` reads them.
"""
from __future__ import annotations

from typing import List, Tuple

import numpy as np
import torch
import torch.nn.functional as F
from detectron2.structures import Boxes, Instances
from torch import nn

from .fusion import (DEFAULT_MATCH_IOU, DEFAULT_OUTLIER_PCT, DEFAULT_UNMATCHED, SCALE_FACTORS, TTA_MODES, Pass,
                     fuse_passes, mirror_pass)
from .outputs import predictions_from_instances

__all__ = ["KeypointRCNNWithTTA", "set_tta_mode", "tta_mode", "tta_augmentations"]


def set_tta_mode(cfg, mode: str) -> None:
    """Set ``TEST.AUG`` of an unfrozen config to a mode of ``TTA_MODES``: "none" (ENABLED
    False), "flip" (the test size and its mirror: MIN_SIZES empty), "flip,scale"
    (``SCALE_FACTORS`` times the test size, each with its mirror)."""
    if mode not in TTA_MODES:
        raise ValueError(f"TTA mode must be one of {', '.join(TTA_MODES)}, got {mode!r}")
    cfg.TEST.AUG.ENABLED = mode != "none"
    cfg.TEST.AUG.FLIP = True
    scales = mode == "flip,scale"
    cfg.TEST.AUG.MIN_SIZES = tuple(int(round(f * cfg.INPUT.MIN_SIZE_TEST)) for f in SCALE_FACTORS) if scales else ()


def _sizes(cfg) -> list:
    """The passes' shortest-edge sizes, px (TEST.AUG.MIN_SIZES; empty: the test size)."""
    return list(cfg.TEST.AUG.MIN_SIZES) or [cfg.INPUT.MIN_SIZE_TEST]


def tta_mode(cfg) -> str:
    """The mode of ``TTA_MODES`` a config's ``TEST.AUG`` keys set: "none", "flip" (one size) or
    "flip,scale" (several).

    Raises:
        ValueError: ENABLED without FLIP, MIN_SIZES without ``INPUT.MIN_SIZE_TEST`` (a config
            that changed one and not the other) or with a size under 0.1 or over 4 times it.
    """
    aug = cfg.TEST.AUG
    if not aug.ENABLED:
        return "none"
    if not aug.FLIP:
        raise ValueError("TEST.AUG.FLIP is False with TEST.AUG.ENABLED: vertkp's test-time augmentation mirrors "
                         "every size; set TEST.AUG.ENABLED False for one pass")
    sizes, test = _sizes(cfg), cfg.INPUT.MIN_SIZE_TEST
    if test not in sizes or any(not 0.1 <= s / test <= 4.0 for s in sizes):
        raise ValueError(f"TEST.AUG.MIN_SIZES must hold INPUT.MIN_SIZE_TEST ({test}) and sizes between 0.1 and 4 "
                         f"times it, got {sizes}: set them together")
    return "flip" if len(sizes) == 1 else "flip,scale"


def tta_augmentations(cfg) -> List[Tuple[float, bool]]:
    """The passes of a config: (factor of the test input, mirrored) pairs; [(1.0, False)] without
    test-time augmentation."""
    if tta_mode(cfg) == "none":
        return [(1.0, False)]
    return [(s / cfg.INPUT.MIN_SIZE_TEST, mirrored) for s in _sizes(cfg) for mirrored in (False, True)]


def _scaled(image: torch.Tensor, factor: float) -> torch.Tensor:
    """The test input [C, h, w] resized by ``factor`` (bilinear, antialiased when shrinking), float."""
    if factor == 1.0:
        return image
    h, w = image.shape[-2:]
    size = (max(1, int(round(h * factor))), max(1, int(round(w * factor))))
    return F.interpolate(image[None].float(), size=size, mode="bilinear", align_corners=False,
                         antialias=factor < 1.0)[0]


def _as_pass(instances: Instances) -> Pass:
    """One pass's output in detectron2's coordinates (what the mirror and the fusion work in)."""
    p = predictions_from_instances(instances, file_coordinates=False)
    return Pass(p.boxes, p.scores, p.corners, p.corner_confidence)


def _as_instances(fused, size: Tuple[int, int]) -> Instances:
    """detectron2 ``Instances`` of an image of ``size`` (h, w) from a ``FusedPrediction``."""
    n = len(fused.scores)
    kps = np.concatenate([fused.corners, fused.corner_confidence[..., None]], axis=-1)
    return Instances(size, pred_boxes=Boxes(torch.as_tensor(fused.boxes, dtype=torch.float32).reshape(n, 4)),
                     scores=torch.as_tensor(fused.scores, dtype=torch.float32),
                     pred_classes=torch.zeros(n, dtype=torch.int64),
                     pred_keypoints=torch.as_tensor(kps, dtype=torch.float32).reshape(n, 4, 3),
                     corner_confidence=torch.as_tensor(fused.corner_confidence, dtype=torch.float64).reshape(n, 4),
                     corner_spread=torch.as_tensor(fused.corner_spread, dtype=torch.float64).reshape(n, 4),
                     tta_found=torch.as_tensor(fused.n_found, dtype=torch.int64))


class KeypointRCNNWithTTA(nn.Module):
    """A Keypoint R-CNN whose inference fuses its augmented passes; called as
    ``GeneralizedRCNN`` is at inference (a list of the test mapper's dicts).

    Args:
        cfg: the config (``TEST.AUG``, ``INPUT.MIN_SIZE_TEST``); TEST.AUG.ENABLED must be True.
        model: a detectron2 GeneralizedRCNN (or a DistributedDataParallel around one).
        unmatched, iou, outlier_pct: as for ``vertkp.modeling.fusion.fuse_passes``.
    """

    def __init__(self, cfg, model: nn.Module, *, unmatched: str = DEFAULT_UNMATCHED, iou: float = DEFAULT_MATCH_IOU,
                 outlier_pct: float = DEFAULT_OUTLIER_PCT):
        super().__init__()
        if tta_mode(cfg) == "none":
            raise ValueError("KeypointRCNNWithTTA needs TEST.AUG.ENABLED True")
        self.model = model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model
        self.augmentations = tta_augmentations(cfg)
        self.fusion = dict(unmatched=unmatched, iou=float(iou), outlier_pct=float(outlier_pct))

    def forward(self, batched_inputs: List[dict]) -> List[dict]:
        if self.training:
            raise RuntimeError("KeypointRCNNWithTTA is for inference: train the model it wraps")
        # outputs come back in each input image's pixels (detectron2's "height", "width")
        sizes = [(int(inp.get("height", inp["image"].shape[-2])), int(inp.get("width", inp["image"].shape[-1])))
                 for inp in batched_inputs]
        passes = [[] for _ in batched_inputs]
        for factor, mirrored in self.augmentations:
            inputs = []
            for inp, (h, w) in zip(batched_inputs, sizes):
                image = _scaled(inp["image"], factor)
                inputs.append({"image": torch.flip(image, dims=[-1]) if mirrored else image, "height": h, "width": w})
            for k, out in enumerate(self.model.inference(inputs)):
                p = _as_pass(out["instances"])
                passes[k].append(mirror_pass(p, float(sizes[k][1])) if mirrored else p)
        return [{"instances": _as_instances(fuse_passes(image_passes, **self.fusion), size)}
                for image_passes, size in zip(passes, sizes)]
