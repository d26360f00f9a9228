"""Sub-pixel refinement of the keypoint heatmap peaks: exact peaks of synthetic heatmaps
(vertkp.keypoint_decoding, no detectron2) and VertebraKeypointHead against detectron2's head."""
import json
import subprocess
import sys

import numpy as np
import pytest

from tests.helpers import DETECTRON2_SKIP_REASON, REPO
from vertkp.keypoint_decoding import (
    DARK_MAX_OFFSET,
    SOFT_ARGMAX_RADIUS,
    SUBPIXEL_METHODS,
    cells_to_image,
    refine_peaks,
)

S = 56
ROWS, COLS = np.mgrid[:S, :S].astype(np.float64)
PHANTOMS_R50 = str(REPO / "configs" / "kprcnn_r50_phantoms.yaml")


def quadratic(x, y, a=0.3, b=0.1, c=0.5):
    """Logits [S, S] of a Gaussian heatmap (a quadratic) peaking at (x, y) cells; Hessian
    -[[a, b], [b, c]] (a tilted, anisotropic peak)."""
    dx, dy = COLS - x, ROWS - y
    return -0.5 * (a * dx * dx + 2 * b * dx * dy + c * dy * dy)


def window_map(row, col, window, background=-50.0):
    """A [1, 1, S, S] map of ``background`` with the 3 x 3 ``window`` centred on (row, col)."""
    m = np.full((S, S), background)
    m[row - 1:row + 2, col - 1:col + 2] = window
    return m[None, None]


# ---------------------------------------------------------------- pure functions, no detectron2

def test_the_decoding_module_imports_neither_torch_nor_detectron2():
    code = ("import json, sys, vertkp.keypoint_decoding\n"
            "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'detectron2'))))")
    r = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr[-2000:]
    assert json.loads(r.stdout) == []


def test_the_documented_rules():
    assert SUBPIXEL_METHODS == ("none", "dark", "soft_argmax")
    assert DARK_MAX_OFFSET == 1.0 and SOFT_ARGMAX_RADIUS == 1


def test_none_is_the_integer_argmax_cell():
    got = refine_peaks(quadratic(20.3, 31.7, b=0.0)[None, None], "none")
    np.testing.assert_array_equal(got, [[[20.0, 32.0]]])
    assert got.dtype == np.float64


def test_dark_recovers_the_peak_of_a_quadratic_exactly():
    peaks = [[(20.3, 31.7), (5.5, 48.1), (40.0, 12.0), (1.2, 1.4)],
             [(30.45, 30.05), (50.6, 7.3), (10.9, 25.5), (53.6, 53.55)]]
    maps = np.stack([np.stack([quadratic(x, y) for x, y in row]) for row in peaks])  # [2, 4, S, S]
    got = refine_peaks(maps, "dark")
    np.testing.assert_allclose(got, peaks, rtol=0, atol=1e-6)
    np.testing.assert_allclose(refine_peaks(quadratic(20.3, 31.7, b=0.0)[None, None], "dark"), [[[20.3, 31.7]]],
                               rtol=0, atol=1e-6)


def test_dark_falls_back_to_the_argmax_cell():
    border = quadratic(0.3, 31.7, b=0.0)  # argmax in column 0: no central difference
    flat = np.zeros((S, S))  # argmax (0, 0), a corner
    # Interior, but a saddle: gx = 0.25, hxx = -1.5, hyy = -2, hxy = 2.45, det < 0.
    saddle = window_map(30, 20, [[-0.1, -1.0, -5.0], [-1.0, 0.0, -0.5], [-5.0, -1.0, -0.1]])[0, 0]
    inf = quadratic(20.3, 31.7)
    inf[32, 19] = -np.inf  # a non-finite neighbour of the peak, row 32, column 20
    got = refine_peaks(np.stack([border, flat, saddle, inf])[None], "dark")
    np.testing.assert_array_equal(got, [[[0.0, 32.0], [0.0, 0.0], [20.0, 30.0], [20.0, 32.0]]])


def test_dark_offsets_are_clipped_to_one_cell_per_axis():
    # Negative definite but nearly singular: hxx = hyy = -1, hxy = 0.99, gx = 0.1, gy = 0: the
    # Taylor peak is 5.03 and 4.97 cells away; each axis is clipped to 1 cell.
    m = window_map(30, 20, [[-0.1, -0.5, -2.08], [-0.6, 0.0, -0.4], [-2.08, -0.5, -0.1]])
    np.testing.assert_array_equal(refine_peaks(m, "dark"), [[[21.0, 31.0]]])


def test_soft_argmax_of_a_symmetric_peak_is_its_cell_exactly():
    m = np.exp(-((COLS - 17) ** 2 + (ROWS - 40) ** 2) / (2 * 0.8 ** 2)) * 6.0
    np.testing.assert_array_equal(refine_peaks(m[None, None], "soft_argmax"), [[[17.0, 40.0]]])


def test_soft_argmax_is_the_expectation_over_the_3x3_window():
    # softmax weights relative to the peak: [[1, 2, 1], [3, 8, 1], [1, 1, 4]], 22 in all;
    # E[dx] = (6 - 5) / 22, E[dy] = (6 - 4) / 22. Cells outside the window do not count.
    ln = np.log
    m = window_map(10, 40, [[0.0, ln(2), 0.0], [ln(3), ln(8), 0.0], [0.0, 0.0, ln(4)]], background=-1.0)
    np.testing.assert_allclose(refine_peaks(m, "soft_argmax"), [[[40 + 1 / 22, 10 + 2 / 22]]], rtol=0, atol=1e-12)


def test_soft_argmax_window_is_clipped_at_the_border():
    m = np.full((S, S), -50.0)
    m[0, 0], m[0, 1], m[1, 0], m[1, 1] = np.log(4), np.log(2), 0.0, 0.0  # weights 4, 2, 1, 1 in the map
    np.testing.assert_allclose(refine_peaks(m[None, None], "soft_argmax"), [[[3 / 8, 2 / 8]]], rtol=0, atol=1e-12)
    flat = np.zeros((1, 1, S, S))  # argmax (0, 0): the mean of the 4 cells of the clipped window
    np.testing.assert_allclose(refine_peaks(flat, "soft_argmax"), [[[0.5, 0.5]]], rtol=0, atol=1e-15)


@pytest.mark.parametrize("method", SUBPIXEL_METHODS)
def test_shapes_and_no_rois(method):
    assert refine_peaks(np.zeros((0, 4, S, S)), method).shape == (0, 4, 2)
    assert refine_peaks(np.random.default_rng(0).normal(size=(3, 4, S, 40)), method).shape == (3, 4, 2)
    with pytest.raises(ValueError, match=r"\[R, K, H, W\]"):
        refine_peaks(np.zeros((4, S, S)), method)


def test_unknown_method_names_the_choices():
    with pytest.raises(ValueError, match="'dakr'; use one of none, dark, soft_argmax"):
        refine_peaks(np.zeros((1, 1, S, S)), "dakr")


@pytest.mark.parametrize("method", SUBPIXEL_METHODS)
def test_torch_tensors_give_the_numpy_result(method):
    torch = pytest.importorskip("torch")
    maps = np.random.default_rng(1).normal(size=(5, 4, S, S))
    np.testing.assert_array_equal(refine_peaks(torch.from_numpy(maps), method), refine_peaks(maps, method))


def test_cells_to_image():
    boxes = np.array([[10.0, 20.0, 66.0, 48.0], [5.0, 7.0, 5.5, 7.25]])  # the second one clamps to 1 x 1 px
    cells = np.array([[[0.0, 0.0], [55.0, 55.0], [27.5, 27.5]], [[0.0, 0.0], [55.0, 55.0], [-0.5, -0.5]]])
    np.testing.assert_allclose(cells_to_image(cells, boxes, S), [
        [[10.5, 20.25], [65.5, 47.75], [38.0, 34.0]],
        [[5 + 0.5 / 56, 7 + 0.5 / 56], [6 - 0.5 / 56, 8 - 0.5 / 56], [5.0, 7.0]]], rtol=0, atol=1e-12)
    # Non-square maps: (H, W) = (28, 56), cell units per axis.
    np.testing.assert_allclose(cells_to_image([[[27.5, 13.5]]], boxes[:1], (28, 56)), [[[38.0, 34.0]]], rtol=0,
                               atol=1e-12)
    assert cells_to_image(np.zeros((0, 4, 2)), np.zeros((0, 4)), S).shape == (0, 4, 2)


# ---------------------------------------------------------------- against detectron2

def test_the_mapping_is_detectron2s_on_sharp_peaks():
    """detectron2 takes the argmax of the heatmap upsampled bicubically to ceil(w) x ceil(h)
    pixels; on a peak that is one sharp cell it is the pixel nearest to the cell's centre,
    i.e. ``cells_to_image`` of the argmax cell within half a pixel of that grid. (Peaks on
    the border cells are left out: there detectron2's argmax moves up to half a cell towards
    the box edge; so are boxes under S / 2 px, whose map is point-sampled at more than 2
    cells a pixel and can miss a one-cell peak altogether.)"""
    pytest.importorskip("detectron2", reason=DETECTRON2_SKIP_REASON)
    import torch
    from detectron2.structures import heatmaps_to_keypoints

    rng = np.random.default_rng(0)
    r, k = 48, 4
    cells = rng.integers(1, S - 1, size=(r, k, 2)).astype(np.float64)
    maps = 10 * np.exp(-((COLS - cells[..., :1, None]) ** 2 + (ROWS - cells[..., 1:, None]) ** 2) / (2 * 0.5 ** 2))
    size = rng.uniform(S / 2, 8 * S, size=(r, 2))
    x0y0 = rng.uniform(0, 300, size=(r, 2))
    boxes = np.concatenate([x0y0, x0y0 + size], axis=1)
    theirs = heatmaps_to_keypoints(torch.tensor(maps, dtype=torch.float32), torch.tensor(boxes, dtype=torch.float32))
    ours = cells_to_image(refine_peaks(maps, "none"), boxes, S)
    half_pixel = 0.5 * size / np.ceil(size)
    assert np.all(np.abs(theirs[..., :2].numpy() - ours) <= half_pixel[:, None] + 1e-3)


@pytest.fixture(scope="module")
def models(one_torch_thread):
    """detectron2's head model and vertkp's ("dark"), on the same weights: (theirs, ours,
    the load_state_dict result of theirs into ours)."""
    pytest.importorskip("detectron2", reason=DETECTRON2_SKIP_REASON)
    import torch
    from detectron2.modeling import build_model

    from vertkp.config import build_cfg

    opts = ["MODEL.DEVICE", "cpu", "MODEL.WEIGHTS", ""]
    torch.manual_seed(0)
    theirs = build_model(build_cfg(PHANTOMS_R50, opts + ["MODEL.ROI_KEYPOINT_HEAD.NAME",
                                                         "KRCNNConvDeconvUpsampleHead"])).eval()
    ours = build_model(build_cfg(PHANTOMS_R50, opts + ["MODEL.ROI_KEYPOINT_HEAD.SUBPIXEL", "dark"])).eval()
    loaded = ours.load_state_dict(theirs.state_dict(), strict=False)
    return theirs, ours, loaded


BOXES = [[10.0, 20.0, 70.0, 50.0], [30.5, 40.2, 120.7, 100.9], [0.0, 0.0, 160.0, 128.0]]


def _keypoints(model, boxes=BOXES):
    """The model's instances for a fixed random 128 x 160 image, given the detected boxes
    (``None``: its own detections), in the network input's coordinates."""
    import torch
    from detectron2.structures import Boxes, Instances

    image = torch.randint(0, 256, (3, 128, 160), generator=torch.Generator().manual_seed(0), dtype=torch.uint8)
    given = None
    if boxes is not None:
        inst = Instances((128, 160), pred_boxes=Boxes(torch.tensor(boxes)), scores=torch.ones(len(boxes)),
                         pred_classes=torch.zeros(len(boxes), dtype=torch.long))
        given = [inst]
    with torch.no_grad():
        return model.inference([{"image": image}], detected_instances=given, do_postprocess=False)[0]


def test_a_parent_head_checkpoint_loads_unchanged(models):
    theirs, ours, loaded = models
    from vertkp.modeling.keypoint_head import VertebraKeypointHead

    assert type(ours.roi_heads.keypoint_head) is VertebraKeypointHead
    assert ours.roi_heads.keypoint_head.subpixel == "dark"
    assert loaded.missing_keys == [] and loaded.unexpected_keys == []


def test_none_is_bit_identical_to_detectron2s_head(models, monkeypatch):
    theirs, ours, _ = models
    monkeypatch.setattr(ours.roi_heads.keypoint_head, "subpixel", "none")
    import torch

    for boxes in (BOXES, None):
        a, b = _keypoints(theirs, boxes), _keypoints(ours, boxes)
        assert torch.equal(a.pred_boxes.tensor, b.pred_boxes.tensor)
        assert torch.equal(a.pred_keypoints, b.pred_keypoints)
        assert torch.equal(a.pred_keypoint_heatmaps, b.pred_keypoint_heatmaps)


def test_dark_keeps_detectron2s_scores_and_heatmaps(models):
    theirs, ours, _ = models
    import torch

    a, b = _keypoints(theirs), _keypoints(ours)
    assert torch.equal(a.pred_keypoints[:, :, 2], b.pred_keypoints[:, :, 2])
    assert torch.equal(a.pred_keypoint_heatmaps, b.pred_keypoint_heatmaps)
    assert b.pred_keypoints.dtype == a.pred_keypoints.dtype


def test_dark_on_the_model_maps_the_exact_peaks_through_the_boxes(models, monkeypatch):
    """The head's logits replaced by quadratics with known peaks: "dark" gives those peaks
    through ``pred_boxes``, within ~1 px of detectron2's bicubic argmax."""
    import torch

    theirs, ours, _ = models
    rng = np.random.default_rng(2)
    peaks = rng.uniform(8, S - 8, size=(len(BOXES), 4, 2))
    logits = torch.tensor(np.stack([[quadratic(x, y, a=0.25, b=0.05, c=0.3) for x, y in p] for p in peaks]),
                          dtype=torch.float32)
    for model in (theirs, ours):
        monkeypatch.setattr(model.roi_heads.keypoint_head, "layers", lambda x: logits[:x.shape[0]])
    a, b = _keypoints(theirs), _keypoints(ours)
    boxes = np.array(BOXES)
    np.testing.assert_allclose(b.pred_keypoints[:, :, :2].numpy(), cells_to_image(peaks, boxes, S), rtol=0, atol=1e-3)
    assert (b.pred_keypoints[:, :, :2] - a.pred_keypoints[:, :, :2]).abs().max() <= 1.0
    assert torch.equal(a.pred_keypoints[:, :, 2], b.pred_keypoints[:, :, 2])


def test_the_head_without_instances_and_in_training(models):
    import torch
    from detectron2.structures import Boxes, Instances, Keypoints

    theirs, ours, _ = models
    head, parent = ours.roi_heads.keypoint_head, theirs.roi_heads.keypoint_head
    channels = head.conv_fcn1.in_channels
    empty = Instances((128, 160), pred_boxes=Boxes(torch.zeros(0, 4)))
    with torch.no_grad():
        out = head(torch.zeros(0, channels, 14, 14), [empty])
    assert out[0].pred_keypoints.shape == (0, 4, 3)

    x = torch.randn(2, channels, 14, 14, generator=torch.Generator().manual_seed(0))
    gt = torch.tensor([[[20.0, 25.0, 2], [60.0, 25.0, 2], [20.0, 45.0, 2], [60.0, 45.0, 2]]] * 2)
    inst = Instances((128, 160), proposal_boxes=Boxes(torch.tensor(BOXES[:2])), gt_keypoints=Keypoints(gt))
    head.train(), parent.train()
    try:
        with torch.no_grad():
            assert torch.equal(head(x, [inst])["loss_keypoint"], parent(x, [inst])["loss_keypoint"])
    finally:
        head.eval(), parent.eval()


def test_an_unknown_subpixel_method_names_the_key():
    pytest.importorskip("detectron2", reason=DETECTRON2_SKIP_REASON)
    from detectron2.layers import ShapeSpec

    from vertkp.config import build_cfg
    from vertkp.modeling.keypoint_head import VertebraKeypointHead

    cfg = build_cfg(PHANTOMS_R50, ["MODEL.DEVICE", "cpu", "MODEL.ROI_KEYPOINT_HEAD.SUBPIXEL", "DARK"])
    with pytest.raises(ValueError, match=r"MODEL.ROI_KEYPOINT_HEAD.SUBPIXEL is 'DARK'; set it to one of 'none'"):
        VertebraKeypointHead(cfg, ShapeSpec(channels=8))
