"""Pixel spacing (mm per pixel) of images: the one reader and the one lookup.

The converter (BUU-LSPINE's spreadsheet), ``vertkp evaluate --pixel-spacing``,
``vertkp predict --pixel-spacing`` and the detectron2 evaluator all read and look
up spacings here, so an image gets the same spacing whichever tool asks.
"""
from __future__ import annotations

import csv
import datetime
import io
import math
import os
import re
import zipfile
from pathlib import Path
from typing import Dict, List, Mapping, Optional, Sequence, Tuple, Union

import openpyxl

from ...files import InvalidInput, read_input_json, read_text

__all__ = ["KEY_COLUMNS", "VALUE_COLUMNS", "SPACING_SHEET", "read_pixel_spacing", "load_pixel_spacing",
           "spacing_lookup", "find_pixel_spacing", "image_name_keys", "format_spacing_csv", "format_spacing_xlsx"]

# The sheet of BUU-LSPINE's spreadsheet that holds the spacings.
SPACING_SHEET = "Pixel Spacing"
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
        data = read_input_json(path)
        if not isinstance(data, dict):
            raise InvalidInput(path, "expected a JSON object {file name: mm per pixel}")
        return [["file_name", "pixel_spacing"]] + [[k, v] for k, v in data.items()]
    if suffix in (".xlsx", ".xlsm"):
        try:
            wb = openpyxl.load_workbook(path, read_only=True, data_only=True)
        except Exception as e:  # openpyxl raises several unrelated types
            raise InvalidInput(path, f"unreadable spreadsheet ({e})") from None
        ws = wb[SPACING_SHEET] if SPACING_SHEET in wb.sheetnames else wb.worksheets[0]
        rows = [list(r) for r in ws.iter_rows(values_only=True) if any(v is not None for v in r)]
        wb.close()
        return rows
    try:
        text = read_text(path)
    except ValueError as e:  # not UTF-8
        raise InvalidInput(path, f"not a text table: {e}; or use .xlsx or .json") from None
    except OSError as e:
        raise InvalidInput(path, f"cannot be read ({e.strerror or e})") from None
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


def load_pixel_spacing(spec: Union[str, float, os.PathLike]) -> Union[float, Dict[str, float]]:
    """Pixel spacing given on a command line: one number, or a table file.

    Args:
        spec: a number (mm per pixel for every image), or the path of a table
            read by :func:`read_pixel_spacing`.

    Returns:
        a float, or {key: mm per pixel}.

    Raises:
        InvalidInput: not a positive number and not an existing file, or a bad table.
    """
    try:
        v = float(spec)
    except (TypeError, ValueError):
        v = None
    if v is not None:
        if not (math.isfinite(v) and v > 0):
            raise InvalidInput(spec, "pixel spacing must be a positive number of mm per pixel")
        return v
    if not Path(spec).is_file():
        raise InvalidInput(spec, "pixel spacing is neither a number nor an existing file")
    return read_pixel_spacing(spec)


def image_name_keys(name) -> List[str]:
    """The keys an image name is known by in a spacing table: as given, its base
    name, its stem ("LA/0001-F-037Y1.jpg", "0001-F-037Y1.jpg", "0001-F-037Y1")."""
    base = os.path.basename(str(name).replace("\\", "/"))
    return [str(name), base, os.path.splitext(base)[0]]


def spacing_lookup(table: Mapping[str, float]) -> Dict[str, float]:
    """A spacing table keyed also by its keys' base names and stems (exact keys win)."""
    lookup = {}
    for k, v in table.items():
        for key in reversed(image_name_keys(k)):
            lookup[key] = float(v)
    for k, v in table.items():
        lookup[str(k)] = float(v)
    return lookup


def find_pixel_spacing(lookup: Mapping[str, float], file_name, extra_keys: Sequence = ()) -> Optional[float]:
    """mm per pixel of an image from a :func:`spacing_lookup` table: by its file name,
    base name, stem, then ``extra_keys`` (e.g. its source stem, its id) in that
    order; None when none is in the table."""
    cands = image_name_keys(file_name) + [str(k) for k in extra_keys if k is not None]
    hit = next((lookup[c] for c in cands if c in lookup), None)
    return None if hit is None else float(hit)


# Spreadsheets written by vertkp carry this time, so that the same rows give the same bytes.
_FIXED_TIME = datetime.datetime(2000, 1, 1, 0, 0, 0)
_HEADER = ("file_name", "pixel_spacing_mm")


def format_spacing_csv(rows: Sequence[Tuple[str, float]]) -> str:
    """A spacing table as :func:`read_pixel_spacing` reads it: CSV text with a
    ``file_name,pixel_spacing_mm`` header, one (image file name, mm per pixel) row each."""
    return ",".join(_HEADER) + "\n" + "".join(f"{name},{mm!r}\n" for name, mm in rows)


def format_spacing_xlsx(rows: Sequence[Tuple[str, float]], creator: str = "vertkp") -> bytes:
    """The same table as an .xlsx workbook whose sheet is :data:`SPACING_SHEET` (as
    BUU-LSPINE's spreadsheet), with fixed times: the same rows give the same bytes."""
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.title = SPACING_SHEET
    ws.append(list(_HEADER))
    for name, mm in rows:
        ws.append([name, mm])
    wb.properties.creator = creator
    wb.properties.created = _FIXED_TIME
    wb.properties.modified = _FIXED_TIME
    buf = io.BytesIO()
    wb.save(buf)
    return _deterministic_zip(buf.getvalue())


def _deterministic_zip(data: bytes) -> bytes:
    """Rewrite a zip with fixed entry times and a fixed workbook modification time."""
    src = zipfile.ZipFile(io.BytesIO(data))
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            body = src.read(info.filename)
            if info.filename == "docProps/core.xml":
                stamp = _FIXED_TIME.strftime("%Y-%m-%dT%H:%M:%SZ").encode()
                body = re.sub(rb"(<dcterms:modified[^>]*>)[^<]*(<)", rb"\g<1>" + stamp + rb"\g<2>", body)
            fixed = zipfile.ZipInfo(info.filename, date_time=(1980, 1, 1, 0, 0, 0))
            fixed.compress_type = zipfile.ZIP_DEFLATED
            fixed.external_attr = 0o644 << 16
            dst.writestr(fixed, body)
    return buf.getvalue()
