"""The fast backend (vertkp.inference.fast): each of its changes leaves the answers as the eager
backend gives them. The fusion's selection is numpy; the rest needs detectron2 and runs a real
(randomly initialised) Keypoint R-CNN of the instant config."""
import numpy as np
import pytest

from tests.helpers import DETECTRON2_SKIP_REASON, INSTANT_CONFIG, REPO, random_weights
from vertkp.inference.fusion import Pass, fuse_passes, selected_detections

CONFIG = INSTANT_CONFIG


def _random_passes(rng, n_passes=2, n=12):
    """Passes of overlapping boxes with scores spread over [0, 1], corners and confidences random."""
    passes = []
    base = rng.uniform(0, 200, size=(n, 2))
    for _ in range(n_passes):
        xy = base + rng.normal(0, 3, size=base.shape)
        boxes = np.concatenate([xy, xy + rng.uniform(30, 50, size=base.shape)], axis=1)
        keep = rng.random(n) < 0.8  # some vertebrae missed by some passes
        boxes = boxes[keep]
        corners = boxes[:, None, :2] + rng.uniform(0, 30, size=(len(boxes), 4, 2))
        passes.append(Pass(boxes, rng.random(len(boxes)), corners, rng.random((len(boxes), 4))))
    return passes


@pytest.mark.parametrize("unmatched", ["penalize", "keep", "drop"])
def test_fusing_only_the_selected_detections_gives_the_vertebrae_over_the_score(unmatched):
    rng = np.random.default_rng(3)
    for trial in range(20):
        passes = _random_passes(rng, n_passes=2 + trial % 3)
        min_score = 0.4
        full = fuse_passes(passes, unmatched=unmatched)
        chosen = selected_detections(passes, min_score=min_score, unmatched=unmatched)
        # what the fast backend's keypoint head skips: the corners of every other detection
        blind = []
        for p, idx in zip(passes, chosen):
            corners, conf = np.full_like(p.corners, np.nan), np.full_like(p.corner_confidence, np.nan)
            corners[idx], conf[idx] = p.corners[idx], p.corner_confidence[idx]
            blind.append(Pass(p.boxes, p.scores, corners, conf))
        part = fuse_passes(blind, unmatched=unmatched, min_score=min_score)
        keep = full.scores >= min_score
        assert np.array_equal(part.scores, full.scores[keep])
        for field in ("boxes", "corners", "corner_confidence", "corner_spread", "n_found"):
            assert np.array_equal(getattr(part, field), getattr(full, field)[keep], equal_nan=True), field
        assert not np.isnan(part.corners).any()
        assert sum(len(c) for c in chosen) < sum(len(p.scores) for p in passes)  # something was skipped


# ---- with detectron2 --------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def d2():
    return pytest.importorskip("detectron2", reason=DETECTRON2_SKIP_REASON)


def test_batch_norms_fold_into_the_convolutions(d2):
    import torch
    from detectron2.layers import Conv2d, FrozenBatchNorm2d
    from torch import nn

    from vertkp.inference.fast import fold_batch_norm

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


def test_task_sized_counts_only_ever_lower_the_config(d2):
    from vertkp.config import build_cfg
    from vertkp.inference.fast import TASK_SIZES, task_sized_cfg

    cfg = build_cfg(str(REPO / "configs" / "kprcnn_r50.yaml"), [], freeze=False)
    assert cfg.MODEL.RPN.POST_NMS_TOPK_TEST == 1000
    assert task_sized_cfg(cfg) == {"MODEL.RPN.PRE_NMS_TOPK_TEST": 500, "MODEL.RPN.POST_NMS_TOPK_TEST": 100}
    assert cfg.MODEL.RPN.POST_NMS_TOPK_TEST == TASK_SIZES["MODEL.RPN.POST_NMS_TOPK_TEST"]
    small = build_cfg(str(CONFIG), [], freeze=False)  # 500 / 50 already
    assert task_sized_cfg(small) == {} and small.MODEL.RPN.POST_NMS_TOPK_TEST == 50


def test_the_fast_decoding_gives_the_sub_pixel_peaks_of_the_eager_head(d2):
    import torch
    from detectron2.structures import Boxes, Instances

    from vertkp.inference.fast import FastKeypointDecoding
    from vertkp.modeling.keypoint_head import VertebraKeypointHead

    torch.manual_seed(0)
    logits = torch.randn(5, 4, 56, 56) * 3
    boxes = torch.tensor([[10, 20, 90, 60], [0, 0, 40, 30], [100, 5, 180, 70], [3, 3, 8, 9], [50, 50, 51, 52]],
                         dtype=torch.float32)

    def instances():
        a, b = Instances((200, 200)), Instances((200, 200))
        a.pred_boxes, b.pred_boxes = Boxes(boxes[:3].clone()), Boxes(boxes[3:].clone())
        return [a, b]

    head = VertebraKeypointHead.__new__(VertebraKeypointHead)  # only its inference decoding is used
    torch.nn.Module.__init__(head)
    head.subpixel, head.fast_decoding, head.training = "dark", None, False
    head.layers = lambda x: x
    eager = head.forward(logits, instances())
    fast = FastKeypointDecoding("dark")(logits, instances())
    for e, f in zip(eager, fast):
        assert torch.allclose(e.pred_keypoints[:, :, :2], f.pred_keypoints[:, :, :2], atol=1e-4)
        assert torch.equal(e.pred_keypoint_heatmaps, f.pred_keypoint_heatmaps)
    with pytest.raises(ValueError, match="sub-pixel"):
        FastKeypointDecoding("none")


@pytest.fixture(scope="module")
def weights(d2, tmp_path_factory):
    return random_weights(tmp_path_factory.mktemp("weights"), CONFIG)


@pytest.mark.usefixtures("one_torch_thread")
@pytest.mark.parametrize("tta", ["none", "flip"])
def test_the_fast_backend_gives_the_eager_answers(weights, phantom_root, tta):
    from vertkp.inference import VertebraPredictor

    images = sorted((phantom_root / "phantoms").rglob("*.jpg"))[:4]
    assert images
    # random weights score every box about alike: a threshold among their scores keeps some and
    # drops others, so that with TTA the keypoint head is skipped for some detections
    every = VertebraPredictor(str(CONFIG), str(weights), backend="eager", device="cpu", score_threshold=0.0, tta=tta)
    scores = np.concatenate([every(str(p)).scores for p in images])
    kw = dict(device="cpu", score_threshold=float(np.quantile(scores, 0.7)), facing="left", tta=tta)
    eager = VertebraPredictor(str(CONFIG), str(weights), backend="eager", **kw)
    fast = VertebraPredictor(str(CONFIG), str(weights), backend="fast", **kw)
    assert fast.backend == "fast" and eager.backend == "eager"
    found = 0
    for path in images:
        a, b = eager(str(path)), fast(str(path))
        assert a.corners.shape == b.corners.shape, path
        found += len(a.vertebrae)
        if len(a.vertebrae):
            assert np.linalg.norm(a.corners - b.corners, axis=-1).max() < 0.5
            assert np.allclose(a.scores, b.scores, atol=1e-5)
            assert np.allclose([v.corner_scores for v in a.vertebrae], [v.corner_scores for v in b.vertebrae],
                               atol=1e-4)
    assert 0 < found < len(scores)
    with pytest.raises(ValueError, match="backend"):
        VertebraPredictor(str(CONFIG), str(weights), backend="compiled", device="cpu")


def test_predict_backend_flag_gives_the_same_predictions(weights, phantom_root, tmp_path, run_tool):
    import json

    images = sorted((phantom_root / "phantoms").rglob("*.jpg"))[:2]
    preds = {}
    for backend in ("eager", "fast"):
        out = tmp_path / backend
        r = run_tool("predict", "--config-file", CONFIG, "--weights", weights, "--input", *images, "--output", out,
                     "--score-threshold", "0.0", "--facing", "left", "--device", "cpu", "--backend", backend,
                     "--no-overlays", "--quiet", env={"OMP_NUM_THREADS": "1"})
        assert r.returncode == 0, r.stdout + r.stderr
        preds[backend] = json.loads((out / "predictions.json").read_text())
        assert preds[backend]["settings"]["backend"] == backend
    for a, b in zip(preds["eager"]["images"], preds["fast"]["images"]):
        ca = np.array([list(v["corners"].values()) for v in a["vertebrae"]], dtype=float)
        cb = np.array([list(v["corners"].values()) for v in b["vertebrae"]], dtype=float)
        assert ca.shape == cb.shape and len(ca)
        assert np.linalg.norm(ca - cb, axis=-1).max() < 0.5
        assert [p["grade_name"] for p in a["pairs"]] == [p["grade_name"] for p in b["pairs"]]
