"""DICOM headers: what a file is, its fields read safely, its pixel spacing and its identifiers.

Every numeric field goes through :func:`header_number`, which names the field, its tag and its
value when the value does not parse (pydicom keeps an invalid IS such as ``1A`` as text and
warns); fields that only inform (spacing, identifiers) count as absent when they do not parse.
``vertkp.data.imaging.dicom`` reads the pixels with these.

Patient and study identifiers are read only by :func:`dicom_ids`; nothing else here puts
one in an error message or a result.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import NamedTuple, Optional, Tuple, Union

import pydicom
from pydicom.datadict import tag_for_keyword
from pydicom.dataset import Dataset
from pydicom.uid import UID

from ...files import InvalidInput

__all__ = ["DICOM_SUFFIXES", "DICOM_ID_FIELDS", "SQUARE_TOLERANCE", "FIX_HEADER", "DicomError", "DicomSpacing",
           "has_dicom_preamble", "is_dicom_file", "read_dicom", "field_name", "header_value", "header_number",
           "sop_class_name", "dicom_pixel_spacing", "dicom_ids"]

DICOM_SUFFIXES = (".dcm", ".dicom")
# The header fields ``--keep-dicom-ids`` records; no other identifier is ever read.
DICOM_ID_FIELDS = ("PatientID", "PatientName", "PatientBirthDate", "PatientSex", "StudyDate", "StudyTime",
                   "AccessionNumber", "StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID")
# Row and column spacings this close (relative) are one spacing, their mean (decimal rounding in headers).
SQUARE_TOLERANCE = 0.01
# What a user can do about a header field that does not parse.
FIX_HEADER = "the header is damaged: correct the field in a DICOM editor, or export the image again from its source"
_PREAMBLE = 128


class DicomError(InvalidInput):
    """A DICOM file vertkp cannot read; the message names the file and the reason."""


class DicomSpacing(NamedTuple):
    """Pixel spacing of a DICOM file.

    Attributes:
        mm: mm per pixel, or None.
        source: the header field(s) it came from ("PixelSpacing", "ImagerPixelSpacing",
            "ImagerPixelSpacing/EstimatedRadiographicMagnificationFactor"), None with ``mm``.
        note: why there is no ``mm`` although the header has a spacing ("" otherwise).
    """

    mm: Optional[float]
    source: Optional[str]
    note: str = ""


def has_dicom_preamble(path) -> bool:
    """Whether a file has the DICOM ``DICM`` prefix at byte 128 (whatever its name)."""
    try:
        with open(path, "rb") as f:
            head = f.read(_PREAMBLE + 4)
    except OSError:
        return False
    return head[_PREAMBLE:] == b"DICM"


def is_dicom_file(path) -> bool:
    """Whether a file is DICOM: a name ending in :data:`DICOM_SUFFIXES`, or the ``DICM`` prefix."""
    return Path(path).suffix.lower() in DICOM_SUFFIXES or has_dicom_preamble(path)


def read_dicom(path, pixels: bool = True) -> Dataset:
    """The dataset of a DICOM file (with ``pixels=False``, its header only).

    A file named ``.dcm`` or ``.dicom`` is read even without the 128-byte preamble.

    Raises:
        DicomError: missing, not DICOM, truncated in its header.
    """
    p = Path(path)
    if not p.is_file():
        raise DicomError(p, "no such file" if not p.exists() else "not a file")
    try:
        return pydicom.dcmread(str(p), force=p.suffix.lower() in DICOM_SUFFIXES, stop_before_pixels=not pixels)
    except Exception as e:  # pydicom raises many types for a broken file
        raise DicomError(p, f"not a readable DICOM file ({type(e).__name__}: {e})") from None


def field_name(keyword: str) -> str:
    """``keyword (gggg,eeee)``, as DICOM tools show a field."""
    tag = tag_for_keyword(keyword)
    return f"{keyword} ({tag >> 16:04X},{tag & 0xFFFF:04X})" if tag is not None else keyword


def header_value(ds: Dataset, keyword: str):
    """A header field's value, None when absent or empty, ``ValueError`` when pydicom cannot decode it."""
    try:
        value = ds.get(keyword)
    except Exception as e:  # a wrong VR or length: pydicom raises many types
        raise ValueError(f"{type(e).__name__}: {e}") from None
    return None if value is None or (hasattr(value, "__len__") and len(value) == 0) else value


def header_number(ds: Dataset, path, keyword: str, default=None, integer: bool = True):
    """A numeric header field (``default`` when absent or empty).

    Raises:
        DicomError: naming the field and its value, when it is not a (finite, integer) number.
    """
    try:
        value = header_value(ds, keyword)
    except ValueError as e:
        raise DicomError(path, f"its {field_name(keyword)} cannot be read ({e}): {FIX_HEADER}") from None
    if value is None:
        return default
    try:
        number = float(value)  # IS, DS and binary numbers; text that pydicom kept as it was
    except (TypeError, ValueError):
        number = math.nan
    if not math.isfinite(number) or (integer and not number.is_integer()):
        kind = "an integer" if integer else "a number"
        raise DicomError(path, f"its {field_name(keyword)} is {str(value)!r}, not {kind}: {FIX_HEADER}")
    return int(number) if integer else number


def sop_class_name(ds: Dataset) -> str:
    """The name of the file's SOP class ("CT Image Storage"), "" when it has none."""
    meta = getattr(ds, "file_meta", None)
    for source, keyword in ((ds, "SOPClassUID"), (meta, "MediaStorageSOPClassUID")):
        try:
            value = header_value(source, keyword) if source is not None else None
        except ValueError:
            value = None
        if value is not None:
            return UID(str(value)).name
    return ""


def _spacing_pair(ds: Dataset, keyword: str) -> Optional[Tuple[float, float]]:
    """(row, column) mm of a spacing field, None when absent, unreadable or not two positive numbers."""
    try:
        row, col = (float(v) for v in header_value(ds, keyword))
    except (TypeError, ValueError):
        return None
    return (row, col) if all(math.isfinite(v) and v > 0 for v in (row, col)) else None


def dicom_pixel_spacing(source: Union[str, Path, Dataset]) -> DicomSpacing:
    """mm per pixel of a DICOM file (a path or a read dataset) from its header.

    (0028,0030) PixelSpacing, else (0018,1164) ImagerPixelSpacing divided by
    (0018,5022) EstimatedRadiographicMagnificationFactor when it is a positive
    number (the spacing at the patient rather than at the detector). Both are
    [row, column] spacings; vertkp measures with one mm per pixel, so their mean
    is used when they agree within :data:`SQUARE_TOLERANCE`, and none (with a
    note) when the pixels are not square. A field that does not parse counts as absent.

    Raises:
        DicomError: the file is not readable DICOM (not for a missing or bad spacing).
    """
    ds = source if isinstance(source, Dataset) else read_dicom(source, pixels=False)
    keyword, pair = next(((k, p) for k in ("PixelSpacing", "ImagerPixelSpacing")
                          for p in [_spacing_pair(ds, k)] if p is not None), (None, None))
    if pair is None:
        return DicomSpacing(None, None)
    row, col = pair
    if abs(row - col) > SQUARE_TOLERANCE * max(row, col):
        return DicomSpacing(None, None, f"DICOM {keyword} is {row:g} mm between rows and {col:g} mm between "
                                        "columns: pixels that are not square have no one mm per pixel, so no "
                                        "measure is given in mm")
    mm, source_name = (row + col) / 2, keyword
    if keyword == "ImagerPixelSpacing":
        try:
            factor = float(header_value(ds, "EstimatedRadiographicMagnificationFactor"))
        except (TypeError, ValueError):
            factor = None
        if factor is not None and math.isfinite(factor) and factor > 0:
            mm, source_name = mm / factor, "ImagerPixelSpacing/EstimatedRadiographicMagnificationFactor"
    return DicomSpacing(mm, source_name)


def dicom_ids(source: Union[str, Path, Dataset]) -> dict:
    """{field: text} of the :data:`DICOM_ID_FIELDS` a DICOM file has (empty and unreadable ones left out).

    Raises:
        DicomError: the file is not readable DICOM.
    """
    ds = source if isinstance(source, Dataset) else read_dicom(source, pixels=False)
    out = {}
    for keyword in DICOM_ID_FIELDS:
        try:
            text = str(header_value(ds, keyword) or "").strip()
        except ValueError:  # a value pydicom cannot decode is no identifier to record
            continue
        if text:
            out[keyword] = text
    return out
