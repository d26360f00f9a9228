"""Clinical measures from vertebral corners: slip %, Meyerding grade, spine geometry.

``grade_spine`` is the entry point: it orders the vertebrae of one image
cranial to caudal, re-derives their anatomical corners in the spine frame,
finds gaps, decides the facing and measures every adjacent pair. The pieces
are public too: ``geometry`` (order, orientation, gaps), ``facing``,
``measures`` (per pair and per spine) and ``slip`` (slip %, Meyerding grade).
"""
from .facing import FACING_SIGMA_DEG, FACINGS, FacingEstimate, estimate_facing, resolve_facing  # noqa: F401
from .geometry import (  # noqa: F401
    DEFAULT_GAP_FACTOR,
    LEVELS,
    ROTATED_DEG,
    SpineOrder,
    canonical_up_axes,
    find_gaps,
    left_of,
    level_index,
    orient_vertebrae,
    order_spine,
    vertebra_centres,
    vertebra_heights,
    vertebra_sizes,
)
from .grade import VIEWS, PairMeasures, SpineGrading, grade_spine, pair_name, vertebra_name  # noqa: F401
from .measures import ap_pair_measures, lateral_pair_measures, lumbar_lordosis_deg, wedge_angle_deg  # noqa: F401
from .slip import (  # noqa: F401
    DEFAULT_NO_SLIP_PCT,
    GRADE_NAMES,
    NO_SLIP,
    RETROLISTHESIS,
    distance_to_grade_boundary,
    grade_boundaries,
    grade_name,
    meyerding_grade,
    slip_percent,
)
