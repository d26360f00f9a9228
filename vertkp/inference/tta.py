"""Keypoint test-time augmentation around a detectron2 Keypoint R-CNN (``VERTKP.TTA``).

detectron2's own ``GeneralizedRCNNWithTTA`` refuses keypoint models; this wrapper
runs the model on the test input, its mirror and (``"flip,scale"``) rescaled
copies, maps every pass back to the image's coordinates and fuses them
(``vertkp.inference.fusion``). Each augmentation is its own forward pass, so the
passes of a mirrored image are exactly the mirrored passes of the image: the
result is flip-equivariant.

It returns what the model returns (``[{"instances": Instances}]`` in the input
images' pixels) with ``pred_boxes``, ``scores``, ``pred_classes``,
``pred_keypoints`` (x, y, fused corner confidence) and three fields the
predictor and the evaluator read: ``corner_confidence`` [R, 4],
``corner_spread`` [R, 4] (px, the passes' disagreement; NaN when one pass alone
found the vertebra) and ``tta_found`` [R] (passes that found it). The trainer's
evaluation, ``--eval-only`` and ``VertebraPredictor`` use it unless ``VERTKP.TTA``
is "none".
"""
from __future__ import annotations

from typing import List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F
from detectron2.structures import Boxes, Instances
from torch import nn

from .fusion import DEFAULT_MATCH_IOU, DEFAULT_OUTLIER_PCT, DEFAULT_UNMATCHED, TTA_MODES, Pass, fuse_passes, mirror_pass
from .result import corner_confidence

__all__ = ["TTA_MODES", "VertebraTTA", "tta_augmentations", "uses_tta", "instances_corner_signals"]

def tta_augmentations(mode: str, scales: Sequence[float] = (1.0,)) -> List[Tuple[float, bool]]:
    """The passes of a TTA mode: (scale factor of the test input, mirrored) pairs."""
    if mode not in TTA_MODES:
        raise ValueError(f"TTA mode must be one of {TTA_MODES} (VERTKP.TTA, --tta), got {mode!r}")
    if mode == "none":
        return [(1.0, False)]
    factors = [float(s) for s in scales] if mode == "flip,scale" else [1.0]
    if not factors or any(not (0.1 <= s <= 4.0) for s in factors):
        raise ValueError(f"TTA scales must be factors in [0.1, 4] (VERTKP.TTA_SCALES), got {list(scales)}")
    return [(s, f) for s in factors for f in (False, True)]


def uses_tta(cfg) -> bool:
    """Whether a config asks for test-time augmentation (``VERTKP.TTA`` other than "none";
    an unknown value raises, naming the key)."""
    tta_augmentations(cfg.VERTKP.TTA, tuple(cfg.VERTKP.TTA_SCALES))
    return cfg.VERTKP.TTA != "none"


def _scaled(image: torch.Tensor, factor: float) -> torch.Tensor:
    """The test input [C, h, w] resized by ``factor`` (bilinear, antialiased when shrinking), float."""
    if factor == 1.0:
        return image
    h, w = image.shape[-2:]
    size = (max(1, int(round(h * factor))), max(1, int(round(w * factor))))
    x = image[None].float()
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=factor < 1.0)[0]


def _as_pass(inst: Instances) -> Pass:
    inst = inst.to("cpu")
    if len(inst) == 0:
        return Pass(np.zeros((0, 4)), np.zeros(0), np.zeros((0, 4, 2)), np.zeros((0, 4)))
    return Pass(inst.pred_boxes.tensor.detach().numpy(), inst.scores.detach().numpy(),
                inst.pred_keypoints[:, :, :2].detach().numpy(),
                corner_confidence(inst.pred_keypoint_heatmaps.detach().float().numpy()))


def instances_corner_signals(inst: Instances) -> Tuple[Optional[np.ndarray], Optional[np.ndarray]]:
    """(corner confidence [R, 4], corner spread [R, 4] px, None without TTA) of a model's
    output, with or without :class:`VertebraTTA`; (None, None) for instances that carry
    neither heatmaps nor fused signals (another model's)."""
    if inst.has("corner_confidence"):
        return (inst.corner_confidence.numpy().astype(np.float64), inst.corner_spread.numpy().astype(np.float64))
    if len(inst) == 0:
        return np.zeros((0, 4)), None
    if not inst.has("pred_keypoint_heatmaps"):
        return None, None
    return corner_confidence(inst.pred_keypoint_heatmaps.float().numpy()), None


class VertebraTTA(nn.Module):
    """A Keypoint R-CNN whose inference fuses several augmented passes.

    Args:
        model: a detectron2 GeneralizedRCNN (or a DistributedDataParallel around one).
        mode: one of :data:`TTA_MODES`.
        scales: factors of the test input for "flip,scale".
        unmatched, iou, outlier_pct: as for ``vertkp.inference.fusion.fuse_passes``.
    """

    def __init__(self, model: nn.Module, mode: str = "flip", scales: Sequence[float] = (0.8, 1.0, 1.2), *,
                 unmatched: str = DEFAULT_UNMATCHED, iou: float = DEFAULT_MATCH_IOU,
                 outlier_pct: float = DEFAULT_OUTLIER_PCT):
        super().__init__()
        self.model = model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model
        self.augmentations = tta_augmentations(mode, scales)
        self.fusion = dict(unmatched=unmatched, iou=float(iou), outlier_pct=float(outlier_pct))

    @classmethod
    def from_cfg(cls, cfg, model: nn.Module) -> "VertebraTTA":
        return cls(model, cfg.VERTKP.TTA, tuple(cfg.VERTKP.TTA_SCALES))

    def forward(self, batched_inputs: List[dict]) -> List[dict]:
        if self.training:
            raise RuntimeError("VertebraTTA is for inference: train the model it wraps")
        # outputs come back in each input image's pixels (detectron2's "height", "width")
        sizes = [(int(inp.get("height", inp["image"].shape[-2])), int(inp.get("width", inp["image"].shape[-1])))
                 for inp in batched_inputs]
        passes = [[] for _ in batched_inputs]
        for factor, mirrored in self.augmentations:
            inputs = []
            for inp, (h, w) in zip(batched_inputs, sizes):
                image = _scaled(inp["image"], factor)
                inputs.append({"image": torch.flip(image, dims=[-1]) if mirrored else image, "height": h, "width": w})
            for k, out in enumerate(self.model(inputs)):
                p = _as_pass(out["instances"])
                passes[k].append(mirror_pass(p, float(sizes[k][1])) if mirrored else p)
        return [{"instances": _as_instances(fuse_passes(image_passes, **self.fusion), size)}
                for image_passes, size in zip(passes, sizes)]


def _as_instances(fused, size: Tuple[int, int]) -> Instances:
    """detectron2 ``Instances`` of an image of ``size`` (h, w) from a ``FusedPrediction``."""
    inst = Instances(size)
    n = len(fused.scores)
    inst.pred_boxes = Boxes(torch.as_tensor(fused.boxes, dtype=torch.float32).reshape(n, 4))
    inst.scores = torch.as_tensor(fused.scores, dtype=torch.float32)
    inst.pred_classes = torch.zeros(n, dtype=torch.int64)
    kps = np.concatenate([fused.corners, fused.corner_confidence[..., None]], axis=-1)
    inst.pred_keypoints = torch.as_tensor(kps, dtype=torch.float32).reshape(n, 4, 3)
    inst.corner_confidence = torch.as_tensor(fused.corner_confidence, dtype=torch.float64).reshape(n, 4)
    inst.corner_spread = torch.as_tensor(fused.corner_spread, dtype=torch.float64).reshape(n, 4)
    inst.tta_found = torch.as_tensor(fused.n_found, dtype=torch.int64)
    return inst
