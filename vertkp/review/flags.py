"""What calls for a human look at a prediction: the flag codes and when they are raised.

``vertkp predict`` (``vertkp.inference.result``) raises the flags and the calibration
(``vertkp.review.calibration``) measures how many of the large corner errors they catch,
both by :func:`corner_flags`, the one rule of the per-corner flags.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Mapping

import numpy as np

__all__ = ["FLAGS", "FlagThresholds", "corner_flags", "flag_masks"]

# Flag code -> what it means. Codes are what predictions.json, report.csv and the overlays carry.
FLAGS = {
    "no_vertebrae": "no vertebra was detected above the score threshold",
    "suspected_missed_vertebra": "two consecutive vertebrae are too far apart to be neighbours: "
                                 "one between them was probably missed (the pair is not graded)",
    "implausible_chain": "the vertebrae break a rule of a spine that could not be repaired (crossed or non-convex "
                         "outline, overlapping bodies, implausible slip or disc): see the findings",
    "uncertain_facing": "the facing was estimated from the spine's curvature with low confidence: "
                        "check it, or give it (--facing left|right)",
    "low_confidence_vertebra": "a vertebra's detection score is under the vertebra threshold",
    "low_confidence_corner": "a corner's heatmap confidence is under the corner threshold",
    "unstable_corner": "the test-time augmentation passes disagree on a corner by more than the spread "
                       "threshold (% of the vertebra width), or one pass alone found the vertebra",
    "borderline_grade": "the probability that the pair's grade is wrong (from its corners' uncertainty) is at "
                        "least the grade-doubt threshold",
    "not_measurable": "the pair's slip could not be measured",
}


@dataclass(frozen=True)
class FlagThresholds:
    """When to flag. Confidences are in [0, 1].

    The defaults are the flip operating point; every TTA mode's thresholds are in
    ``vertkp.review.OPERATING_POINTS``.

    Attributes:
        corner: corner confidence (``vertkp.keypoint_decoding.corner_confidence``) under this is low.
        vertebra: detection score under this is low (scores under the
            predictor's score threshold are not reported at all).
        facing: an estimated facing ("auto") with confidence under this is uncertain.
        spread_pct: a corner whose TTA spread (``vertkp.inference.VertebraResult.corner_spread_pct``) is over
            this, % of the vertebra width, is unstable (only with test-time augmentation).
        grade_doubt: a pair whose probability of another grade than the reported one
            (``vertkp.grading.grade_doubt`` of its slip distribution) is at least this is
            ``borderline_grade``.
    """

    corner: float = 0.475
    vertebra: float = 0.85
    facing: float = 0.8
    spread_pct: float = 2.5
    grade_doubt: float = 0.122


def corner_flags(confidence, score, spread_pct, thresholds: FlagThresholds, tta: bool) -> Dict[str, np.ndarray]:
    """Which corners raise each per-corner flag, boolean arrays of ``confidence``'s shape.

    Args:
        confidence: corner heatmap confidences, e.g. [N, 4].
        score: the detection score of each corner's vertebra, broadcastable to it (e.g. [N, 1]).
        spread_pct: TTA spreads, % of the vertebra width, its shape (NaN: one pass alone found it);
            read only with ``tta``.
        thresholds: :class:`FlagThresholds` (its values may be arrays that broadcast against the
            corners: ``vertkp.review.fitting.choose_thresholds`` flags a grid of them at once).
        tta: whether the prediction fused TTA passes ("unstable_corner" only then).

    Returns:
        {"low_confidence_vertebra", "low_confidence_corner"[, "unstable_corner"]: bool arrays}.
    """
    conf = np.asarray(confidence, dtype=np.float64)
    out = {"low_confidence_vertebra": np.broadcast_to(np.asarray(score, dtype=np.float64) < thresholds.vertebra,
                                                      conf.shape),
           "low_confidence_corner": conf < thresholds.corner}
    if tta:
        sp = np.asarray(spread_pct, dtype=np.float64)
        out["unstable_corner"] = np.isnan(sp) | (np.nan_to_num(sp, nan=0.0) > thresholds.spread_pct)
    return out



def flag_masks(table: Mapping[str, np.ndarray], thresholds: FlagThresholds, tta: bool) -> Dict[str, np.ndarray]:
    """:func:`corner_flags` of the corners of a table [n] ("confidence", "score", "spread_pct",
    ``vertkp.review.corner_table``) plus "any", every flag together."""
    flags = corner_flags(table["confidence"], table["score"], table["spread_pct"], thresholds, tta)
    flags["any"] = np.any(np.stack(list(flags.values())), axis=0)
    return flags
