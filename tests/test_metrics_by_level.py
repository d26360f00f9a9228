"""The tails of the errors, per-level scores and the predicted levels' scores
(vertkp.evaluation: slip_off*, corners_off10pct_width, n_missed_S1, by_level, level_*), by hand."""
from dataclasses import replace

import numpy as np
import pytest

from tests.helpers.raw import column, quad
from vertkp.evaluation import (
    EvaluationSettings,
    ImagePredictions,
    ImageTruth,
    corners_off_width,
    evaluate_dataset,
    format_summary,
    level_scores,
    slip_tails,
)
from vertkp.evaluation.scoring import level_outcomes

W, H, PITCH = 40.0, 25.0, 35.0  # 10% of the width: 4 px
SETTINGS = EvaluationSettings(facing="left", bootstrap=0)


def truth(image_id, corners, levels):
    c = np.asarray(corners, dtype=float)
    return ImageTruth(image_id, f"img{image_id}.jpg", c, np.isfinite(c[..., 0]), list(levels), list(range(len(c))),
                      "lateral", None, "left")


def test_slip_tails_count_errors_beyond_each_threshold():
    # |pred - gt|: 25, 7.5, 15, 0, 10 (exactly 10 is not beyond it)
    t = slip_tails([37.5, 0.0, 0.0, 5.0, 20.0], [62.5, 7.5, -15.0, 5.0, 30.0])
    assert t == {"slip_off10_pct": 40.0, "n_slip_off10": 2, "slip_off20_pct": 20.0, "n_slip_off20": 1}
    assert slip_tails([], []) == {"slip_off10_pct": None, "n_slip_off10": 0, "slip_off20_pct": None,
                                  "n_slip_off20": 0}
    assert slip_tails([0.0], [3.0], thresholds=(2.5,)) == {"slip_off2.5_pct": 100.0, "n_slip_off2.5": 1}


def test_corners_off_width_leaves_out_unlabelled_missed_and_widthless_vertebrae():
    errors = np.array([[5.0, 0.0, 10.0, 3.9],       # width 40: 4 px; two of four off
                       [np.nan, 2.1, 0.0, 0.0],     # width 20: 2 px; one of three labelled off
                       [np.inf, np.inf, np.inf, np.inf],  # missed
                       [9.0, 9.0, 9.0, 9.0]])       # no width
    widths = np.array([40.0, 20.0, 40.0, np.nan])
    assert corners_off_width(errors, widths) == pytest.approx(100.0 * 3 / 7)
    assert corners_off_width(errors, widths, fraction=0.5) == 0.0
    assert corners_off_width(errors[2:], widths[2:]) is None


def test_level_outcomes_and_scores():
    # GT L4, L5, S1, an unnamed one, a missed one; predictions 0..3
    out = level_outcomes(["L4", "l5 ", "S1", None, "L3"], ["S1", "L4", None, "L2"], np.array([1, 0, 2, 3, -1]))
    assert out == ["right", "wrong", "unnamed", None, None]
    assert level_scores(out) == {"level_acc": pytest.approx(100 / 3), "level_wrong_pct": pytest.approx(100 / 3),
                                 "level_named_pct": pytest.approx(200 / 3), "n_level_scored": 3}
    assert level_scores([None]) == {"level_acc": None, "level_wrong_pct": None, "level_named_pct": None,
                                    "n_level_scored": 0}


def test_levels_must_match_the_predicted_vertebrae():
    with pytest.raises(ValueError, match="levels has 1 entries for 2 predicted vertebrae"):
        ImagePredictions(column(2), np.ones(2), levels=["L5"])


def three_images():
    """A: L5 15 px forward over S1 (37.5 %, II), predicted 10 px further (62.5 %, III: 25 pp off);
    B: L3, L4, L5 aligned, L3 predicted 3 px forward (L3/L4 7.5 pp off), L5 6 px back (L4/L5 15 pp off);
    C: L4, L5, S1 aligned, predicted exactly, S1 missed (L5/S1 unscored).

    Matched labelled corners: A 8 (L5's four 10 px off), B 12 (L5's four 6 px off; L3's 3 px are not),
    C 8: 8 of 28 beyond 4 px.
    """
    a = column(2, shifts=[-15.0, 0.0])
    pa = column(2, shifts=[-25.0, 0.0])
    b = column(3)
    pb = column(3, shifts=[-3.0, 0.0, 6.0])
    c = column(3)
    low = quad(300.0, 300.0, W, H)  # under the score threshold: its level must not shift the others'
    truths = [truth(1, a, ["L5", "S1"]), truth(2, b, ["L3", "L4", "L5"]), truth(3, c, ["L4", "L5", "S1"])]
    preds = {1: ImagePredictions(np.concatenate([low[None], pa]), np.array([0.3, 0.9, 0.9]),
                                 levels=["T12", "L5", "S1"]),
             2: ImagePredictions(pb, np.ones(3), levels=["L3", None, "L4"]),
             3: ImagePredictions(c[:2], np.ones(2))}
    return truths, preds


def test_tails_and_missed_s1_by_hand():
    m = evaluate_dataset(*three_images(), SETTINGS).metrics
    assert (m["n_pairs"], m["n_unscored_pairs"]) == (4, 1)  # slip errors 25, 7.5, 15, 0
    assert m["slip_MAE_pp"] == pytest.approx(47.5 / 4)
    assert (m["n_slip_off10"], m["slip_off10_pct"]) == (2, 50.0)
    assert (m["n_slip_off20"], m["slip_off20_pct"]) == (1, 25.0)
    assert m["corners_off10pct_width"] == pytest.approx(100.0 * 8 / 28)
    assert (m["n_gt_S1"], m["n_missed_S1"]) == (2, 1)


def test_by_level_by_hand():
    by = evaluate_dataset(*three_images(), SETTINGS).metrics["by_level"]
    assert list(by["pairs"]) == ["L3/L4", "L4/L5", "L5/S1"]
    assert by["pairs"]["L4/L5"] == {"n_pairs": 2, "slip_MAE_pp": 7.5, "grade_acc": 50.0,  # B: none -> I
                                    "slip_off10_pct": 50.0, "n_slip_off10": 1, "slip_off20_pct": 0.0,
                                    "n_slip_off20": 0, "n_unscored": 0}
    assert by["pairs"]["L5/S1"] == {"n_pairs": 1, "slip_MAE_pp": 25.0, "grade_acc": 0.0,  # II -> III
                                    "slip_off10_pct": 100.0, "n_slip_off10": 1, "slip_off20_pct": 100.0,
                                    "n_slip_off20": 1, "n_unscored": 1}
    assert by["pairs"]["L3/L4"]["slip_MAE_pp"] == 7.5 and by["pairs"]["L3/L4"]["n_slip_off10"] == 0
    assert list(by["vertebrae"]) == ["L3", "L4", "L5", "S1"]
    assert by["vertebrae"]["L5"] == {"n": 3, "missed": 0, "MRE_px": pytest.approx((40 + 24 + 0) / 12),
                                     "corners_off10pct_width": pytest.approx(100 * 8 / 12)}
    assert by["vertebrae"]["S1"] == {"n": 2, "missed": 1, "MRE_px": 0.0, "corners_off10pct_width": 0.0}
    assert by["vertebrae"]["L3"] == {"n": 1, "missed": 0, "MRE_px": 3.0, "corners_off10pct_width": 0.0}


def test_predicted_levels_by_hand():
    # A: L5, S1 right (the low-score prediction's T12 left out); B: L3 right, L4 unnamed, L5 named L4;
    # C names no level: its two matched vertebrae count as unnamed. 3 right, 1 wrong, 3 unnamed of 7.
    truths, preds = three_images()
    m = evaluate_dataset(truths, preds, SETTINGS).metrics
    assert m["n_level_scored"] == 7
    assert (m["level_acc"], m["level_wrong_pct"], m["level_named_pct"]) == pytest.approx(
        (100 * 3 / 7, 100 * 1 / 7, 100 * 4 / 7))
    # predictions that name no level are named as vertkp predict would: these upright chains with flat
    # discs show no S1 at the bottom, so every matched vertebra stays unnamed; without the naming, no score
    plain = {k: ImagePredictions(p.corners, p.scores) for k, p in preds.items()}
    m = evaluate_dataset(truths, plain, SETTINGS).metrics
    assert [m[k] for k in ("level_acc", "level_wrong_pct", "level_named_pct", "n_level_scored")] == [0, 0, 0, 7]
    m = evaluate_dataset(truths, plain, replace(SETTINGS, name_levels=False)).metrics
    assert [m[k] for k in ("level_acc", "level_wrong_pct", "level_named_pct", "n_level_scored")] == [None] * 4


def test_the_report_shows_the_tails_and_a_row_per_level():
    truths, preds = three_images()
    text = format_summary(evaluate_dataset(truths, preds, SETTINGS).metrics)
    assert "corners off > 10% of width 28.6%; missed S1 1 of 2; slip off > 10 pp 2 (50.0%), > 20 pp 1 (25.0%) " \
           "of 4 pairs" in text
    assert "named right 42.9%, wrong 14.3%, named at all 57.1% of 7 matched vertebrae with a level" in text
    rows = {line.split()[0]: line.split()[1:] for line in text.splitlines() if line.startswith(" " * 12)}
    assert rows["L5/S1"] == ["1", "25.00", "0.0%", "1", "1", "1"]
    assert rows["S1"] == ["2", "1", "0.00", "0.0%"]


def test_the_evaluator_repairs_a_models_chain_as_predict_does():
    # 4 vertebrae found right, and a weak body under a gap (a femoral head) taken for a fifth
    c = column(4)
    head = c[-1] + np.array([0.0, 4 * PITCH])
    corners = np.concatenate([c, head[None]])
    conf = np.full((5, 4), 0.9)
    conf[4] = 0.3
    t = truth(1, c, ["L2", "L3", "L4", "L5"])
    raw = ImagePredictions(corners, np.full(5, 0.9), corner_confidence=conf)
    repaired = evaluate_dataset([t], {1: raw}, SETTINGS).metrics
    assert (repaired["det_TP"], repaired["det_FP"]) == (4, 0)
    kept = evaluate_dataset([t], {1: raw}, replace(SETTINGS, repair_chain=False)).metrics
    assert (kept["det_TP"], kept["det_FP"]) == (4, 1)
    # a results file (no corner confidence) is taken as it is
    plain = evaluate_dataset([t], {1: ImagePredictions(corners, np.full(5, 0.9))}, SETTINGS).metrics
    assert plain["det_FP"] == 1
