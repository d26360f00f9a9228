"""detectron2's keypoint head with an optional sub-pixel refinement of its heatmap peaks.

``VertebraKeypointHead`` (``MODEL.ROI_KEYPOINT_HEAD.NAME: "VertebraKeypointHead"``) is
``KRCNNConvDeconvUpsampleHead`` with the same layers and parameters, so checkpoints of
either load into the other. Training is the parent's. At inference, with
``MODEL.ROI_KEYPOINT_HEAD.SUBPIXEL`` "none" it returns exactly what detectron2 returns
(the argmax of the bicubic-upsampled heatmap); with "dark" or "soft_argmax" it keeps
detectron2's ``pred_keypoint_heatmaps`` and keypoint scores and replaces the keypoints'
x, y by the refined peaks (``vertkp.keypoint_decoding``), mapped through the same boxes
detectron2 uses: each instance's ``pred_boxes`` as the head receives them (the detections,
clipped to the network's input image, before ``detector_postprocess`` rescales them).
"""
from __future__ import annotations

from typing import List

import torch
from detectron2.config import configurable
from detectron2.modeling.roi_heads.keypoint_head import (
    ROI_KEYPOINT_HEAD_REGISTRY,
    KRCNNConvDeconvUpsampleHead,
    keypoint_rcnn_inference,
)
from detectron2.structures import Instances

from ..keypoint_decoding import SUBPIXEL_METHODS, cells_to_image, refine_peaks

__all__ = ["VertebraKeypointHead"]


@ROI_KEYPOINT_HEAD_REGISTRY.register()
class VertebraKeypointHead(KRCNNConvDeconvUpsampleHead):
    """``KRCNNConvDeconvUpsampleHead`` whose inference can refine the heatmap peaks."""

    @configurable
    def __init__(self, input_shape, *, subpixel: str = "none", **kwargs):
        """
        Args:
            input_shape, kwargs: those of ``KRCNNConvDeconvUpsampleHead``.
            subpixel: peak refinement at inference, one of
                ``vertkp.keypoint_decoding.SUBPIXEL_METHODS``.
        """
        if subpixel not in SUBPIXEL_METHODS:
            raise ValueError(f"MODEL.ROI_KEYPOINT_HEAD.SUBPIXEL is {subpixel!r}; set it to one of "
                             f"{', '.join(repr(m) for m in SUBPIXEL_METHODS)}")
        super().__init__(input_shape, **kwargs)
        self.subpixel = subpixel

    @classmethod
    def from_config(cls, cfg, input_shape):
        ret = super().from_config(cfg, input_shape)
        ret["subpixel"] = cfg.MODEL.ROI_KEYPOINT_HEAD.SUBPIXEL
        return ret

    def forward(self, x, instances: List[Instances]):
        if self.training or self.subpixel == "none":
            return super().forward(x, instances)
        x = self.layers(x)
        keypoint_rcnn_inference(x, instances)  # scores and pred_keypoint_heatmaps as detectron2's
        if x.shape[0] == 0:
            return instances
        boxes = torch.cat([i.pred_boxes.tensor for i in instances], dim=0)  # keypoint_rcnn_inference's
        xy = cells_to_image(refine_peaks(x, self.subpixel), boxes, tuple(x.shape[2:]))
        xy = torch.as_tensor(xy, device=boxes.device).split([len(i) for i in instances])
        for inst, xy_i in zip(instances, xy):
            kp = inst.pred_keypoints
            inst.pred_keypoints = torch.cat([xy_i.to(kp.dtype), kp[:, :, 2:]], dim=2)
        return instances
