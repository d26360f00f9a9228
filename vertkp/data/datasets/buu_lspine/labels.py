"""BUU-LSPINE's CSV labels, each reader beside its writer.

A headerless CSV per image, one endplate a row: ``x1,y1,x2,y2,label`` (absolute pixels).
  LA (lateral, facing left): 11 rows L1a, L1b, ..., L5a, L5b, S1a;
      a = superior endplate, b = inferior; point 1 anterior (image-left).
  AP: 10 rows L1a..L5b; point 1 image-left.
The phantoms and the tests write this format with ``format_csv_rows`` and ``rows_from_corners``.
"""
from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Optional

import numpy as np

from ...conversion.builder import SourceVertebra
from ....files import InvalidInput, read_input_text
from .layout import BUU_LEVELS, VIEW_LAYOUT

__all__ = ["row_names", "read_csv_rows", "format_csv_rows", "vertebrae_from_rows", "rows_from_corners",
           "facing_from_rows"]


def row_names(view: str) -> list:
    """A view's CSV row names in file order: L1a, L1b, ..., L5b, and S1a on lateral views."""
    n_rows = VIEW_LAYOUT[view][2]
    return [f"{level}{end}" for level in BUU_LEVELS for end in "ab"][:n_rows]


def read_csv_rows(path, n_rows: int) -> list:
    """The rows of one CSV as (x1, y1, x2, y2, label) floats.

    Blank lines are ignored. Raises InvalidInput for an unreadable file, text that is
    not UTF-8 (a byte-order mark is fine), a wrong number of rows or columns, or a
    non-numeric cell (naming line and column).
    """
    path = Path(path)
    text = read_input_text(path)
    lines = [(n + 1, row) for n, row in enumerate(csv.reader(io.StringIO(text, newline="")))
             if any(c.strip() for c in row)]
    if len(lines) != n_rows:
        raise InvalidInput(path, f"expected {n_rows} rows (one per endplate), got {len(lines)}")
    rows = []
    for n, row in lines:
        if len(row) != 5:
            raise InvalidInput(path, f"expected 5 columns x1,y1,x2,y2,label, got {len(row)}", f"line {n}")
        vals = []
        for c, cell in enumerate(row):
            try:
                vals.append(float(cell))
            except ValueError:
                raise InvalidInput(path, f"column {c + 1} is not a number: {cell.strip()!r}", f"line {n}") from None
        rows.append(vals)
    return rows


def format_csv_rows(rows, decimals: Optional[int] = None) -> str:
    """The text of one CSV: the inverse of :func:`read_csv_rows`.

    ``rows``: (x1, y1, x2, y2, label) each; no header, a line
    ``x1,y1,x2,y2,label`` per row, coordinates with ``decimals`` decimals (or
    exactly, shortest repr, when None), the label as an integer.
    """
    lines = []
    for *xy, label in rows:
        cells = [repr(float(v)) if decimals is None else f"{float(v):.{decimals}f}" for v in xy]
        lines.append(",".join(cells + [str(int(label))]) + "\n")
    return "".join(lines)


def _label(value: float):
    return int(value) if float(value).is_integer() else value


def vertebrae_from_rows(rows: list, view: str) -> list:
    """Source vertebrae from the CSV rows of one image.

    Each lumbar vertebra takes its "a" (superior) and "b" (inferior) rows:
    points [a1, a2, b1, b2], superior endplate (0, 1). A lateral S1 has only
    its "a" row: points [a1, a2]. Point 1 is image-left in both views.
    """
    out = []
    for i, level in enumerate(BUU_LEVELS[:5]):
        a, b = rows[2 * i], rows[2 * i + 1]
        pts = np.array([a[0:2], a[2:4], b[0:2], b[2:4]], dtype=np.float64)
        out.append(SourceVertebra(pts, (0, 1), f"{level} (lines {2 * i + 1}-{2 * i + 2})", level,
                                  [_label(a[4]), _label(b[4])]))
    if view == "lateral":
        s = rows[10]
        out.append(SourceVertebra(np.array([s[0:2], s[2:4]], dtype=np.float64), (0, 1), "S1 (line 11)", "S1",
                                  [_label(s[4])]))
    return out


def rows_from_corners(corners, view: str, labels=None) -> list:
    """The CSV rows [x1, y1, x2, y2, label] of one image: the inverse of :func:`vertebrae_from_rows`.

    Args:
        corners: canonical corners (TL, TR, BL, BR) per vertebra, cranial to
            caudal: L1..L5, and S1 on lateral views, of which only TL and TR
            (its "a" row) are written; arrays [4, 2] ([2, 2] for S1).
        view: "lateral" or "ap".
        labels: {row name ("L4b", see :func:`row_names`): label code}; rows not
            in it get 0.

    Returns:
        the rows in file order; point 1 is TL or BL (image-left), point 2 TR or BR.
    """
    names = row_names(view)
    levels = BUU_LEVELS[:(len(names) + 1) // 2]
    if len(corners) != len(levels):
        raise ValueError(f"a {view} view has the vertebrae {', '.join(levels)}; got {len(corners)} of them")
    labels = labels or {}
    rows = []
    for name in names:
        c = np.asarray(corners[levels.index(name[:-1])], dtype=np.float64)
        p1, p2 = (c[0], c[1]) if name.endswith("a") else (c[2], c[3])
        rows.append([float(p1[0]), float(p1[1]), float(p2[0]), float(p2[1]), int(labels.get(name, 0))])
    return rows


def facing_from_rows(rows: list) -> Optional[str]:
    """Lateral facing from the data: point 1 of each row is anterior, so the
    patient faces image-left when point 1 is left of point 2 in most rows."""
    left = sum(r[0] < r[2] for r in rows)
    right = sum(r[0] > r[2] for r in rows)
    if left == right:
        return None
    return "left" if left > right else "right"
