"""What vertkp's pictures share: colours, legible text, wrapping, overlay file names.

``vertkp predict``'s overlays (``vertkp.inference.overlay``) and ``vertkp audit``'s
(``vertkp.audit.overlay``) are drawn with these, so a corner has the same colour and
text reads the same in both. Images are uint8 BGR (OpenCV); coordinates px, x right,
y down.
"""
from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import List, Optional, Sequence, Tuple

import cv2
import numpy as np

__all__ = ["CORNER_COLORS", "OUTLINE_COLOR", "HIGHLIGHT_COLOR", "FONT", "draw_text", "text_size",
           "wrap_text", "overlay_names", "to_bgr", "drawing_scale"]

# BGR colours: each corner by its name, the vertebra outline, and what calls for a look.
CORNER_COLORS = {"TL": (60, 60, 255), "TR": (255, 160, 40), "BL": (60, 220, 60), "BR": (0, 215, 255)}
OUTLINE_COLOR = (80, 200, 80)
HIGHLIGHT_COLOR = (255, 0, 255)
FONT = cv2.FONT_HERSHEY_SIMPLEX
# The black shadow under text: the same stroke at these offsets (a thicker stroke also
# advances further in OpenCV 5's fonts, so it cannot serve as an outline: it leaves ghost letters).
_SHADOW = ((-1, -1), (1, -1), (-1, 1), (1, 1))


def to_bgr(image: np.ndarray) -> np.ndarray:
    """A uint8 BGR copy of a uint8 grey [H, W] or BGR(A) [H, W, 3+] image."""
    img = np.asarray(image)
    if img.dtype != np.uint8:
        raise ValueError(f"expected a uint8 image, got {img.dtype}")
    return cv2.cvtColor(img, cv2.COLOR_GRAY2BGR) if img.ndim == 2 else np.ascontiguousarray(img[:, :, :3]).copy()


def drawing_scale(shape: Sequence[int], scale: Optional[float] = None) -> Tuple[float, float, int, int]:
    """(scale, font scale, stroke px, dot radius px) for an image of ``shape``: ``scale``, or by
    default 1.0 per 1000 px of its longer side."""
    s = scale if scale is not None else max(shape[0], shape[1]) / 1000.0
    return s, max(0.45, 0.6 * s), max(1, int(round(1.5 * s))), max(2, int(round(4 * s)))


def text_size(text: str, font: float, thick: int) -> Tuple[int, int]:
    """(width, height) of ``text`` in px."""
    (w, h), _ = cv2.getTextSize(text, FONT, font, thick)
    return w, h


def draw_text(img: np.ndarray, text: str, org, font: float, color, thick: int) -> None:
    """Text at ``org`` (x, baseline y) in ``color`` over a black shadow, so it reads on any background."""
    x, y = int(round(org[0])), int(round(org[1]))
    for dx, dy in _SHADOW:
        cv2.putText(img, text, (x + dx, y + dy), FONT, font, (0, 0, 0), thick, cv2.LINE_AA)
    cv2.putText(img, text, (x, y), FONT, font, color, thick, cv2.LINE_AA)


def wrap_text(text: str, max_width: float, font: float, thick: int, indent: str = "  ") -> List[str]:
    """Greedy word wrap of ``text`` to ``max_width`` px; continuation lines start with
    ``indent``; a word wider than a line is cut."""
    lines, line = [], ""
    for word in text.split():
        candidate = f"{line} {word}" if line else word
        if text_size(candidate, font, thick)[0] <= max_width or not line:
            line = candidate
        else:
            lines.append(line)
            line = indent + word
        while text_size(line, font, thick)[0] > max_width and len(line) > len(indent) + 1:
            cut = len(line)
            while cut > len(indent) + 1 and text_size(line[:cut], font, thick)[0] > max_width:
                cut -= 1
            lines.append(line[:cut])
            line = indent + line[cut:]
    return lines + ([line] if line else [])


def overlay_names(paths: Sequence[str]) -> List[str]:
    """Overlay file stems, one per image path: its stem, made unique with its parent
    folder's name, then a number."""
    stems = [Path(p).stem for p in paths]
    counts = Counter(stems)  # not list.count: linear in the number of paths
    out, used = [], set()
    for p, s in zip(paths, stems):
        name = s if counts[s] == 1 else f"{Path(p).parent.name}_{s}"
        base, k = name, 2
        while name in used:
            name, k = f"{base}_{k}", k + 1
        used.add(name)
        out.append(name)
    return out
