"""Models: the HRNet backbone and the keypoint head (the rest is detectron2's Keypoint R-CNN).

Importing this package registers ``build_hrnet_fpn_backbone`` in detectron2's
``BACKBONE_REGISTRY`` and ``VertebraKeypointHead`` (sub-pixel peak refinement,
``MODEL.ROI_KEYPOINT_HEAD.SUBPIXEL``) in ``ROI_KEYPOINT_HEAD_REGISTRY``; ``vertkp.config``
imports it, so any config built with ``add_vertkp_config`` can name them. The head's
arithmetic is torch-free, in ``vertkp.keypoint_decoding``.
"""
from .hrnet import NORMS, HRNetBackbone, build_hrnet_fpn_backbone, convert_norm
from .keypoint_head import VertebraKeypointHead

__all__ = ["HRNetBackbone", "build_hrnet_fpn_backbone", "convert_norm", "NORMS", "VertebraKeypointHead"]
