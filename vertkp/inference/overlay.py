"""Overlay pictures of a prediction: what a clinician looks at.

:func:`draw_overlay` returns a BGR uint8 image of the input's size with, per
vertebra, its outline and its 4 corners coloured by name (:data:`CORNER_COLORS`),
its name (level or position); per pair, the slip % and Meyerding grade next to
the disc, coloured by grade (:data:`GRADE_COLORS`); suspected missed vertebrae
as a red dashed line; flagged items in magenta, and only they (a low-confidence
or unstable corner ringed, a low-confidence vertebra's outline, a flagged pair's
label); a header with the facing and the image's flags, and a corner legend.
"""
from __future__ import annotations

from typing import Optional

import cv2
import numpy as np

from ..drawing import (CORNER_COLORS, HIGHLIGHT_COLOR, OUTLINE_COLOR, draw_text, drawing_scale,
                       text_size, to_bgr, wrap_text)
from ..keypoints import KEYPOINT_NAMES, OUTLINE_ORDER
from ..review import corner_flags
from .result import SpinePrediction

__all__ = ["GRADE_COLORS", "FLAG_COLOR", "draw_overlay", "pair_label", "short_name"]

# BGR colours of the Meyerding grades; flagged items are drawn in vertkp.drawing's highlight colour.
GRADE_COLORS = {"retrolisthesis": (255, 255, 0), "none": (235, 235, 235), "I": (0, 230, 255),
                "II": (0, 150, 255), "III": (0, 60, 255), "IV": (40, 0, 220), "V": (120, 0, 160)}
FLAG_COLOR = HIGHLIGHT_COLOR
# The flags raised by single corners, ringed on the overlay where they fire.
CORNER_FLAGS = ("low_confidence_corner", "unstable_corner")


def short_name(name: str) -> str:
    """A vertebra's name on the overlay: "L4", or "#3" for "#3 from bottom"."""
    return name.split(" ")[0]


def pair_label(pair, view: str = "lateral") -> str:
    """Text of one pair on the overlay: "L4/L5 +37.5% II" (lateral), "#3/#2 +8.0% right" (AP),
    "... n/m" when not measurable; " ?" when the pair is flagged."""
    if view == "lateral":
        value = "n/m" if pair.slip_pct is None else f"{pair.slip_pct:+.1f}% {pair.grade_name}"
    else:
        value = ("n/m" if pair.lateral_displacement_pct is None
                 else f"{pair.lateral_displacement_pct:+.1f}% {pair.lateral_side}")
    name = f"{short_name(pair.upper_name)}/{short_name(pair.lower_name)}"
    return f"{name} {value}" + (" ?" if pair.flags else "")


def _flagged_corners(vertebra, thresholds) -> np.ndarray:
    """bool [4]: the corners of ``vertebra`` that raise one of its per-corner flags, low
    confidence or unstable (``vertkp.review.corner_flags``, the rule that raised them); none
    of a vertebra that has neither flag."""
    raised = corner_flags(vertebra.corner_scores, vertebra.score, vertebra.corner_spread_pct, thresholds,
                          tta="unstable_corner" in vertebra.flags)
    ring = np.zeros(len(vertebra.corners), dtype=bool)
    for flag in CORNER_FLAGS:
        if flag in vertebra.flags and flag in raised:
            ring |= np.asarray(raised[flag], dtype=bool)
    return ring


def _dashed(img, p, q, color, thickness, dash):
    p, q = np.asarray(p, float), np.asarray(q, float)
    n = max(1, int(np.linalg.norm(q - p) // dash))
    for k in range(0, n, 2):
        a, b = p + (q - p) * k / n, p + (q - p) * min(k + 1, n) / n
        cv2.line(img, tuple(int(v) for v in a.round()), tuple(int(v) for v in b.round()), color, thickness,
                 cv2.LINE_AA)


def draw_overlay(image: np.ndarray, prediction: SpinePrediction, *, scale: Optional[float] = None) -> np.ndarray:
    """The overlay picture of ``prediction`` on ``image``.

    Args:
        image: the image predicted on, uint8 grey [H, W] or BGR [H, W, 3].
        prediction: its :class:`SpinePrediction`.
        scale: text and line scale; default from the image size (1.0 at 1000 px).

    Returns:
        uint8 BGR [H, W, 3], the input's size.
    """
    out = to_bgr(image)
    h, w = out.shape[:2]
    s, font, thick, radius = drawing_scale(out.shape, scale)
    for v in prediction.vertebrae:
        pts = v.corners[list(OUTLINE_ORDER)].round().astype(np.int32)
        color = FLAG_COLOR if {"low_confidence_vertebra", "implausible_chain"} & set(v.flags) else OUTLINE_COLOR
        cv2.polylines(out, [pts], True, color, thick, cv2.LINE_AA)
        ringed = _flagged_corners(v, prediction.thresholds)
        for name, (x, y), ring in zip(KEYPOINT_NAMES, v.corners, ringed):
            centre = (int(round(x)), int(round(y)))
            cv2.circle(out, centre, radius, CORNER_COLORS[name], -1, cv2.LINE_AA)
            if ring:
                cv2.circle(out, centre, 3 * radius, FLAG_COLOR, thick, cv2.LINE_8)
        label = short_name(v.name)
        tw, th = text_size(label, font, thick)
        cx, cy = v.corners.mean(axis=0)
        draw_text(out, label, (cx - tw / 2, cy + th / 2), font, (255, 255, 255), thick)
    for gap in prediction.gaps:
        a = prediction.vertebrae[gap["upper"]].corners[2:].mean(axis=0)
        b = prediction.vertebrae[gap["lower"]].corners[:2].mean(axis=0)
        _dashed(out, a, b, (0, 0, 255), thick + 1, max(4, 10 * s))
        draw_text(out, "missed vertebra?", ((a + b) / 2) + (8 * s, 0), font, (0, 0, 255), thick)
    for pair in prediction.pairs:
        up, lo = prediction.vertebrae[pair.upper].corners, prediction.vertebrae[pair.lower].corners
        disc_y = float(np.mean([up[2:, 1].mean(), lo[:2, 1].mean()]))
        text = pair_label(pair, prediction.view)
        tw, th = text_size(text, font, thick)
        right = float(max(up[:, 0].max(), lo[:, 0].max())) + 12 * s
        left = float(min(up[:, 0].min(), lo[:, 0].min())) - 12 * s - tw
        x = right if right + tw <= w - 2 or left < 2 else left
        color = FLAG_COLOR if pair.flags else GRADE_COLORS.get(pair.grade_name or "none", GRADE_COLORS["none"])
        draw_text(out, text, (x, disc_y + th / 2), font, color, thick)
    header = []
    if prediction.facing is not None:
        header.append(f"facing {prediction.facing} ({prediction.facing_source}, {prediction.facing_confidence:.2f})")
    header.append(f"{len(prediction.vertebrae)} vertebrae, {len(prediction.pairs)} pairs")
    n_plain = len(header)
    if prediction.flags:
        header += wrap_text("flags: " + ", ".join(prediction.flags), w - 12 * s, font, thick)
    y = 6 * s
    for k, line in enumerate(header):
        tw, th = text_size(line, font, thick)
        y += th + 6 * s
        draw_text(out, line, (6 * s, y), font, FLAG_COLOR if k >= n_plain else (255, 255, 255), thick)
    x, y = 6 * s, h - 8 * s
    for name in KEYPOINT_NAMES:
        cv2.circle(out, (int(x + radius), int(y - radius)), radius, CORNER_COLORS[name], -1, cv2.LINE_AA)
        draw_text(out, name, (x + 2.5 * radius, y), font, (255, 255, 255), thick)
        x += 2.5 * radius + text_size(name, font, thick)[0] + 10 * s
    return out

