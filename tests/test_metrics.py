"""Matching, MRE/SDR, detection, kappa and input checks (vertkp.evaluation), worked out by hand."""
import json
import math

import numpy as np
import pytest

from tests.helpers.raw import column, quad
from vertkp.evaluation import (
    EvaluationInputError,
    EvaluationSettings,
    ImagePredictions,
    ImageTruth,
    apply_pixel_spacing,
    confusion_matrix,
    detection_scores,
    error_stats,
    evaluate_dataset,
    evaluate_image,
    flat_metrics,
    load_ground_truth,
    load_predictions,
    match_vertebrae,
    quadratic_weighted_kappa,
    slip_agreement,
    success_detection_rate,
)
from vertkp.files import InvalidInput
from vertkp.data.imaging.spacing import load_pixel_spacing
from vertkp.grading import vertebra_size

W, H, PITCH = 40.0, 25.0, 35.0  # body width, height; 10 px discs
DIAG = math.hypot(W, H)  # 47.1699...


def box(cx, cy):
    return quad(cx, cy, W, H)


def truth(corners, image_id=1, levels=None, spacing=None, view="lateral", facing="left"):
    c = np.array(corners, dtype=float)
    vis = np.isfinite(c[..., 0])
    return ImageTruth(image_id, f"img{image_id}.jpg", c, vis, list(levels or [None] * len(c)),
                      list(range(len(c))), view, spacing, facing)


# --- matching ---------------------------------------------------------------------------------------


def test_vertebra_size_is_the_largest_corner_distance():
    g = column(2)
    g[1, 2:] = np.nan  # a 2-corner S1: its endplate width
    np.testing.assert_allclose(vertebra_size(g), [DIAG, W])


def test_matching_with_missing_and_extra_detections():
    gt = column(3)
    preds = np.stack([
        gt[0] + [3.0, 4.0],  # 5 px off: matched
        gt[2] + [30.0, 0.0],  # 30 px > gate 0.5 * 47.17 = 23.58: not matched
        box(500.0, 500.0),  # far from everything: a false positive
    ])
    m = match_vertebrae(gt, preds)
    assert m.gt_to_pred.tolist() == [0, -1, -1]
    assert m.pred_to_gt.tolist() == [0, -1, -1]
    assert m.cost[0, 0] == pytest.approx(5.0)
    np.testing.assert_allclose(m.gate, 0.5 * DIAG)
    # a wider gate takes the 30 px one
    assert match_vertebrae(gt, preds, gate_factor=0.7).gt_to_pred.tolist() == [0, -1, 1]


def test_matching_is_optimal_not_greedy():
    # costs A: p1 1, p2 2; B: p1 3, p2 6. Greedy takes A-p1 (1) then B-p2 (6) = 7;
    # the Hungarian assignment A-p2, B-p1 costs 5.
    gt = np.stack([box(100, 100), box(100, 104)])
    preds = np.stack([box(100, 101), box(100, 98)])
    m = match_vertebrae(gt, preds)
    assert m.gt_to_pred.tolist() == [1, 0]
    np.testing.assert_allclose(m.cost, [[1, 2], [3, 6]])


def test_matching_prefers_more_matches_within_the_gate():
    # p0 is closest to A but is B's only admissible match; A still has p1 within its gate
    gt = np.stack([box(100, 100), box(100, 120)])
    preds = np.stack([box(100, 105), box(100, 85)])  # A: 5, 15; B: 15, 35 (> 23.58)
    assert match_vertebrae(gt, preds).gt_to_pred.tolist() == [1, 0]


def test_matching_uses_only_labelled_gt_corners():
    gt = column(1)
    gt[0, 2:] = np.nan
    pred = gt.copy()
    pred[0, 2:] = [[999.0, 999.0], [999.0, 999.0]]  # wild unlabelled corners do not count
    pred[0, :2] += [6.0, 8.0]
    m = match_vertebrae(gt, np.nan_to_num(pred, nan=0.0))
    assert m.cost[0, 0] == pytest.approx(10.0)
    assert match_vertebrae(gt, np.zeros((0, 4, 2))).gt_to_pred.tolist() == [-1]


# --- MRE, SDR, detection ----------------------------------------------------------------------------------


def hand_case(spacing=None):
    """3 GT bodies; body 0 corner errors 5, 0, 10, 13; body 1: 0, 20, 0, 0; body 2 missed.

    Matched errors [5, 0, 10, 13, 0, 20, 0, 0]: mean 48/8 = 6, median 2.5,
    std sqrt(694/8 - 36) = sqrt(50.75); SDR over 12 corners (4 missed):
    <=6: four 0s and the 5 = 5/12, <=12: 6/12, <=18: 7/12, <=24: 8/12.
    """
    gt = column(3)
    p0 = gt[0] + np.array([[3.0, 4.0], [0.0, 0.0], [6.0, 8.0], [0.0, -13.0]])
    p1 = gt[1] + np.array([[0.0, 0.0], [0.0, 20.0], [0.0, 0.0], [0.0, 0.0]])
    low = gt[2]  # a perfect prediction, but under the score threshold
    preds = ImagePredictions(np.stack([p0, p1, low]), np.array([0.9, 0.8, 0.3]))
    return truth(gt, spacing=spacing), preds


def test_mre_and_sdr_by_hand():
    t, p = hand_case()
    res = evaluate_dataset([t], {1: p}, EvaluationSettings(facing="left"))
    m = res.metrics
    assert m["MRE_px"] == pytest.approx(6.0)
    assert m["MRE_px_median"] == pytest.approx(2.5)
    assert m["MRE_px_std"] == pytest.approx(math.sqrt(50.75))
    assert [m[f"MRE_px_{k}"] for k in ("TL", "TR", "BL", "BR")] == pytest.approx([2.5, 10.0, 5.0, 6.5])
    assert [m[f"SDR_px@{t}"] for t in (6, 12, 18, 24)] == pytest.approx([100 * 5 / 12, 50.0, 100 * 7 / 12,
                                                                       100 * 8 / 12])
    assert m["MRE_mm"] is None and all(m[f"SDR_mm@{t}"] is None for t in ("2", "2.5", "3", "4"))
    assert (m["n_images"], m["n_gt_vertebrae"], m["n_matched"], m["n_predictions"]) == (1, 3, 2, 2)
    assert (m["det_precision"], m["det_recall"], m["det_F1"]) == pytest.approx((100.0, 100 * 2 / 3, 80.0))
    assert (m["det_TP"], m["det_FP"], m["det_FN"]) == (2, 0, 1)
    # the low-score prediction counts once the threshold allows it
    m2 = evaluate_dataset([t], {1: p}, EvaluationSettings(facing="left", score_threshold=0.2)).metrics
    assert m2["n_matched"] == 3 and m2["SDR_px@24"] == pytest.approx(100.0)


def test_mm_conversion():
    t, p = hand_case(spacing=0.5)
    m = evaluate_dataset([t], {1: p}, EvaluationSettings(facing="left")).metrics
    # errors in mm: [2.5, 0, 5, 6.5, 0, 10, 0, 0] and 4 missed: <=2: 4/12, <=2.5 .. <=4: 5/12
    assert m["MRE_mm"] == pytest.approx(3.0)
    assert m["MRE_mm_std"] == pytest.approx(0.5 * math.sqrt(50.75))
    assert [m[f"SDR_mm@{t}"] for t in ("2", "2.5", "3", "4")] == pytest.approx(
        [100 * 4 / 12, 100 * 5 / 12, 100 * 5 / 12, 100 * 5 / 12])
    rows = evaluate_dataset([t], {1: p}, EvaluationSettings(facing="left")).landmark_rows()
    assert rows[2]["error_px"] == pytest.approx(10.0) and rows[2]["error_mm"] == pytest.approx(5.0)
    assert rows[-1]["pred_x"] is None and rows[-1]["error_px"] is None  # body 2 missed


def test_mm_only_over_images_with_spacing():
    t1, p1 = hand_case(spacing=0.5)
    t2 = truth(column(1), image_id=2)  # no spacing, perfectly predicted
    p2 = ImagePredictions(column(1), np.array([0.9]))
    m = evaluate_dataset([t1, t2], {1: p1, 2: p2}, EvaluationSettings(facing="left")).metrics
    assert m["MRE_mm"] == pytest.approx(3.0)  # image 2 has no mm
    assert m["MRE_px"] == pytest.approx(48.0 / 12)  # 12 matched corners in px
    assert m["n_images_with_spacing"] == 1


def test_images_without_ground_truth():
    # an unlabelled image: nothing to find, every prediction is a false positive
    empty = truth(np.zeros((0, 4, 2)))
    m = evaluate_dataset([empty], {}).metrics
    assert (m["MRE_px"], m["SDR_px@6"], m["kappa"], m["n_gt_vertebrae"]) == (None, None, None, 0)
    assert m["det_F1"] == 100.0 and m["facing"]["n_estimated"] == 0
    m = evaluate_dataset([empty], {1: ImagePredictions(column(2), np.ones(2))}).metrics
    assert {k: m[k] for k in ("det_precision", "det_recall", "det_F1", "det_TP", "det_FP", "det_FN")} == {
        "det_precision": 0.0, "det_recall": 0.0, "det_F1": 0.0, "det_TP": 0, "det_FP": 2, "det_FN": 0}


def test_sdr_threshold_is_inclusive_and_missing_is_failure():
    assert success_detection_rate(np.array([6.0, 6.000001, np.inf, np.nan]), [6.0]) == {6.0: pytest.approx(100 / 3)}
    assert success_detection_rate(np.array([np.nan]), [6.0]) is None


def test_error_stats():
    assert error_stats([3.0, 4.0, np.inf, np.nan]) == {"mean": 3.5, "median": 3.5, "std": 0.5, "n": 2}
    assert error_stats([]) == {"mean": None, "median": None, "std": None, "n": 0}


def test_detection_scores():
    assert detection_scores(2, 1, 3) == pytest.approx({"det_precision": 200 / 3, "det_recall": 40.0,
                                                      "det_F1": 2 * (200 / 3) * 40 / (200 / 3 + 40),
                                                      "det_TP": 2, "det_FP": 1, "det_FN": 3})
    assert detection_scores(0, 0, 5) == {"det_precision": 0.0, "det_recall": 0.0, "det_F1": 0.0,
                                         "det_TP": 0, "det_FP": 0, "det_FN": 5}
    assert detection_scores(0, 0, 0) == {"det_precision": 100.0, "det_recall": 100.0, "det_F1": 100.0,
                                         "det_TP": 0, "det_FP": 0, "det_FN": 0}


# --- grades: confusion matrix and kappa ----------------------------------------------------------------------


def test_quadratic_weighted_kappa_by_hand():
    # GT [0,0,1,1,2,2] vs pred [0,1,1,1,2,1]: O = [[1,1,0],[0,2,0],[0,1,1]], n = 6.
    # Marginals rows (2,2,2), columns (1,4,1): E = rows x columns / 6 = (1/3, 4/3, 1/3) on every row.
    # w = (i-j)^2: sum(w O) = 1 + 1 = 2; sum(w E) = 8/3 + 2/3 + 8/3 = 6; kappa = 1 - 2/6 = 2/3.
    cm = confusion_matrix([0, 0, 1, 1, 2, 2], [0, 1, 1, 1, 2, 1], labels=(0, 1, 2))
    assert cm.tolist() == [[1, 1, 0], [0, 2, 0], [0, 1, 1]]
    assert quadratic_weighted_kappa(cm) == pytest.approx(2 / 3)
    # the same grades in the full 7-class matrix (-1..5): unused classes change nothing
    full = confusion_matrix([0, 0, 1, 1, 2, 2], [0, 1, 1, 1, 2, 1])
    assert full.shape == (7, 7) and full[1, 2] == 1
    assert quadratic_weighted_kappa(full) == pytest.approx(2 / 3)


def test_kappa_edge_cases():
    assert quadratic_weighted_kappa(np.array([[0, 1], [1, 0]])) == pytest.approx(-1.0)
    assert quadratic_weighted_kappa(np.array([[3, 0], [0, 2]])) == 1.0
    assert quadratic_weighted_kappa(np.array([[4, 0], [0, 0]])) == 1.0  # one class, all agree
    assert quadratic_weighted_kappa(np.zeros((7, 7))) is None
    with pytest.raises(ValueError, match="not one of"):
        confusion_matrix([7], [0])


def test_slip_agreement():
    s = slip_agreement([37.5, 0.0, -10.0, 20.0], [30.0, 2.0, -12.0, 30.0], [2, 0, -1, 1], [2, 0, -1, 2], 3)
    assert s["slip_MAE_pp"] == pytest.approx((7.5 + 2 + 2 + 10) / 4)
    assert s["grade_acc"] == pytest.approx(75.0)
    assert (s["n_pairs"], s["n_unscored_pairs"]) == (4, 3)
    assert s["grade_confusion"]["labels"] == ["retrolisthesis", "none", "I", "II", "III", "IV", "V"]
    empty = slip_agreement([], [], [], [], 2)
    assert (empty["slip_MAE_pp"], empty["grade_acc"], empty["kappa"]) == (None, None, None)
    assert empty["n_unscored_pairs"] == 2


def test_slip_agreement_through_evaluation():
    # GT: L5 15 px forward over S1 (37.5 %, grade II), so L4/L5 reads -37.5 % (retrolisthesis).
    # Prediction: L5 2 px too far back: L5/S1 (15 - 2) / 40 = 32.5 %, L4/L5 -32.5 %; both grades right.
    levels = ["L1", "L2", "L3", "L4", "L5", "S1"]
    gt = column(6, shifts=[0, 0, 0, 0, -15, 0])
    pred = gt.copy()
    pred[4] += [2.0, 0.0]
    t = truth(gt, levels=levels)
    res = evaluate_image(t, ImagePredictions(pred, np.ones(6)), EvaluationSettings(facing="left"))
    rows = {(r["upper"], r["lower"]): r for r in res.pairs}
    assert rows[("L5", "S1")]["gt_value"] == pytest.approx(37.5) and rows[("L5", "S1")]["gt_class"] == 2
    assert rows[("L5", "S1")]["pred_value"] == pytest.approx(32.5) and rows[("L5", "S1")]["pred_class"] == 2
    assert rows[("L4", "L5")]["pred_value"] == pytest.approx(-32.5)
    m = evaluate_dataset([t], {1: ImagePredictions(pred, np.ones(6))}, EvaluationSettings(facing="left")).metrics
    assert m["slip_MAE_pp"] == pytest.approx(10.0 / 5)
    assert m["grade_acc"] == 100.0 and m["kappa"] == 1.0
    # L2 missed: the pairs L1/L2 and L2/L3 cannot be scored
    keep = [0, 2, 3, 4, 5]
    m = evaluate_dataset([t], {1: ImagePredictions(pred[keep], np.ones(5))}, EvaluationSettings(facing="left")).metrics
    assert (m["n_pairs"], m["n_unscored_pairs"]) == (3, 2)
    assert m["slip_MAE_pp"] == pytest.approx(10.0 / 3)
    flat = flat_metrics(m)
    assert flat["slip_MAE_pp"] == pytest.approx(10.0 / 3) and flat["n_unscored_pairs"] == 2.0
    assert math.isnan(flat["MRE_mm"]) and set(flat) >= {"MRE_px", "SDR_px@12", "det_F1", "grade_acc"}
    # the flat results are exactly metrics.json's scalars, under the same names
    assert set(flat) == {k for k, v in m.items() if not isinstance(v, dict)}
    assert all(math.isnan(flat[k]) if m[k] is None else flat[k] == m[k] for k in flat)


def lordotic(mirror=False):
    """Six bodies on an arc bulging image-left, tilts +5 (top) to -40 deg (bottom): facing left;
    L5 6 px forward over S1 (15 %). ``mirror``: the same spine facing right."""
    out = []
    for k, (x, th) in enumerate(zip(100.0 - 20.0 * (1.0 - ((np.arange(6) - 2.5) / 2.5) ** 2), np.linspace(5, -40, 6))):
        t = math.radians(th)
        rot = np.array([[math.cos(t), -math.sin(t)], [math.sin(t), math.cos(t)]])
        out.append((box(0.0, 0.0) @ rot.T) + [x - (6.0 if k == 4 else 0.0), 100.0 + PITCH * k])
    c = np.stack(out)
    if mirror:
        c[..., 0] = 300.0 - c[..., 0]
        c = c[:, [1, 0, 3, 2]]
    return c


@pytest.mark.parametrize("mirror,side", [(False, "left"), (True, "right")])
def test_each_spine_estimates_its_own_facing(mirror, side):
    # facing "auto" without a data facing: GT and predicted spines each estimate theirs
    c = lordotic(mirror)
    t = truth(c, facing=None)
    res = evaluate_image(t, ImagePredictions(c, np.ones(6)), EvaluationSettings())
    assert (res.gt_grading.facing.facing, res.gt_grading.facing.source) == (side, "auto")
    assert res.pred_grading.facing.facing == side
    assert [r["pred_value"] for r in res.pairs] == pytest.approx([r["gt_value"] for r in res.pairs])
    # the dataset's own facing, when it has one, is used for both spines
    t.facing = "right" if side == "left" else "left"
    res = evaluate_image(t, ImagePredictions(c, np.ones(6)), EvaluationSettings())
    assert res.gt_grading.facing.source == "data" and res.pred_grading.facing.source == "data"


def test_ap_lateral_displacement_agreement():
    t = truth(column(3, shifts=[4.0, 4.0, 0.0]), view="ap", facing=None)  # 10 % to the image-right
    pred = column(3, shifts=[6.0, 6.0, 0.0])  # 15 %
    m = evaluate_dataset([t], {1: ImagePredictions(pred, np.ones(3))}).metrics
    assert m["lateral_displacement_MAE_pp"] == pytest.approx(5.0 / 2)  # pair 1: 10 vs 15; pair 2: 0 vs 0
    assert m["n_ap_pairs"] == 2 and m["lateral_side_acc"] == 100.0
    assert m["n_pairs"] == 0  # AP pairs have no Meyerding grade


def test_settings_are_checked():
    with pytest.raises(ValueError, match="facing"):
        EvaluationSettings(facing="up")
    with pytest.raises(ValueError, match="no_slip_pct"):
        EvaluationSettings(no_slip_pct=30)
    with pytest.raises(ValueError, match="sdr_thresholds_px"):
        EvaluationSettings(sdr_thresholds_px=[-1])
    assert EvaluationSettings(sdr_thresholds_mm=[4, 2, 2]).sdr_thresholds_mm == (2.0, 4.0)


# --- reading and validating inputs ------------------------------------------------------------------------------


def coco(n_images=1, **image_extra):
    cats = [{"id": 1, "name": "vertebra", "supercategory": "spine", "keypoints": ["TL", "TR", "BL", "BR"],
             "skeleton": [[1, 2], [2, 4], [4, 3], [3, 1]]}]
    images = [dict({"id": i + 1, "file_name": f"sub/img{i + 1}.jpg", "width": 300, "height": 400,
                    "source_stem": f"img{i + 1}", "view": "lateral", "pixel_spacing": None}, **image_extra)
              for i in range(n_images)]
    anns = []
    for i in range(n_images):
        for k, q in enumerate(column(2)):
            kp = [v for x, y in q for v in (float(x), float(y), 2)]
            anns.append({"id": len(anns) + 1, "image_id": i + 1, "category_id": 1, "keypoints": kp,
                         "num_keypoints": 4, "bbox": [0, 0, 1, 1], "area": 1.0, "iscrowd": 0,
                         "vertebra_level": ["L5", "S1"][k], "source_label": None})
    return {"info": {}, "licenses": [], "categories": cats, "images": images, "annotations": anns}


def test_load_ground_truth():
    d = coco(2)
    d["annotations"][1]["keypoints"][6:] = [0, 0, 0, 0, 0, 0]  # S1 with 2 corners
    gt = load_ground_truth(d)
    assert [im.image_id for im in gt.images] == [1, 2]
    im = gt.images[0]
    assert im.visible.tolist() == [[True] * 4, [True, True, False, False]]
    assert np.isnan(im.corners[1, 2:]).all() and im.levels == ["L5", "S1"]


@pytest.mark.parametrize("mutate,match", [
    (lambda d: d.pop("annotations"), r"not a COCO file: missing \['annotations'\]"),
    (lambda d: d["categories"][0].pop("keypoints"), "not a COCO keypoint file"),
    (lambda d: d["categories"][0].update(keypoints=["a", "b", "c", "d"]), "keypoint names"),
    (lambda d: d["annotations"][0].update(keypoints=[1.0] * 10), "'keypoints' has 10 numbers, expected 12"),
    (lambda d: d["annotations"][0]["keypoints"].__setitem__(0, float("nan")), "NaN"),
    (lambda d: d["annotations"][0].update(image_id=99), "image_id 99 is not in 'images'"),
    (lambda d: d["images"].append(dict(d["images"][0])), "appears twice"),
    (lambda d: d["images"][0].update(pixel_spacing=-1), "positive"),
    (lambda d: d["images"][0].update(view="oblique"), "view 'oblique'"),
    (lambda d: d["annotations"][0]["keypoints"].__setitem__(2, 5), "visibility"),
])
def test_bad_ground_truth(mutate, match):
    d = coco()
    mutate(d)
    with pytest.raises(EvaluationInputError, match=match):
        load_ground_truth(d)


def test_ground_truth_file_errors(tmp_path):
    with pytest.raises(EvaluationInputError, match="does not exist"):
        load_ground_truth(tmp_path / "nope.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(EvaluationInputError, match="malformed JSON"):
        load_ground_truth(bad)
    with pytest.raises(EvaluationInputError, match="predictions list"):
        load_ground_truth([])


def results(gt_dict):
    return [{"image_id": a["image_id"], "category_id": 1, "keypoints": a["keypoints"], "score": 0.9}
            for a in gt_dict["annotations"]]


def test_load_predictions():
    d = coco(2)
    gt = load_ground_truth(d)
    preds = load_predictions(results(d)[:3], gt)
    assert sorted(preds) == [1, 2] and preds[1].corners.shape == (2, 4, 2) and preds[2].scores.tolist() == [0.9]


@pytest.mark.parametrize("mutate,match", [
    (lambda r: r[0].update(image_id=42), r"refer to 1 image id\(s\) that are not in the ground truth.*42"),
    (lambda r: r[0].update(keypoints=[1.0] * 11), "result #0 .*'keypoints' has 11 numbers"),
    (lambda r: r[1]["keypoints"].__setitem__(3, float("inf")), "result #1 .*NaN or infinite"),
    (lambda r: r[0].pop("score"), "'score' must be a finite number"),
    (lambda r: r[0].update(score=float("nan")), "'score' must be a finite number"),
    (lambda r: r[0].update(category_id=0), "category_id 0 is not the vertebra category 1"),
])
def test_bad_predictions(mutate, match):
    d = coco()
    r = json.loads(json.dumps(results(d)))
    mutate(r)
    with pytest.raises(EvaluationInputError, match=match):
        load_predictions(r, load_ground_truth(d))


def test_predictions_must_be_a_results_list():
    d = coco()
    gt = load_ground_truth(d)
    with pytest.raises(EvaluationInputError, match="looks like a COCO ground-truth file"):
        load_predictions(d, gt)
    with pytest.raises(EvaluationInputError, match="must be a JSON list"):
        load_predictions({"x": 1}, gt)


def test_pixel_spacing_inputs(tmp_path):
    assert load_pixel_spacing("0.25") == 0.25
    with pytest.raises(InvalidInput, match="positive"):
        load_pixel_spacing("-1")
    with pytest.raises(InvalidInput, match="neither a number nor an existing file"):
        load_pixel_spacing(str(tmp_path / "missing.csv"))
    f = tmp_path / "spacing.csv"
    f.write_text("File Name,Pixel Spacing (mm)\nimg1.jpg,0.5\nother.jpg,0.1\n")
    # "Pixel Spacing (mm)" normalises to pixel_spacing_mm
    assert load_pixel_spacing(str(f)) == {"img1.jpg": 0.5, "other.jpg": 0.1}
    g = tmp_path / "noheader.csv"
    g.write_text("img2;0.3\n")
    assert load_pixel_spacing(str(g)) == {"img2": 0.3}
    bad = tmp_path / "bad.csv"
    bad.write_text("stem,mm_per_pixel\nimg1,abc\n")
    with pytest.raises(InvalidInput, match="row 2: 'abc' is not a positive number"):
        load_pixel_spacing(str(bad))
    cols = tmp_path / "cols.csv"
    cols.write_text("a,b,c\nx,1,2\n")
    with pytest.raises(InvalidInput, match="cannot tell the columns"):
        load_pixel_spacing(str(cols))


def test_apply_pixel_spacing_by_name_stem_and_source_stem():
    gt = load_ground_truth(coco(3, pixel_spacing=0.9))
    gt.images[2].source_stem = "0001-F-037Y1"
    n = apply_pixel_spacing(gt.images, {"img1.jpg": 0.5, "IMG/img2.png": 0.25, "0001-F-037Y1.jpg": 0.125})
    assert n == 3 and [im.pixel_spacing for im in gt.images] == [0.5, 0.25, 0.125]
    gt = load_ground_truth(coco(2, pixel_spacing=0.9))
    assert apply_pixel_spacing(gt.images, {"nothing": 1.0}) == 0
    assert [im.pixel_spacing for im in gt.images] == [0.9, 0.9]  # not in the table: the GT's value stays
    assert apply_pixel_spacing(gt.images, 0.2) == 2 and gt.images[1].pixel_spacing == 0.2


def test_predictions_for_unknown_images_are_refused_by_evaluate_dataset():
    t = truth(column(1))
    with pytest.raises(EvaluationInputError, match="not in the ground truth"):
        evaluate_dataset([t], {7: ImagePredictions(column(1), np.ones(1))})
