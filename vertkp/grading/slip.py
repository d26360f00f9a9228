"""Slip percentage, Meyerding grade and lateral displacement of one adjacent pair.

The definitions are in ``docs/clinical.md`` ("Slip percentage", "Meyerding
grade", "AP views"). Coordinates are image pixels (x right, y down) or
millimetres: both percentages are scale free, so both give the same number.
"""
from __future__ import annotations

import math

import numpy as np

__all__ = [
    "DEFAULT_NO_SLIP_PCT",
    "GRADES",
    "GRADE_NAMES",
    "RETROLISTHESIS",
    "NO_SLIP",
    "slip_percent",
    "slip_percent_sd",
    "lateral_displacement_percent",
    "meyerding_grade",
    "grade_name",
    "grade_boundaries",
    "distance_to_grade_boundary",
    "grade_probabilities",
    "grade_doubt",
]

# Grades are ordinal integers so that confusion matrices and weighted kappa
# can use them directly: -1 retrolisthesis (no Meyerding grade), 0 no slip
# (inside the no-slip band), 1..5 Meyerding I..V.
RETROLISTHESIS = -1
NO_SLIP = 0
# Every grade in ordinal order: the row/column order of confusion matrices,
# kappa and summaries.
GRADES = (RETROLISTHESIS, NO_SLIP, 1, 2, 3, 4, 5)
GRADE_NAMES = dict(zip(GRADES, ("retrolisthesis", "none", "I", "II", "III", "IV", "V")))
# |slip| at or under this many percent is called "no slip".
DEFAULT_NO_SLIP_PCT = 5.0


def _percent_of_endplate(offset: np.ndarray, endplate: np.ndarray):
    """100 * offset . endplate / |endplate|^2 over arrays [..., 2]: float or array [...]."""
    w2 = np.sum(endplate * endplate, axis=-1)
    if np.any(w2 <= 0):
        raise ValueError("the lower vertebra's superior endplate has zero length")
    out = 100.0 * np.sum(offset * endplate, axis=-1) / w2
    return float(out) if np.ndim(out) == 0 else out


def slip_percent(lower_posterior_superior, lower_anterior_superior, upper_posterior_inferior):
    """Slip of the upper vertebra U over the lower vertebra L, in percent.

    Taillard's reference (``docs/clinical.md``, "Slip percentage"): with P =
    L's posterior-superior corner, A = L's anterior-superior corner and Q =
    U's posterior-inferior corner, w = |A - P| and d = (Q - P) . (A - P) / w,
    slip % = 100 * d / w. Positive: U slipped forward (anterolisthesis);
    negative: backwards (retrolisthesis).

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
    return _percent_of_endplate(q - p, a - p)


def slip_percent_sd(lower_posterior_superior, lower_anterior_superior, upper_posterior_inferior,
                    sd_posterior_superior, sd_anterior_superior, sd_posterior_inferior) -> float:
    """Standard deviation of :func:`slip_percent`, in percentage points, from the three
    corners' position errors (first-order propagation).

    Each corner's error is taken as independent and isotropic with the given standard
    deviation per axis (px, or the corners' unit). With e = A - P, d = Q - P and
    s = 100 d . e / |e|^2: ds/dQ = 100 e / |e|^2, ds/dA = 100 (d - 2 s e / 100) / |e|^2,
    ds/dP = -(ds/dQ + ds/dA); the variance is the sum of sd^2 |ds/dX|^2.

    Args:
        lower_posterior_superior, lower_anterior_superior, upper_posterior_inferior:
            P, A, Q, arrays [2].
        sd_posterior_superior, sd_anterior_superior, sd_posterior_inferior: their
            standard deviations per axis (>= 0).
    """
    p, a, q = (np.asarray(v, dtype=np.float64) for v in
               (lower_posterior_superior, lower_anterior_superior, upper_posterior_inferior))
    e, d = a - p, q - p
    w2 = float(e @ e)
    if w2 <= 0:
        raise ValueError("the lower vertebra's superior endplate has zero length")
    s = 100.0 * float(d @ e) / w2
    g_q = 100.0 * e / w2
    g_a = (100.0 * d - 2.0 * s * e) / w2
    g_p = -(g_q + g_a)
    var = sum(float(sd) ** 2 * float(g @ g) for sd, g in
              ((sd_posterior_superior, g_p), (sd_anterior_superior, g_a), (sd_posterior_inferior, g_q)))
    return float(np.sqrt(var))


def lateral_displacement_percent(lower_left, lower_right, upper_left, upper_right):
    """Lateral displacement of U over L on an AP view, in percent (``lateral_displacement_pct``).

    ``docs/clinical.md``, "AP views": with w = |lower_right - lower_left| (L's
    superior endplate), e = (lower_right - lower_left) / w, m_L its midpoint
    and m_U the midpoint of U's inferior endplate (upper_left, upper_right),
    lateral displacement % = 100 * (m_U - m_L) . e / w. Positive: U displaced
    to the spine-right (image-right on an upright image). Midpoints make it
    independent of the two bodies' widths.

    Args:
        lower_left, lower_right: L's superior corners, spine-left and
            spine-right, arrays [..., 2].
        upper_left, upper_right: U's inferior corners, arrays [..., 2].

    Returns:
        float or array [...] of percentages.

    Raises:
        ValueError: when L's superior endplate has zero length.
    """
    ll, lr, ul, ur = (np.asarray(v, dtype=np.float64) for v in (lower_left, lower_right, upper_left, upper_right))
    return _percent_of_endplate(0.5 * (ul + ur) - 0.5 * (ll + lr), lr - ll)


def meyerding_grade(slip_pct, no_slip_pct: float = DEFAULT_NO_SLIP_PCT):
    """Meyerding grade of a slip percentage (``docs/clinical.md``, "Meyerding grade").

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


def grade_probabilities(slip_pct: float, sd_pp: float, no_slip_pct: float = DEFAULT_NO_SLIP_PCT) -> np.ndarray:
    """Probability of each grade of :data:`GRADES` (retrolisthesis, none, I..V), float [7]
    summing to 1, for a slip known as a normal distribution of mean ``slip_pct`` and standard
    deviation ``sd_pp`` (percentage points): the mass between consecutive
    :func:`grade_boundaries`. ``sd_pp`` 0: all of it on ``meyerding_grade(slip_pct)``."""
    if not (np.isfinite(slip_pct) and np.isfinite(sd_pp) and sd_pp >= 0):
        raise ValueError(f"slip and its SD must be finite, the SD >= 0, got {slip_pct!r} +- {sd_pp!r}")
    if sd_pp == 0:
        out = np.zeros(len(GRADES))
        out[GRADES.index(meyerding_grade(slip_pct, no_slip_pct))] = 1.0
        return out
    cdf = [0.0] + [0.5 * (1.0 + math.erf((b - slip_pct) / (sd_pp * math.sqrt(2.0))))
                   for b in grade_boundaries(no_slip_pct)] + [1.0]
    return np.diff(np.asarray(cdf))


def grade_doubt(slip_pct: float, sd_pp: float, no_slip_pct: float = DEFAULT_NO_SLIP_PCT) -> float:
    """Probability that the grade read from ``slip_pct`` (:func:`meyerding_grade`) is not the
    grade of the true slip, for a slip known as normal with SD ``sd_pp`` percentage points:
    1 - its :func:`grade_probabilities` entry. What ``borderline_grade`` is raised on."""
    p = grade_probabilities(slip_pct, sd_pp, no_slip_pct)
    return float(1.0 - p[GRADES.index(meyerding_grade(slip_pct, no_slip_pct))])
