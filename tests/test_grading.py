"""Spine grading on hand-built spines with exact expected values (vertkp.grading)."""
import math

import numpy as np
import pytest

import vertkp.grading
from tests.helpers.raw import quad
from vertkp.grading import (
    DEFAULT_NO_SLIP_PCT,
    GRADE_NAMES,
    GRADES,
    RETROLISTHESIS,
    ap_pair_measures,
    estimate_facing,
    grade_name,
    grade_probabilities,
    grade_spine,
    lateral_displacement_percent,
    lateral_pair_measures,
    left_of,
    meyerding_grade,
    order_spine,
    orient_vertebrae,
    vertebra_area,
    vertebra_centres,
    vertebra_size,
    vertebra_width,
    wedge_angle_deg,
)
from vertkp.grading.chain import DETACHED_MAX_CONFIDENCE, repair_chain
from vertkp.grading.slip import slip_percent, slip_percent_sd
from vertkp.keypoints import anatomical_corners, canonical_order

LEVELS = ["L1", "L2", "L3", "L4", "L5", "S1"]


def box(cx, cy, w=40.0, h=25.0, theta_deg=0.0):
    """Rectangle TL, TR, BL, BR centred at (cx, cy), rotated by theta (image
    coordinates, y down: a negative theta lowers the image-left end)."""
    off = np.array([[-w / 2, -h / 2], [w / 2, -h / 2], [-w / 2, h / 2], [w / 2, h / 2]])
    t = math.radians(theta_deg)
    rot = np.array([[math.cos(t), -math.sin(t)], [math.sin(t), math.cos(t)]])
    return off @ rot.T + [cx, cy]


def mirror(corners, width=300.0):
    """Mirror an image left-right and put the corners back in TL, TR, BL, BR order."""
    m = np.array(corners, dtype=float)
    m[..., 0] = width - m[..., 0]
    return m[..., [1, 0, 3, 2], :]


def rotate(corners, deg, centre=(150.0, 200.0)):
    t = math.radians(deg)
    rot = np.array([[math.cos(t), -math.sin(t)], [math.sin(t), math.cos(t)]])
    return (np.asarray(corners) - centre) @ rot.T + centre


def straight_spine(n=6, pitch=35.0, shifts=None, widths=None):
    """n upright 40x25 bodies, discs 10 px, body k shifted by shifts[k] px in x."""
    shifts = shifts if shifts is not None else [0.0] * n
    widths = widths if widths is not None else [40.0] * n
    return np.stack([box(100.0 + shifts[k], 100.0 + pitch * k, w=widths[k]) for k in range(n)])


def lordotic_spine():
    """Six bodies on an arc bulging image-left, tilts from +5 deg (L1) to -40 deg (S1): facing left."""
    thetas = np.linspace(5.0, -40.0, 6)
    xs = 100.0 - 20.0 * (1.0 - ((np.arange(6) - 2.5) / 2.5) ** 2)
    return np.stack([box(x, 100.0 + 35.0 * k, theta_deg=t) for k, (x, t) in enumerate(zip(xs, thetas))])


# --- vertebra dimensions ------------------------------------------------------------------------------

NAN2 = [np.nan, np.nan]


def test_vertebra_size_is_the_largest_corner_distance():
    corners = np.array([
        [[0, 0], [3, 0], [0, 4], NAN2],  # 3-4-5 triangle: TR-BL = 5
        [[0, 0], [40, 0], [0, 30], [40, 30]],  # diagonal 50
        [[0, 0], NAN2, NAN2, NAN2],  # one corner
        [[7, 7], [7, 7], NAN2, NAN2],  # two corners at one point
        [NAN2, NAN2, NAN2, NAN2],
    ], dtype=float)
    np.testing.assert_array_equal(vertebra_size(corners), [5.0, 50.0, np.nan, np.nan, np.nan])
    assert vertebra_size(np.zeros((0, 4, 2))).shape == (0,)


def test_vertebra_width_is_the_mean_labelled_endplate_length():
    corners = np.array([
        [[0, 0], [40, 0], [0, 25], [30, 25]],  # endplates 40 and 30
        [[0, 0], [6, 8], NAN2, [1, 1]],  # superior endplate only: 10
        [NAN2, [5, 5], [0, 20], [24, 27]],  # inferior endplate only: 25
        [[0, 0], NAN2, [0, 25], NAN2],  # left wall only: no endplate
    ], dtype=float)
    np.testing.assert_array_equal(vertebra_width(corners), [35.0, 10.0, 25.0, np.nan])


def test_vertebra_area_of_the_quadrilateral():
    corners = np.array([
        [[0, 0], [40, 0], [5, 30], [35, 30]],  # trapezoid (40 + 30) / 2 * 30
        [[0, 0], [40, 0], [5, 30], NAN2],
    ], dtype=float)
    np.testing.assert_array_equal(vertebra_area(corners), [1050.0, np.nan])
    assert vertebra_area(box(0, 0, w=40, h=25, theta_deg=30)[None])[0] == pytest.approx(1000.0, abs=1e-9)


# --- slip and lateral displacement formulas ----------------------------------------------------------


def test_lateral_displacement_percent_sign_and_width_independence():
    ll, lr = [100.0, 200.0], [140.0, 200.0]  # L's superior endplate, w = 40, midpoint (120, 200)
    # U's inferior midpoint (126, 190): 6 px spine-right of L's -> +15 %
    assert lateral_displacement_percent(ll, lr, [106.0, 190.0], [146.0, 190.0]) == pytest.approx(15.0, abs=1e-12)
    assert lateral_displacement_percent(ll, lr, [111.0, 190.0], [141.0, 190.0]) == pytest.approx(15.0, abs=1e-12)
    assert lateral_displacement_percent(ll, lr, [94.0, 190.0], [134.0, 190.0]) == pytest.approx(-15.0, abs=1e-12)
    # tilted endplate (0, 0) -> (30, 40), w = 50; offset (2, 11) of the midpoints: (2, 11) . (0.6, 0.8) / 50
    assert lateral_displacement_percent([0, 0], [30, 40], [2, 11], [32, 51]) == pytest.approx(20.0, abs=1e-12)
    out = lateral_displacement_percent([ll, ll], [lr, lr], [[106, 190], [94, 190]], [[146, 190], [134, 190]])
    np.testing.assert_allclose(out, [15.0, -15.0], atol=1e-12)


def test_lateral_displacement_percent_zero_length_endplate():
    with pytest.raises(ValueError, match="superior endplate has zero length"):
        lateral_displacement_percent([5.0, 5.0], [5.0, 5.0], [0.0, 0.0], [10.0, 0.0])


def test_ap_pair_measures_uses_the_oriented_corners():
    upper, lower = box(104, 177.5), box(100, 212.5)  # U 4 px spine-right over a 40 px endplate
    m = ap_pair_measures(upper, lower)
    assert (m["lateral_displacement_pct"], m["lateral_side"]) == (pytest.approx(10.0, abs=1e-12), "right")
    upper[2] = np.nan
    assert ap_pair_measures(upper, lower) == {"lateral_displacement_pct": None, "lateral_side": None,
                                              "patient_side": None}


def test_grades_in_ordinal_order_with_names():
    assert GRADES == (-1, 0, 1, 2, 3, 4, 5)
    assert list(GRADE_NAMES.items()) == [(-1, "retrolisthesis"), (0, "none"), (1, "I"), (2, "II"), (3, "III"),
                                         (4, "IV"), (5, "V")]
    assert tuple(meyerding_grade([-10.0, 0.0, 10.0, 30.0, 60.0, 90.0, 110.0])) == GRADES
    assert [grade_name(g) for g in GRADES] == list(GRADE_NAMES.values())


def test_anatomy_names_are_not_re_exported():
    for name in ("LEVELS", "level_index", "VIEWS", "FACINGS", "vertebra_sizes"):
        assert not hasattr(vertkp.grading, name), name


# --- one pair: slip, grade, facing ------------------------------------------------------------------


def test_slip_37_5_percent_is_grade_II_facing_left():
    # L: superior endplate from P = (140, 200) (posterior, image-right) to A = (100, 200), w = 40.
    # U slid 15 px forward (image-left): Q = U's posterior-inferior = (125, 190).
    # d = (Q - P) . (A - P) / w = (-15, -10) . (-40, 0) / 40 = 15 -> 37.5 %.
    lower, upper = box(120, 212.5), box(105, 177.5)
    g = grade_spine([upper, lower], facing="left")
    (p,) = g.pairs
    assert p.slip_pct == pytest.approx(37.5, abs=1e-12)
    assert (p.grade, p.grade_name, p.retrolisthesis_pct) == (2, "II", None)
    assert p.measurable and p.intervertebral_angle_deg == pytest.approx(0.0, abs=1e-12)
    assert p.name == "pair 1 from the bottom" and (p.upper_name, p.lower_name) == ("#2 from bottom", "#1 from bottom")


def test_same_slip_facing_right_on_the_mirrored_image():
    spine = mirror([box(105, 177.5), box(120, 212.5)])
    assert grade_spine(spine, facing="right").pairs[0].slip_pct == pytest.approx(37.5, abs=1e-12)
    # the wrong facing reads the forward slip as a backward one
    wrong = grade_spine(spine, facing="left").pairs[0]
    assert wrong.slip_pct == pytest.approx(-37.5, abs=1e-12)
    assert (wrong.grade, wrong.retrolisthesis_pct) == (RETROLISTHESIS, pytest.approx(37.5, abs=1e-12))


def test_retrolisthesis_is_reported_with_its_percentage():
    # U slid 4 px backwards (image-right for facing left): -4 / 40 = -10 %
    p = grade_spine([box(124, 177.5), box(120, 212.5)], facing="left").pairs[0]
    assert p.slip_pct == pytest.approx(-10.0, abs=1e-12)
    assert (p.grade, p.grade_name) == (RETROLISTHESIS, "retrolisthesis")
    assert p.retrolisthesis_pct == pytest.approx(10.0, abs=1e-12)


def test_no_slip_band():
    spine = [box(119, 177.5), box(120, 212.5)]  # 1 px forward: 2.5 %
    assert grade_spine(spine, facing="left").pairs[0].grade == 0  # default band 5 %
    assert DEFAULT_NO_SLIP_PCT == 5.0
    p = grade_spine(spine, facing="left", no_slip_pct=2.0).pairs[0]
    assert (p.slip_pct, p.grade, p.grade_name) == (pytest.approx(2.5, abs=1e-12), 1, "I")


def test_disc_heights_px_and_mm_and_intervertebral_angle():
    # anterior: |U BL (85, 190) - L TL (100, 200)| = sqrt(15^2 + 10^2); posterior the same
    p = grade_spine([box(105, 177.5), box(120, 212.5)], facing="left", pixel_spacing=0.2).pairs[0]
    assert p.disc_height_anterior_px == pytest.approx(math.sqrt(325.0), abs=1e-12)
    assert p.disc_height_posterior_px == pytest.approx(math.sqrt(325.0), abs=1e-12)
    assert p.disc_height_anterior_mm == pytest.approx(0.2 * math.sqrt(325.0), abs=1e-12)
    # U tilted so that its anterior-inferior end drops: disc narrower in front -> -10 deg (kyphotic)
    q = grade_spine([box(120, 175, theta_deg=-10), box(120, 212.5)], facing="left").pairs[0]
    assert q.intervertebral_angle_deg == pytest.approx(-10.0, abs=1e-9)
    assert q.disc_height_anterior_mm is None  # no spacing, no mm
    # mirrored with facing right: the same anatomy, the same numbers
    r = grade_spine(mirror([box(120, 175, theta_deg=-10), box(120, 212.5)]), facing="right").pairs[0]
    assert r.intervertebral_angle_deg == pytest.approx(-10.0, abs=1e-9)


def test_wedge_angle_sign_convention():
    # caudal endplate posterior->anterior along image-left; cranial one with its anterior end 1 up per 1 along
    assert wedge_angle_deg([-1.0, -1.0], [-1.0, 0.0], "left") == pytest.approx(45.0)
    assert wedge_angle_deg([1.0, -1.0], [1.0, 0.0], "right") == pytest.approx(45.0)
    with pytest.raises(ValueError, match="zero length"):
        wedge_angle_deg([1.0, 0.0], [0.0, 0.0], "left")


# --- tilted S1 ----------------------------------------------------------------------------------------


def tilted_s1_pair(slip=0.2, s1_tilt=-40.0, l5_tilt=-20.0):
    """S1 tilted 40 deg (anterior end down, facing left) with L5 slipped `slip` of S1's endplate."""
    s1 = box(200.0, 300.0, w=40.0, h=30.0, theta_deg=s1_tilt)
    P, A = s1[1], s1[0]  # facing left: TR posterior-superior, TL anterior-superior
    a = (A - P) / np.linalg.norm(A - P)
    n_up = np.array([a[1], -a[0]])  # normal towards L5 (cranial)
    if n_up[1] > 0:
        n_up = -n_up
    Q = P + slip * (A - P) + 6.0 * n_up  # L5 posterior-inferior corner, 6 px above the plateau
    l5 = box(0.0, 0.0, w=40.0, h=25.0, theta_deg=l5_tilt)
    l5 = l5 - l5[3] + Q  # put L5's BR (posterior-inferior) on Q
    return np.stack([l5, s1])


def test_tilted_s1_slip_and_corner_names():
    spine = tilted_s1_pair()
    # the canonical order of each body is what the converter would write
    for q in spine:
        assert canonical_order(q).agreed
    g = grade_spine(spine, levels=["L5", "S1"], facing="left")
    (p,) = g.pairs
    assert p.name == "L5/S1"
    assert p.slip_pct == pytest.approx(20.0, abs=1e-9)
    assert p.grade == 1
    # re-derived corners equal the canonical ones on an upright image
    np.testing.assert_allclose(g.oriented, spine)
    an = anatomical_corners(g.oriented[1], "left")
    assert an["anterior_superior"][1] > an["posterior_superior"][1]  # sacral plateau: anterior end lower
    # S1 tilted -40 deg, L5 -20 deg: the disc opens anteriorly by 20 deg
    assert p.intervertebral_angle_deg == pytest.approx(20.0, abs=1e-9)


def with_l3_l4(pair):
    """Stack L4 and L3 (upright 40x25 bodies, 10 px discs) above L5 along L5's own axis."""
    l5 = pair[0]
    up = (l5[0] + l5[1]) / 2 - (l5[2] + l5[3]) / 2
    up = up / np.linalg.norm(up)
    return np.stack([l5 + 70.0 * up, l5 + 35.0 * up, *pair])


@pytest.mark.parametrize("slip,grade", [(0.6, 3), (0.9, 4), (1.2, 5), (-0.1, -1)])
def test_tilted_s1_high_grades(slip, grade):
    spine = with_l3_l4(tilted_s1_pair(slip))
    g = grade_spine(spine, facing="left")  # no levels: order from the geometry alone
    assert list(g.order) == [0, 1, 2, 3] and not g.spine.rotated
    p = g.pair(2, 3)
    assert p.slip_pct == pytest.approx(100 * slip, abs=1e-9)
    assert p.grade == grade
    if slip <= 0.9:  # two bodies alone are unambiguous up to grade IV
        assert grade_spine(tilted_s1_pair(slip), facing="left").pairs[0].slip_pct == pytest.approx(100 * slip)


def test_two_corner_s1_as_in_buu_lspine():
    spine = straight_spine(2, shifts=[-6.0, 0.0])  # L5 6 px forward: 15 %
    spine[1, 2:] = np.nan  # S1 has only its superior corners
    g = grade_spine(spine, levels=["L5", "S1"], facing="left")
    (p,) = g.pairs
    assert (p.name, p.slip_pct, p.grade) == ("L5/S1", pytest.approx(15.0, abs=1e-12), 1)
    assert p.disc_height_posterior_px == pytest.approx(math.hypot(6.0, 10.0))
    visible = np.isfinite(spine[..., 0])
    spine2 = np.where(np.isfinite(spine), spine, 0.0)  # unlabelled marked by `visible` instead of NaN
    assert grade_spine(spine2, visible, levels=["L5", "S1"], facing="left").pairs[0].slip_pct == pytest.approx(15.0)


# --- order, gaps, levels ------------------------------------------------------------------------------


def test_order_along_the_spine_not_input_order():
    spine = straight_spine(6, shifts=[0, 0, 0, -6, 0, 0])  # L4 6 px forward over L5: 15 %
    perm = np.array([3, 0, 5, 1, 4, 2])
    g = grade_spine(spine[perm], facing="left")
    assert [int(perm[i]) for i in g.order] == [0, 1, 2, 3, 4, 5]
    slips = [p.slip_pct for p in g.pairs]
    assert slips == pytest.approx([0, 0, -15.0, 15.0, 0], abs=1e-12)
    assert [p.name for p in g.pairs] == [f"pair {k} from the bottom" for k in (5, 4, 3, 2, 1)]
    assert g.level_source == "position"


def test_tilted_image_keeps_order_and_slips():
    spine = straight_spine(6, shifts=[0, 0, 0, -6, 0, 0])
    g = grade_spine(rotate(spine, 30.0), facing="left")  # 30 deg: still read upright
    assert list(g.order) == [0, 1, 2, 3, 4, 5]
    assert g.spine.direction_method == "superior_endplates" and not g.spine.rotated
    assert [p.slip_pct for p in g.pairs] == pytest.approx([0, 0, -15.0, 15.0, 0], abs=1e-9)


@pytest.mark.parametrize("image_based_names", [False, True])
def test_rotated_90_degrees_rederives_corners_from_the_spine_axis(image_based_names):
    # bodies widen caudally (L1 36 px .. S1 46 px) as lumbar bodies do: that tells the cranial end
    widths = [36.0, 38.0, 40.0, 42.0, 44.0, 46.0]
    spine = straight_spine(6, shifts=[0, 0, 0, -6, 0, 0], widths=widths)
    upright = grade_spine(spine, facing="left")
    rot = rotate(spine, 90.0)
    if image_based_names:
        # an annotator naming corners by image position: TL, TR = the image-upper two (here a wall)
        rot = np.stack([q[np.lexsort((q[:, 0], q[:, 1]))] for q in rot])
        rot = rot[:, [0, 1, 2, 3]]
    else:
        rot = np.stack([canonical_order(q).corners for q in rot])
    g = grade_spine(rot, facing="left")
    assert g.spine.rotated and g.spine.direction_method == "area_trend"
    assert g.spine.direction_confidence > 0.9
    assert list(g.order) == [0, 1, 2, 3, 4, 5]
    assert [p.slip_pct for p in g.pairs] == pytest.approx([p.slip_pct for p in upright.pairs], abs=1e-9)
    # the re-derived superior endplates are the anatomical ones (rotated back)
    np.testing.assert_allclose(rotate(g.oriented, -90.0), spine, atol=1e-9)


def test_upside_down_image_with_levels():
    spine = straight_spine(6, shifts=[0, 0, 0, 0, -6, 0])  # L5 forward over S1: 15 %
    flipped = np.stack([canonical_order(q).corners for q in rotate(spine, 180.0)])
    g = grade_spine(flipped, levels=LEVELS, facing="left")
    assert g.spine.direction_method == "levels"
    assert [g.names[i] for i in g.order] == LEVELS
    assert g.pair(4, 5).slip_pct == pytest.approx(15.0, abs=1e-9)
    assert g.pair(3, 4).slip_pct == pytest.approx(-15.0, abs=1e-9)


def test_gap_from_a_missed_vertebra_geometry():
    spine = np.delete(straight_spine(6), 2, axis=0)  # L3 missed: L2 and L4 are 45 px apart
    g = grade_spine(spine, facing="left")
    assert len(g.pairs) == 3
    assert g.gaps == [(1, 2)]
    gap = g.adjacency[1]
    assert gap["method"] == "geometry" and gap["disc_ratio"] == pytest.approx(45.0 / 25.0)
    assert g.adjacency[0]["disc_ratio"] == pytest.approx(10.0 / 25.0)
    assert g.pair(1, 2) is None
    # named by position, and the positional names say where the hole is
    assert [p.name for p in g.pairs] == ["pair 4 from the bottom", "pair 2 from the bottom", "pair 1 from the bottom"]


def test_gap_from_levels_and_level_names():
    spine = np.delete(straight_spine(6), 2, axis=0)
    levels = ["L1", "L2", "L4", "L5", "S1"]
    g = grade_spine(spine, levels=levels, facing="left")
    assert [p.name for p in g.pairs] == ["L1/L2", "L4/L5", "L5/S1"]
    assert g.adjacency[1]["method"] == "levels" and g.adjacency[1]["gap"]
    assert g.level_source == "data"
    # levels win over geometry: a tight spine whose levels skip one is still a gap
    tight = grade_spine(straight_spine(3), levels=["L1", "L3", "L4"], facing="left")
    assert [p.name for p in tight.pairs] == ["L3/L4"]


def test_forward_slip_does_not_look_like_a_gap():
    # a grade IV slip moves U far forward but not away from L's endplate
    g = grade_spine(straight_spine(2, shifts=[-36.0, 0.0]), facing="left")
    assert len(g.pairs) == 1 and g.pairs[0].slip_pct == pytest.approx(90.0)


# --- facing, lordosis, AP ---------------------------------------------------------------------------------


def test_auto_facing_from_lordosis_both_ways():
    spine = lordotic_spine()
    g = grade_spine(spine, levels=LEVELS, facing="auto")
    assert (g.facing.facing, g.facing.source) == ("left", "auto")
    assert g.facing.votes["endplate_tilt_deg"] == pytest.approx(45.0)
    assert g.facing.confidence > 0.99
    m = grade_spine(mirror(spine), levels=LEVELS, facing="auto")
    assert m.facing.facing == "right" and m.facing.confidence == pytest.approx(g.facing.confidence)
    # same anatomy, same slips
    assert [p.slip_pct for p in m.pairs] == pytest.approx([p.slip_pct for p in g.pairs], abs=1e-9)


def test_auto_facing_on_a_straight_spine_has_no_confidence():
    g = grade_spine(straight_spine(4), facing="auto")
    assert g.facing.confidence == pytest.approx(0.5)
    assert g.facing.curvature_deg == pytest.approx(0.0, abs=1e-9)


def test_given_and_data_facing():
    spine = lordotic_spine()
    assert grade_spine(spine, facing="right").facing.source == "given"
    fe = grade_spine(spine, facing="auto", data_facing="right").facing
    assert (fe.facing, fe.source, fe.confidence) == ("right", "data", 1.0)
    with pytest.raises(ValueError, match="facing must be"):
        grade_spine(spine, facing="front")


def test_estimate_facing_direct_and_rotation_invariant():
    spine = lordotic_spine()
    rot = rotate(spine, 90.0)
    so = order_spine(rot)
    fe = estimate_facing(orient_vertebrae(rot, so), so)
    # whatever end the rotated image calls cranial, the anterior side in the image is the convex one
    conv_side = np.mean(vertebra_centres(rot)[2:4], axis=0) - np.mean(vertebra_centres(rot)[[0, 5]], axis=0)
    anterior = left_of(so.axis) if fe.facing == "left" else -left_of(so.axis)
    assert anterior @ conv_side > 0


def test_lumbar_lordosis_needs_l1_and_s1_levels():
    spine = lordotic_spine()  # L1 superior endplate at +5 deg, S1's at -40 deg: 45 deg lordosis
    assert grade_spine(spine, levels=LEVELS, facing="left").lordosis_deg == pytest.approx(45.0, abs=1e-9)
    assert grade_spine(mirror(spine), levels=LEVELS, facing="right").lordosis_deg == pytest.approx(45.0, abs=1e-9)
    assert grade_spine(spine, facing="left").lordosis_deg is None  # no levels: not named, not measured
    assert grade_spine(spine[1:], levels=LEVELS[1:], facing="left").lordosis_deg is None


def test_ap_lateral_displacement_with_side():
    spine = straight_spine(2, shifts=[4.0, 0.0])  # U 4 px to image-right over a 40 px endplate
    g = grade_spine(spine, view="ap")
    (p,) = g.pairs
    assert g.facing is None
    assert p.lateral_displacement_pct == pytest.approx(10.0)
    assert (p.lateral_side, p.patient_side) == ("right", "left")
    assert p.slip_pct is None and p.grade is None
    q = grade_spine(straight_spine(2, shifts=[-4.0, 0.0]), view="ap").pairs[0]
    assert (q.lateral_displacement_pct, q.lateral_side, q.patient_side) == (pytest.approx(-10.0), "left", "right")
    assert grade_spine(straight_spine(2, shifts=[1.0, 0.0]), view="ap").pairs[0].lateral_side == "none"


def test_lateral_pair_measures_with_missing_corners():
    upper, lower = box(105, 177.5), box(120, 212.5)
    upper[3] = np.nan  # no posterior-inferior corner: no slip, no posterior disc height
    m = lateral_pair_measures(upper, lower, "left")
    assert m["slip_pct"] is None and m["disc_height_posterior_px"] is None
    assert m["disc_height_anterior_px"] == pytest.approx(math.sqrt(325.0))


def test_unmeasurable_pair_says_why():
    spine = straight_spine(2)
    spine[0, 2:] = np.nan  # upper vertebra lost its inferior corners
    g = grade_spine(spine, facing="left")
    assert not g.pairs[0].measurable
    assert "no inferior endplate" in g.pairs[0].reason


@pytest.mark.parametrize("bad,match", [
    (np.zeros((2, 3, 2)), r"\[N, 4, 2\]"),
    (np.full((1, 4, 2), np.inf), "finite"),
])
def test_bad_input(bad, match):
    with pytest.raises(ValueError, match=match):
        grade_spine(bad)


def test_bad_view_levels_and_empty_vertebra():
    with pytest.raises(ValueError, match="view"):
        grade_spine(straight_spine(2), view="oblique")
    with pytest.raises(ValueError, match="levels has 1 entries for 2 vertebrae"):
        grade_spine(straight_spine(2), levels=["L1"])
    s = straight_spine(2)
    s[1] = np.nan
    with pytest.raises(ValueError, match="no labelled corner"):
        grade_spine(s)
    assert grade_spine(np.zeros((0, 4, 2))).pairs == []


# ---- uncertainty of the slip --------------------------------------------------------------------
def test_the_slip_sd_is_the_first_order_propagation_of_the_corner_sds():
    P, A, Q = np.array([0.0, 0.0]), np.array([100.0, 0.0]), np.array([26.0, -30.0])
    # ds/dQ = (1, 0), ds/dA = (-0.26, -0.3), ds/dP = (-0.74, 0.3) per px
    assert slip_percent_sd(P, A, Q, 1.0, 1.0, 1.0) == pytest.approx(np.sqrt(1 + 0.26 ** 2 + 0.09 + 0.74 ** 2 + 0.09))
    assert slip_percent_sd(P, A, Q, 0.0, 0.0, 2.0) == pytest.approx(2.0)
    rng = np.random.default_rng(1)
    P, A, Q = rng.normal(0, 50, (3, 2))
    sds = np.array([0.7, 1.3, 2.1])
    grads = []
    for k, X in enumerate((P, A, Q)):  # central differences of slip_percent
        g = []
        for axis in range(2):
            h = np.zeros(2)
            h[axis] = 1e-5
            args_hi = [P, A, Q]
            args_lo = [P, A, Q]
            args_hi[k], args_lo[k] = X + h, X - h
            g.append((slip_percent(args_hi[0], args_hi[1], args_hi[2])
                      - slip_percent(args_lo[0], args_lo[1], args_lo[2])) / 2e-5)
        grads.append(np.array(g))
    expected = np.sqrt(sum(sd ** 2 * g @ g for sd, g in zip(sds, grads)))
    assert slip_percent_sd(P, A, Q, *sds) == pytest.approx(expected, rel=1e-6)
    with pytest.raises(ValueError, match="zero length"):
        slip_percent_sd(P, P, Q, 1, 1, 1)



# ---- grade probabilities ------------------------------------------------------------------------
def test_grade_probabilities_are_the_normal_mass_between_the_grade_boundaries():

    def cdf(x, mean, sd):
        return 0.5 * (1 + math.erf((x - mean) / (sd * math.sqrt(2))))

    p = grade_probabilities(30.0, 4.0)
    assert p.shape == (len(GRADES),) and p.sum() == pytest.approx(1.0)
    edges = [-math.inf, -5.0, 5.0, 25.0, 50.0, 75.0, 100.0, math.inf]
    expected = [(cdf(hi, 30, 4) if hi < math.inf else 1.0) - (cdf(lo, 30, 4) if lo > -math.inf else 0.0)
                for lo, hi in zip(edges[:-1], edges[1:])]
    assert p == pytest.approx(expected)
    assert grade_probabilities(30.0, 4.0, no_slip_pct=10.0)[1] == pytest.approx(cdf(10, 30, 4) - cdf(-10, 30, 4))
    assert list(grade_probabilities(-12.0, 0.0)) == [1, 0, 0, 0, 0, 0, 0]
    assert list(grade_probabilities(60.0, 0.0)) == [0, 0, 0, 0, 1, 0, 0]
    with pytest.raises(ValueError, match="SD"):
        grade_probabilities(10.0, -1.0)


# ---- repairing a predicted chain ------------------------------------------------------------------
def _stack(n=5):
    """n stacked 100 x 60 vertebrae, 30 px discs, cranial first."""
    return np.array([quad(300, 100 + 90 * k, 100, 60) for k in range(n)])


def test_repair_chain_keeps_the_higher_score_of_a_duplicate_and_drops_a_weak_detached_end():
    c = _stack()
    dup = quad(303, 282, 100, 60)           # the middle vertebra found twice
    far = quad(320, 100 + 90 * 4 + 200, 90, 80)  # under S1, past a gap: a femoral head taken for a body
    corners = np.concatenate([c, [dup, far]])
    scores = np.array([0.99, 0.98, 0.9, 0.97, 0.96, 0.7, 0.8])
    conf = np.full((7, 4), 0.9)
    conf[6] = DETACHED_MAX_CONFIDENCE - 0.2
    r = repair_chain(corners, scores, conf)
    assert list(r.keep) == [True] * 5 + [False, False]
    assert [(p.code, p.members) for p in r.removed] == [("duplicate_vertebra", (5, 2)), ("detached_vertebra", (6,))]
    conf[6] = 0.9  # a confident body past a gap stays (a real S1 under a missed L5): the gap is reported instead
    assert list(repair_chain(corners, scores, conf).keep) == [True] * 5 + [False, True]
    conf[6] = np.nan  # no corner confidence (another model's output): nothing to judge it by, it stays
    assert list(repair_chain(corners, scores, conf).keep) == [True] * 5 + [False, True]
    assert repair_chain(np.zeros((0, 4, 2)), np.zeros(0), np.zeros((0, 4))).keep.shape == (0,)
