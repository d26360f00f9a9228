"""Naming predicted vertebrae by level: the sacrum at the bottom of a lateral view, counted upwards.

A lumbar lateral film is taken to show the sacrum, so the most caudal vertebra found is
usually S1; it is not when S1 was missed or cut by the border, or when a false body sits
below it. What tells S1 apart is its disc: L5/S1 is the most wedged disc of the lumbar spine
(a lordotic intervertebral angle of 10-15 degrees against about 5-10 at L4/L5). The
probability that the bottom vertebra is S1 is a logistic function of two angles of the
graded chain (:func:`bottom_features`):

* the intervertebral angle of the bottom pair (``PairMeasures.intervertebral_angle_deg``, deg,
  lordotic positive), 0 when the bottom pair is not graded;
* that angle minus the angle of the pair above (the bottom pair's when there is none).

The weights (:data:`BOTTOM_S1_MODEL`) were fitted with ``vertkp.review.fit_logistic`` on the
`make demo` model's repaired predictions of 88 held-out realistic phantom images (seed 11), the
bottom vertebra of each lateral image and the same chain without its S1 (a simulated missed
S1), and the bias moved to the share of images whose bottom really is S1 there (91%). Of the
candidate features (also the bottom body's detection score, corner confidence, size, aspect and
distance to the border) the two angles alone ranked best on other sets: the network's own
signals told a simulated miss apart but not a real one. Only the geometry of the chain enters,
so other models are judged alike. Accuracy: README, "A consistent chain, named levels and flags
that separate".

Names go from S1 upwards over consecutive neighbours and stop at the first gap (a vertebra
may be missed there); above it they stay positional ("#k from bottom").
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional

import numpy as np

from ..anatomy import levels_up_from

__all__ = ["BOTTOM_S1_MODEL", "MIN_LEVEL_CONFIDENCE", "LevelNaming", "bottom_features", "bottom_s1_probability",
           "name_levels"]

# (weights, bias) of P(bottom vertebra is S1) on bottom_features (module docstring).
BOTTOM_S1_MODEL = ((0.332, -0.094), -0.403)
# Levels are named only when P(bottom is S1) reaches this: on the fitting set it named 73% of the
# lateral images, 3.6% of them wrongly (0.85: 89%, 4.5% wrongly).
MIN_LEVEL_CONFIDENCE = 0.9


@dataclass(frozen=True)
class LevelNaming:
    """What :func:`name_levels` decided for one graded spine.

    Attributes:
        levels: per input vertebra (the grading's indices), its level or None (positional);
            None when nothing is named.
        confidence: P(the bottom vertebra is S1), None where it is not estimated (AP view,
            fewer than two vertebrae).
        note: why nothing or not everything is named, "" otherwise.
    """

    levels: Optional[List[Optional[str]]]
    confidence: Optional[float]
    note: str = ""


def bottom_features(grading) -> Optional[np.ndarray]:
    """float [2] (module docstring) of a :class:`vertkp.grading.SpineGrading`, or None on an AP
    view or with fewer than two vertebrae."""
    order = list(grading.order)
    if grading.view != "lateral" or len(order) < 2:
        return None

    def angle(upper, lower) -> Optional[float]:
        p = grading.pair(upper, lower)
        return None if p is None else p.intervertebral_angle_deg

    bottom = angle(order[-2], order[-1])
    above = angle(order[-3], order[-2]) if len(order) >= 3 else None
    b = 0.0 if bottom is None else float(bottom)
    return np.array([b, b - (b if above is None else float(above))])


def bottom_s1_probability(grading, model=BOTTOM_S1_MODEL) -> Optional[float]:
    """P(the most caudal vertebra of ``grading`` is S1) in [0, 1]; None where
    :func:`bottom_features` is."""
    f = bottom_features(grading)
    if f is None:
        return None
    weights, bias = model
    z = float(f @ np.asarray(weights, dtype=np.float64) + bias)
    return float(np.exp(-np.logaddexp(0.0, -z)))


def name_levels(grading, min_confidence: float = MIN_LEVEL_CONFIDENCE) -> LevelNaming:
    """Levels of a graded spine's vertebrae: S1 at the bottom, counted upwards to the first gap,
    when :func:`bottom_s1_probability` reaches ``min_confidence``."""
    p = bottom_s1_probability(grading)
    if p is None:  # on an AP view positional names are the rule, not worth a note
        return LevelNaming(None, None, "" if grading.view != "lateral" else "levels need at least two vertebrae")
    if p < min_confidence:
        return LevelNaming(None, p, f"levels not named: the bottom vertebra is S1 with probability {p:.2f} "
                                    f"< {min_confidence:g} (names stay by position)")
    order = list(grading.order)
    gap_above = {lo for _, lo in grading.gaps}
    levels: List[Optional[str]] = [None] * len(order)
    note = ""
    for name, i in zip(levels_up_from("S1", len(order)), reversed(order)):
        levels[i] = name
        if name is not None and i in gap_above:
            note = f"levels named up to {name}: a vertebra seems missed above it"
            break
    return LevelNaming(levels, p, note)
