"""A timm model as a detectron2 backbone, with an FPN neck: HRNet, MobileNet, ResNet...

``TimmBackbone`` wraps ``timm.create_model(name, features_only=True)`` and names
its maps by stride: ``c2`` (1/4), ``c3`` (1/8), ``c4`` (1/16), ``c5`` (1/32) (and
``c1``, 1/2), the strides detectron2's FPN turns into ``p2``..``p5`` (plus ``p6`` by
max-pooling). Channels are the model's own (``feature_info``): hrnet_w32 with
``feature_location`` "" gives HRNet's branches (32, 64, 128, 256), "incre" timm's
classification blocks (128, 256, 512, 1024); mobilenetv4_conv_small 32, 64, 96, 960.

``build_timm_fpn_backbone`` is registered in detectron2's BACKBONE_REGISTRY
(``MODEL.BACKBONE.NAME: "build_timm_fpn_backbone"``) and reads ``MODEL.TIMM.*``
(see ``vertkp.config``), ``MODEL.BACKBONE.FREEZE_AT`` and ``MODEL.FPN.*``.

Weights: building the backbone makes random weights and fetches nothing; ImageNet
weights come through ``MODEL.WEIGHTS``, a timm checkpoint converted once by
``vertkp.modeling.weights`` (``vertkp download hrnet-w32-imagenet``).

Normalisation (``MODEL.TIMM.NORM``): timm builds BatchNorm; it is kept ("BN"),
made cross-GPU ("SyncBN"), frozen with its statistics ("FrozenBN", right for
ImageNet weights and 1-2 images per GPU), or replaced by GroupNorm with the
BatchNorm's scale and shift ("GN", what trains from scratch at small batches).
"""
from __future__ import annotations

import math

import torch
from detectron2.layers import FrozenBatchNorm2d, ShapeSpec
from detectron2.modeling import BACKBONE_REGISTRY, FPN, Backbone
from detectron2.modeling.backbone.fpn import LastLevelMaxPool
from torch import nn

from .weights import timm_features_kwargs

__all__ = ["TimmBackbone", "build_timm_fpn_backbone", "convert_norm", "NORMS", "FEATURE_NAMES"]

NORMS = ("FrozenBN", "BN", "SyncBN", "GN")
# Feature map names by stride: "ck" is the map at stride 2**k.
FEATURE_NAMES = ("c1", "c2", "c3", "c4", "c5")
# timm's HRNet features are not named after its modules: FREEZE_AT k freezes the first k of these
# groups of its children.
_HRNET_FREEZE_GROUPS = (
    ("conv1", "bn1", "conv2", "bn2"),  # 1: stem, stride 2 then 4
    ("layer1",),  # 2: first stage (bottlenecks at 1/4)
    ("transition1", "stage2"),  # 3
    ("transition2", "stage3"),  # 4
    ("transition3", "stage4"),  # 5
)


def _with_activation(norm: nn.Module, bn: nn.Module) -> nn.Module:
    """``norm`` given the activation (and drop) that timm fused into ``bn`` (``BatchNormAct2d``:
    MobileNet, EfficientNet, LCNet...), so that replacing a norm keeps the non-linearity."""
    if hasattr(bn, "act"):
        norm.drop, norm.act = bn.drop, bn.act
    return norm


def _group_norm_like(bn: nn.BatchNorm2d) -> nn.Module:
    """GroupNorm (``gcd(32, C)`` groups) with the batch norm's scale and shift; timm's
    ``GroupNormAct`` (the same parameters, then the activation) for a ``BatchNormAct2d``."""
    from timm.layers import GroupNormAct

    c = bn.num_features
    if hasattr(bn, "act"):
        gn = _with_activation(GroupNormAct(c, math.gcd(32, c), eps=bn.eps, apply_act=False), bn)
    else:
        gn = nn.GroupNorm(math.gcd(32, c), c, eps=bn.eps, affine=True)
    if bn.affine:
        with torch.no_grad():
            gn.weight.copy_(bn.weight)
            gn.bias.copy_(bn.bias)
    return gn


def _frozen_like(bn: nn.BatchNorm2d) -> nn.Module:
    """detectron2's FrozenBatchNorm2d with the batch norm's statistics; timm's
    ``FrozenBatchNormAct2d`` (the same buffers, then the activation) for a ``BatchNormAct2d``."""
    if hasattr(bn, "act"):
        from timm.layers import freeze_batch_norm_2d

        return freeze_batch_norm_2d(bn)
    return FrozenBatchNorm2d.convert_frozen_batchnorm(bn)


def _replace_bn(module: nn.Module, make) -> nn.Module:
    if isinstance(module, nn.modules.batchnorm._BatchNorm):
        return make(module)
    for name, child in module.named_children():
        new = _replace_bn(child, make)
        if new is not child:
            setattr(module, name, new)
    return module


def convert_norm(module: nn.Module, norm: str) -> nn.Module:
    """Return ``module`` with its BatchNorm layers converted to ``norm`` (one of NORMS); timm's
    batch norms with a fused activation (``BatchNormAct2d``) keep their activation."""
    if norm == "BN":
        return module
    if norm == "FrozenBN":
        return _replace_bn(module, _frozen_like)
    if norm == "SyncBN":
        from timm.layers import convert_sync_batchnorm

        return convert_sync_batchnorm(module)
    if norm == "GN":
        return _replace_bn(module, _group_norm_like)
    raise ValueError(f"MODEL.TIMM.NORM must be one of {NORMS}, got {norm!r}")


def _freeze_groups(body: nn.Module, name: str) -> tuple:
    """Module names (dotted) grouped as FREEZE_AT counts them: 1 the stem, k the stem and the first
    k - 1 stages at stride >= 4, as detectron2's ResNet counts (1 = stem, 2 = stem + res2).

    HRNet has its own table; any other timm model's stages are the modules its ``feature_info``
    names at strides >= 4, and its stem is every module before the first of them."""
    if name.startswith("hrnet"):
        return _HRNET_FREEZE_GROUPS
    info = body.feature_info
    stages = [info.info[i]["module"] for i in range(len(info.info)) if info.info[i]["reduction"] >= 4]
    order = [n for n, _ in body.named_parameters()]

    def first(module: str):
        return next((k for k, n in enumerate(order) if n.startswith(module + ".")), None)

    # a stage without parameters of its own (an activation) joins the one before it
    starts = sorted({k for k in map(first, stages) if k is not None}) + [len(order)]
    groups = [tuple(order[:starts[0]])]
    groups += [tuple(order[a:b]) for a, b in zip(starts[:-1], starts[1:])]
    return tuple(tuple(n.rsplit(".", 1)[0] for n in g) for g in groups)


class TimmBackbone(Backbone):
    """A timm model's feature maps as a detectron2 ``Backbone``.

    forward(Tensor[N, C, H, W]) -> {name: Tensor[N, channels, H / stride, W / stride]}
    with H and W multiples of 32 (``size_divisibility``).
    """

    def __init__(self, name: str = "hrnet_w32", out_features=("c2", "c3", "c4", "c5"),
                 feature_location: str = "", norm: str = "FrozenBN", freeze_at: int = 0,
                 in_chans: int = 3):
        """
        Args:
            name: timm model name ("hrnet_w32", "mobilenetv4_conv_small", "resnet18", ...)
                whose ``features_only`` form gives maps at strides 2, 4, 8, 16 and 32.
            out_features: subset of FEATURE_NAMES ("ck": stride 2**k).
            feature_location: timm's ``feature_location`` ("" or, for HRNet, "incre").
            norm: one of NORMS.
            freeze_at: 0 trains everything; k freezes the stem and the first k - 1
                stages (1 = stem only; HRNet: 5 = all of it).
            in_chans: input channels.
        """
        super().__init__()
        import timm

        if norm not in NORMS:
            raise ValueError(f"MODEL.TIMM.NORM must be one of {NORMS}, got {norm!r}")
        bad = [f for f in out_features if f not in FEATURE_NAMES]
        if bad or not out_features:
            raise ValueError(f"MODEL.TIMM.OUT_FEATURES must be among c1..c5 (stride 2..32), got {list(out_features)}")
        out_features = sorted(out_features)
        body = timm.create_model(name, out_indices=tuple(int(f[1]) - 1 for f in out_features), in_chans=in_chans,
                                 **timm_features_kwargs(name, feature_location))  # weights: MODEL.WEIGHTS
        info = body.feature_info
        self._out_features = out_features
        self._out_feature_channels = dict(zip(out_features, info.channels()))
        self._out_feature_strides = dict(zip(out_features, info.reduction()))
        for f, s in self._out_feature_strides.items():
            if s != 2 ** int(f[1]):
                raise ValueError(f"timm's {name} gives stride {s} for its map {f}, vertkp expects {2 ** int(f[1])}: "
                                 f"choose a model whose features are at strides 2, 4, 8, 16, 32")
        groups = _freeze_groups(body, name)
        self.body = convert_norm(body, norm)
        self._freeze(groups, freeze_at)

    def _freeze(self, groups: tuple, freeze_at: int) -> None:
        if not 0 <= freeze_at <= len(groups):
            raise ValueError(f"MODEL.BACKBONE.FREEZE_AT must be 0..{len(groups)} for this timm model, got {freeze_at}")
        for group in groups[:freeze_at]:
            for child in dict.fromkeys(group):
                parent, _, attr = child.rpartition(".")
                module = self.body.get_submodule(child)
                for p in module.parameters():
                    p.requires_grad_(False)
                frozen = _replace_bn(module, _frozen_like)
                if frozen is not module:
                    setattr(self.body.get_submodule(parent) if parent else self.body, attr, frozen)

    def forward(self, x: torch.Tensor) -> dict:
        if x.shape[-2] % 32 or x.shape[-1] % 32:
            raise ValueError(f"input sides must be multiples of 32 for the timm backbone, got {tuple(x.shape[-2:])}")
        return dict(zip(self._out_features, self.body(x)))

    @property
    def size_divisibility(self) -> int:
        return 32

    def output_shape(self) -> dict:
        return {f: ShapeSpec(channels=self._out_feature_channels[f], stride=self._out_feature_strides[f])
                for f in self._out_features}


@BACKBONE_REGISTRY.register()
def build_timm_fpn_backbone(cfg, input_shape: ShapeSpec) -> Backbone:
    """A timm model (``MODEL.TIMM``) + FPN (``MODEL.FPN``) with a max-pooled p6:
    maps p2..p6 at strides 4..64, ``MODEL.FPN.OUT_CHANNELS`` channels each."""
    h = cfg.MODEL.TIMM
    bottom_up = TimmBackbone(h.NAME, tuple(h.OUT_FEATURES), h.FEATURE_LOCATION, h.NORM, cfg.MODEL.BACKBONE.FREEZE_AT,
                              input_shape.channels)
    return FPN(bottom_up=bottom_up, in_features=cfg.MODEL.FPN.IN_FEATURES, out_channels=cfg.MODEL.FPN.OUT_CHANNELS,
               norm=cfg.MODEL.FPN.NORM, top_block=LastLevelMaxPool(), fuse_type=cfg.MODEL.FPN.FUSE_TYPE)
