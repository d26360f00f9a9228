"""The fast inference backend: the same Keypoint R-CNN answers for less work (``backend="fast"``).

``VertebraPredictor(..., backend="fast")`` and ``vertkp predict --backend fast`` run the
trained model with four changes, each of which leaves the corners and the detections over
the score threshold as the eager backend gives them (within float rounding; the test and
``vertkp benchmark speed --inference-only`` check it):

* test-time proposal counts sized to the task (:data:`TASK_SIZES`, :func:`task_sized_cfg`): a
  lumbar image shows at most about a dozen vertebrae, so the box head scores 100 proposals, not
  detectron2's COCO-sized 1000 (the one change that can alter an answer: a vertebra that only
  a proposal ranked past 100 would find; none did in the measurements, README "Speed");
* normalisation folded into the convolutions (:func:`fold_batch_norm`): a frozen batch norm
  after a convolution is an affine map per channel, so it becomes the convolution's weights
  and bias (one pass over each feature map instead of two);
* the keypoint head only on detections that can pass the score threshold (with test-time
  augmentation, the passes' boxes are matched and scored first, ``vertkp.inference.tta``),
  and its heatmaps decoded on the head's own 56 x 56 grid (``vertkp.keypoint_decoding``)
  instead of detectron2's bicubic upsampling of every heatmap to its box: with a sub-pixel
  method the upsampled argmax is never used (:class:`FastKeypointDecoding`);
* the backbone and FPN in channels-last memory layout, which oneDNN's convolutions run without
  reordering; their feature maps go on in the standard layout (torchvision's ROIAlign reads
  channels-last maps several times slower).

The third column of ``pred_keypoints`` (a score per corner, which vertkp does not read: the
corner confidence comes from the heatmaps) is the logit at the peak cell instead of at the
upsampled map's peak.
"""
from __future__ import annotations

import logging
from typing import Dict, List

import torch
from detectron2.layers import FrozenBatchNorm2d
from detectron2.structures import Instances
from torch import nn

from ..keypoint_decoding import cells_to_image, refine_peaks

__all__ = ["TASK_SIZES", "task_sized_cfg", "fold_batch_norm", "FastKeypointDecoding",
           "prepare_fast_model"]

# Test-time counts of the fast backend (config key -> at most this): proposals per FPN level
# before the RPN's NMS, and proposals per image after it, that the box head scores; those of the
# phantom configs, which reach their targets with them (detectron2's COCO defaults are 1000 and
# 1000, for up to 100 objects of 80 classes). TEST.DETECTIONS_PER_IMAGE stays: it costs nothing
# (the keypoint head runs only on detections over the score threshold) and, with TTA, its
# low-scoring detections take part in the fused scores.
TASK_SIZES: Dict[str, int] = {
    "MODEL.RPN.PRE_NMS_TOPK_TEST": 500,
    "MODEL.RPN.POST_NMS_TOPK_TEST": 100,
}


def task_sized_cfg(cfg) -> Dict[str, int]:
    """Lower the config's test-time counts to :data:`TASK_SIZES` (never raise them), in place
    on an unfrozen config; returns the keys changed and their new values."""
    changed = {}
    for key, limit in TASK_SIZES.items():
        *path, leaf = key.split(".")
        node = cfg
        for p in path:
            node = getattr(node, p)
        if getattr(node, leaf) > limit:
            setattr(node, leaf, limit)
            changed[key] = limit
    return changed


_NORMS = (FrozenBatchNorm2d, nn.BatchNorm2d)


def _fold_into(conv: nn.Conv2d, norm: nn.Module) -> None:
    """conv's weight and bias absorb the inference-time affine map of ``norm`` (y = a x + b per channel)."""
    scale = norm.running_var.add(norm.eps).rsqrt()
    if getattr(norm, "weight", None) is not None:
        scale = scale * norm.weight
    shift = -norm.running_mean * scale
    if getattr(norm, "bias", None) is not None:
        shift = shift + norm.bias
    with torch.no_grad():
        weight = conv.weight * scale.reshape(-1, 1, 1, 1).to(conv.weight.dtype)
        bias = shift if conv.bias is None else conv.bias * scale + shift
        conv.weight = nn.Parameter(weight, requires_grad=False)
        conv.bias = nn.Parameter(bias.to(weight.dtype), requires_grad=False)


def fold_batch_norm(model: nn.Module) -> int:
    """Fold inference-time batch norms into the convolutions before them, in place; returns
    how many. Folded: detectron2 ``Conv2d`` layers with a ``norm`` (ResNet, FPN), and a
    ``conv<N>`` / ``bn<N>`` pair of siblings or a ``Sequential`` whose ``Conv2d`` is followed by
    a batch norm (timm's HRNet). Group norms are left alone (they depend on the input)."""
    if model.training:
        raise ValueError("fold_batch_norm is for inference: call model.eval() first")
    count = 0
    for module in model.modules():
        if isinstance(getattr(module, "norm", None), _NORMS) and isinstance(module, nn.Conv2d):
            _fold_into(module, module.norm)
            module.norm = None
            count += 1
            continue
        children = dict(module.named_children())
        if isinstance(module, nn.Sequential):
            items = list(children.items())
            for (_, a), (name_b, b) in zip(items, items[1:]):
                if isinstance(a, nn.Conv2d) and isinstance(b, _NORMS) and not hasattr(a, "norm"):
                    _fold_into(a, b)
                    setattr(module, name_b, nn.Identity())
                    count += 1
            continue
        for name, child in children.items():
            if name.startswith("conv") and isinstance(child, nn.Conv2d) and not hasattr(child, "norm"):
                bn = children.get("bn" + name[len("conv"):])
                if isinstance(bn, _NORMS):
                    _fold_into(child, bn)
                    setattr(module, "bn" + name[len("conv"):], nn.Identity())
                    count += 1
    return count


class FastKeypointDecoding:
    """Heatmaps to corners on the head's grid: ``pred_keypoint_heatmaps`` (the logits, as
    detectron2 stores them) and ``pred_keypoints`` (x, y from the sub-pixel peak mapped
    through the detection's box, ``vertkp.keypoint_decoding``; the peak cell's logit)."""

    def __init__(self, subpixel: str):
        if subpixel == "none":
            raise ValueError("the fast decoding needs a sub-pixel method (MODEL.ROI_KEYPOINT_HEAD.SUBPIXEL "
                             "'dark' or 'soft_argmax'); with 'none' detectron2's upsampled argmax is the answer")
        self.subpixel = subpixel

    def __call__(self, logits: torch.Tensor, instances: List[Instances]) -> List[Instances]:
        counts = [len(i) for i in instances]
        logits = logits.detach()
        if logits.shape[0]:
            boxes = torch.cat([i.pred_boxes.tensor for i in instances], dim=0)
            xy = torch.as_tensor(cells_to_image(refine_peaks(logits, self.subpixel), boxes, tuple(logits.shape[2:])),
                                 dtype=logits.dtype)
            peak = logits.flatten(2).amax(dim=2, keepdim=True)
            keypoints = torch.cat([xy, peak], dim=2)
        else:
            keypoints = logits.new_zeros((0, logits.shape[1], 3))
        for inst, kp, heat in zip(instances, keypoints.split(counts), logits.split(counts)):
            inst.pred_keypoints = kp
            inst.pred_keypoint_heatmaps = heat
        return instances


def _standard_layout(module, args, output):
    """Backbone forward hook: its feature maps back in the standard layout, once per pass (the
    RPN's and the heads' layers measured no faster on channels-last maps, and torchvision's
    ROIAlign reads them several times slower)."""
    return {name: f.contiguous() for name, f in output.items()}


def prepare_fast_model(model: nn.Module) -> Dict[str, int]:
    """The model of the fast backend, in place: batch norms folded, the backbone (and FPN) in
    channels-last, the keypoint head's decoding on its grid. Returns what was changed (for the log)."""
    model.eval()
    folded = fold_batch_norm(model)
    model.backbone.to(memory_format=torch.channels_last)
    model.backbone.register_forward_hook(_standard_layout)
    head = model.roi_heads.keypoint_head
    head.fast_decoding = FastKeypointDecoding(head.subpixel) if getattr(head, "subpixel", "none") != "none" else None
    logging.getLogger(__name__).info("fast backend: %d batch norms folded, channels-last", folded)
    return {"batch_norms_folded": folded}
