"""Overlay pictures of the audit: an image with its vertebrae and what was found on it.

:func:`draw_audit_overlay` returns a BGR uint8 picture of the image's own size: every
quadrilateral outlined (TL -> TR -> BR -> BL) with its corners coloured by name and its
annotation id at its centre, the vertebrae named in findings in magenta and thicker,
corners outside the image marked where they leave it, and the findings written on a dark band at
the top or the bottom (where fewer corners are), wrapped to the image width and coloured by severity. Coordinates:
px, x right, y down (the COCO files'). Colours and text: ``vertkp.drawing``, as
``vertkp predict``'s overlays.
"""
from __future__ import annotations

from typing import List, Optional, Sequence, Tuple

import cv2
import numpy as np

from ..drawing import (CORNER_COLORS, HIGHLIGHT_COLOR, OUTLINE_COLOR, draw_text, drawing_scale,
                       text_size, to_bgr, wrap_text)
from ..keypoints import KEYPOINT_NAMES, OUTLINE_ORDER

__all__ = ["SEVERITY_COLORS", "OverlayVertebra", "draw_audit_overlay"]

# BGR colours of the findings' severities (corners, outlines and highlights: vertkp.drawing's).
SEVERITY_COLORS = {"error": (80, 80, 255), "warning": (0, 200, 255), "info": (255, 220, 120), "title": (255, 255, 255)}
# The finding text covers at most this fraction of the image height; the rest is counted.
MAX_TEXT_FRACTION = 0.7


class OverlayVertebra:
    """One vertebra to draw: corners [4, 2] px (TL, TR, BL, BR, NaN unlabelled), its
    label (the annotation id) and whether a finding names it."""

    __slots__ = ("corners", "label", "highlighted")

    def __init__(self, corners: np.ndarray, label: str, highlighted: bool = False):
        self.corners = np.asarray(corners, dtype=np.float64).reshape(4, 2)
        self.label = label
        self.highlighted = highlighted


def _free_spot(x: float, y: float, tw: int, th: int, taken: list) -> Tuple[float, float]:
    """(x, y) moved down, a line at a time, until a tw x th label there overlaps no box in
    ``taken`` (boxes (x0, y0, x1, y1); y is the text baseline); the box is added."""
    for _ in range(8):
        box = (x, y - th, x + tw, y)
        if not any(box[0] < b[2] and b[0] < box[2] and box[1] < b[3] and b[1] < box[3] for b in taken):
            break
        y += th + 3
    taken.append((x, y - th, x + tw, y))
    return x, y


def _clamp(p, w, h):
    return (int(round(min(max(p[0], 0), w - 1))), int(round(min(max(p[1], 0), h - 1))))


def draw_audit_overlay(image: np.ndarray, vertebrae: Sequence[OverlayVertebra],
                       lines: Sequence[Tuple[str, str]], scale: Optional[float] = None) -> np.ndarray:
    """The audit overlay of one image.

    Args:
        image: uint8 grey [H, W] or BGR [H, W, 3].
        vertebrae: what to outline (:class:`OverlayVertebra`).
        lines: (text, style) to write at the top, style a key of SEVERITY_COLORS.
        scale: text and line scale; default from the image size (1.0 at 1000 px).

    Returns:
        uint8 BGR [H, W, 3] of the input's size.
    """
    out = to_bgr(image)
    h, w = out.shape[:2]
    s, font, thick, radius = drawing_scale(out.shape, scale)
    taken: list = []
    for v in sorted(vertebrae, key=lambda v: v.highlighted):  # highlighted ones on top
        color = HIGHLIGHT_COLOR if v.highlighted else OUTLINE_COLOR
        width = thick + 2 if v.highlighted else thick
        ring = v.corners[list(OUTLINE_ORDER)]
        ok = np.all(np.isfinite(ring), axis=1)
        for k in range(4):  # the labelled sides (a 2-corner S1: its endplate)
            a, b = ring[k], ring[(k + 1) % 4]
            if ok[k] and ok[(k + 1) % 4]:
                cv2.line(out, tuple(int(x) for x in a.round()), tuple(int(x) for x in b.round()), color, width,
                         cv2.LINE_AA)
        for name, (x, y) in zip(KEYPOINT_NAMES, v.corners):
            if not (np.isfinite(x) and np.isfinite(y)):
                continue
            if 0 <= x <= w and 0 <= y <= h:
                cv2.circle(out, (int(round(x)), int(round(y))), radius, CORNER_COLORS[name], -1, cv2.LINE_AA)
            else:  # outside: a cross where it leaves the image
                cx, cy = _clamp((x, y), w, h)
                d = 3 * radius
                cv2.line(out, (cx - d, cy - d), (cx + d, cy + d), SEVERITY_COLORS["error"], thick + 1, cv2.LINE_AA)
                cv2.line(out, (cx - d, cy + d), (cx + d, cy - d), SEVERITY_COLORS["error"], thick + 1, cv2.LINE_AA)
        centre = np.nanmean(v.corners, axis=0) if ok.any() else None
        if centre is not None and np.all(np.isfinite(centre)):
            tw, th = text_size(v.label, font, thick)
            x, y = _clamp((centre[0] - tw / 2, centre[1] + th / 2), w, h)
            draw_text(out, v.label, _free_spot(x, y, tw, th, taken), font,
                  HIGHLIGHT_COLOR if v.highlighted else (255, 255, 255), thick)
    margin = 6 * s + 2
    wrapped: List[Tuple[str, str]] = []
    for text, style in lines:
        wrapped += [(t, style) for t in wrap_text(text, w - 2 * margin, font, thick)]
    line_h = text_size("Ag", font, thick)[1] + int(round(6 * s)) + 3
    fit = max(1, int(MAX_TEXT_FRACTION * h // line_h))
    if len(wrapped) > fit:
        shown = wrapped[:fit - 1]
        wrapped = shown + [(f"... and more: all {len(lines)} lines are in audit.csv", "title")]
    if wrapped:
        band_h = int(margin + line_h * len(wrapped) + margin / 2)
        ys = np.concatenate([v.corners[:, 1] for v in vertebrae]) if len(vertebrae) else np.zeros(0)
        ys = ys[np.isfinite(ys)]
        top = int(np.sum(ys < band_h)) <= int(np.sum(ys > h - band_h))  # the side with fewer corners
        y0 = 0 if top else max(0, h - band_h)
        region = out[y0:y0 + band_h]
        region[:] = cv2.addWeighted(np.zeros_like(region), 0.6, region, 0.4, 0)
        y = y0 + margin
        for text, style in wrapped:
            y += line_h
            draw_text(out, text, (margin, y - 4 * s - 1), font, SEVERITY_COLORS.get(style, (255, 255, 255)), thick)
    return out
