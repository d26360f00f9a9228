"""How uncertain a predicted corner is, and what that makes of a pair's slip.

numpy only. A corner's position error is modelled as isotropic with a standard
deviation per axis of

    sd = sqrt((floor_pct_width / 100 * w) ** 2 + (spread_factor * spread) ** 2)   px

where w is the vertebra's width (mean endplate length, px) and spread the
test-time augmentation passes' disagreement on the corner (px,
``vertkp.modeling.fusion``; 0 without TTA). The slip's standard deviation
follows by first-order propagation (``vertkp.grading.slip_percent_sd``), and its
interval is slip +- z sd; the pairs' grade probabilities make an image's risk
(:func:`image_risk`). The fitted models, per TTA mode, are
``vertkp.review.OPERATING_POINTS``'s.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence, Tuple

import numpy as np

from ..grading.slip import slip_percent, slip_percent_sd
from ..keypoints import anatomical_corners

__all__ = ["CornerUncertainty", "corner_sd_px", "spread_pct_width", "follow_orientation", "slip_distribution",
           "image_risk"]


@dataclass(frozen=True)
class CornerUncertainty:
    """The corner error model (module docstring); the defaults are the flip operating point's
    (``vertkp.review.OPERATING_POINTS``).

    Attributes:
        floor_pct_width: error SD per axis of a corner the passes agree on, % of the vertebra width.
        spread_factor: error SD per px of TTA spread.
        z: half-width of the slip interval in SDs (1.96: a 95% interval for Gaussian errors).
    """

    floor_pct_width: float = 0.75
    spread_factor: float = 1.0
    z: float = 1.96

    def interval(self, slip_pct: float, sd_pp: float) -> Tuple[float, float]:
        """(low, high) slip %, the interval slip +- z sd (sd in percentage points,
        :func:`slip_distribution`)."""
        return float(slip_pct - self.z * sd_pp), float(slip_pct + self.z * sd_pp)


def spread_pct_width(spread_px, width_px) -> np.ndarray:
    """TTA spread [N, 4] px as % of each vertebra's width [N] px (NaN stays NaN)."""
    s = np.asarray(spread_px, dtype=np.float64)
    w = np.asarray(width_px, dtype=np.float64).reshape(-1, 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(w > 0, 100.0 * s / np.where(w > 0, w, 1.0), np.nan)


def corner_sd_px(width_px, spread_px, model: CornerUncertainty = CornerUncertainty()) -> np.ndarray:
    """Error SD per axis [N, 4], px, of corners with TTA spread [N, 4] px (NaN or no TTA: 0)
    on vertebrae of width [N] px."""
    w = np.asarray(width_px, dtype=np.float64).reshape(-1, 1)
    s = np.nan_to_num(np.asarray(spread_px, dtype=np.float64), nan=0.0)
    return np.sqrt((model.floor_pct_width / 100.0 * w) ** 2 + (model.spread_factor * s) ** 2)


def follow_orientation(values: np.ndarray, corners: np.ndarray, oriented: np.ndarray) -> np.ndarray:
    """Per-corner ``values`` [4] reordered as the grading reordered ``corners`` [4, 2] into
    ``oriented`` [4, 2] (``SpineGrading.oriented``: a vertebra turned past 45 degrees has its
    corners renamed): each oriented corner takes the value of the corner at its place."""
    d = np.linalg.norm(np.asarray(oriented)[:, None, :] - np.asarray(corners)[None, :, :], axis=-1)
    return np.asarray(values)[np.argmin(np.nan_to_num(d, nan=np.inf), axis=1)]


def slip_distribution(upper: np.ndarray, lower: np.ndarray, sd_upper: np.ndarray, sd_lower: np.ndarray,
                      facing: str) -> Optional[Tuple[float, float]]:
    """(slip %, its SD in percentage points) of one lateral pair from its corners' error SDs;
    None when a corner it needs is missing.

    Args:
        upper, lower: corners [4, 2] px (TL, TR, BL, BR) of the upper and lower vertebra.
        sd_upper, sd_lower: their error SDs per axis [4], px (:func:`corner_sd_px`).
        facing: "left" or "right" (which image side is anterior).
    """
    u, lo = anatomical_corners(upper, facing), anatomical_corners(lower, facing)
    su = anatomical_corners(np.repeat(np.asarray(sd_upper, dtype=np.float64)[:, None], 2, axis=1), facing)
    sl = anatomical_corners(np.repeat(np.asarray(sd_lower, dtype=np.float64)[:, None], 2, axis=1), facing)
    p, a, q = lo["posterior_superior"], lo["anterior_superior"], u["posterior_inferior"]
    if not all(np.all(np.isfinite(v)) for v in (p, a, q)):
        return None
    s = slip_percent(p, a, q)
    sd = slip_percent_sd(p, a, q, sl["posterior_superior"][0], sl["anterior_superior"][0], su["posterior_inferior"][0])
    return s, sd


def image_risk(grade_probability: Sequence[Optional[float]], facing_confidence: Optional[float] = None,
               implausible: bool = False) -> Optional[float]:
    """Probability in [0, 1] that some grade of an image is wrong (``vertkp.inference.SpinePrediction.risk``).

    Args:
        grade_probability: per pair, the probability of its reported grade (None: not graded,
            left out).
        facing_confidence: confidence of an estimated facing (a wrong facing turns every slip's
            sign), None when the facing was given or the view is AP.
        implausible: an unrepaired plausibility finding: risk 1.

    Returns:
        1 - prod(grade_probability) * facing_confidence, or None with no graded pair.
    """
    if implausible:
        return 1.0
    p = [float(x) for x in grade_probability if x is not None]
    if not p:
        return None
    right = float(np.prod(p)) * (1.0 if facing_confidence is None else float(facing_confidence))
    return float(min(1.0, max(0.0, 1.0 - right)))
