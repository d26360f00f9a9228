"""Models: the HRNet backbone, the keypoint head and their initial weights (the rest is
detectron2's Keypoint R-CNN).

* detectron2 (exported here when it is installed): importing this package registers
  ``build_hrnet_fpn_backbone`` in detectron2's ``BACKBONE_REGISTRY`` and
  ``VertebraKeypointHead`` (sub-pixel peak refinement, ``MODEL.ROI_KEYPOINT_HEAD.SUBPIXEL``)
  in ``ROI_KEYPOINT_HEAD_REGISTRY``; ``vertkp.config`` imports it, so any config built with
  ``add_vertkp_config`` can name them. The head's arithmetic is torch-free, in
  ``vertkp.keypoint_decoding``.
* torch and timm only: ``weights``, the initial weights as one ``MODEL.WEIGHTS`` file (the
  timm checkpoint converter, the weights ``vertkp download`` fetches).
"""
from .. import HAS_DETECTRON2

__all__ = []

if HAS_DETECTRON2:
    from .hrnet import NORMS, HRNetBackbone, build_hrnet_fpn_backbone, convert_norm
    from .keypoint_head import VertebraKeypointHead

    __all__ += ["HRNetBackbone", "build_hrnet_fpn_backbone", "convert_norm", "NORMS", "VertebraKeypointHead"]
