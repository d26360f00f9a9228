"""Slip percentage and Meyerding grade of one adjacent pair (CLINICAL.md).

Coordinates are image pixels (x right, y down) or millimetres: slip % is scale
free, so both give the same number.
"""
from __future__ import annotations

import numpy as np

__all__ = [
    "DEFAULT_NO_SLIP_PCT",
    "GRADE_NAMES",
    "RETROLISTHESIS",
    "NO_SLIP",
    "slip_percent",
    "meyerding_grade",
    "grade_name",
    "grade_boundaries",
    "distance_to_grade_boundary",
]

# Grades are ordinal integers so that confusion matrices and weighted kappa
# can use them directly: -1 retrolisthesis (no Meyerding grade), 0 no slip
# (inside the no-slip band), 1..5 Meyerding I..V.
RETROLISTHESIS = -1
NO_SLIP = 0
GRADE_NAMES = {-1: "retrolisthesis", 0: "none", 1: "I", 2: "II", 3: "III", 4: "IV", 5: "V"}
# |slip| at or under this many percent is called "no slip".
DEFAULT_NO_SLIP_PCT = 5.0


def slip_percent(lower_posterior_superior, lower_anterior_superior, upper_posterior_inferior):
    """Slip of the upper vertebra U over the lower vertebra L, in percent.

    Taillard's reference (CLINICAL.md): with P = L's posterior-superior
    corner, A = L's anterior-superior corner and Q = U's posterior-inferior
    corner, w = |A - P| and d = (Q - P) . (A - P) / w, slip % = 100 * d / w.
    Positive: U slipped forward (anterolisthesis); negative: backwards
    (retrolisthesis).

    Args:
        lower_posterior_superior: P, array [..., 2].
        lower_anterior_superior: A, array [..., 2].
        upper_posterior_inferior: Q, array [..., 2].

    Returns:
        float or array [...] of slip percentages.

    Raises:
        ValueError: when an endplate has zero length.
    """
    p = np.asarray(lower_posterior_superior, dtype=np.float64)
    a = np.asarray(lower_anterior_superior, dtype=np.float64)
    q = np.asarray(upper_posterior_inferior, dtype=np.float64)
    ap = a - p
    w2 = np.sum(ap * ap, axis=-1)
    if np.any(w2 <= 0):
        raise ValueError("the lower vertebra's superior endplate has zero length")
    out = 100.0 * np.sum((q - p) * ap, axis=-1) / w2
    return float(out) if np.ndim(out) == 0 else out


def meyerding_grade(slip_pct, no_slip_pct: float = DEFAULT_NO_SLIP_PCT):
    """Meyerding grade of a slip percentage.

    Intervals (upper bounds inclusive): slip < -no_slip_pct -> -1
    (retrolisthesis); |slip| <= no_slip_pct -> 0 (no slip); up to 25 -> 1 (I);
    (25, 50] -> 2 (II); (50, 75] -> 3 (III); (75, 100] -> 4 (IV);
    over 100 -> 5 (V, spondyloptosis).

    Args:
        slip_pct: float or array of slip percentages.
        no_slip_pct: half-width of the no-slip band, in percent (>= 0, < 25).

    Returns:
        int, or int array of the same shape.
    """
    if not 0 <= no_slip_pct < 25:
        raise ValueError(f"no_slip_pct must be in [0, 25), got {no_slip_pct}")
    s = np.asarray(slip_pct, dtype=np.float64)
    if np.any(~np.isfinite(s)):
        raise ValueError("slip percentage is not finite")
    grade = np.ceil(s / 25.0).clip(1, 5).astype(int)
    grade = np.where(np.abs(s) <= no_slip_pct, NO_SLIP, grade)
    grade = np.where(s < -no_slip_pct, RETROLISTHESIS, grade)
    return int(grade) if grade.ndim == 0 else grade


def grade_name(grade: int) -> str:
    """Readable name of an integer grade: "retrolisthesis", "none", "I".."V"."""
    return GRADE_NAMES[int(grade)]


def grade_boundaries(no_slip_pct: float = DEFAULT_NO_SLIP_PCT) -> tuple:
    """The slip percentages where :func:`meyerding_grade` changes:
    (-no_slip_pct, no_slip_pct, 25, 50, 75, 100)."""
    return (-float(no_slip_pct), float(no_slip_pct), 25.0, 50.0, 75.0, 100.0)


def distance_to_grade_boundary(slip_pct: float, no_slip_pct: float = DEFAULT_NO_SLIP_PCT) -> float:
    """Percentage points from ``slip_pct`` to the nearest grade boundary
    (:func:`grade_boundaries`); a slip this close to a boundary could change
    grade with a small corner error."""
    return float(min(abs(float(slip_pct) - b) for b in grade_boundaries(no_slip_pct)))
