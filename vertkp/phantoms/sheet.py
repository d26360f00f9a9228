"""A contact sheet of a phantom set: its first labelled images side by side, with the exact
corners (dots, coloured by corner name as everywhere in vertkp) and, where the annotator
was off, the labelled corner (a ring) joined to it. ``vertkp phantoms --sheet FILE.png``.
"""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from vertkp.drawing import CORNER_COLORS, draw_text, drawing_scale, to_bgr
from vertkp.files import read_json
from vertkp.keypoints import KEYPOINT_NAMES

from .truth import TRUTH_FILE

__all__ = ["contact_sheet"]


def _cell(root: Path, rec: dict, size: int, corners: bool) -> np.ndarray:
    img = cv2.imread(str(root / rec["file_name"]), cv2.IMREAD_COLOR)
    if img is None:
        raise ValueError(f"{root / rec['file_name']} could not be read")
    f = size / max(img.shape[:2])
    img = to_bgr(cv2.resize(img, (int(round(img.shape[1] * f)), int(round(img.shape[0] * f))),
                            interpolation=cv2.INTER_AREA))
    if corners:
        _, _, thick, radius = drawing_scale(img.shape, size / 500.0)
        for v in rec["vertebrae"]:
            for name, exact, label in zip(KEYPOINT_NAMES, v["corners"], v.get("label_corners", v["corners"])):
                if exact is None:
                    continue
                p = tuple(int(round((c + 0.5) * f - 0.5)) for c in exact)
                colour = CORNER_COLORS[name]
                if label is not None and np.hypot(*np.subtract(label, exact)) * f >= 0.75:
                    q = tuple(int(round((c + 0.5) * f - 0.5)) for c in label)
                    cv2.line(img, p, q, colour, 1, cv2.LINE_AA)
                    cv2.circle(img, q, radius + 1, colour, 1, cv2.LINE_AA)
                cv2.circle(img, p, radius, colour, -1, cv2.LINE_AA)
    out = np.zeros((size, size, 3), np.uint8)
    out[:img.shape[0], :img.shape[1]] = img
    return out


def contact_sheet(root, out, n: int = 8, columns: int = 4, cell: int = 320, corners: bool = True,
                  title: str | None = None) -> Path:
    """Write a PNG grid of the first ``n`` labelled images of the phantom set in ``root``.

    Args:
        root: a phantom set folder (with ``phantom_truth.json``).
        out: the PNG to write.
        cell: side of one cell, px (images are fitted into it).
        corners: draw the exact corners and the labelled ones.
        title: text over the grid (default: the layout and difficulty).

    Returns:
        ``out``.
    """
    root = Path(root)
    truth = read_json(root / TRUTH_FILE)
    recs = [r for r in truth["images"] if r.get("label_file") and r.get("split") != "test"][:n]
    if not recs:
        raise ValueError(f"{root} holds no labelled phantom image")
    cells = [_cell(root, r, cell, corners) for r in recs]
    cells += [np.zeros_like(cells[0])] * (-len(cells) % columns)
    grid = np.vstack([np.hstack(cells[i:i + columns]) for i in range(0, len(cells), columns)])
    band = np.zeros((max(28, cell // 10), grid.shape[1], 3), np.uint8)
    text = title or f"{truth['layout']} phantoms, {truth.get('difficulty', 'clean')}"
    draw_text(band, text, (8, band.shape[0] - 9), max(0.55, cell / 500.0), (255, 255, 255), 1)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(out), np.vstack([band, grid])):
        raise ValueError(f"could not write {out}")
    return out
