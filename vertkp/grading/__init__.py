"""Clinical measures from vertebral corners: slip %, Meyerding grade, spine geometry."""
from .slip import (  # noqa: F401
    DEFAULT_NO_SLIP_PCT,
    GRADE_NAMES,
    NO_SLIP,
    RETROLISTHESIS,
    grade_name,
    meyerding_grade,
    slip_percent,
)
