"""HRNet (timm) as a detectron2 backbone, with an FPN neck.

``HRNetBackbone`` wraps ``timm.create_model(name, features_only=True)`` and
names its maps by stride: ``hr2`` (1/4), ``hr3`` (1/8), ``hr4`` (1/16), ``hr5``
(1/32), the strides detectron2's FPN turns into ``p2``..``p5`` (plus ``p6`` by
max-pooling). Channels depend on ``feature_location``: "" gives HRNet's own
branches (W32: 32, 64, 128, 256), "incre" timm's classification blocks (128,
256, 512, 1024).

``build_hrnet_fpn_backbone`` is registered in detectron2's BACKBONE_REGISTRY
(``MODEL.BACKBONE.NAME: "build_hrnet_fpn_backbone"``) and reads
``MODEL.TIMM_HRNET.*`` (see ``vertkp.config``), ``MODEL.BACKBONE.FREEZE_AT`` and
``MODEL.FPN.*``.

Weights: building the backbone makes random weights and fetches nothing; ImageNet
weights come through ``MODEL.WEIGHTS``, a timm checkpoint converted once by
``vertkp.modeling.weights`` (``vertkp download hrnet-w32-imagenet``).

Normalisation (``MODEL.TIMM_HRNET.NORM``): timm builds BatchNorm; it is kept
("BN"), made cross-GPU ("SyncBN"), frozen with its statistics ("FrozenBN",
right for ImageNet weights and 1-2 images per GPU), or replaced by GroupNorm
with the BatchNorm's scale and shift ("GN", what trains from scratch at small
batches).
"""
from __future__ import annotations

import math

import torch
from detectron2.layers import FrozenBatchNorm2d, ShapeSpec
from detectron2.modeling import BACKBONE_REGISTRY, FPN, Backbone
from detectron2.modeling.backbone.fpn import LastLevelMaxPool
from torch import nn

__all__ = ["HRNetBackbone", "build_hrnet_fpn_backbone", "convert_norm", "NORMS"]

NORMS = ("FrozenBN", "BN", "SyncBN", "GN")
# FREEZE_AT k freezes the first k of these groups of timm's HRNet children.
_FREEZE_GROUPS = (
    ("conv1", "bn1", "conv2", "bn2"),  # 1: stem, stride 2 then 4
    ("layer1",),  # 2: first stage (bottlenecks at 1/4)
    ("transition1", "stage2"),  # 3
    ("transition2", "stage3"),  # 4
    ("transition3", "stage4"),  # 5
)


def _group_norm_like(bn: nn.BatchNorm2d) -> nn.GroupNorm:
    c = bn.num_features
    gn = nn.GroupNorm(math.gcd(32, c), c, eps=bn.eps, affine=True)
    if bn.affine:
        with torch.no_grad():
            gn.weight.copy_(bn.weight)
            gn.bias.copy_(bn.bias)
    return gn


def _replace_bn(module: nn.Module, make) -> nn.Module:
    if isinstance(module, nn.modules.batchnorm._BatchNorm):
        return make(module)
    for name, child in module.named_children():
        new = _replace_bn(child, make)
        if new is not child:
            setattr(module, name, new)
    return module


def convert_norm(module: nn.Module, norm: str) -> nn.Module:
    """Return ``module`` with its BatchNorm layers converted to ``norm`` (one of NORMS)."""
    if norm == "BN":
        return module
    if norm == "FrozenBN":
        return FrozenBatchNorm2d.convert_frozen_batchnorm(module)
    if norm == "SyncBN":
        return nn.SyncBatchNorm.convert_sync_batchnorm(module)
    if norm == "GN":
        return _replace_bn(module, _group_norm_like)
    raise ValueError(f"MODEL.TIMM_HRNET.NORM must be one of {NORMS}, got {norm!r}")


class HRNetBackbone(Backbone):
    """timm HRNet feature maps as a detectron2 ``Backbone``.

    forward(Tensor[N, C, H, W]) -> {name: Tensor[N, channels, H / stride, W / stride]}
    with H and W multiples of 32 (``size_divisibility``).
    """

    def __init__(self, name: str = "hrnet_w32", out_features=("hr2", "hr3", "hr4", "hr5"),
                 feature_location: str = "", norm: str = "FrozenBN", freeze_at: int = 0,
                 in_chans: int = 3):
        """
        Args:
            name: timm model name ("hrnet_w18", "hrnet_w32", ...).
            out_features: subset of "hr1".."hr5" (stride 2**k for "hrk").
            feature_location: "" (HRNet branches) or "incre" (timm's blocks).
            norm: one of NORMS.
            freeze_at: 0 trains everything; k freezes the stem and the first
                k - 1 stages (1 = stem only, 5 = whole HRNet).
            in_chans: input channels.
        """
        super().__init__()
        import timm

        if norm not in NORMS:
            raise ValueError(f"MODEL.TIMM_HRNET.NORM must be one of {NORMS}, got {norm!r}")
        bad = [f for f in out_features if f not in ("hr1", "hr2", "hr3", "hr4", "hr5")]
        if bad or not out_features:
            raise ValueError(f"MODEL.TIMM_HRNET.OUT_FEATURES must be among hr1..hr5 (stride 2..32), got {out_features}")
        out_features = sorted(out_features)
        kwargs = dict(features_only=True, out_indices=tuple(int(f[2]) - 1 for f in out_features),
                      feature_location=feature_location, in_chans=in_chans)
        body = timm.create_model(name, pretrained=False, **kwargs)  # weights: MODEL.WEIGHTS
        info = body.feature_info
        self._out_features = out_features
        self._out_feature_channels = dict(zip(out_features, info.channels()))
        self._out_feature_strides = dict(zip(out_features, info.reduction()))
        for f, s in self._out_feature_strides.items():
            if s != 2 ** int(f[2]):
                raise RuntimeError(f"{name} gives stride {s} for {f}, expected {2 ** int(f[2])}")
        self.body = convert_norm(body, norm)
        self._freeze(freeze_at)

    def _freeze(self, freeze_at: int) -> None:
        if not 0 <= freeze_at <= len(_FREEZE_GROUPS):
            raise ValueError(f"MODEL.BACKBONE.FREEZE_AT must be 0..{len(_FREEZE_GROUPS)} for HRNet, got {freeze_at}")
        for group in _FREEZE_GROUPS[:freeze_at]:
            for child in group:
                module = getattr(self.body, child)
                for p in module.parameters():
                    p.requires_grad_(False)
                setattr(self.body, child, FrozenBatchNorm2d.convert_frozen_batchnorm(module))

    def forward(self, x: torch.Tensor) -> dict:
        if x.shape[-2] % 32 or x.shape[-1] % 32:
            raise ValueError(f"HRNet input sides must be multiples of 32, got {tuple(x.shape[-2:])}")
        return dict(zip(self._out_features, self.body(x)))

    @property
    def size_divisibility(self) -> int:
        return 32

    def output_shape(self) -> dict:
        return {f: ShapeSpec(channels=self._out_feature_channels[f], stride=self._out_feature_strides[f])
                for f in self._out_features}


@BACKBONE_REGISTRY.register()
def build_hrnet_fpn_backbone(cfg, input_shape: ShapeSpec) -> Backbone:
    """HRNet (``MODEL.TIMM_HRNET``) + FPN (``MODEL.FPN``) with a max-pooled p6:
    maps p2..p6 at strides 4..64, ``MODEL.FPN.OUT_CHANNELS`` channels each."""
    h = cfg.MODEL.TIMM_HRNET
    bottom_up = HRNetBackbone(h.NAME, tuple(h.OUT_FEATURES), h.FEATURE_LOCATION, h.NORM, cfg.MODEL.BACKBONE.FREEZE_AT,
                              input_shape.channels)
    return FPN(bottom_up=bottom_up, in_features=cfg.MODEL.FPN.IN_FEATURES, out_channels=cfg.MODEL.FPN.OUT_CHANNELS,
               norm=cfg.MODEL.FPN.NORM, top_block=LastLevelMaxPool(), fuse_type=cfg.MODEL.FPN.FUSE_TYPE)
