"""Canonical corner order: every source order, tilts up to +-50 degrees, wrong orders."""
import itertools

import numpy as np
import pytest

from tests.helpers.raw import quad
from vertkp.keypoints import anatomical_corners, canonical_order

TILTS = [-50, -35, -10, 0, 10, 35, 50]


@pytest.mark.parametrize("tilt", TILTS)
@pytest.mark.parametrize(
    "order, superior",
    [((0, 1, 2, 3), (0, 1)),  # canonical TL, TR, BL, BR
     ((2, 3, 0, 1), (2, 3)),  # Mendeley JSON: BL, BR, TL, TR
     ((0, 2, 3, 1), (0, 3))],  # Mendeley TXT: TL, BL, BR, TR
)
def test_source_orders_come_out_canonical(tilt, order, superior):
    truth = quad(200, 300, 90, 60, tilt)
    res = canonical_order(truth[list(order)], superior=superior)
    np.testing.assert_array_equal(res.corners, truth)
    assert res.agreed and res.reason == ""


@pytest.mark.parametrize("tilt", TILTS)
def test_wrong_orders_that_keep_the_endplates_are_corrected(tilt):
    """Any order of corners whose endplate grouping is right (or diagonal)."""
    truth = quad(200, 300, 90, 60, tilt)
    for perm in itertools.permutations(range(4)):
        if {perm[0], perm[1]} in ({0, 2}, {1, 3}):
            continue  # the source calls a wall an endplate: see the next test
        if {perm[0], perm[1]} in ({0, 3}, {1, 2}) and abs(tilt) >= 45:
            continue  # diagonal pairs re-paired by flatness: walls are flatter past 45 degrees
        res = canonical_order(truth[list(perm)], superior=(0, 1))
        np.testing.assert_allclose(res.corners, truth)
        assert res.agreed == (perm == (0, 1, 2, 3))
        assert bool(res.reason) != res.agreed


@pytest.mark.parametrize("tilt", [-25, -10, 0, 10, 25])
def test_walls_named_as_endplates_are_corrected_when_clearly_so(tilt):
    truth = quad(200, 300, 90, 60, tilt)
    for perm in ((0, 2, 1, 3), (2, 0, 3, 1), (1, 3, 0, 2)):
        res = canonical_order(truth[list(perm)], superior=(0, 1))
        np.testing.assert_allclose(res.corners, truth)
        assert res.reason == "source endplates are near-vertical and its walls near-horizontal"


def test_steep_source_endplates_stand_when_geometry_is_ambiguous():
    """At 50 degrees an endplate is steeper than a wall: the source decides."""
    truth = quad(200, 300, 90, 60, 50)
    res = canonical_order(truth[[2, 3, 0, 1]], superior=(2, 3))
    np.testing.assert_array_equal(res.corners, truth)
    assert res.agreed


def test_diagonal_grouping_is_repaired_by_geometry():
    truth = quad(0, 0, 10, 5)
    res = canonical_order(truth[[0, 3, 1, 2]], superior=(0, 1))  # TL with BR as "endplate"
    np.testing.assert_array_equal(res.corners, truth)
    assert res.reason == "source corner grouping pairs diagonal corners"


def test_superior_below_inferior_is_reported():
    truth = quad(0, 0, 10, 5)
    res = canonical_order(truth[[2, 3, 0, 1]], superior=(0, 1))
    np.testing.assert_array_equal(res.corners, truth)
    assert res.reason == "source superior endplate lies below its inferior endplate"


@pytest.mark.parametrize("bad, msg", [
    (np.zeros((3, 2)), "4 corners"),
    (np.array([[0, 0], [1, 0], [0, np.nan], [1, 1]]), "not finite"),
    (np.array([[0, 0], [0, 0], [0, 1], [1, 1]]), "degenerate"),
    (np.array([[0, 0], [1, 0], [2, 0], [3, 0]]), "degenerate"),
])
def test_bad_corners_raise(bad, msg):
    with pytest.raises(ValueError, match=msg):
        canonical_order(bad)


def test_anatomical_names_for_both_facings():
    c = quad(0, 0, 10, 6)  # TL (-5,-3) TR (5,-3) BL (-5,3) BR (5,3)
    left = anatomical_corners(c, "left")
    right = anatomical_corners(c, "right")
    np.testing.assert_array_equal(left["anterior_superior"], [-5, -3])
    np.testing.assert_array_equal(left["posterior_inferior"], [5, 3])
    np.testing.assert_array_equal(right["anterior_superior"], [5, -3])
    np.testing.assert_array_equal(right["posterior_inferior"], [-5, 3])
    with pytest.raises(ValueError, match="facing"):
        anatomical_corners(c, "up")
