"""Agreement statistics (Bland-Altman, ICC(A,1), Pearson r), the bootstrap CIs, the per-level
and per-grade slip tables, vertkp evaluate --table and the metrics.json keys, by hand and
against published worked examples."""
import json
import math

import numpy as np
import pytest
from scipy import stats

from tests.helpers.raw import column
from vertkp.evaluation import (
    METRICS,
    EvaluationSettings,
    ImagePredictions,
    ImageTruth,
    bland_altman,
    evaluate_dataset,
    flat_metrics,
    format_results_table,
    icc_a1,
    load_ground_truth,
    measure_agreement,
    pearson_r,
    slip_groups,
)
from vertkp.evaluation.bootstrap import (
    CI_METRICS,
    bootstrap_ci95,
    image_sums,
    metrics_from_sums,
    quadratic_weighted_kappa_batch,
    resample_counts,
    resampling_units,
)
from vertkp.evaluation.cli import main as evaluate_main
from vertkp.evaluation.metrics import quadratic_weighted_kappa

LEVELS = ["L1", "L2", "L3", "L4", "L5", "S1"]
SLIP_KEYS = {"n", "bias_pp", "sd_pp", "loa_low_pp", "loa_high_pp", "icc_a1", "icc_a1_ci95", "pearson_r"}


def truth(corners, image_id=1, levels=None, patient_id=None, spacing=None):
    c = np.array(corners, dtype=float)
    return ImageTruth(image_id, f"img{image_id}.jpg", c, np.isfinite(c[..., 0]), list(levels or [None] * len(c)),
                      list(range(len(c))), "lateral", spacing, "left", patient_id=patient_id)


# --- Bland-Altman, Pearson ------------------------------------------------------------------------------


def test_bland_altman_by_hand():
    # d = pred - truth = [2, -1, 3, 4]: bias 2; deviations [0, -3, 1, 2], sum of squares 14;
    # sample SD (ddof=1) sqrt(14 / 3), not the population sqrt(14 / 4)
    ba = bland_altman([10.0, 20.0, 30.0, 40.0], [12.0, 19.0, 33.0, 44.0])
    sd = math.sqrt(14.0 / 3.0)
    assert ba == pytest.approx({"n": 4, "bias": 2.0, "sd": sd, "loa_low": 2.0 - 1.96 * sd,
                                "loa_high": 2.0 + 1.96 * sd}, rel=1e-12)
    assert bland_altman([1.0], [4.0]) == {"n": 1, "bias": 3.0, "sd": None, "loa_low": None, "loa_high": None}
    assert bland_altman([], []) == {"n": 0, "bias": None, "sd": None, "loa_low": None, "loa_high": None}
    # a constant offset: no spread, limits on the bias
    assert bland_altman([0.0, 5.0, 9.0], [1.0, 6.0, 10.0]) == {"n": 3, "bias": 1.0, "sd": 0.0, "loa_low": 1.0,
                                                              "loa_high": 1.0}
    with pytest.raises(ValueError, match="different lengths"):
        bland_altman([1.0, 2.0], [1.0])


def test_pearson_r_by_hand():
    # dx = [-1.5, -0.5, 0.5, 1.5], dy = [-3, -1, 0, 4]: sum dx dy = 11, sum dx^2 = 5, sum dy^2 = 26
    assert pearson_r([1.0, 2.0, 3.0, 4.0], [2.0, 4.0, 5.0, 9.0]) == pytest.approx(11.0 / math.sqrt(130.0), rel=1e-12)
    assert pearson_r([1.0, 2.0, 3.0], [-1.0, -2.0, -3.0]) == pytest.approx(-1.0)
    assert pearson_r([1.0, 2.0, 3.0], [5.0, 5.0, 5.0]) is None  # no variance
    assert pearson_r([1.0], [2.0]) is None


# --- ICC(A,1) -------------------------------------------------------------------------------------------------

SHROUT_FLEISS = [[9, 2, 5, 8], [6, 1, 3, 2], [8, 4, 6, 8], [7, 1, 2, 6], [10, 5, 6, 9], [6, 2, 4, 7]]
# irr's "anxiety" data (Gamer et al., R package irr): 20 subjects x 3 raters
ANXIETY = [[3, 3, 2], [3, 6, 1], [3, 4, 4], [4, 6, 4], [5, 2, 3], [5, 4, 2], [2, 2, 1], [3, 4, 6], [5, 3, 1],
           [2, 3, 1], [2, 2, 1], [6, 3, 2], [1, 3, 3], [5, 3, 3], [2, 2, 1], [2, 2, 1], [1, 1, 3], [2, 3, 3],
           [4, 3, 2], [3, 4, 2]]


def test_icc_a1_of_shrout_and_fleiss_worked_example():
    # Shrout & Fleiss 1979, Table 2 (6 targets x 4 judges): BMS 11.24, JMS 32.49, EMS 1.02, ICC(2,1) = .29;
    # exactly MSR 1349/120, MSC 2339/72, MSE 367/360 and ICC = 184/635. The 95% CI as published by
    # psych::ICC on the same table: 0.019 to 0.76.
    r = icc_a1(SHROUT_FLEISS)
    assert (r["ms_rows"], r["ms_columns"], r["ms_error"]) == pytest.approx((1349 / 120, 2339 / 72, 367 / 360),
                                                                           rel=1e-12)
    assert r["icc_a1"] == pytest.approx(184 / 635, rel=1e-12)
    assert round(r["icc_a1"], 2) == 0.29 and round(r["ms_rows"] / r["ms_error"], 2) == 11.03  # F(5, 15)
    lo, hi = r["icc_a1_ci95"]
    assert round(lo, 3) == 0.019 and round(hi, 2) == 0.76
    assert (r["n"], r["k"]) == (6, 4)


def test_icc_a1_of_irr_anxiety_example():
    # irr::icc(anxiety, model="twoway", type="agreement"): ICC(A,1) = 0.198, F(19, 39.7), 95% CI -0.039 to 0.494
    r = icc_a1(ANXIETY)
    assert round(r["icc_a1"], 3) == 0.198 and round(r["df_v"], 1) == 39.7
    assert [round(x, 3) for x in r["icc_a1_ci95"]] == [-0.039, 0.494]


def test_icc_a1_of_two_raters_by_hand():
    # our use: k = 2 raters, truth and prediction. truth [0, 10, 20, 30], pred [2, 10, 24, 32]:
    # row means [1, 10, 22, 31], grand mean 16: MSR = 2 (225 + 36 + 36 + 225) / 3 = 348;
    # column means 15, 17: MSC = 4 (1 + 1) = 8 (= n bias^2 / 2, bias 2);
    # MSE = (sample variance of d = [2, 0, 4, 2]) / 2 = (8 / 3) / 2 = 4/3;
    # ICC = (348 - 4/3) / (348 + 4/3 + 2 (8 - 4/3) / 4) = 520/529.
    t, p = [0.0, 10.0, 20.0, 30.0], [2.0, 10.0, 24.0, 32.0]
    r = icc_a1(np.column_stack([t, p]))
    assert (r["ms_rows"], r["ms_columns"], r["ms_error"]) == pytest.approx((348.0, 8.0, 4 / 3), rel=1e-12)
    assert r["icc_a1"] == pytest.approx(520 / 529, rel=1e-12)
    # the CI in Shrout & Fleiss's own algebra (their eq. for ICC(2,1), F_j = JMS / EMS), which McGraw &
    # Wong's a, b form rewrites: the same v and bounds
    n, k, rho, fj = 4, 2, 520 / 529, 8.0 / (4 / 3)
    v = ((k - 1) * (n - 1) * (k * rho * fj + n * (1 + (k - 1) * rho) - k * rho) ** 2
         / ((n - 1) * k ** 2 * rho ** 2 * fj ** 2 + (n * (1 + (k - 1) * rho) - k * rho) ** 2))
    f_star, f_lower = stats.f.ppf(0.975, n - 1, v), stats.f.ppf(0.975, v, n - 1)
    low = n * (348 - f_star * 4 / 3) / (f_star * (k * 8 + (k * n - k - n) * 4 / 3) + n * 348)
    high = n * (f_lower * 348 - 4 / 3) / (k * 8 + (k * n - k - n) * 4 / 3 + n * f_lower * 348)
    assert r["df_v"] == pytest.approx(v, rel=1e-12)
    assert r["icc_a1_ci95"] == pytest.approx([low, high], rel=1e-10)
    assert r["icc_a1_ci95"] == pytest.approx([0.59225998, 0.99892139], abs=1e-8)
    # ICC(A,1) does not care which column is which
    assert icc_a1(np.column_stack([p, t]))["icc_a1_ci95"] == pytest.approx(r["icc_a1_ci95"], rel=1e-12)


def test_icc_a1_where_it_is_undefined_or_degenerate():
    assert icc_a1([[1.0, 2.0]])["icc_a1"] is None  # one target
    assert icc_a1([[3.0, 3.0], [3.0, 3.0]])["icc_a1"] is None  # no variance at all
    exact = icc_a1([[1.0, 1.0], [5.0, 5.0], [2.0, 2.0]])
    assert exact["icc_a1"] == 1.0 and exact["icc_a1_ci95"] == [1.0, 1.0]
    # a constant offset (pred = truth + 1): MSE = 0 but MSC = 3 / 2 > 0, so absolute agreement is below 1
    offset = icc_a1([[0.0, 1.0], [5.0, 6.0], [9.0, 10.0]])
    assert 0 < offset["icc_a1"] < 1 and all(0 < b < 1.0001 for b in offset["icc_a1_ci95"])
    assert offset["icc_a1_ci95"][0] < offset["icc_a1"] < offset["icc_a1_ci95"][1]


def test_measure_agreement_keys_carry_the_unit():
    a = measure_agreement([10.0, 20.0, 30.0, 40.0], [12.0, 19.0, 33.0, 44.0], "pp")
    assert set(a) == SLIP_KEYS
    assert a["bias_pp"] == 2.0 and a["sd_pp"] == pytest.approx(math.sqrt(14 / 3))
    assert a["icc_a1"] == icc_a1(np.column_stack([[10, 20, 30, 40], [12, 19, 33, 44]]))["icc_a1"]
    assert set(measure_agreement([1.0], [2.0], "deg")) == {"n", "bias_deg", "sd_deg", "loa_low_deg", "loa_high_deg",
                                                          "icc_a1", "icc_a1_ci95", "pearson_r"}
    assert measure_agreement([1.0], [2.0], "deg")["icc_a1_ci95"] == [None, None]


def test_slip_groups():
    g = slip_groups([10.0, 20.0, 30.0, 0.0], [12.0, 18.0, 30.0, 1.0], [1, 1, 2, 0], [1, 0, 2, 0],
                    ["L5/S1", "L4/L5", "L5/S1", None], order=["L4/L5", "L5/S1"])
    assert list(g) == ["L4/L5", "L5/S1"]  # the order asked for; the None pair left out
    assert g["L5/S1"] == pytest.approx({"n": 2, "bias_pp": 1.0, "sd_pp": math.sqrt(2.0),
                                        "loa_low_pp": 1.0 - 1.96 * math.sqrt(2.0),
                                        "loa_high_pp": 1.0 + 1.96 * math.sqrt(2.0), "slip_MAE_pp": 1.0,
                                        "grade_acc": 100.0})
    assert g["L4/L5"] == {"n": 1, "bias_pp": -2.0, "sd_pp": None, "loa_low_pp": None, "loa_high_pp": None,
                          "slip_MAE_pp": 2.0, "grade_acc": 0.0}


# --- per level and per grade, through the evaluation -----------------------------------------------------------


def test_slip_per_level_and_per_grade():
    # GT: L5 15 px forward over S1: L5/S1 37.5 % (II), L4/L5 -37.5 % (retrolisthesis), the rest 0 %.
    # Image 1's prediction has L5 2 px back (L5/S1 32.5 %, L4/L5 -32.5 %), image 2's 4 px back
    # (27.5 %, -27.5 %); image 3 has no levels (pairs named by position: no level).
    gt = column(6, shifts=[0, 0, 0, 0, -15, 0])
    preds = {}
    for i, back in ((1, 2.0), (2, 4.0)):
        p = gt.copy()
        p[4] += [back, 0.0]
        preds[i] = ImagePredictions(p, np.ones(6))
    preds[3] = ImagePredictions(gt, np.ones(6))
    truths = [truth(gt, 1, LEVELS), truth(gt, 2, LEVELS), truth(gt, 3)]
    m = evaluate_dataset(truths, preds, EvaluationSettings(facing="left", bootstrap=0)).metrics
    assert list(m["slip_by_level"]) == ["L1/L2", "L2/L3", "L3/L4", "L4/L5", "L5/S1"]
    sd = math.sqrt(2.5 ** 2 * 2)  # differences [-5, -10]: mean -7.5, sample SD 2.5 sqrt 2
    assert m["slip_by_level"]["L5/S1"] == pytest.approx(
        {"n": 2, "bias_pp": -7.5, "sd_pp": sd, "loa_low_pp": -7.5 - 1.96 * sd, "loa_high_pp": -7.5 + 1.96 * sd,
         "slip_MAE_pp": 7.5, "grade_acc": 100.0})
    assert m["slip_by_level"]["L4/L5"]["bias_pp"] == pytest.approx(7.5)
    assert m["slip_by_level"]["L1/L2"] == {"n": 2, "bias_pp": 0.0, "sd_pp": 0.0, "loa_low_pp": 0.0,
                                           "loa_high_pp": 0.0, "slip_MAE_pp": 0.0, "grade_acc": 100.0}
    # by true grade, in ordinal order, over all 15 pairs (image 3's too)
    assert list(m["slip_by_grade"]) == ["retrolisthesis", "none", "II"]
    assert [g["n"] for g in m["slip_by_grade"].values()] == [3, 9, 3]
    assert m["slip_by_grade"]["II"]["bias_pp"] == pytest.approx(-5.0)  # -5, -10, 0
    assert m["agreement"]["slip_pct"]["n"] == 15 and m["n_pairs"] == 15
    # positional names only: no level table
    m3 = evaluate_dataset([truths[2]], {3: preds[3]}, EvaluationSettings(facing="left", bootstrap=0)).metrics
    assert m3["slip_by_level"] == {} and m3["agreement"]["slip_pct"]["n"] == 5


def test_disc_height_and_angle_agreement():
    # prediction: every corner of L2 (the lower vertebra of the only pair) 3 px lower: both disc heights
    # of the pair grow by 3 px (0.6 mm at 0.2 mm/px), the intervertebral angle stays 0
    gt = column(2)
    pred = gt.copy()
    pred[1] += [0.0, 3.0]
    m = evaluate_dataset([truth(gt, levels=["L4", "L5"], spacing=0.2)], {1: ImagePredictions(pred, np.ones(2))},
                         EvaluationSettings(facing="left", bootstrap=0)).metrics
    a = m["agreement"]
    assert list(a) == ["slip_pct", "disc_height_anterior_px", "disc_height_posterior_px", "disc_height_anterior_mm",
                       "disc_height_posterior_mm", "intervertebral_angle_deg"]
    assert a["disc_height_anterior_px"]["bias_px"] == pytest.approx(3.0)
    assert a["disc_height_posterior_mm"]["bias_mm"] == pytest.approx(0.6)
    assert a["intervertebral_angle_deg"]["bias_deg"] == pytest.approx(0.0, abs=1e-12)
    assert a["disc_height_anterior_px"]["sd_px"] is None and a["slip_pct"]["icc_a1"] is None  # one pair
    # without a pixel spacing there are no mm heights to compare
    m = evaluate_dataset([truth(gt, levels=["L4", "L5"])], {1: ImagePredictions(pred, np.ones(2))},
                         EvaluationSettings(facing="left", bootstrap=0)).metrics
    assert "disc_height_anterior_mm" not in m["agreement"] and "disc_height_anterior_px" in m["agreement"]


# --- bootstrap ----------------------------------------------------------------------------------------------


def shifted_images(n=6):
    """n images of 3 bodies, no levels; image i's middle body is predicted i px too far right
    (corner errors i px, a slip error on both of its pairs) and image 5 also misses its top body."""
    truths, preds = [], {}
    for i in range(n):
        gt = column(3)
        p = gt.copy()
        p[1] += [float(i), 0.0]
        truths.append(truth(gt, image_id=i + 1))
        preds[i + 1] = ImagePredictions(p[1:] if i == 5 else p, np.ones(2 if i == 5 else 3))
    return truths, preds


def test_bootstrap_is_deterministic_and_contains_the_estimate():
    truths, preds = shifted_images()
    res = evaluate_dataset(truths, preds, EvaluationSettings(facing="left", bootstrap=500, seed=7))
    m = res.metrics
    again = evaluate_dataset(truths[::-1], preds, EvaluationSettings(facing="left", bootstrap=500, seed=7)).metrics
    assert again["ci95"] == m["ci95"]  # same seed, same intervals, whatever the image order
    other = evaluate_dataset(truths, preds, EvaluationSettings(facing="left", bootstrap=500, seed=8)).metrics
    assert other["ci95"] != m["ci95"]
    assert set(m["ci95"]) == set(CI_METRICS) == {"MRE_px", "det_F1", "grade_acc", "slip_MAE_pp", "kappa"}
    for name in ("MRE_px", "det_F1", "slip_MAE_pp"):
        lo, hi = m["ci95"][name]
        assert lo < m[name] < hi, name
        assert (m[f"{name}_ci95_low"], m[f"{name}_ci95_high"]) == (lo, hi)
    assert m["bootstrap"] == {"n_resamples": 500, "seed": 7, "unit": "images", "n_units": 6, "method": "percentile"}
    assert m["settings"]["bootstrap"] == 500 and m["settings"]["seed"] == 7
    # all-ones counts give back the point estimates of the whole evaluation
    whole = metrics_from_sums(np.ones((1, 6)), image_sums(res.images))
    for name in CI_METRICS:
        assert whole[name][0] == pytest.approx(m[name], rel=1e-12), name
    # --bootstrap 0: no interval
    off = evaluate_dataset(truths, preds, EvaluationSettings(facing="left", bootstrap=0)).metrics
    assert off["ci95"] == {name: [None, None] for name in CI_METRICS} and off["MRE_px_ci95_low"] is None


def test_resample_counts_and_units():
    c = resample_counts(5, 4, seed=3)
    assert c.shape == (4, 5) and (c.sum(axis=1) == 5).all()
    np.testing.assert_array_equal(c, resample_counts(5, 4, seed=3))
    idx = np.random.default_rng(3).integers(0, 5, size=(4, 5))
    np.testing.assert_array_equal(c, [np.bincount(row, minlength=5) for row in idx])
    assert resampling_units(["0001", "0001", None], [1, 2, 3]) == ([1, 1, 0], ["image 3", "patient 0001"], "patients")
    assert resampling_units([None, None], [9, 4]) == ([1, 0], ["image 4", "image 9"], "images")


def test_batch_kappa_equals_the_metric():
    rng = np.random.default_rng(0)
    cms = rng.integers(0, 4, size=(20, 7, 7))
    cms[3] = 0
    cms[4] = np.diag([0, 5, 0, 0, 0, 0, 0])  # one class, all agree
    got = quadratic_weighted_kappa_batch(cms)
    for m, k in zip(cms, got):
        ref = quadratic_weighted_kappa(m)
        assert (math.isnan(k) if ref is None else k == pytest.approx(ref, rel=1e-12))


def test_bootstrap_draws_a_patients_images_together():
    # patient P: a perfect image (errors 0) and one 10 px off (every corner: (6, 8)); patient Q: 4 px off.
    # By patient, a resample's MRE is 5 (P P), 14/3 (P Q) or 4 (Q Q), so the interval lies in [4, 5];
    # by image, drawing P's perfect image alone (MRE 0) happens in 1 of 27 resamples.
    gt = column(2)
    cases = [(1, "0001", [0.0, 0.0]), (2, "0001", [6.0, 8.0]), (3, "0002", [0.0, 4.0])]
    truths = [truth(gt, image_id=i, patient_id=pid) for i, pid, _ in cases]
    preds = {i: ImagePredictions(gt + off, np.ones(2)) for i, _, off in cases}
    settings = EvaluationSettings(facing="left", bootstrap=1000, seed=0)
    res = evaluate_dataset(truths, preds, settings)
    assert res.metrics["bootstrap"]["unit"] == "patients" and res.metrics["bootstrap"]["n_units"] == 2
    lo, hi = res.metrics["ci95"]["MRE_px"]
    assert 4.0 <= lo < hi <= 5.0
    index, units, _ = resampling_units([t.patient_id for t in truths], [t.image_id for t in truths])
    values = metrics_from_sums(resample_counts(2, 1000, 0), image_sums(res.images).grouped(index, len(units)))
    assert set(np.round(values["MRE_px"], 9)) == {5.0, round(14 / 3, 9), 4.0}
    for t in truths:
        t.patient_id = None
    by_image = evaluate_dataset(truths, preds, settings).metrics
    assert by_image["bootstrap"]["unit"] == "images" and by_image["ci95"]["MRE_px"][0] == 0.0


def test_patient_ids_from_the_ground_truth():
    cats = [{"id": 1, "name": "vertebra", "keypoints": ["TL", "TR", "BL", "BR"], "skeleton": []}]
    images = [{"id": 1, "file_name": "a.jpg", "patient_id": 7},
              {"id": 2, "file_name": "LA/x.jpg", "source_stem": "0001-F-037Y1"},
              {"id": 3, "file_name": "AP/0001-F-037Y0.jpg"},
              {"id": 4, "file_name": "img4.jpg", "source_stem": "img4"},
              {"id": 5, "file_name": "b.jpg", "patient_id": "P-12"}]
    gt = load_ground_truth({"images": images, "annotations": [], "categories": cats})
    assert [t.patient_id for t in gt.images] == ["0007", "0001", "0001", None, "P-12"]


def test_bootstrap_over_patients_of_300_images():
    rng = np.random.default_rng(1)
    gt = column(6, shifts=[0, 0, 0, 0, -15, 0])
    truths = [truth(gt, image_id=i, levels=LEVELS, patient_id=f"{i // 2:04d}") for i in range(300)]
    preds = {i: ImagePredictions(gt + rng.normal(0.0, 2.0, gt.shape), np.ones(6)) for i in range(300)}
    images = evaluate_dataset(truths, preds, EvaluationSettings(facing="left", bootstrap=0)).images
    ci, info = bootstrap_ci95(images, 1000, seed=0)
    assert info["n_units"] == 150 and all(lo is not None and lo <= hi for lo, hi in ci.values())
    assert ci == bootstrap_ci95(images, 1000, seed=0)[0]


# --- metrics.json, flat results, --table ------------------------------------------------------------------------


def coco(spines):
    """A vertkp COCO dict: spines = list of (bodies [N, 4, 2], levels, image extras)."""
    cats = [{"id": 1, "name": "vertebra", "supercategory": "spine", "keypoints": ["TL", "TR", "BL", "BR"],
             "skeleton": [[1, 2], [2, 4], [4, 3], [3, 1]]}]
    images, anns = [], []
    for i, (bodies, levels, extra) in enumerate(spines):
        images.append({"id": i + 1, "file_name": f"im{i}.jpg", "width": 400, "height": 400, "view": "lateral",
                       "facing": "left", **extra})
        for q, lv in zip(bodies, levels):
            anns.append({"id": len(anns) + 1, "image_id": i + 1, "category_id": 1, "iscrowd": 0,
                         "keypoints": [v for x, y in q for v in (float(x), float(y), 2)], "vertebra_level": lv})
    return {"images": images, "annotations": anns, "categories": cats}


@pytest.fixture
def evaluated(tmp_path):
    """Two lateral images with levels (one patient's, BUU names) and a third patient's, predictions
    with L5 2, 4 and 6 px too far back."""
    gt_bodies = column(6, shifts=[0, 0, 0, 0, -15, 0])
    stems = ["0001-F-037Y1", "0001-F-037Y0", "0002-M-050Y1"]
    gt = coco([(gt_bodies, LEVELS, {"source_stem": s}) for s in stems])
    results = []
    for a in gt["annotations"]:
        kp = np.array(a["keypoints"], dtype=float).reshape(4, 3)
        if a["vertebra_level"] == "L5":
            kp[:, 0] += 2.0 * a["image_id"]
        results.append({"image_id": a["image_id"], "category_id": 1, "keypoints": kp.ravel().tolist(), "score": 0.9})
    (tmp_path / "gt.json").write_text(json.dumps(gt))
    (tmp_path / "pred.json").write_text(json.dumps(results))
    return tmp_path


def run_cli(folder, *extra):
    return evaluate_main(["--gt", str(folder / "gt.json"), "--predictions", str(folder / "pred.json"),
                          "--output", str(folder / "out"), *extra])


def test_metrics_json_keys_and_flat_results(evaluated, capsys):
    assert run_cli(evaluated, "--bootstrap", "200", "--seed", "1") == 0
    out = capsys.readouterr().out
    m = json.loads((evaluated / "out" / "metrics.json").read_text())
    assert set(m["agreement"]["slip_pct"]) == SLIP_KEYS
    assert set(m["agreement"]) == {"slip_pct", "disc_height_anterior_px", "disc_height_posterior_px",
                                   "intervertebral_angle_deg"}  # no pixel spacing: no mm heights
    assert set(m["agreement"]["disc_height_anterior_px"]) == {"n", "bias_px", "sd_px", "loa_low_px", "loa_high_px",
                                                              "icc_a1", "icc_a1_ci95", "pearson_r"}
    assert set(m["agreement"]["intervertebral_angle_deg"]) >= {"bias_deg", "loa_low_deg", "loa_high_deg"}
    assert set(m["ci95"]) == {"MRE_px", "det_F1", "grade_acc", "slip_MAE_pp", "kappa"}
    assert all(isinstance(v, list) and len(v) == 2 for v in m["ci95"].values())
    assert m["ci95"]["det_F1"] == [100.0, 100.0]
    assert m["bootstrap"] == {"n_resamples": 200, "seed": 1, "unit": "patients", "n_units": 2,
                              "method": "percentile"}
    # 15 pairs; L5/S1 errors -5, -10, -15 and L4/L5 +5, +10, +15 pp, the rest 0
    a = m["agreement"]["slip_pct"]
    assert a["n"] == 15 and a["bias_pp"] == pytest.approx(0.0, abs=1e-12)
    assert a["sd_pp"] == pytest.approx(math.sqrt(2 * (25 + 100 + 225) / 14))
    assert m["slip_by_level"]["L5/S1"]["bias_pp"] == pytest.approx(-10.0)
    assert m["slip_bias_pp"] == a["bias_pp"] and m["slip_icc_a1_ci95_low"] == a["icc_a1_ci95"][0]
    assert m["MRE_px_ci95_low"] == m["ci95"]["MRE_px"][0] and m["kappa_ci95_high"] == m["ci95"]["kappa"][1]
    # every new scalar is a METRICS name with its unit, in metrics.json's top level and in the flat results
    new = ["slip_bias_pp", "slip_sd_pp", "slip_loa_low_pp", "slip_loa_high_pp", "slip_icc_a1", "slip_icc_a1_ci95_low",
           "slip_icc_a1_ci95_high", "slip_pearson_r"] + [f"{k}_ci95_{e}" for k in CI_METRICS for e in ("low", "high")]
    assert set(new) <= set(METRICS) and all(m["units"][k] == METRICS[k][0] for k in new)
    flat = flat_metrics(m)
    assert all(flat[k] == pytest.approx(m[k]) for k in new)
    assert (evaluated / "out" / "bland_altman_slip.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "bland_altman_slip.png" in out
    assert "agreement slip bias +0.00 pp, 95% limits of agreement" in out
    assert "95% CI    bootstrap, 200 resamples of 2 patients: MRE " in out


def test_undefined_agreement_is_null(evaluated):
    # nothing predicted: no pair scored, so no bias, SD, limits, ICC or r (JSON null); F1 0 from 0 to 0
    gt = coco([(column(2), ["L5", "S1"], {})])
    (evaluated / "gt.json").write_text(json.dumps(gt))
    (evaluated / "pred.json").write_text(json.dumps([]))
    assert run_cli(evaluated, "--quiet", "--no-plots") == 0
    text = (evaluated / "out" / "metrics.json").read_text()
    m = json.loads(text)
    assert m["agreement"]["slip_pct"] == {"n": 0, "bias_pp": None, "sd_pp": None, "loa_low_pp": None,
                                          "loa_high_pp": None, "icc_a1": None, "icc_a1_ci95": [None, None],
                                          "pearson_r": None}
    assert m["ci95"]["MRE_px"] == [None, None] and m["ci95"]["det_F1"] == [0.0, 0.0]
    assert "NaN" not in text


TABLE_METRICS = {
    "n_images": 3, "MRE_px": 6.0, "det_F1": 80.0, "n_pairs": 4, "grade_acc": 75.0, "slip_MAE_pp": 5.375, "kappa": 0.5,
    "ci95": {"MRE_px": [5.0, 7.25], "det_F1": [60.0, 100.0], "grade_acc": [50.0, 100.0], "slip_MAE_pp": [2.0, 9.5],
             "kappa": [None, None]},
    "bootstrap": {"n_resamples": 1000, "seed": 0, "unit": "patients", "n_units": 2, "method": "percentile"},
    "agreement": {"slip_pct": {"n": 4, "bias_pp": -1.5, "sd_pp": 2.0, "loa_low_pp": -5.42, "loa_high_pp": 2.42,
                               "icc_a1": 0.9, "icc_a1_ci95": [0.5, 0.99], "pearson_r": 0.95}},
    "slip_by_level": {"L5/S1": {"n": 2, "bias_pp": -2.0, "sd_pp": 1.0, "loa_low_pp": -3.96, "loa_high_pp": -0.04,
                                "slip_MAE_pp": 2.0, "grade_acc": 50.0}},
}
NOTES = ("n: images for MRE and F1, scored lateral pairs otherwise. 95% CI: percentile bootstrap, 1000 resamples of 2 "
         "patients; ICC(A,1) (two-way, absolute agreement, single measure): F distribution (McGraw & Wong 1996). "
         "95% LoA: bias +- 1.96 SD of predicted - true (sample SD, ddof 1).")


def test_table_markdown():
    assert format_results_table(TABLE_METRICS, "md").splitlines() == [
        "| Measure | n | Value | 95% CI | 95% LoA |",
        "|---|---:|---:|---|---|",
        "| MRE (px) | 3 | 6.00 | 5.00 to 7.25 |  |",
        "| Detection F1 (%) | 3 | 80.0 | 60.0 to 100.0 |  |",
        "| Grade accuracy (%) | 4 | 75.0 | 50.0 to 100.0 |  |",
        "| Slip MAE (pp) | 4 | 5.38 | 2.00 to 9.50 |  |",
        "| Grade kappa (quadratic) | 4 | 0.500 | n/a |  |",
        "| Slip bias (pp) | 4 | -1.50 |  | -5.42 to 2.42 |",
        "| Slip ICC(A,1) | 4 | 0.900 | 0.500 to 0.990 |  |",
        "| Slip Pearson r | 4 | 0.950 |  |  |",
        "| L5/S1 slip bias (pp) | 2 | -2.00 |  | -3.96 to -0.04 |",
        "| L5/S1 slip MAE (pp) | 2 | 2.00 |  |  |",
        "| L5/S1 grade accuracy (%) | 2 | 50.0 |  |  |",
        "",
        NOTES,
    ]


def test_table_latex():
    assert format_results_table(TABLE_METRICS, "latex").splitlines() == [
        "\\begin{tabular}{lrrll}",
        "\\toprule",
        "Measure & $n$ & Value & 95\\% CI & 95\\% LoA \\\\",
        "\\midrule",
        "MRE (px) & 3 & 6.00 & 5.00 to 7.25 &  \\\\",
        "Detection F1 (\\%) & 3 & 80.0 & 60.0 to 100.0 &  \\\\",
        "Grade accuracy (\\%) & 4 & 75.0 & 50.0 to 100.0 &  \\\\",
        "Slip MAE (pp) & 4 & 5.38 & 2.00 to 9.50 &  \\\\",
        "Grade kappa (quadratic) & 4 & 0.500 & n/a &  \\\\",
        "Slip bias (pp) & 4 & $-$1.50 &  & $-$5.42 to 2.42 \\\\",
        "Slip ICC(A,1) & 4 & 0.900 & 0.500 to 0.990 &  \\\\",
        "Slip Pearson r & 4 & 0.950 &  &  \\\\",
        "L5/S1 slip bias (pp) & 2 & $-$2.00 &  & $-$3.96 to $-$0.04 \\\\",
        "L5/S1 slip MAE (pp) & 2 & 2.00 &  &  \\\\",
        "L5/S1 grade accuracy (\\%) & 2 & 50.0 &  &  \\\\",
        "\\bottomrule",
        "\\end{tabular}",
        "% " + NOTES,
    ]


def test_table_csv():
    assert format_results_table(TABLE_METRICS, "csv").splitlines() == [
        "measure,n,value,ci95_low,ci95_high,ci95_method,loa95_low,loa95_high",
        "MRE (px),3,6.0,5.0,7.25,bootstrap percentile,,",
        "Detection F1 (%),3,80.0,60.0,100.0,bootstrap percentile,,",
        "Grade accuracy (%),4,75.0,50.0,100.0,bootstrap percentile,,",
        "Slip MAE (pp),4,5.375,2.0,9.5,bootstrap percentile,,",
        "Grade kappa (quadratic),4,0.5,,,bootstrap percentile,,",
        "Slip bias (pp),4,-1.5,,,,-5.42,2.42",
        '"Slip ICC(A,1)",4,0.9,0.5,0.99,F distribution (McGraw & Wong 1996),,',
        "Slip Pearson r,4,0.95,,,,,",
        "L5/S1 slip bias (pp),2,-2.0,,,,-3.96,-0.04",
        "L5/S1 slip MAE (pp),2,2.0,,,,,",
        "L5/S1 grade accuracy (%),2,50.0,,,,,",
    ]
    with pytest.raises(ValueError, match="table format must be one of"):
        format_results_table(TABLE_METRICS, "html")


@pytest.mark.parametrize("fmt,first", [("md", "| Measure | n | Value | 95% CI | 95% LoA |"),
                                       ("latex", "\\begin{tabular}{lrrll}"),
                                       ("csv", "measure,n,value,ci95_low,ci95_high,ci95_method,loa95_low,loa95_high")])
def test_evaluate_prints_the_table(evaluated, capsys, fmt, first):
    # --quiet keeps the summary out but prints the table asked for, and nothing else
    assert run_cli(evaluated, "--quiet", "--no-plots", "--bootstrap", "50", "--table", fmt) == 0
    lines = capsys.readouterr().out.splitlines()
    m = json.loads((evaluated / "out" / "metrics.json").read_text())
    assert lines[0] == first and "\n".join(lines) == format_results_table(m, fmt)
    assert any(line.startswith("L5/S1 slip bias (pp)") or line.startswith("| L5/S1 slip bias (pp)")
               for line in lines)
    # without --quiet the table follows the summary
    assert run_cli(evaluated, "--no-plots", "--bootstrap", "0", "--table", fmt) == 0
    out = capsys.readouterr().out
    assert out.startswith("vertkp evaluation:") and first in out and "95% CI    bootstrap" not in out


def test_bootstrap_and_seed_are_checked(evaluated, capsys):
    assert run_cli(evaluated, "--quiet", "--bootstrap", "-1") == 2
    assert "bootstrap must be a whole number >= 0, got -1" in capsys.readouterr().err
    with pytest.raises(ValueError, match="seed must be a whole number >= 0"):
        EvaluationSettings(seed=1.5)
