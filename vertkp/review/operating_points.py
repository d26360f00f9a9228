"""The operating point of each test-time augmentation mode: when to flag, and how wrong a corner is.

One row per TTA mode (``vertkp predict --tta``; a config's is
``vertkp.modeling.test_time_augmentation.tta_mode``). Each was fitted on realistic phantoms by
``vertkp benchmark tta`` (``vertkp.review.fitting.fit_operating_point``, README "Test-time
augmentation and review flags"): the thresholds that flag the fewest corners while
every flag together catches 90% of the corners off by more than 5% of the vertebra's width,
the corner error model of the slip intervals, and the logistic error risk. To refit, run the
benchmark and copy its ``benchmark.json["calibration"][variant]["fit_on_tuning"]`` here.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Tuple

from .flags import FlagThresholds
from .uncertainty import CornerUncertainty

__all__ = ["OperatingPoint", "OPERATING_POINTS"]


@dataclass(frozen=True)
class OperatingPoint:
    """What one TTA mode ships with.

    Attributes:
        thresholds: when to flag (:class:`FlagThresholds`).
        uncertainty: the corner error model of the slip intervals (:class:`CornerUncertainty`).
        risk_model: (weights, bias) of the logistic probability that a corner is off by more
            than 5% of its vertebra's width, on ``vertkp.review.risk_features``' features
            (2 without TTA, 3 with).
    """

    thresholds: FlagThresholds
    uncertainty: CornerUncertainty
    risk_model: Tuple[Tuple[float, ...], float]


# TTA mode -> its operating point (the classes' defaults are flip's). One pass has no TTA
# spread (the detection score then helps); flip,scale was not fitted on its own and uses flip's.
OPERATING_POINTS: Dict[str, OperatingPoint] = {
    "none": OperatingPoint(FlagThresholds(corner=0.775, vertebra=0.95),
                           CornerUncertainty(floor_pct_width=2.45, spread_factor=0.0),
                           ((6.233, 2.902), -4.368)),
    "flip": OperatingPoint(FlagThresholds(corner=0.75, vertebra=0.5, spread_pct=1.25),
                           CornerUncertainty(floor_pct_width=1.85, spread_factor=1.0),
                           ((4.772, 0.772, 0.401), -4.547)),
}
OPERATING_POINTS["flip,scale"] = OPERATING_POINTS["flip"]
