"""Clinical measures from vertebral corners: slip %, Meyerding grade, spine geometry.

``grade_spine`` is the entry point: it orders the vertebrae of one image
cranial to caudal, re-derives their anatomical corners in the spine frame,
finds gaps, decides the facing and measures every adjacent pair. The pieces
are public too, one job per module:

* ``vertebrae``: primitives over corner arrays [N, 4, 2] (``left_of``,
  centres, heights, ``vertebra_width``, ``vertebra_size``, ``vertebra_area``,
  ``canonical_up_axes``);
* ``order``: cranio-caudal order (``SpineOrder``, ``order_spine``);
* ``orientation``: corner names in the spine frame (``orient_vertebrae``);
* ``adjacency``: which consecutive vertebrae are neighbours (``find_gaps``);
* ``facing``: which side is anterior on a lateral view;
* ``measures``: per-pair and per-spine measures (angles, disc heights, AP);
* ``slip``: slip %, lateral displacement %, Meyerding grade;
* ``grade``: ``grade_spine`` and its result classes.

Levels, views and facings are named in ``vertkp.anatomy``; the clinical
definitions are in ``docs/clinical.md``.
"""
from .adjacency import DEFAULT_GAP_FACTOR, find_gaps
from .facing import FACING_SIGMA_DEG, FacingEstimate, estimate_facing, resolve_facing
from .grade import PairMeasures, SpineGrading, grade_spine, pair_name, vertebra_name
from .measures import ap_pair_measures, lateral_pair_measures, lumbar_lordosis_deg, wedge_angle_deg
from .order import ROTATED_DEG, SpineOrder, order_spine
from .orientation import orient_vertebrae
from .slip import (
    DEFAULT_NO_SLIP_PCT,
    GRADE_NAMES,
    GRADES,
    NO_SLIP,
    RETROLISTHESIS,
    distance_to_grade_boundary,
    grade_boundaries,
    grade_probabilities,
    grade_doubt,
    grade_name,
    lateral_displacement_percent,
    meyerding_grade,
    slip_percent,
    slip_percent_sd,
)
from .vertebrae import (
    canonical_up_axes,
    left_of,
    vertebra_area,
    vertebra_centres,
    vertebra_heights,
    vertebra_size,
    vertebra_width,
)

__all__ = [
    # grade
    "grade_spine", "PairMeasures", "SpineGrading", "pair_name", "vertebra_name",
    # order, orientation, adjacency
    "SpineOrder", "order_spine", "ROTATED_DEG", "orient_vertebrae", "find_gaps", "DEFAULT_GAP_FACTOR",
    # vertebrae
    "left_of", "vertebra_centres", "vertebra_heights", "vertebra_width", "vertebra_size", "vertebra_area",
    "canonical_up_axes",
    # facing
    "FacingEstimate", "FACING_SIGMA_DEG", "estimate_facing", "resolve_facing",
    # measures
    "lateral_pair_measures", "ap_pair_measures", "wedge_angle_deg", "lumbar_lordosis_deg",
    # slip
    "slip_percent", "slip_percent_sd", "lateral_displacement_percent", "meyerding_grade", "grade_name",
    "grade_boundaries", "distance_to_grade_boundary", "grade_probabilities", "grade_doubt", "GRADES", "GRADE_NAMES", "RETROLISTHESIS", "NO_SLIP",
    "DEFAULT_NO_SLIP_PCT",
]
