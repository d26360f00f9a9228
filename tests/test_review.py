"""vertkp.review by hand: the operating points, the corner error model, the calibration
statistics of the review flags (AUROC, flag recall / precision, the threshold for a recall,
reliability bins and ECE, the logistic fit, the report and its plot) and the fits."""
import json
import math

import numpy as np
import pytest

from tests.helpers.raw import quad
from vertkp.evaluation import ImagePredictions, ImageTruth, evaluate_dataset
from vertkp.evaluation.plots import reliability_plot
from vertkp.evaluation.report import write_evaluation
from vertkp.modeling.fusion import TTA_MODES
from vertkp.review import (
    LARGE_ERROR_PCT_WIDTH,
    OPERATING_POINTS,
    SPREAD_CAP_PCT,
    CornerUncertainty,
    FlagThresholds,
    auroc,
    calibration_report,
    choose_thresholds,
    corner_sd_px,
    corner_table,
    error_risk,
    expected_calibration_error,
    fit_corner_uncertainty,
    fit_logistic,
    fit_operating_point,
    fitted_point,
    flag_masks,
    flag_stats,
    follow_orientation,
    logistic_risk,
    reliability_bins,
    risk_features,
    spread_pct_width,
    threshold_for_recall,
)


def test_the_operating_points_per_tta_mode():
    assert set(OPERATING_POINTS) == set(TTA_MODES)
    none, flip = OPERATING_POINTS["none"], OPERATING_POINTS["flip"]
    assert none.thresholds == FlagThresholds(corner=0.775, vertebra=0.95, facing=0.8, spread_pct=2.5, grade_doubt=0.122)
    flip_thresholds = FlagThresholds(corner=0.475, vertebra=0.85, facing=0.8, spread_pct=2.5, grade_doubt=0.122)
    assert flip.thresholds == flip_thresholds == FlagThresholds()
    assert none.uncertainty == CornerUncertainty(floor_pct_width=2.45, spread_factor=0.0, z=1.96)
    assert flip.uncertainty == CornerUncertainty(floor_pct_width=0.75, spread_factor=1.0, z=1.96) == CornerUncertainty()
    assert none.risk_model == ((6.233, 2.902), -4.368) and flip.risk_model == ((7.113, 1.854, 0.196), -5.669)
    assert OPERATING_POINTS["flip,scale"] == flip


def test_corner_sds_and_the_values_follow_renamed_corners():
    model = CornerUncertainty(floor_pct_width=2.0, spread_factor=1.5)
    sd = corner_sd_px([50.0], [[0.0, np.nan, 2.0, 4.0]], model)
    assert sd[0].tolist() == pytest.approx([1.0, 1.0, np.hypot(1.0, 3.0), np.hypot(1.0, 6.0)])
    assert spread_pct_width([[1.0, np.nan, 0, 0]], [50.0])[0, 0] == pytest.approx(2.0)
    corners = np.array([[0, 0], [10, 0], [0, 5], [10, 5]], float)
    oriented = corners[[3, 2, 1, 0]]  # turned by 180 degrees: every corner renamed
    assert follow_orientation(np.array([1.0, 2.0, 3.0, 4.0]), corners, oriented).tolist() == [4.0, 3.0, 2.0, 1.0]


def _pairwise_auroc(risk, positive):
    pos, neg = risk[positive], risk[~positive]
    diff = pos[:, None] - neg[None, :]
    return float(np.mean((diff > 0) + 0.5 * (diff == 0)))


def test_auroc_perfect_reversed_ties_and_a_hand_case():
    y = np.array([0, 0, 1, 1], dtype=bool)
    assert auroc([0.1, 0.2, 0.3, 0.4], y) == 1.0
    assert auroc([0.4, 0.3, 0.2, 0.1], y) == 0.0
    assert auroc([0.5, 0.5, 0.5, 0.5], y) == 0.5
    assert auroc([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1]) == 0.75
    # one tie between a positive and a negative: (1 + 1 + 0.5 + 1) / 4
    assert auroc([0.1, 0.4, 0.4, 0.8], y) == 0.875
    assert auroc([-np.inf, 0.0, 1.0, np.inf], y) == 1.0


def test_auroc_matches_a_pairwise_count_on_random_data_with_ties():
    rng = np.random.default_rng(0)
    for _ in range(5):
        risk = rng.integers(0, 6, size=200).astype(float)  # many ties
        y = rng.random(200) < 0.3
        assert auroc(risk, y) == pytest.approx(_pairwise_auroc(risk, y), abs=1e-12)


def test_auroc_is_nan_for_one_class_and_refuses_nan_risks():
    assert math.isnan(auroc([0.1, 0.2], [True, True]))
    assert math.isnan(auroc([0.1, 0.2], [0, 0]))
    assert math.isnan(auroc([], []))
    with pytest.raises(ValueError, match="NaN"):
        auroc([0.1, np.nan], [0, 1])
    with pytest.raises(ValueError, match="expected 2"):
        auroc([0.1, 0.2], [0, 1, 1])
    with pytest.raises(ValueError, match="boolean"):
        auroc([0.1, 0.2], [0, 2])


def test_flag_stats_by_hand_and_undefined_rates():
    s = flag_stats([1, 1, 0, 0, 1, 0], [1, 0, 1, 0, 1, 0])
    assert s == {"recall": pytest.approx(200 / 3), "flag_rate": 50.0, "precision": pytest.approx(200 / 3),
                 "n": 6, "n_positive": 3, "n_flagged": 3}
    none = flag_stats([False, False], [True, False])
    assert none["recall"] == 0.0 and none["flag_rate"] == 0.0 and math.isnan(none["precision"])
    assert math.isnan(flag_stats([True, False], [False, False])["recall"])


def test_threshold_for_recall_is_the_largest_that_reaches_it():
    risk = np.array([0.9, 0.8, 0.8, 0.7, 0.3, 0.2, 0.6, 0.1])
    y = np.array([1, 0, 1, 1, 0, 0, 1, 0], dtype=bool)  # positives' risks 0.9, 0.8, 0.7, 0.6
    assert threshold_for_recall(risk, y, 50) == 0.8
    assert threshold_for_recall(risk, y, 51) == 0.7
    assert threshold_for_recall(risk, y, 100) == 0.6
    assert threshold_for_recall(risk, y, 25) == 0.9
    assert math.isnan(threshold_for_recall(risk, np.zeros(8, bool), 90))
    with pytest.raises(ValueError, match="percentage"):
        threshold_for_recall(risk, y, 0)

    rng = np.random.default_rng(1)
    risk, y = rng.random(300).round(2), rng.random(300) < 0.2
    for want in (10, 70, 90, 95, 100):
        t = threshold_for_recall(risk, y, want)
        assert flag_stats(risk >= t, y)["recall"] >= want
        assert flag_stats(risk >= np.nextafter(t, np.inf), y)["recall"] < want


def test_reliability_bins_and_ece_by_hand():
    p = [0.1, 0.2, 0.3, 0.25, 0.9, 1.0, 0.8]
    y = [0, 1, 0, 1, 1, 1, 0]
    b = reliability_bins(p, y, n_bins=4)
    np.testing.assert_allclose(b["edges"], [0.0, 0.25, 0.5, 0.75, 1.0])
    np.testing.assert_allclose(b["mean_predicted"], [0.15, 0.275, np.nan, 0.9])
    np.testing.assert_allclose(b["observed_rate"], [0.5, 0.5, np.nan, 2 / 3])
    assert b["count"].tolist() == [2, 2, 0, 3]
    # (2 * 0.35 + 2 * 0.225 + 3 * (0.9 - 2/3)) / 7
    assert expected_calibration_error(p, y, n_bins=4) == pytest.approx(1.85 / 7)
    assert expected_calibration_error([0.0, 1.0], [0, 1]) == 0.0
    assert math.isnan(expected_calibration_error([], []))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        reliability_bins([0.5, 1.2], [0, 1])


def test_fit_logistic_recovers_known_weights_and_is_deterministic():
    rng = np.random.default_rng(7)
    x = rng.normal(size=(4000, 2)) * [1.0, 3.0] + [0.0, 5.0]
    true_w, true_b = np.array([2.0, -0.5]), 1.0
    y = rng.random(4000) < logistic_risk(x, true_w, true_b)
    w, b = fit_logistic(x, y)
    np.testing.assert_allclose(w, true_w, rtol=0.15)
    assert b == pytest.approx(true_b, abs=0.5)
    w2, b2 = fit_logistic(x, y)
    assert np.array_equal(w, w2) and b == b2
    p = logistic_risk(x, w, b)
    assert p.shape == (4000,) and auroc(p, y) > 0.8


def test_fit_logistic_stays_finite_on_separable_data():
    x = np.array([0.0, 1.0, 2.0, 3.0, 4.0, 5.0])
    y = x > 2.5
    w, b = fit_logistic(x, y)
    assert np.all(np.isfinite(w)) and math.isfinite(b) and w[0] > 0
    assert auroc(logistic_risk(x, w, b), y) == 1.0
    with pytest.raises(ValueError, match="both"):
        fit_logistic(x, np.ones(6, bool))


def _hand_report(**kw):
    errors = [1.0, 6.0, LARGE_ERROR_PCT_WIDTH, 10.0, 2.0]  # 5.0 is not above 5.0: large = 6, 10
    confidence = np.array([0.9, 0.2, 0.1, 0.3, 0.95])
    tta = np.array([0.5, 3.0, 1.0, 4.0, 0.2])
    return calibration_report(errors, {"tta": tta, "confidence": 1.0 - confidence},
                              {"tta>2": tta > 2, "conf<0.5": confidence < 0.5}, **kw)


def test_calibration_report_structure_and_values():
    r = _hand_report()
    assert list(r) == ["large_error_pct_width", "n_corners", "n_large", "large_share_pct", "auroc", "flags"]
    assert (r["large_error_pct_width"], r["n_corners"], r["n_large"], r["large_share_pct"]) == (5.0, 5, 2, 40.0)
    assert r["auroc"] == {"tta": 1.0, "confidence": pytest.approx(4 / 6)}
    assert r["flags"]["tta>2"] == {"recall": 100.0, "flag_rate": 40.0, "precision": 100.0,
                                   "n": 5, "n_positive": 2, "n_flagged": 2}
    assert r["flags"]["conf<0.5"]["precision"] == pytest.approx(200 / 3)

    r = _hand_report(probability=[0.1, 0.9, 0.2, 0.6, 0.0], n_bins=2)
    assert r["reliability"] == {"edges": [0.0, 0.5, 1.0], "mean_predicted": [pytest.approx(0.1), 0.75],
                                "observed_rate": [0.0, 1.0], "count": [3, 2]}
    assert r["ece"] == pytest.approx(0.16)
    assert json.loads(json.dumps(r))["reliability"]["count"] == [3, 2]
    with pytest.raises(ValueError, match="signal 'x' has 1 entries, expected 5"):
        calibration_report(np.zeros(5), {"x": [1.0]}, {})
    with pytest.raises(ValueError, match="NaN"):
        calibration_report([1.0, np.nan], {}, {})


def test_reliability_plot_writes_a_png(tmp_path):
    r = _hand_report(probability=[0.1, 0.9, 0.2, 0.6, 0.0], n_bins=5)
    out = reliability_plot(r, tmp_path / "reliability.png")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out.stat().st_size > 1000
    b = reliability_bins([], [], n_bins=3)
    assert reliability_plot(b, tmp_path / "empty.png").stat().st_size > 1000
    with pytest.raises(ValueError, match="probability"):
        reliability_plot(_hand_report(), tmp_path / "x.png")


# ---- from evaluated images: the corner table, the flags, the fits -----------------------------------
def _evaluated(signals=True):
    """One image of three 100 px wide vertebrae; the prediction moves the middle one's TL by 8 px
    (8% of the width: a large error) and every other corner by 1 px."""
    gt = np.array([quad(300, 100 + 90 * k, 100, 60) for k in range(3)])
    pred = gt + [1.0, 0.0]
    pred[1, 0] = gt[1, 0] + [8.0, 0.0]
    truth = ImageTruth(1, "a.png", gt, np.ones((3, 4), bool), [None] * 3)
    conf = np.full((3, 4), 0.9)
    conf[1, 0] = 0.3
    spread = np.full((3, 4), 0.5)
    spread[1, 0] = 4.0
    spread[2] = np.nan
    p = ImagePredictions(pred, np.array([0.99, 0.95, 0.7]), conf if signals else None, spread if signals else None)
    return evaluate_dataset([truth], {1: p})


def test_the_corner_table_of_an_evaluation():
    table = corner_table(_evaluated().images)
    assert len(table["error_pct_width"]) == 12
    assert table["error_pct_width"][4] == pytest.approx(8.0) and table["error_pct_width"][0] == pytest.approx(1.0)
    assert table["confidence"][4] == 0.3 and table["score"].tolist() == [0.99] * 4 + [0.95] * 4 + [0.7] * 4
    # over the predicted vertebra's width: its top endplate 93 px, its bottom 100 px
    assert table["spread_pct"][4] == pytest.approx(400 / 96.5) and np.isnan(table["spread_pct"][8:]).all()
    assert corner_table(_evaluated(signals=False).images) is None


def test_metrics_json_reports_the_calibration_at_the_default_thresholds():
    m = _evaluated().metrics
    cal = m["calibration"]
    assert cal["n_corners"] == 12 and cal["n_large"] == 1 and cal["tta"] is True
    assert cal["thresholds"] == {k: getattr(FlagThresholds(), k) for k in ("corner", "vertebra", "spread_pct")}
    assert set(cal["flags"]) == {"low_confidence_corner", "low_confidence_vertebra", "unstable_corner", "any"}
    assert set(cal["auroc"]) == {"heatmap_confidence", "detection_score", "tta_spread", "combined"}
    assert cal["auroc"]["heatmap_confidence"] == 1.0  # the one low confidence is the one large error
    assert m["flag_recall"] == cal["flags"]["any"]["recall"] and m["risk_auroc"] == cal["auroc"]["combined"]
    plain = _evaluated(signals=False).metrics
    assert "calibration" not in plain and plain["flag_rate"] is None


def test_flag_masks_by_hand():
    table = {"confidence": np.array([0.2, 0.9, 0.9, 0.9]), "score": np.array([0.99, 0.5, 0.99, 0.99]),
             "spread_pct": np.array([0.1, 0.1, 3.0, np.nan])}
    f = flag_masks(table, FlagThresholds(corner=0.5, vertebra=0.8, spread_pct=2.0), tta=True)
    assert f["low_confidence_corner"].tolist() == [True, False, False, False]
    assert f["low_confidence_vertebra"].tolist() == [False, True, False, False]
    assert f["unstable_corner"].tolist() == [False, False, True, True]
    assert f["any"].tolist() == [True, True, True, True]
    assert set(flag_masks(table, FlagThresholds(), tta=False)) == {"low_confidence_corner", "low_confidence_vertebra",
                                                                    "any"}


def test_choose_thresholds_flags_the_fewest_corners_that_reach_the_recall():
    # two large errors: one with low confidence, one with a low score; two good corners in between
    table = {"error_pct_width": np.array([9.0, 1.0, 9.0, 1.0]), "confidence": np.array([0.3, 0.6, 0.9, 0.9]),
             "score": np.array([0.99, 0.99, 0.75, 0.85]), "spread_pct": np.full(4, np.nan)}
    best = choose_thresholds(table, 100.0, tta=False, corner_grid=[0.4, 0.7], vertebra_grid=[0.8, 0.9])
    assert best == {"corner": 0.4, "vertebra": 0.8, "spread_pct": None, "recall": 100.0, "flag_rate": 50.0}
    half = choose_thresholds(table, 50.0, tta=False, corner_grid=[0.4, 0.7], vertebra_grid=[0.5])
    assert half["corner"] == 0.4 and half["flag_rate"] == 25.0
    capped = choose_thresholds(table, None, tta=False, corner_grid=[0.4, 0.7], vertebra_grid=[0.5, 0.8],
                               max_flag_rate=25.0)
    assert capped["recall"] == 50.0 and capped["flag_rate"] == 25.0
    assert choose_thresholds(table, 100.0, tta=False, corner_grid=[0.1], vertebra_grid=[0.5])["corner"] is None


def test_fit_corner_uncertainty_recovers_the_error_model_it_was_drawn_from():
    rng = np.random.default_rng(0)
    n = 5000
    width = rng.uniform(60, 120, n)
    spread = rng.exponential(2.0, n)
    sd = np.sqrt((0.03 * width) ** 2 + (1.5 * spread) ** 2)
    errors = np.linalg.norm(rng.normal(0, 1, (n, 2)) * sd[:, None], axis=1)
    floor, factor = fit_corner_uncertainty(errors, width, spread, trim_pct=0.0)
    assert floor == pytest.approx(3.0, abs=0.15) and factor == pytest.approx(1.5, abs=0.15)
    with pytest.raises(ValueError, match="finite"):
        fit_corner_uncertainty([np.inf], [50.0], [0.0])


def test_the_error_risk_is_a_probability_that_grows_with_each_signal():
    lo = error_risk([0.9], [0.99], [0.5])
    assert 0 < lo[0] < 1
    assert error_risk([0.3], [0.99], [0.5])[0] > lo[0] and error_risk([0.9], [0.99], [np.nan])[0] > lo[0]
    assert risk_features([0.9, 0.8], 0.5).shape == (2, 2) and risk_features([0.9], 0.5, [20.0])[0, 2] == SPREAD_CAP_PCT


def test_the_evaluation_draws_the_reliability_of_the_risk(tmp_path):
    files = write_evaluation(_evaluated(), tmp_path)
    assert files["reliability"] == tmp_path / "reliability.png" and files["reliability"].stat().st_size > 0
    assert "reliability" not in write_evaluation(_evaluated(signals=False), tmp_path / "plain")


def test_fit_operating_point_and_the_point_it_makes():
    rng = np.random.default_rng(3)
    n = 400
    confidence = rng.uniform(0.2, 1.0, n)
    table = {"confidence": confidence, "score": rng.uniform(0.5, 1.0, n), "spread_pct": rng.uniform(0.0, 4.0, n),
             "width_px": np.full(n, 80.0), "error_px": rng.exponential(2.0, n) + 6.0 * (confidence < 0.4)}
    table["error_pct_width"] = 100.0 * table["error_px"] / table["width_px"]
    fit = fit_operating_point(table, tta=True)
    assert set(fit) == {"risk_model", "uncertainty", "thresholds", "thresholds_at_target_flag_rate"}
    assert len(fit["risk_model"]["weights"]) == 3 and fit["thresholds"]["recall"] >= 90.0
    point = fitted_point(fit)
    assert point.thresholds.corner == fit["thresholds"]["corner"] and point.thresholds.facing == 0.8
    assert point.uncertainty.floor_pct_width == fit["uncertainty"]["floor_pct_width"]
    assert point.risk_model == (tuple(fit["risk_model"]["weights"]), fit["risk_model"]["bias"])
    single = fit_operating_point(table, tta=False)
    assert single["uncertainty"]["spread_factor"] == 0.0 and single["thresholds"]["spread_pct"] is None
    assert fitted_point(single).thresholds.spread_pct == FlagThresholds().spread_pct
    unreached = dict(fit, thresholds={"corner": None, "vertebra": None, "spread_pct": None})
    assert fitted_point(unreached) is None


def test_the_grade_doubt_fit_flags_the_fewest_pairs_among_floors_whose_intervals_cover():
    from vertkp.review.fitting import choose_grade_doubt
    wrong = np.array([True, True, False, False, False, False, False, False, False, False])
    tight = {"grade_doubt": np.array([0.5, 0.3, 0.4, 0, 0, 0, 0, 0, 0, 0.1]), "wrong_grade": wrong,
             "covered": np.array([True] * 8 + [False] * 2)}       # 80% covered: too few
    wide = {"grade_doubt": np.array([0.6, 0.5, 0.55, 0.2, 0, 0, 0, 0, 0, 0]), "wrong_grade": wrong,
            "covered": np.ones(10, bool)}
    wider = {"grade_doubt": np.array([0.7, 0.6, 0.65, 0.62, 0.1, 0, 0, 0, 0, 0]), "wrong_grade": wrong,
             "covered": np.ones(10, bool)}
    fit = choose_grade_doubt({0.5: tight, 1.0: wide, 2.0: wider}, recall_pct=100.0, min_coverage_pct=90.0)
    # tight flags 2 of 10 (>= 0.3) but covers 80%; wide flags 3 (>= 0.5); wider 4 (>= 0.6)
    assert fit == {"floor_pct_width": 1.0, "grade_doubt": 0.5, "flagged_pct": 30.0, "recall_pct": 100.0,
                   "coverage_pct": 100.0, "n_pairs": 10, "n_wrong_grade": 2}
    assert choose_grade_doubt({0.5: tight}, 100.0, 90.0)["floor_pct_width"] == 0.5  # none covers: the best one
    assert choose_grade_doubt({1.0: {**wide, "wrong_grade": np.zeros(10, bool)}}) == {}
