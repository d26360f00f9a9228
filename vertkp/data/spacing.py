"""Reading pixel-spacing tables (mm per pixel by image), for the converter and the evaluator."""
from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from typing import Dict, List, Optional

from .report import InvalidInput

__all__ = ["KEY_COLUMNS", "VALUE_COLUMNS", "read_pixel_spacing"]

# Header names recognised (after lower-casing, non-alphanumerics -> "_").
KEY_COLUMNS = ("file_name", "filename", "file", "image", "image_name", "image_file", "name", "stem",
               "source_stem", "image_id", "id")
VALUE_COLUMNS = ("pixel_spacing", "pixel_spacing_mm", "mm_per_pixel", "mm_per_px", "mm_pixel", "spacing",
                 "spacing_mm", "pixelspacing", "pixel_size", "pixel_size_mm", "mm")


def _norm_header(h) -> str:
    s = "".join(c if c.isalnum() else "_" for c in str(h if h is not None else "").strip().lower())
    while "__" in s:
        s = s.replace("__", "_")
    return s.strip("_")


def _as_float(v) -> Optional[float]:
    try:
        return float(v)
    except (TypeError, ValueError):
        return None


def _rows(path: Path) -> List[list]:
    suffix = path.suffix.lower()
    if suffix == ".json":
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as e:
            raise InvalidInput(path, f"malformed JSON ({e})") from None
        if not isinstance(data, dict):
            raise InvalidInput(path, "expected a JSON object {file name: mm per pixel}")
        return [["file_name", "pixel_spacing"]] + [[k, v] for k, v in data.items()]
    if suffix in (".xlsx", ".xlsm"):
        import openpyxl

        try:
            wb = openpyxl.load_workbook(path, read_only=True, data_only=True)
        except Exception as e:  # openpyxl raises several unrelated types
            raise InvalidInput(path, f"unreadable spreadsheet ({e})") from None
        ws = wb["Pixel Spacing"] if "Pixel Spacing" in wb.sheetnames else wb.worksheets[0]
        rows = [list(r) for r in ws.iter_rows(values_only=True) if any(v is not None for v in r)]
        wb.close()
        return rows
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as e:
        raise InvalidInput(path, f"not a text table ({e}); use .csv, .xlsx or .json") from None
    try:
        dialect = csv.Sniffer().sniff(text[:4096], delimiters=",;\t")
    except csv.Error:
        dialect = csv.excel
    return [r for r in csv.reader(text.splitlines(), dialect) if any(c.strip() for c in r)]


def read_pixel_spacing(path) -> Dict[str, float]:
    """Pixel spacing per image from a table, in mm per pixel.

    Accepts BUU-LSPINE's spreadsheet (.xlsx: sheet "Pixel Spacing" if present,
    else the first), a .csv (comma, semicolon or tab separated) or a .json
    object {image: mm}. Columns: the image column is the first header in
    KEY_COLUMNS and the spacing column the first in VALUE_COLUMNS; a table of
    exactly two columns, or one without a header (its first row already holds
    a number in column 2), is read as (image, mm).

    Returns:
        {key as written in the table (a file name, stem or id): mm per pixel}

    Raises:
        InvalidInput: missing or unreadable file, columns that cannot be told,
            a value that is not a positive number.
    """
    path = Path(path)
    if not path.is_file():
        raise InvalidInput(path, "pixel spacing file not found")
    rows = _rows(path)
    if not rows:
        raise InvalidInput(path, "pixel spacing file is empty")
    if len(rows[0]) >= 2 and _as_float(rows[0][1]) is not None:
        kcol, vcol, body, first = 0, 1, rows, 1
    else:
        header = [_norm_header(h) for h in rows[0]]
        kcol = next((header.index(c) for c in KEY_COLUMNS if c in header), None)
        vcol = next((header.index(c) for c in VALUE_COLUMNS if c in header), None)
        if (kcol is None or vcol is None) and len(header) == 2:
            kcol, vcol = 0, 1
        if kcol is None or vcol is None:
            raise InvalidInput(path, f"cannot tell the columns from the header {rows[0]}: name the image column one of "
                               f"{KEY_COLUMNS[:6]} and the mm-per-pixel column one of {VALUE_COLUMNS[:5]}")
        body, first = rows[1:], 2
    table = {}
    for k, r in enumerate(body):
        if len(r) <= max(kcol, vcol) or r[kcol] is None or str(r[kcol]).strip() == "":
            continue
        val = _as_float(r[vcol])
        if val is None or not (math.isfinite(val) and val > 0):
            raise InvalidInput(path, f"{r[vcol]!r} is not a positive number of mm per pixel", f"row {k + first}")
        table[str(r[kcol]).strip()] = val
    if not table:
        raise InvalidInput(path, "pixel spacing file has no rows")
    return table
