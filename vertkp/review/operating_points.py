"""The operating point of each test-time augmentation mode: when to flag, and how wrong a corner is.

One row per TTA mode (``vertkp predict --tta``; a config's is
``vertkp.modeling.test_time_augmentation.tta_mode``). "flip" was fitted by ``vertkp benchmark
review`` for the current `make demo` model on its tuning set of realistic phantoms (README, "A
consistent chain, named levels and flags that separate"): the corner thresholds that catch the
most large errors while flagging at most 15% of the corners and the logistic error risk
(``vertkp.review.fit_operating_point``), and the corner error floor with the ``grade_doubt``
threshold that catch 80% of the wrong grades flagging the fewest pairs
(``vertkp.review.fit_grade_doubt``); to refit, copy that benchmark's
``benchmark.json["fit_on_tuning"]`` here. "none" is the earlier model's fit by ``vertkp benchmark
tta`` (its ``grade_doubt`` is flip's).
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
    "flip": OperatingPoint(FlagThresholds(corner=0.475, vertebra=0.85, spread_pct=2.5, grade_doubt=0.122),
                           CornerUncertainty(floor_pct_width=0.75, spread_factor=1.0),
                           ((7.113, 1.854, 0.196), -5.669)),
}
OPERATING_POINTS["flip,scale"] = OPERATING_POINTS["flip"]
