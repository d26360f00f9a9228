"""Models: the HRNet backbone (detectron2's own R50-FPN Keypoint R-CNN needs nothing more).

Importing this package registers ``build_hrnet_fpn_backbone`` in detectron2's
``BACKBONE_REGISTRY``; ``vertkp.config`` imports it, so any config built with
``add_vertkp_config`` can name it.
"""
from .hrnet import NORMS, HRNetBackbone, build_hrnet_fpn_backbone, convert_norm

__all__ = ["HRNetBackbone", "build_hrnet_fpn_backbone", "convert_norm", "NORMS"]
