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
from detectron2.modeling.postprocessing import detector_postprocess
from detectron2.structures import Boxes, Instances
from torch import nn

from .fusion import (DEFAULT_MATCH_IOU, DEFAULT_OUTLIER_PCT, DEFAULT_UNMATCHED, TTA_MODES, Pass, fuse_passes,
                     mirror_pass, selected_detections)
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
        min_score: None: every fused vertebra, each pass's keypoint head on all its detections.
            A score: only the fused vertebrae that reach it, and the keypoint head of each pass
            only on the detections in them (the passes' boxes are matched first,
            ``fusion.selected_detections``); those vertebrae are exactly the ones that the
            unrestricted fusion scores at least ``min_score`` (the fast backend).
    """

    def __init__(self, model: nn.Module, mode: str = "flip", scales: Sequence[float] = (0.8, 1.0, 1.2), *,
                 unmatched: str = DEFAULT_UNMATCHED, iou: float = DEFAULT_MATCH_IOU,
                 outlier_pct: float = DEFAULT_OUTLIER_PCT, min_score: Optional[float] = None):
        super().__init__()
        self.model = model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model
        self.augmentations = tta_augmentations(mode, scales)
        self.fusion = dict(unmatched=unmatched, iou=float(iou), outlier_pct=float(outlier_pct))
        self.min_score = None if min_score is None else float(min_score)

    @classmethod
    def from_cfg(cls, cfg, model: nn.Module, min_score: Optional[float] = None) -> "VertebraTTA":
        return cls(model, cfg.VERTKP.TTA, tuple(cfg.VERTKP.TTA_SCALES), min_score=min_score)

    def _pass_inputs(self, batched_inputs: List[dict], sizes, factor: float, mirrored: bool) -> List[dict]:
        inputs = []
        for inp, (h, w) in zip(batched_inputs, sizes):
            image = _scaled(inp["image"], factor)
            inputs.append({"image": torch.flip(image, dims=[-1]) if mirrored else image, "height": h, "width": w})
        return inputs

    def forward(self, batched_inputs: List[dict]) -> List[dict]:
        if self.training:
            raise RuntimeError("VertebraTTA is for inference: train the model it wraps")
        # outputs come back in each input image's pixels (detectron2's "height", "width")
        sizes = [(int(inp.get("height", inp["image"].shape[-2])), int(inp.get("width", inp["image"].shape[-1])))
                 for inp in batched_inputs]
        if self.min_score is not None:
            return self._forward_selected(batched_inputs, sizes)
        passes = [[] for _ in batched_inputs]
        for factor, mirrored in self.augmentations:
            for k, out in enumerate(self.model(self._pass_inputs(batched_inputs, sizes, factor, mirrored))):
                p = _as_pass(out["instances"])
                passes[k].append(mirror_pass(p, float(sizes[k][1])) if mirrored else p)
        return [{"instances": _as_instances(fuse_passes(image_passes, **self.fusion), size)}
                for image_passes, size in zip(passes, sizes)]

    def _forward_selected(self, batched_inputs: List[dict], sizes) -> List[dict]:
        """``forward`` with ``min_score``: every pass's boxes, the matching, then the keypoint
        head of each pass on the detections of the vertebrae that can reach ``min_score``."""
        model = self.model
        stages = []  # per pass: (inputs, preprocessed images, features, detections per image)
        for factor, mirrored in self.augmentations:
            inputs = self._pass_inputs(batched_inputs, sizes, factor, mirrored)
            images = model.preprocess_image(inputs)
            features = model.backbone(images.tensor)
            proposals, _ = model.proposal_generator(images, features, None)
            stages.append((inputs, images, features, model.roi_heads._forward_box(features, proposals)))
        # boxes and scores in the image's pixels, as detectron2's postprocessing gives them
        boxes = [[_box_pass(dets[k], *sizes[k]) for k in range(len(sizes))] for _, _, _, dets in stages]
        per_image = []
        for k, (h, w) in enumerate(sizes):
            probes = [mirror_pass(boxes[q][k][0], float(w)) if mirrored else boxes[q][k][0]
                      for q, (_, mirrored) in enumerate(self.augmentations)]
            per_image.append(selected_detections(probes, min_score=self.min_score, iou=self.fusion["iou"],
                                                 unmatched=self.fusion["unmatched"]))
        # [pass][image]: indices among that pass's postprocessed detections
        chosen = [[per_image[k][q] for k in range(len(sizes))] for q in range(len(stages))]
        passes = [[] for _ in sizes]
        for q, ((inputs, images, features, dets), (_, mirrored)) in enumerate(zip(stages, self.augmentations)):
            subsets = [dets[k][boxes[q][k][1][chosen[q][k]]] for k in range(len(sizes))]
            outs = model._postprocess(model.roi_heads.forward_with_given_boxes(features, subsets), inputs,
                                      images.image_sizes)
            for k, out in enumerate(outs):
                p = _full_pass(boxes[q][k][0], chosen[q][k], _as_pass(out["instances"]))
                passes[k].append(mirror_pass(p, float(sizes[k][1])) if mirrored else p)
        return [{"instances": _as_instances(fuse_passes(image_passes, min_score=self.min_score, **self.fusion), size)}
                for image_passes, size in zip(passes, sizes)]


def _box_pass(detections: Instances, height: int, width: int) -> Tuple[Pass, torch.Tensor]:
    """(a Pass of the boxes and scores ``detector_postprocess`` gives an image of ``height`` x
    ``width`` px for these detections, corners unread; for each of its rows the index of its
    detection, since the postprocessing drops empty boxes). The detections are not modified."""
    probe = Instances(detections.image_size, pred_boxes=Boxes(detections.pred_boxes.tensor.clone()),
                      scores=detections.scores, index=torch.arange(len(detections)))
    probe = detector_postprocess(probe, height, width).to("cpu")
    n = len(probe)
    return (Pass(probe.pred_boxes.tensor.numpy(), probe.scores.numpy(), np.full((n, 4, 2), np.nan),
                 np.full((n, 4), np.nan)), probe.index)


def _full_pass(boxes: Pass, chosen: np.ndarray, subset: Pass) -> Pass:
    """The pass of every detection (boxes and scores of ``boxes``) with the corners of the
    ``chosen`` rows from ``subset`` (their keypoint head's output, in that order); NaN elsewhere."""
    corners, confidence = boxes.corners.copy(), boxes.corner_confidence.copy()
    if len(subset.scores) != len(chosen):
        raise RuntimeError(f"the keypoint stage returned {len(subset.scores)} detections for {len(chosen)} boxes")
    corners[chosen], confidence[chosen] = subset.corners, subset.corner_confidence
    return Pass(boxes.boxes, boxes.scores, corners, confidence)


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
