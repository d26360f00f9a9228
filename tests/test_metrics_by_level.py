"""The tails of the errors and the predicted levels' scores (vertkp.evaluation.metrics,
scoring.level_outcomes), by hand."""
import numpy as np
import pytest

from tests.helpers.raw import column
from vertkp.evaluation import ImagePredictions, corners_off_width, level_scores, slip_tails
from vertkp.evaluation.scoring import level_outcomes


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
