"""Models: the HRNet backbone (detectron2's own R50-FPN Keypoint R-CNN needs nothing more).

Importing this package registers ``build_hrnet_fpn_backbone`` in detectron2's
BACKBONE_REGISTRY; ``tools/train_net.py`` and ``vertkp.engine`` import it.
"""
from .hrnet import NORMS, HRNetBackbone, build_hrnet_fpn_backbone, convert_norm  # noqa: F401

__all__ = ["HRNetBackbone", "build_hrnet_fpn_backbone", "convert_norm", "NORMS"]
