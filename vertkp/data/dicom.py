"""DICOM radiographs: their pixels as vertkp's decoder uses them, their pixel spacing, their identifiers.

``vertkp.data.images.decode_image`` reads a file here when it is a DICOM file
(:func:`is_dicom_file`: a ``.dcm`` or ``.dicom`` name, or ``DICM`` at byte 128),
so conversion, training, evaluation and prediction all read DICOM the same way.
:func:`dicom_pixels` gives the values a viewer shows, bone bright:

* single-frame greyscale images only (MONOCHROME1, MONOCHROME2), 8 to 16 bits
  stored; multi-frame and colour files are refused, with the reason;
* the Modality LUT or Rescale Slope / Intercept is applied, then the first VOI
  LUT, else the first Window Center / Width (pydicom's ``apply_voi`` and
  ``apply_windowing``), whose output range becomes 0..255: the picture the
  file asks to be shown;
* with neither (or only ones pydicom rejects, such as a window width under 1),
  the values are left to the decoder's percentile windowing, as a
  16-bit PNG's are (an 8-bit file without a rescale is used as is, as an 8-bit
  PNG is), so the same pixels give the same model input in either format;
* MONOCHROME1 (low values white) is inverted, so that bone is bright;
* compressed transfer syntaxes are decoded by pydicom's plugins: RLE by pydicom,
  JPEG 2000 and baseline JPEG through Pillow, the others (JPEG-LS, lossless and
  12-bit JPEG) through the ``dicom`` extra (:data:`DICOM_EXTRA`); without a
  decoder the error names what to install.

Patient and study identifiers are read only by :func:`dicom_ids`; nothing else
here puts one in an error message or a result.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import NamedTuple, Optional, Tuple, Union

import numpy as np
import pydicom
from pydicom.dataset import Dataset

from .report import InvalidInput

try:  # pydicom 3
    from pydicom.pixels import apply_modality_lut, apply_voi, apply_windowing, get_decoder
except ImportError:  # pydicom 2
    from pydicom.pixel_data_handlers.util import apply_modality_lut, apply_voi, apply_windowing
    get_decoder = None

__all__ = ["DICOM_SUFFIXES", "DICOM_EXTRA", "DICOM_ID_FIELDS", "SQUARE_TOLERANCE", "DicomError", "DicomSpacing",
           "has_dicom_preamble", "is_dicom_file", "read_dicom", "dicom_pixels", "dicom_pixel_spacing", "dicom_ids"]

DICOM_SUFFIXES = (".dcm", ".dicom")
# What installs the decoders of the compressed transfer syntaxes that pydicom and Pillow do not decode.
DICOM_EXTRA = "pip install 'vertkp[dicom]'"
# The header fields ``--keep-dicom-ids`` records; no other identifier is ever read.
DICOM_ID_FIELDS = ("PatientID", "PatientName", "PatientBirthDate", "PatientSex", "StudyDate", "StudyTime",
                   "AccessionNumber", "StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID")
# Row and column spacings this close (relative) are one spacing, their mean (decimal rounding in headers).
SQUARE_TOLERANCE = 0.01
_MONOCHROME = ("MONOCHROME1", "MONOCHROME2")
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


def _missing_decoder(ds: Dataset) -> Optional[str]:
    """Why the pixel data of ``ds`` cannot be decoded here, or None when it can."""
    meta = getattr(ds, "file_meta", None)
    uid = meta.get("TransferSyntaxUID") if meta is not None else None
    if uid is None or not uid.is_compressed:
        return None
    if get_decoder is not None:
        try:
            if get_decoder(uid).is_available:
                return None
        except NotImplementedError:
            return f"its transfer syntax {uid} ({uid.name}) has no pixel data decoder in pydicom"
    else:
        handlers = [h for h in pydicom.config.pixel_data_handlers if h.supports_transfer_syntax(uid)]
        if any(h.is_available() for h in handlers):
            return None
    plugin = "pylibjpeg-openjpeg" if "2000" in uid.name or "HTJ2K" in uid.name else "pylibjpeg-libjpeg"
    return (f"its pixel data is compressed ({uid.name}) and no decoder for it is installed ({plugin}): "
            f"{DICOM_EXTRA}, or pip install python-gdcm")


def _check_image(ds: Dataset, path) -> None:
    if "PixelData" not in ds:
        raise DicomError(path, "the DICOM file has no pixel data (7FE0,0010): it is not an image")
    frames = ds.get("NumberOfFrames", 1)
    if int(frames or 1) > 1:
        raise DicomError(path, f"a multi-frame DICOM ({int(frames)} frames): vertkp reads single-frame "
                               "radiographs; export the frame to predict as its own file")
    photometric = str(ds.get("PhotometricInterpretation", "")).strip()
    samples = int(ds.get("SamplesPerPixel", 1) or 1)
    if samples != 1 or photometric not in _MONOCHROME:
        raise DicomError(path, "a colour or unknown-colour DICOM (PhotometricInterpretation "
                               f"{photometric or 'absent'}, {samples} samples per pixel): vertkp reads greyscale "
                               "radiographs (MONOCHROME1 or MONOCHROME2)")
    allocated = int(ds.get("BitsAllocated", 0) or 0)
    stored = int(ds.get("BitsStored", allocated) or 0)
    if allocated not in (8, 16) or not 8 <= stored <= allocated:
        raise DicomError(path, f"{stored} bits stored in {allocated} allocated: vertkp reads 8 to 16-bit DICOM")
    problem = _missing_decoder(ds)
    if problem:
        raise DicomError(path, problem)


def _stored_range(ds: Dataset) -> Tuple[int, int]:
    bits = int(ds.BitsStored)
    if int(ds.get("PixelRepresentation", 0)) == 0:
        return 0, 2 ** bits - 1
    return -(2 ** (bits - 1)), 2 ** (bits - 1) - 1


def _has_modality_transform(ds: Dataset) -> bool:
    if ds.get("ModalityLUTSequence"):
        return True
    if "RescaleSlope" in ds and "RescaleIntercept" in ds:
        return float(ds.RescaleSlope) != 1.0 or float(ds.RescaleIntercept) != 0.0
    return False


def _voi_lut(ds: Dataset) -> bool:
    seq = ds.get("VOILUTSequence")
    return bool(seq) and "LUTDescriptor" in seq[0] and "LUTData" in seq[0]


def _to_uint8(y: np.ndarray, black: float, white: float) -> np.ndarray:
    """``black`` -> 0 and ``white`` -> 255, linearly (either may be the larger)."""
    if white == black:
        return np.zeros(y.shape, np.uint8)
    return np.clip(np.round((y.astype(np.float64) - black) * (255.0 / (white - black))), 0, 255).astype(np.uint8)


def _shown(values: np.ndarray, ds: Dataset) -> Optional[np.ndarray]:
    """uint8 of modality values through the file's first VOI LUT, else its first window, the
    output range of either made 0..255; None when it has neither, or only ones pydicom rejects
    (a window width under 1, an unknown VOI LUT Function, a malformed LUT)."""
    if _voi_lut(ds):
        try:
            if np.issubdtype(values.dtype, np.floating) and np.array_equal(values, np.round(values)):
                values = values.astype(np.int64)  # a LUT is indexed by integers
            desc = [int(v) for v in ds.VOILUTSequence[0].LUTDescriptor]
            table = apply_voi(np.arange(desc[1], desc[1] + (desc[0] or 2 ** 16), dtype=np.int64), ds)
            return _to_uint8(apply_voi(values, ds), float(table.min()), float(table.max()))
        except Exception:  # pydicom raises many types for a bad LUT: try the window
            pass
    if ds.get("WindowCenter") not in (None, "") and ds.get("WindowWidth") not in (None, ""):
        try:
            ends = apply_windowing(np.array([-np.inf, np.inf]), ds)  # the output range
            return _to_uint8(apply_windowing(values, ds), float(ends[0]), float(ends[1]))
        except Exception:  # as for the LUT
            pass
    return None


def dicom_pixels(path) -> np.ndarray:
    """The pixels of a single-frame greyscale DICOM file, bone bright (see the module docstring).

    Returns:
        [H, W]: uint8 when the file says how to show it (VOI LUT, window) or holds
        8-bit values without a rescale; otherwise the values (integer or float, any
        range) for ``vertkp.data.images``' percentile windowing.

    Raises:
        DicomError: not DICOM, no pixel data, multi-frame, colour, fewer than 8 or more
            than 16 bits, a compressed syntax without its decoder, truncated or corrupt.
    """
    ds = read_dicom(path)
    _check_image(ds, path)
    try:
        stored = ds.pixel_array
    except Exception as e:  # truncated or corrupt pixel data: pydicom raises many types
        raise DicomError(path, f"the DICOM pixel data cannot be decoded ({type(e).__name__}: {e})") from None
    if stored.ndim != 2:
        raise DicomError(path, f"the DICOM pixel data has shape {stored.shape}, expected one [rows, columns] frame")
    inverted = str(ds.PhotometricInterpretation).strip() == "MONOCHROME1"
    transformed = _has_modality_transform(ds)
    try:
        values = apply_modality_lut(stored, ds) if transformed else stored
    except Exception as e:  # a malformed Modality LUT
        raise DicomError(path, f"its Modality LUT cannot be applied ({type(e).__name__}: {e})") from None
    shown = _shown(values, ds)
    if shown is not None:
        return 255 - shown if inverted else shown
    if not inverted:
        return values
    if transformed:  # the percentile window does not depend on the offset: negating inverts
        return -values.astype(np.float64)
    lo, hi = _stored_range(ds)
    if stored.dtype == np.uint8 and lo == 0:
        return (hi - stored).astype(np.uint8)  # still 8-bit: used as is
    return lo + hi - stored.astype(np.int64)


def _spacing_pair(ds: Dataset, keyword: str) -> Optional[Tuple[float, float]]:
    """(row, column) mm of a spacing field, None when absent or not two positive numbers."""
    value = ds.get(keyword)
    if value is None:
        return None
    try:
        row, col = (float(v) for v in value)
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
    note) when the pixels are not square.

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
            factor = float(ds.get("EstimatedRadiographicMagnificationFactor"))
        except (TypeError, ValueError):
            factor = None
        if factor is not None and math.isfinite(factor) and factor > 0:
            mm, source_name = mm / factor, "ImagerPixelSpacing/EstimatedRadiographicMagnificationFactor"
    return DicomSpacing(mm, source_name)


def dicom_ids(source: Union[str, Path, Dataset]) -> dict:
    """{field: text} of the :data:`DICOM_ID_FIELDS` a DICOM file has (empty ones left out).

    Raises:
        DicomError: the file is not readable DICOM.
    """
    ds = source if isinstance(source, Dataset) else read_dicom(source, pixels=False)
    out = {}
    for keyword in DICOM_ID_FIELDS:
        value = ds.get(keyword)
        if value is not None and str(value).strip():
            out[keyword] = str(value).strip()
    return out
