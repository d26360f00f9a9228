"""Test-time augmentation: the fusion arithmetic (numpy), and the flip equivariance of the
predictor with a real (randomly initialised) Keypoint R-CNN."""
import numpy as np
import pytest

from tests.helpers import DETECTRON2_SKIP_REASON
from vertkp.modeling.fusion import (FLIP_PERMUTATION, Pass, box_iou, fuse_corners, fuse_passes, mirror_pass)


def _pass(boxes, scores, corners, conf=None):
    n = len(scores)
    return Pass(np.array(boxes, float), np.array(scores, float), np.array(corners, float),
                np.full((n, 4), 0.9) if conf is None else np.array(conf, float))


def _vertebra(x0, y0, w=40.0, h=20.0):
    corners = [[x0, y0], [x0 + w, y0], [x0, y0 + h], [x0 + w, y0 + h]]
    return [x0, y0, x0 + w, y0 + h], corners


def test_the_flip_swaps_left_and_right_corners():
    assert FLIP_PERMUTATION == (1, 0, 3, 2)
    box, corners = _vertebra(10, 50)
    p = _pass([box], [0.9], [corners], [[0.1, 0.2, 0.3, 0.4]])
    m = mirror_pass(p, width=100.0)
    assert m.boxes.tolist() == [[50.0, 50.0, 90.0, 70.0]]
    # the mirror of TR (50, 50) is the new TL: x -> 100 - x
    assert m.corners[0].tolist() == [[50.0, 50.0], [90.0, 50.0], [50.0, 70.0], [90.0, 70.0]]
    assert m.corner_confidence[0].tolist() == [0.2, 0.1, 0.4, 0.3]
    back = mirror_pass(m, width=100.0)
    assert np.array_equal(back.corners, p.corners) and np.array_equal(back.boxes, p.boxes)


def test_box_iou_by_hand():
    iou = box_iou([[0, 0, 10, 10]], [[5, 0, 15, 10], [20, 20, 30, 30]])
    assert iou.tolist() == [[50 / 150, 0.0]]


def test_matched_detections_are_fused_by_score_and_the_spread_is_their_disagreement():
    box, corners = _vertebra(10, 10)
    a = _pass([box], [0.75], [corners])
    moved = np.array(corners) + [2.0, 0.0]
    b = _pass([np.array(box) + [2, 0, 2, 0]], [0.25], [moved])
    f = fuse_passes([a, b])
    # weights 0.75 / 0.25: the fused corners 0.5 px right of a's
    assert np.allclose(f.corners[0], np.array(corners) + [0.5, 0.0])
    assert np.allclose(f.boxes[0], np.array(box) + [0.5, 0, 0.5, 0])
    # RMS distance of the passes from the fused corner: sqrt((0.5^2 + 1.5^2) / 2)
    assert np.allclose(f.corner_spread[0], np.sqrt((0.25 + 2.25) / 2))
    assert f.scores[0] == pytest.approx(0.5) and f.n_found.tolist() == [2] and f.n_passes == 2


def test_fusion_does_not_depend_on_the_order_of_the_passes():
    rng = np.random.default_rng(0)
    passes = []
    for k in range(3):
        boxes, corners = zip(*[_vertebra(10 + 60 * j + rng.normal(0, 1), 30 + rng.normal(0, 1)) for j in range(4)])
        passes.append(_pass(boxes, rng.uniform(0.5, 1.0, 4), corners, rng.uniform(0.2, 1.0, (4, 4))))
    f1, f2 = fuse_passes(passes), fuse_passes(passes[::-1])
    for name in ("boxes", "scores", "corners", "corner_confidence", "corner_spread", "n_found"):
        assert np.allclose(getattr(f1, name), getattr(f2, name), atol=1e-12), name


def test_a_corner_whose_heatmap_peaked_elsewhere_is_left_out_of_the_mean_but_shows_in_the_spread():
    corners = np.array([[[0, 0], [40, 0], [0, 20], [40, 20]],
                        [[1, 0], [40, 0], [0, 20], [90, 20]]], float)  # pass 2's BR is 50 px off
    conf = np.array([[0.9, 0.9, 0.9, 0.9], [0.8, 0.8, 0.8, 0.3]])
    fused, spread = fuse_corners(corners, np.array([0.5, 0.5]), conf, gate_px=4.0)
    assert fused[0].tolist() == [0.5, 0.0]  # within the gate: the mean
    assert fused[3].tolist() == [40.0, 20.0]  # the outlier is out: the confident pass's corner
    assert spread[3] == pytest.approx(np.sqrt((0 + 50 ** 2) / 2))
    # the outlier is the more confident one: it is the anchor, and the other pass is left out
    conf[1, 3] = 0.95
    assert fuse_corners(corners, np.array([0.5, 0.5]), conf, gate_px=4.0)[0][3].tolist() == [90.0, 20.0]


@pytest.mark.parametrize("rule, score, kept", [("penalize", 0.4, 2), ("keep", 0.8, 2), ("drop", None, 1)])
def test_what_happens_to_a_vertebra_one_pass_missed(rule, score, kept):
    (b1, c1), (b2, c2) = _vertebra(10, 10), _vertebra(100, 10)
    a = _pass([b1, b2], [0.9, 0.8], [c1, c2])
    b = _pass([b1], [0.9], [c1])
    f = fuse_passes([a, b], unmatched=rule)
    assert len(f.scores) == kept
    if score is not None:
        assert f.scores[1] == pytest.approx(score) and f.n_found.tolist() == [2, 1]
        assert np.all(np.isnan(f.corner_spread[1]))


def test_no_detection_and_bad_rules():
    empty = _pass(np.zeros((0, 4)), [], np.zeros((0, 4, 2)))
    f = fuse_passes([empty, empty])
    assert f.corners.shape == (0, 4, 2) and f.scores.shape == (0,)
    with pytest.raises(ValueError, match="unmatched"):
        fuse_passes([empty], unmatched="average")


# ---- with detectron2 ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def predictors():
    pytest.importorskip("detectron2", reason=DETECTRON2_SKIP_REASON)
    import torch

    from vertkp.inference import VertebraPredictor
    from tests.helpers import REPO

    config = str(REPO / "configs" / "quick_schedules" / "kprcnn_r50_instant_test.yaml")
    torch.manual_seed(0)
    single = VertebraPredictor(config, "", device="cpu", score_threshold=0.0, tta="none")
    flip = VertebraPredictor.from_cfg(single.cfg, score_threshold=0.0, tta="flip")
    flip.model.load_state_dict(single.model.state_dict())
    return single, flip


def _image():
    """128 x 128 (the instant config's test size: no resize), a spine-like pattern, not symmetric."""
    rng = np.random.default_rng(3)
    img = rng.integers(0, 40, (128, 128), dtype=np.uint8)
    for k in range(4):
        img[10 + 28 * k:30 + 28 * k, 40 + 6 * k:90 + 4 * k] = 180 + 10 * k
    return img


def _mirrored(pred, width):
    """(corners [N, 4, 2] in image coordinates mirrored: x -> W - 1 - x, names swapped), scores."""
    c = pred.corners[:, FLIP_PERMUTATION].copy()
    c[..., 0] = width - 1 - c[..., 0]
    return c, pred.scores


def _by_score(corners, scores):
    order = np.argsort(-scores, kind="stable")
    return corners[order], scores[order]


def test_flip_tta_is_exactly_flip_equivariant_and_a_single_pass_is_not(predictors):
    single, flip = predictors
    img = _image()
    a, b = flip(img), flip(img[:, ::-1].copy())
    assert len(a.vertebrae) == len(b.vertebrae) > 0
    ca, sa = _by_score(*_mirrored(a, img.shape[1]))
    cb, sb = _by_score(b.corners, b.scores)
    assert np.allclose(sa, sb, atol=1e-6)
    assert np.abs(ca - cb).max() < 1e-3
    # corner names follow the mirror: the spreads and confidences too
    sp_a = np.array([v.corner_spread_px[list(FLIP_PERMUTATION)] for v in a.vertebrae])
    assert np.isfinite(sp_a).any()
    s1, s2 = single(img), single(img[:, ::-1].copy())
    c1, _ = _by_score(*_mirrored(s1, img.shape[1]))
    c2, _ = _by_score(s2.corners, s2.scores)
    n = min(len(c1), len(c2))
    assert n == 0 or np.abs(c1[:n] - c2[:n]).max() > 1e-3


def test_tta_predictions_carry_the_corner_signals_and_the_slip_interval(predictors):
    _, flip = predictors
    d = flip(_image()).as_dict()
    v = d["vertebrae"][0]
    assert set(v["corner_spread_px"]) == {"TL", "TR", "BL", "BR"} and set(v["corner_sd_px"]) == set(v["corners"])
    assert d["uncertainty"]["z"] == 1.96
    for p in d["pairs"]:
        if p["slip_pct"] is not None:
            assert p["slip_low_pct"] <= p["slip_pct"] <= p["slip_high_pct"]


def test_flip_scale_runs_six_passes_through_the_wrapper(predictors):
    from vertkp.inference import VertebraPredictor

    single, _ = predictors
    scaled = VertebraPredictor.from_cfg(single.cfg, score_threshold=0.0, tta="flip,scale")
    scaled.model.load_state_dict(single.model.state_dict())
    assert scaled.tta == "flip,scale" and len(scaled.network.augmentations) == 6
    inst = scaled.run_model([scaled.prepare(_image()[..., None].repeat(3, axis=2))])[0]
    assert len(inst) > 0 and int(inst.tta_found.max()) <= 6 and inst.corner_spread.shape == (len(inst), 4)
    assert scaled(_image()).vertebrae


def test_each_predictor_takes_the_operating_point_of_its_tta_mode(predictors):
    from vertkp.review import OPERATING_POINTS

    for predictor, mode in zip(predictors, ("none", "flip")):
        point = OPERATING_POINTS[mode]
        assert predictor.grading["thresholds"] == point.thresholds and predictor.uncertainty == point.uncertainty


def test_tta_modes_are_settings_of_detectron2s_test_aug_keys():
    pytest.importorskip("detectron2", reason=DETECTRON2_SKIP_REASON)
    from tests.helpers import INSTANT_CONFIG
    from vertkp.config import ConfigError, build_cfg
    from vertkp.modeling.test_time_augmentation import set_tta_mode, tta_augmentations, tta_mode

    cfg = build_cfg(str(INSTANT_CONFIG), freeze=False)  # test size 128, flip from Base-KPRCNN.yaml
    assert (cfg.TEST.AUG.ENABLED, tta_mode(cfg)) == (True, "flip")
    assert tta_augmentations(cfg) == [(1.0, False), (1.0, True)]
    set_tta_mode(cfg, "flip,scale")
    assert tuple(cfg.TEST.AUG.MIN_SIZES) == (102, 128, 154) and tta_mode(cfg) == "flip,scale"
    assert [m for _, m in tta_augmentations(cfg)] == [False, True] * 3
    assert [f for f, _ in tta_augmentations(cfg)] == pytest.approx([102 / 128] * 2 + [1.0] * 2 + [154 / 128] * 2)
    set_tta_mode(cfg, "none")
    assert tta_mode(cfg) == "none" and tta_augmentations(cfg) == [(1.0, False)]
    with pytest.raises(ValueError, match="TTA mode"):
        set_tta_mode(cfg, "mirror")
    set_tta_mode(cfg, "flip")  # the test size alone, whatever it is
    cfg.INPUT.MIN_SIZE_TEST = 256
    assert tuple(cfg.TEST.AUG.MIN_SIZES) == () and tta_augmentations(cfg) == [(1.0, False), (1.0, True)]
    set_tta_mode(cfg, "flip,scale")
    cfg.INPUT.MIN_SIZE_TEST = 200  # the test size changed, not the sizes given
    with pytest.raises(ValueError, match="MIN_SIZE_TEST"):
        tta_mode(cfg)
    cfg.TEST.AUG.MIN_SIZES, cfg.TEST.AUG.FLIP = (), False
    with pytest.raises(ValueError, match="TEST.AUG.FLIP"):
        tta_mode(cfg)
    for key, value in (("VERTKP.TTA", "flip"), ("VERTKP.TTA_SCALES", "[0.8, 1.2]")):
        with pytest.raises(ConfigError, match=f"{key} is no longer a vertkp config key.*TEST.AUG"):
            build_cfg(str(INSTANT_CONFIG), [key, value])


def test_the_model_output_becomes_arrays_in_one_place_with_one_offset():
    pytest.importorskip("detectron2", reason=DETECTRON2_SKIP_REASON)
    import torch
    from detectron2.structures import Boxes, Instances

    from vertkp.modeling.outputs import predictions_from_instances

    kps = torch.tensor([[[10.5, 20.5, 1.0], [30.5, 20.5, 1.0], [10.5, 40.5, 1.0], [30.5, 40.5, 1.0]]])
    heat = torch.zeros(1, 4, 5, 5)
    heat[0, :, 2, 2] = 50.0  # one sharp peak: confidence 1
    inst = Instances((64, 64), pred_boxes=Boxes(torch.tensor([[8.0, 18.0, 33.0, 43.0]])), scores=torch.tensor([0.9]),
                     pred_keypoints=kps, pred_keypoint_heatmaps=heat)
    p = predictions_from_instances(inst)
    assert np.array_equal(p.corners[0], [[10, 20], [30, 20], [10, 40], [30, 40]])  # detectron2's 0.5 removed
    assert np.array_equal(p.boxes[0], [8, 18, 33, 43]) and p.scores.tolist() == pytest.approx([0.9])
    assert p.corner_confidence == pytest.approx(np.ones((1, 4))) and p.corner_spread is None
    assert np.array_equal(predictions_from_instances(inst, file_coordinates=False).corners, kps[:, :, :2].numpy())
    assert torch.equal(inst.pred_keypoints, kps)  # never shifted in place
    empty = predictions_from_instances(None)
    assert empty.corners.shape == (0, 4, 2) and empty.corner_confidence.shape == (0, 4)
