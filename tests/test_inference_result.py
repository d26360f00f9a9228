"""The inference package without a network: corner confidence, grading and flags of
detections, the report rows, COCO results, input expansion and overlays."""
import csv
import json
import math

import cv2
import numpy as np
import pytest

from tests.helpers.raw import quad
from vertkp.evaluation import ImageTruth
from vertkp.inference import FlagThresholds, build_prediction
from vertkp.keypoint_decoding import corner_confidence
from vertkp.review import CornerUncertainty
from vertkp.drawing import overlay_names
from vertkp.data.imaging.images import ImageRecord
from vertkp.inference.inputs import PredictPlan, expand_inputs, image_record
from vertkp.inference.outputs import (
    REPORT_COLUMNS,
    coco_results,
    match_image_ids,
    report_rows,
    summarize,
    write_report_csv,
)
from vertkp.inference.overlay import draw_overlay, pair_label


# ---- corner confidence -----------------------------------------------------------------------
def test_corner_confidence_is_the_softmax_mass_around_the_peak():
    h = np.zeros((1, 2, 5, 5))
    h[0, 0, 2, 2] = np.log(101.0)  # softmax: 101 / (101 + 24) at the peak, 1/125 elsewhere
    h[0, 1, 0, 0] = np.log(11.0)   # peak in a corner: window of 2x2 cells
    c = corner_confidence(h)
    assert c[0, 0] == pytest.approx((101 + 8) / 125)
    assert c[0, 1] == pytest.approx((11 + 3) / 35)
    assert corner_confidence(h, radius=0)[0, 0] == pytest.approx(101 / 125)
    flat = corner_confidence(np.zeros((2, 4, 56, 56)))
    assert flat.shape == (2, 4) and np.allclose(flat, 4 / 56 ** 2)  # ties: the first cell, a corner


# ---- grading of detections ---------------------------------------------------------------------
def _spine(shift_top=37.5, n=5):
    """n stacked 100 x 60 vertebrae, the top two shifted right by shift_top px."""
    return np.array([quad(300 + (shift_top if k < 2 else 0), 100 + 90 * k, 100, 60) for k in range(n)])


# Corners known to 0.5% of the width: slip intervals of about +-1.8 pp on these 100 px bodies.
SHARP = CornerUncertainty(floor_pct_width=0.5, spread_factor=1.0)


def _boxes(c):
    return np.concatenate([c.min(axis=1), c.max(axis=1)], axis=1)


def test_detections_are_ordered_named_from_the_bottom_level_and_graded():
    c = _spine()
    perm = [3, 0, 4, 1, 2]  # detections come by score, not by level
    pred = build_prediction(c[perm], np.full((5, 4), 0.9), np.full(5, 0.95), _boxes(c[perm]), image="x.png",
                            height=600, width=600, facing="right", bottom_level="S1", uncertainty=SHARP)
    assert [v.name for v in pred.vertebrae] == ["L2", "L3", "L4", "L5", "S1"]
    assert [v.detection for v in pred.vertebrae] == [1, 3, 4, 0, 2]
    assert np.array_equal(pred.corners, c)
    assert [p.name for p in pred.pairs] == ["L2/L3", "L3/L4", "L4/L5", "L5/S1"]
    l3l4 = pred.pairs[1]
    assert (l3l4.upper, l3l4.lower) == (1, 2)
    # facing right: anterior is image-right, so a shift to the right is a forward slip of 37.5%
    assert l3l4.slip_pct == pytest.approx(37.5) and l3l4.grade_name == "II"
    assert pred.pairs[0].slip_pct == pytest.approx(0.0) and pred.pairs[0].grade_name == "none"
    assert pred.level_source == "bottom_level" and pred.flags == [] and pred.facing_source == "given"


def test_flags_point_at_what_needs_a_look():
    c = _spine(shift_top=25.2)  # 25.2% slip: 0.2 pp from the I/II boundary, SD about 0.7 pp
    cs = np.full((5, 4), 0.9)
    cs[4, 0] = 0.2      # S1's TL corner (a superior corner: used by the L5/S1 pair)
    cs[0, 0] = 0.2      # top vertebra's TL: used by no pair
    scores = np.array([0.99, 0.99, 0.99, 0.6, 0.99])  # L5 is a weak detection
    pred = build_prediction(c, cs, scores, _boxes(c), image="x", height=600, width=600, facing="right",
                            thresholds=FlagThresholds(corner=0.5, vertebra=0.8), uncertainty=SHARP)
    flags = {p.name: p.flags for p in pred.pairs}
    assert flags == {
        "pair 4 from the bottom": [],
        "pair 3 from the bottom": ["borderline_grade"],
        "pair 2 from the bottom": ["low_confidence_vertebra"],
        "pair 1 from the bottom": ["low_confidence_vertebra", "low_confidence_corner"],
    }
    assert [v.flags for v in pred.vertebrae] == [["low_confidence_corner"], [], [], ["low_confidence_vertebra"],
                                                 ["low_confidence_corner"]]
    assert pred.flags == ["low_confidence_vertebra", "low_confidence_corner", "borderline_grade"]


def test_grade_probabilities_come_from_the_slip_distribution_and_borderline_means_another_grade_is_likely():
    c = _spine(shift_top=26.0)  # pair 3 from the bottom: Q - P = (26, -30) px on a 100 px endplate
    one_px = CornerUncertainty(floor_pct_width=1.0, spread_factor=0.0)  # every corner: SD 1 px per axis
    pred = build_prediction(c, np.full((5, 4), 0.9), np.ones(5), _boxes(c), image="x", height=600, width=600,
                            facing="right", uncertainty=one_px)
    pair = next(p for p in pred.pairs if p.name == "pair 3 from the bottom")
    # ds/dQ = (1, 0), ds/dA = (-0.26, -0.3), ds/dP = (-0.74, 0.3) per px
    sd = np.sqrt(1 + 0.26 ** 2 + 0.3 ** 2 + 0.74 ** 2 + 0.3 ** 2)
    assert pair.slip_pct == pytest.approx(26.0)
    assert (pair.slip_low_pct, pair.slip_high_pct) == (pytest.approx(26 - 1.96 * sd), pytest.approx(26 + 1.96 * sd))

    def below(x):  # P(slip < x)
        return 0.5 * (1 + math.erf((x - 26.0) / (sd * math.sqrt(2))))

    probs = pair.grade_probabilities
    assert list(probs) == ["retrolisthesis", "none", "I", "II", "III", "IV", "V"]
    assert probs["I"] == pytest.approx(below(25) - below(5))
    assert probs["II"] == pytest.approx(below(50) - below(25))
    assert pair.grade_name == "II" and pair.grade_probability == pytest.approx(probs["II"])
    assert sum(probs.values()) == pytest.approx(1.0)
    assert "borderline_grade" in pair.flags  # P(I) = 0.23 > grade_doubt 0.2
    far = next(p for p in pred.pairs if p.name == "pair 1 from the bottom")  # slip 0, 5 pp inside the no-slip band
    assert far.grade_probability > 0.999 and "borderline_grade" not in far.flags
    wide = build_prediction(c, np.full((5, 4), 0.9), np.ones(5), _boxes(c), image="x", height=600, width=600,
                            facing="right", uncertainty=CornerUncertainty(floor_pct_width=4.0, spread_factor=0.0))
    assert "borderline_grade" in next(p for p in wide.pairs if p.name == "pair 1 from the bottom").flags
    lax = build_prediction(c, np.full((5, 4), 0.9), np.ones(5), _boxes(c), image="x", height=600, width=600,
                           facing="right", uncertainty=one_px, thresholds=FlagThresholds(grade_doubt=0.3))
    assert not any("borderline_grade" in p.flags for p in lax.pairs)


def test_tta_spreads_raise_unstable_corner_and_widen_the_interval():
    c = _spine(shift_top=0.0)
    spread = np.zeros((5, 4))
    spread[2, 0] = 5.0  # 5% of the 100 px width
    spread[4] = np.nan  # one pass alone found it
    args = dict(image="x", height=600, width=600, facing="right", uncertainty=SHARP,
                thresholds=FlagThresholds(spread_pct=2.0))
    pred = build_prediction(c, np.ones((5, 4)), np.ones(5), _boxes(c), corner_spread=spread, **args)
    assert [("unstable_corner" in v.flags) for v in pred.vertebrae] == [False, False, True, False, True]
    assert pred.vertebrae[2].corner_spread_pct[0] == pytest.approx(5.0)
    assert pred.vertebrae[2].corner_sd_px[0] == pytest.approx(np.hypot(0.5, 5.0))
    assert json.loads(json.dumps(pred.as_dict()))["vertebrae"][4]["corner_spread_px"]["TL"] is None
    plain = build_prediction(c, np.ones((5, 4)), np.ones(5), _boxes(c), **args)
    assert not any("unstable_corner" in v.flags for v in plain.vertebrae)
    assert np.all(np.isnan(plain.vertebrae[0].corner_spread_px))


def test_a_missing_vertebra_is_flagged_and_levels_are_not_guessed_across_it():
    c = np.delete(_spine(shift_top=0.0, n=6), 3, axis=0)  # a hole of one body + disc
    pred = build_prediction(c, np.ones((5, 4)), np.ones(5), _boxes(c), image="x", height=700, width=600,
                            facing="left", bottom_level="S1", uncertainty=SHARP)
    assert pred.flags == ["suspected_missed_vertebra"]
    assert len(pred.gaps) == 1 and (pred.gaps[0]["upper"], pred.gaps[0]["lower"]) == (2, 3)
    assert len(pred.pairs) == 3  # the pair across the hole is not graded
    assert pred.level_source == "position" and all(v.level is None for v in pred.vertebrae)
    assert any("missed" in n for n in pred.notes)


def test_an_estimated_facing_with_low_confidence_is_flagged_and_no_detection_is_no_crash():
    c = _spine(shift_top=0.0, n=3)  # a straight column: no curvature to tell the facing
    pred = build_prediction(c, np.ones((3, 4)), np.ones(3), _boxes(c), image="x", height=500, width=600,
                            uncertainty=SHARP)
    assert pred.facing_source == "auto" and pred.facing_confidence < 0.8
    assert pred.flags == ["uncertain_facing"]
    empty = build_prediction(np.zeros((0, 4, 2)), np.zeros((0, 4)), np.zeros(0), np.zeros((0, 4)), image="e",
                             height=10, width=10)
    assert empty.flags == ["no_vertebrae"] and empty.pairs == [] and empty.vertebrae == []
    json.dumps(empty.as_dict())
    assert report_rows(empty)[0]["pair"] == "" and report_rows(empty)[0]["image_flags"] == "no_vertebrae"


def test_report_rows_and_coco_results_carry_the_prediction(tmp_path):
    c = _spine()
    pred = build_prediction(c, np.full((5, 4), 0.9), np.linspace(0.9, 0.99, 5), _boxes(c), image="a/x.png",
                            height=600, width=600, facing="right", pixel_spacing=0.2)
    pred.image_id = 7
    rows = report_rows(pred)
    assert [r["pair"] for r in rows] == [p.name for p in pred.pairs]
    assert float(rows[1]["slip_pct"]) == pytest.approx(37.5) and rows[1]["grade"] == "II"
    assert float(rows[1]["disc_height_posterior_mm"]) == pytest.approx(0.2 * pred.pairs[1].disc_height_posterior_px,
                                                                       rel=1e-3)
    path = write_report_csv(tmp_path / "report.csv", [pred, pred])
    with open(path, newline="") as f:
        back = list(csv.DictReader(f))
    assert len(back) == 8 and tuple(back[0]) == REPORT_COLUMNS
    res = coco_results([pred])
    assert len(res) == 5 and {r["image_id"] for r in res} == {7}
    for r, v in zip(res, pred.vertebrae):
        k = np.array(r["keypoints"]).reshape(4, 3)
        assert np.array_equal(k[:, :2], v.corners) and np.allclose(k[:, 2], 0.9) and r["score"] == v.score
    pred.image_id = None
    assert coco_results([pred]) == []
    s = summarize([pred], [{"image": "b.png", "error": "bad"}])
    assert s["images"] == 2 and s["failed"] == 1 and s["pairs_per_grade"] == {"none": 3, "II": 1}
    d = json.loads(json.dumps(pred.as_dict()))
    assert d["vertebrae"][0]["corners"]["TL"] == list(c[0, 0]) and d["pairs"][1]["grade_name"] == "II"


def test_input_paths_are_matched_to_ground_truth_image_ids(tmp_path):
    corners, visible = np.zeros((0, 4, 2)), np.zeros((0, 4), bool)
    gt = [ImageTruth(iid, name, corners, visible)
          for iid, name in ((3, "images/val/a.png"), (4, "images/train/a.png"), (5, "images/val/b.png"))]
    paths = [str(tmp_path / "images" / "val" / "a.png"), str(tmp_path / "x" / "b.png"), str(tmp_path / "a.png"),
             str(tmp_path / "c.png")]
    assert match_image_ids(paths, gt) == [3, 5, None, None]  # a.png alone is ambiguous


def test_an_input_record_takes_the_flag_over_the_file_and_the_file_over_the_ground_truth():
    dicom = ImageRecord(0.2, "dicom:PixelSpacing")
    skewed = ImageRecord(notes=("DICOM PixelSpacing is ... not square ...",))
    none = np.zeros((0, 4, 2))
    gt = {1: ImageTruth(1, "a.png", none, none[:, :, 0] > 0, view="ap", pixel_spacing=0.5, facing="right",
                        source_stem="a"),
          2: ImageTruth(2, "b.png", none, none[:, :, 0] > 0)}
    plan = PredictPlan(["in/a.dcm", "in/b.dcm", "in/c.png"], [], [1, 2, None], ["a", "b", "c"], gt=gt)
    assert image_record(plan, 0, dicom) == ImageRecord(0.2, "dicom:PixelSpacing", view="ap", data_facing="right")
    assert image_record(plan, 0, skewed) == ImageRecord(0.5, "--gt", view="ap", data_facing="right")
    assert image_record(plan, 1, skewed) == ImageRecord(view="lateral", notes=skewed.notes)
    assert image_record(plan, 2, ImageRecord()) == ImageRecord(view="lateral")
    plan.spacing, plan.view = 0.3, "ap"
    for k, record in ((0, dicom), (0, skewed), (2, ImageRecord())):
        assert image_record(plan, k, record).pixel_spacing_source == "--pixel-spacing"
        assert image_record(plan, k, record).pixel_spacing == 0.3 and not image_record(plan, k, record).notes
    assert image_record(plan, 2, ImageRecord()).view == "ap"
    plan.spacing = {"a": 0.4}  # a table: an image it does not list keeps the file's spacing
    assert image_record(plan, 0, skewed).pixel_spacing == 0.4
    assert image_record(plan, 1, dicom).pixel_spacing_source == "dicom:PixelSpacing"


def test_inputs_expand_folders_globs_and_report_what_matches_nothing(tmp_path):
    for name in ("d/a.png", "d/sub/b.JPG", "d/notes.txt", "e/c.tif"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"x")
    paths, failures = expand_inputs([tmp_path / "d", str(tmp_path / "e" / "*.tif"), tmp_path / "d" / "a.png",
                                     tmp_path / "d" / "notes.txt", tmp_path / "nope", str(tmp_path / "*.bmp")])
    assert paths == [str(tmp_path / "d" / "a.png"), str(tmp_path / "d" / "sub" / "b.JPG"),
                     str(tmp_path / "e" / "c.tif"), str(tmp_path / "d" / "notes.txt")]
    assert [f["error"] for f in failures] == ["no such file or folder", "the pattern matches no file"]
    assert overlay_names(["a/x.png", "b/x.png", "a/x.jpg", "c/y.png"]) == ["a_x", "b_x", "a_x_2", "y"]


def test_overlay_is_the_input_size_and_marks_flags_and_grades():
    c = _spine()
    cs = np.full((5, 4), 0.9)
    cs[2, 3] = 0.1
    pred = build_prediction(c, cs, np.full(5, 0.95), _boxes(c), image="x", height=600, width=640, facing="right")
    grey = np.full((600, 640), 40, np.uint8)
    out = draw_overlay(grey, pred)
    assert out.shape == (600, 640, 3) and out.dtype == np.uint8
    # each corner dot is drawn in its name's colour
    from vertkp.drawing import CORNER_COLORS
    from vertkp.inference.overlay import FLAG_COLOR
    for v in pred.vertebrae:
        for name, (x, y) in zip(("TL", "TR", "BL", "BR"), v.corners):
            assert tuple(out[int(round(y)), int(round(x))]) == CORNER_COLORS[name]
    # the low-confidence corner gets a flag ring, the others none
    x, y = pred.vertebrae[2].corners[3]
    ring = out[int(round(y)) - 14:int(round(y)) + 15, int(round(x)) - 14:int(round(x)) + 15]
    assert np.any(np.all(ring == FLAG_COLOR, axis=-1))
    x, y = pred.vertebrae[0].corners[0]
    clean = out[int(round(y)) - 14:int(round(y)) + 15, int(round(x)) - 14:int(round(x)) + 15]
    assert not np.any(np.all(clean == FLAG_COLOR, axis=-1))
    assert pair_label(pred.pairs[1]) == "#4/#3 +37.5% II"
    assert pair_label(pred.pairs[2]) == "#3/#2 +0.0% none ?"  # uses the low-confidence BR
    assert draw_overlay(cv2.cvtColor(grey, cv2.COLOR_GRAY2BGR), pred).shape == (600, 640, 3)


def test_a_duplicate_detection_is_removed_and_said_and_a_crossed_body_is_flagged_by_name():
    c = _spine(shift_top=0.0)
    dup = c[2] + np.array([3.0, 2.0])
    corners = np.concatenate([c, [dup]])
    scores = np.array([0.99, 0.99, 0.9, 0.99, 0.99, 0.6])
    pred = build_prediction(corners, np.full((6, 4), 0.9), scores, _boxes(corners), image="x", height=600,
                            width=600, facing="right", bottom_level="S1", uncertainty=SHARP)
    assert [v.detection for v in pred.vertebrae] == [0, 1, 2, 3, 4]
    [found] = pred.findings
    assert found["code"] == "duplicate_vertebra" and found["repaired"] and found["detections"] == [5, 2]
    assert found["vertebrae"] == ["L4"] and "detection 5" in found["message"] and found["message"] in pred.notes
    assert "implausible_chain" not in pred.flags
    assert pred.risk == pytest.approx(1 - np.prod([p.grade_probability for p in pred.pairs]))
    kept = build_prediction(corners, np.full((6, 4), 0.9), scores, _boxes(corners), image="x", height=600,
                            width=600, facing="right", uncertainty=SHARP, repair=False)
    assert len(kept.vertebrae) == 6 and "implausible_chain" in kept.flags and kept.risk == 1.0

    crossed = c.copy()
    crossed[3] = crossed[3][[0, 1, 3, 2]]  # BL and BR swapped: the outline crosses itself
    bad = build_prediction(crossed, np.full((5, 4), 0.9), np.ones(5), _boxes(crossed), image="x", height=600,
                           width=600, facing="right", bottom_level="S1", uncertainty=SHARP)
    codes = {(f["code"], tuple(f["vertebrae"]), f["repaired"]) for f in bad.findings}
    assert ("self_intersecting", ("L5",), False) in codes
    assert "implausible_chain" in bad.vertebrae[3].flags and "implausible_chain" not in bad.vertebrae[0].flags
    assert "implausible_chain" in bad.flags and bad.risk == 1.0
    bottom = c.copy()
    bottom[4] = bottom[4][[0, 1, 3, 2]]  # the same on S1: its inferior corners enter no measure, and are not judged
    fine = build_prediction(bottom, np.full((5, 4), 0.9), np.ones(5), _boxes(bottom), image="x", height=600,
                            width=600, facing="right", bottom_level="S1", uncertainty=SHARP)
    assert fine.findings == [] and "implausible_chain" not in fine.flags


def test_image_risk_is_the_chance_that_some_grade_is_wrong():
    from vertkp.review import image_risk
    assert image_risk([0.9, 0.8, None]) == pytest.approx(1 - 0.72)
    assert image_risk([0.9, 0.8], facing_confidence=0.5) == pytest.approx(1 - 0.36)
    assert image_risk([1.0, 1.0], implausible=True) == 1.0
    assert image_risk([None]) is None and image_risk([], implausible=True) == 1.0


def _lordotic(angles, step=95.0):
    """100 x 60 vertebrae, one per angle (deg, clockwise on screen), centres `step` px apart."""
    return np.array([quad(300, 100 + step * k, 100, 60, a) for k, a in enumerate(angles)])


def test_levels_are_named_from_a_recognised_s1_with_its_probability_and_stay_positional_otherwise():
    from vertkp.grading.levels import BOTTOM_S1_MODEL, MIN_LEVEL_CONFIDENCE
    (w_angle, w_step), bias = BOTTOM_S1_MODEL
    c = _lordotic([0, 0, 0, 6, 20])  # facing right: lordotic angles 0, 0, 6, 14 deg, cranial first
    args = dict(image="x", height=700, width=600, facing="right", uncertainty=SHARP)
    pred = build_prediction(c, np.full((5, 4), 0.9), np.ones(5), _boxes(c), **args)
    assert [p.intervertebral_angle_deg for p in pred.pairs] == pytest.approx([0, 0, 6, 14], abs=1e-6)
    p_s1 = 1 / (1 + math.exp(-(w_angle * 14 + w_step * (14 - 6) + bias)))
    assert p_s1 >= MIN_LEVEL_CONFIDENCE and pred.level_source == "estimated"
    assert [v.name for v in pred.vertebrae] == ["L2", "L3", "L4", "L5", "S1"]
    assert [v.level_confidence for v in pred.vertebrae] == pytest.approx([p_s1] * 5)
    assert pred.pairs[-1].name == "L5/S1"
    [row] = [r for r in report_rows(pred) if r["pair"] == "L5/S1"]
    assert row["level_confidence"] == pytest.approx(p_s1) and row["grade_probability"] is not None

    flat = build_prediction(_lordotic([0] * 5), np.full((5, 4), 0.9), np.ones(5), _boxes(_lordotic([0] * 5)), **args)
    assert flat.level_source == "position" and flat.vertebrae[-1].name == "#1 from bottom"
    assert flat.vertebrae[-1].level_confidence is None
    assert any("probability 0.40" in n for n in flat.notes)  # 1 / (1 + exp(0.403))
    given = build_prediction(c, np.full((5, 4), 0.9), np.ones(5), _boxes(c), bottom_level="L5", **args)
    assert given.level_source == "bottom_level" and given.vertebrae[-1].level_confidence is None
    none = build_prediction(c, np.full((5, 4), 0.9), np.ones(5), _boxes(c), bottom_level=None, **args)
    assert none.level_source == "position"


def test_estimated_levels_stop_at_a_gap():
    c = np.delete(_lordotic([0, 0, 0, 0, 6, 20]), 1, axis=0)  # a body and its disc missing under the top one
    pred = build_prediction(c, np.full((5, 4), 0.9), np.ones(5), _boxes(c), image="x", height=800, width=600,
                            facing="right", uncertainty=SHARP)
    assert [v.level for v in pred.vertebrae] == [None, "L3", "L4", "L5", "S1"]
    assert "suspected_missed_vertebra" in pred.flags
    assert any("levels named up to L3" in n for n in pred.notes)


def _flag_pixels(image, rows=slice(None)):
    """(y, x) of the pixels drawn exactly in the flag colour, in ``rows``."""
    from vertkp.inference.overlay import FLAG_COLOR

    ys, xs = np.nonzero(np.all(image[rows] == FLAG_COLOR, axis=-1))
    return np.stack([ys + (rows.start or 0), xs], axis=1)


def _near(pixels, point, r=16):
    return np.any(np.all(np.abs(pixels - np.asarray(point)[::-1]) <= r, axis=1)) if len(pixels) else False


@pytest.mark.parametrize("tta", [False, True])
def test_overlay_draws_the_flag_colour_only_where_a_flag_fires(tta):
    c = np.array([quad(300, 260 + 90 * k, 100, 60) for k in range(4)])
    grey = np.full((700, 640), 40, np.uint8)
    spread = np.zeros((4, 4)) if tta else None
    clean = build_prediction(c, np.full((4, 4), 0.9), np.full(4, 0.95), _boxes(c), image="x", height=700, width=640,
                             facing="right", bottom_level="L5", corner_spread=spread, uncertainty=SHARP,
                             thresholds=FlagThresholds(corner=0.5, vertebra=0.5, spread_pct=2.0))
    assert clean.flags == [] and [v.name for v in clean.vertebrae] == ["L2", "L3", "L4", "L5"]
    assert len(_flag_pixels(draw_overlay(grey, clean))) == 0  # not even in the header: nothing flagged
    # one corner flagged: the top vertebra's TL, used by no pair (low confidence, or unstable with TTA)
    cs = np.full((4, 4), 0.9)
    if tta:
        spread[0, 0] = 10.0  # 10% of the 100 px width
    else:
        cs[0, 0] = 0.2
    one = build_prediction(c, cs, np.full(4, 0.95), _boxes(c), image="x", height=700, width=640, facing="right",
                           bottom_level="L5", corner_spread=spread, uncertainty=SHARP,
                           thresholds=FlagThresholds(corner=0.5, vertebra=0.5, spread_pct=2.0))
    assert one.flags == ["unstable_corner" if tta else "low_confidence_corner"] and not any(p.flags for p in one.pairs)
    header_end = 200  # the header's lines (facing, counts, flags) end above the spine (its top at y = 230)
    pixels = _flag_pixels(draw_overlay(grey, one), slice(header_end, None))
    assert _near(pixels, one.vertebrae[0].corners[0])
    for k, v in enumerate(one.vertebrae):
        for j, corner in enumerate(v.corners):
            if (k, j) != (0, 0):
                assert not _near(pixels, corner), (v.name, j)
    # every flag-colour pixel below the header is the ring around that corner
    assert np.all(np.abs(pixels - one.vertebrae[0].corners[0][::-1]) <= 16)
