"""The timm backbone (HRNet-W32, MobileNetV4): feature contract, normalisation, freezing, a full model on the CPU."""
from pathlib import Path

import pytest

from tests.helpers import DETECTRON2_SKIP_REASON

pytest.importorskip("detectron2", reason=DETECTRON2_SKIP_REASON)
import torch  # noqa: E402
from detectron2.layers import FrozenBatchNorm2d  # noqa: E402
from torch import nn  # noqa: E402

from vertkp.modeling.timm_backbone import TimmBackbone, convert_norm  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def hrnet_gn():
    torch.manual_seed(0)
    return TimmBackbone("hrnet_w32", norm="GN", freeze_at=0)


def test_feature_contract(hrnet_gn):
    shapes = hrnet_gn.output_shape()
    assert list(shapes) == ["c2", "c3", "c4", "c5"]
    assert [s.channels for s in shapes.values()] == [32, 64, 128, 256]
    assert [s.stride for s in shapes.values()] == [4, 8, 16, 32]
    assert hrnet_gn.size_divisibility == 32
    with torch.no_grad():
        out = hrnet_gn(torch.zeros(1, 3, 64, 96))
    assert {k: tuple(v.shape) for k, v in out.items()} == {
        "c2": (1, 32, 16, 24), "c3": (1, 64, 8, 12), "c4": (1, 128, 4, 6), "c5": (1, 256, 2, 3)}
    with pytest.raises(ValueError, match="multiples of 32"):
        hrnet_gn(torch.zeros(1, 3, 64, 80))


def test_incre_features_and_subsets():
    b = TimmBackbone("hrnet_w32", out_features=("c3", "c5"), feature_location="incre", norm="BN")
    assert {k: (s.channels, s.stride) for k, s in b.output_shape().items()} == {"c3": (256, 8), "c5": (1024, 32)}
    with pytest.raises(ValueError, match="c1..c5"):
        TimmBackbone("hrnet_w32", out_features=("res2",))


def test_norm_conversion_and_freezing(hrnet_gn):
    kinds = {type(m) for m in hrnet_gn.modules()}
    assert nn.GroupNorm in kinds and not any(issubclass(k, nn.modules.batchnorm._BatchNorm) for k in kinds)
    assert all(p.requires_grad for p in hrnet_gn.parameters())

    def small():
        inner = nn.Sequential(nn.Conv2d(64, 48, 1), nn.BatchNorm2d(48))
        return nn.Sequential(nn.Conv2d(3, 64, 3), nn.BatchNorm2d(64), inner)

    assert isinstance(convert_norm(small(), "FrozenBN")[1], FrozenBatchNorm2d)
    assert isinstance(convert_norm(small(), "SyncBN")[2][1], nn.SyncBatchNorm)
    assert isinstance(convert_norm(small(), "BN")[1], nn.BatchNorm2d)
    bn = small()
    bn[1].weight.data.fill_(2.0)
    gn = convert_norm(bn, "GN")
    assert isinstance(gn[1], nn.GroupNorm) and gn[1].num_groups == 32 and float(gn[1].weight[0]) == 2.0
    assert gn[2][1].num_groups == 16  # gcd(32, 48)
    with pytest.raises(ValueError, match="FrozenBN"):
        convert_norm(small(), "LayerNorm")

    frozen = TimmBackbone("hrnet_w32", norm="FrozenBN", freeze_at=2)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in frozen.modules())
    assert not any(p.requires_grad for n, p in frozen.named_parameters() if n.startswith(("body.conv1", "body.layer1")))
    assert all(p.requires_grad for n, p in frozen.named_parameters() if n.startswith("body.stage2"))


def test_any_timm_model_with_strides_2_to_32():
    """A MobileNetV4 (the light config's backbone family): channels from timm, maps by stride, and
    FREEZE_AT counted as detectron2's ResNet counts it (1 the stem, 2 the stem and the first stage)."""
    b = TimmBackbone("mobilenetv4_conv_small", norm="FrozenBN", freeze_at=2)
    assert {k: (s.channels, s.stride) for k, s in b.output_shape().items()} == {
        "c2": (32, 4), "c3": (64, 8), "c4": (96, 16), "c5": (960, 32)}
    frozen = {n.split(".")[0] + ("." + n.split(".")[1] if n.startswith("blocks") else "")
              for n, p in b.body.named_parameters() if not p.requires_grad}
    assert frozen == {"conv_stem", "blocks.0"}  # the stem (stride 2) and the first stage (stride 4)
    assert all(p.requires_grad for n, p in b.body.named_parameters() if n.startswith("blocks.1."))
    with torch.no_grad():
        out = b(torch.zeros(1, 3, 64, 96))
    assert {k: tuple(v.shape) for k, v in out.items()} == {
        "c2": (1, 32, 16, 24), "c3": (1, 64, 8, 12), "c4": (1, 96, 4, 6), "c5": (1, 960, 2, 3)}
    assert all(p.requires_grad for p in TimmBackbone("mobilenetv4_conv_small", norm="GN").parameters())
    # timm fuses MobileNet's activations into its norms (BatchNormAct2d): every conversion keeps them
    plain = sum(isinstance(m, nn.ReLU) for m in TimmBackbone("mobilenetv4_conv_small", norm="BN").modules())
    for norm in ("FrozenBN", "GN", "SyncBN"):
        converted = TimmBackbone("mobilenetv4_conv_small", norm=norm, freeze_at=2 if norm == "GN" else 0)
        assert sum(isinstance(m, nn.ReLU) for m in converted.modules()) == plain > 20, norm
        assert not any(type(m) is nn.BatchNorm2d for m in converted.modules()), norm
    with pytest.raises(ValueError, match="FREEZE_AT must be 0..5"):
        TimmBackbone("mobilenetv4_conv_small", freeze_at=6)
    with pytest.raises(ValueError, match="strides 2, 4, 8, 16, 32"):  # a ViT has its maps at stride 16
        TimmBackbone("vit_tiny_patch16_224", out_features=("c4", "c5"))


def test_full_model_forward_backward_on_cpu():
    """Keypoint R-CNN with the HRNet-FPN backbone: one training step and one inference on the CPU."""
    from detectron2.modeling import build_model
    from detectron2.structures import Boxes, Instances, Keypoints
    from detectron2.utils.events import EventStorage

    from vertkp.config import build_cfg

    cfg = build_cfg(str(REPO / "configs" / "quick_schedules" / "kprcnn_hrnet_w32_instant_test.yaml"))
    assert cfg.MODEL.BACKBONE.NAME == "build_timm_fpn_backbone"
    torch.manual_seed(0)
    model = build_model(cfg)
    assert model.backbone.bottom_up.output_shape()["c2"].channels == 32

    def sample(h, w):
        inst = Instances((h, w))
        inst.gt_boxes = Boxes(torch.tensor([[20.0, 20.0, 80.0, 70.0], [30.0, 75.0, 95.0, 120.0]]))
        inst.gt_classes = torch.zeros(2, dtype=torch.int64)
        kp = torch.tensor([[[25, 25, 2], [75, 22, 2], [27, 65, 2], [77, 62, 2]],
                           [[35, 80, 2], [90, 80, 2], [35, 115, 2], [90, 115, 2]]], dtype=torch.float32)
        inst.gt_keypoints = Keypoints(kp)
        image = torch.randint(0, 255, (3, h, w), dtype=torch.uint8)
        return {"image": image, "instances": inst, "height": h, "width": w}

    model.train()
    with EventStorage(0):
        losses = model([sample(128, 128), sample(128, 160)])
    assert {"loss_keypoint", "loss_cls", "loss_box_reg", "loss_rpn_cls", "loss_rpn_loc"} <= set(losses)
    total = sum(losses.values())
    assert torch.isfinite(total)
    total.backward()
    grads = [p.grad for n, p in model.named_parameters() if n.startswith("backbone.bottom_up.body.stage4")]
    assert grads and all(g is not None for g in grads) and any(g.abs().sum() > 0 for g in grads)
    model.eval()
    with torch.no_grad():
        out = model([{"image": torch.zeros(3, 100, 120, dtype=torch.uint8), "height": 200, "width": 240}])
    inst = out[0]["instances"]
    assert inst.image_size == (200, 240) and inst.pred_keypoints.shape[1:] == (4, 3)
