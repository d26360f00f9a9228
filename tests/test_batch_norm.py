"""Batch norms folded into their convolutions for inference (vertkp.modeling.batch_norm): the same
outputs, every kind of layer vertkp's backbones have, and the predictor's model folded once loaded."""
import numpy as np
import pytest

from tests.helpers import DETECTRON2_SKIP_REASON, INSTANT_CONFIG


@pytest.fixture(scope="module")
def d2():
    return pytest.importorskip("detectron2", reason=DETECTRON2_SKIP_REASON)


def test_batch_norms_fold_into_the_convolutions(d2):
    import torch
    from detectron2.layers import Conv2d, FrozenBatchNorm2d
    from torch import nn

    from vertkp.modeling.batch_norm import fold_batch_norm

    torch.manual_seed(0)

    def stats(bn):
        bn.running_mean.uniform_(-1, 1)
        bn.running_var.uniform_(0.5, 2)
        bn.weight.data.uniform_(0.5, 2)
        bn.bias.data.uniform_(-1, 1)
        return bn

    class Block(nn.Module):  # timm's naming: conv<N> / bn<N>
        def __init__(self):
            super().__init__()
            self.conv1, self.bn1 = nn.Conv2d(4, 4, 3, padding=1, bias=False), stats(nn.BatchNorm2d(4))

        def forward(self, x):
            return self.bn1(self.conv1(x))

    model = nn.Sequential(
        Conv2d(3, 4, 3, padding=1, bias=False, norm=stats(FrozenBatchNorm2d(4)), activation=torch.relu),  # detectron2
        nn.Sequential(nn.Conv2d(4, 4, 1), stats(nn.BatchNorm2d(4)), nn.ReLU()),
        Block(),
        nn.Sequential(nn.Conv2d(4, 4, 1), nn.GroupNorm(2, 4)),  # not a batch norm: left alone
    ).eval()
    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        before = model(x)
        assert fold_batch_norm(model) == 3
        after = model(x)
    assert torch.allclose(before, after, atol=1e-5)
    assert isinstance(model[3][1], nn.GroupNorm)
    assert not any(isinstance(m, (FrozenBatchNorm2d, nn.BatchNorm2d)) for m in model.modules())
    with pytest.raises(ValueError, match="eval"):
        fold_batch_norm(model.train())


def test_a_timm_norm_with_an_activation_folds_and_keeps_the_activation(d2):
    """MobileNetV4's conv + BatchNormAct2d (the norm applies the ReLU), frozen as the light config
    freezes it: folded, the activation stays and the outputs are the same."""
    import timm
    import torch
    from torch import nn

    from vertkp.modeling.batch_norm import fold_batch_norm
    from vertkp.modeling.timm_backbone import convert_norm

    torch.manual_seed(0)
    body = timm.create_model("mobilenetv4_conv_small", features_only=True, out_indices=(1, 2, 3, 4))
    for m in body.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
    body = convert_norm(body, "FrozenBN").eval()
    relus = sum(isinstance(m, nn.ReLU) for m in body.modules())
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        before = body(x)
        assert fold_batch_norm(body) > 0
        after = body(x)
    assert sum(isinstance(m, nn.ReLU) for m in body.modules()) == relus > 0
    for b, a in zip(before, after):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)


@pytest.mark.usefixtures("one_torch_thread")
def test_the_predictor_folds_a_loaded_model_and_gives_its_answers(d2, tmp_path, phantom_root):
    import torch
    from detectron2.layers import FrozenBatchNorm2d

    from vertkp.benchmark.runs import calibrate_frozen_bn
    from vertkp.inference import VertebraPredictor

    images = [str(p) for p in sorted((phantom_root / "phantoms").rglob("*.jpg"))[:2]]
    opts = ["MODEL.RESNETS.NORM", "FrozenBN", "MODEL.FPN.NORM", ""]  # the instant config with batch norms
    kw = dict(opts=opts, device="cpu", score_threshold=0.0, facing="left", tta="flip")
    torch.manual_seed(0)
    plain = VertebraPredictor(str(INSTANT_CONFIG), "", **kw)  # random initialisation: nothing folded
    assert calibrate_frozen_bn(plain.model, [plain.prepare(plain.load(images[0])[0])]) > 50
    torch.save({"model": plain.model.state_dict()}, tmp_path / "model.pth")
    folded = VertebraPredictor(str(INSTANT_CONFIG), str(tmp_path / "model.pth"), **kw)
    assert not any(isinstance(m, FrozenBatchNorm2d) for m in folded.model.modules())
    found = 0
    for path in images:
        a, b = folded(path), plain(path)
        assert a.corners.shape == b.corners.shape
        found += len(a.vertebrae)
        if len(a.vertebrae):
            assert np.allclose(a.scores, b.scores, atol=1e-4)
            assert np.linalg.norm(a.corners - b.corners, axis=-1).max() < 0.5
    assert found > 0
