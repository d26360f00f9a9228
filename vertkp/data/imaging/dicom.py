"""DICOM radiographs: their pixels as vertkp's decoder uses them (the header: ``vertkp.data.imaging.dicom_header``).

``vertkp.data.imaging.images.decode_image`` reads a file here when it is a DICOM file
(:func:`is_dicom_file`: a ``.dcm`` or ``.dicom`` name, or ``DICM`` at byte 128),
so conversion, training, evaluation and prediction all read DICOM the same way.
:func:`dicom_pixels` gives the values a viewer shows, bone bright:

* single-frame images of 8 to 16 bits stored; greyscale (MONOCHROME1,
  MONOCHROME2) or colour (RGB, YBR_FULL, YBR_FULL_422, YBR_ICT, YBR_RCT,
  PALETTE COLOR), the colour ones as RGB, of which the decoder takes the
  luminance as it does of a colour PNG (secondary captures and teaching files
  carry X-rays in colour);
* greyscale: the Modality LUT or Rescale Slope / Intercept is applied, then the
  first VOI LUT, else the first Window Center / Width (pydicom's ``apply_voi``
  and ``apply_windowing``), whose output range becomes 0..255: the picture the
  file asks to be shown;
* with neither (or only ones pydicom rejects, such as a window width under 1),
  the values are left to the decoder's percentile windowing, as a
  16-bit PNG's are (an 8-bit file without a rescale is used as is, as an 8-bit
  PNG is), so the same pixels give the same model input in either format;
* MONOCHROME1 (low values white) is inverted, so that bone is bright;
* colour: YBR is converted to RGB (pydicom 3's decoders already return RGB and
  say so; YBR_ICT and YBR_RCT are undone by the JPEG 2000 decoder), PALETTE
  COLOR goes through its lookup table; modality and VOI transforms do not apply
  to colour pixels;
* compressed transfer syntaxes are decoded by pydicom's plugins: RLE by pydicom,
  JPEG 2000 and 8-bit JPEG through Pillow, the others (JPEG-LS, lossless and
  12-bit JPEG, HTJ2K) through the ``dicom`` extra (:data:`DICOM_EXTRA`);
  without a decoder the error names the syntax and what to install;
* a file without file meta information is decoded in the encoding pydicom
  read its header in (implicit or explicit VR, little or big endian).

Refused, each with its reason in a :class:`DicomError` that names the file:
files without pixel data (reports, plans, DICOMDIRs, headers whose pixels were
left out: the SOP class is named), 1-bit masks, 32-bit dose grids and maps,
truncated or corrupt pixel data, header fields that do not parse (a
NumberOfFrames of ``1A`` names the field and its value), and:

* multi-frame files. A lateral radiograph (DX, CR) is one frame; a file of
  several is a series, a cine loop or a stack, and taking its first frame would
  grade an image nobody chose, maybe not the lateral view at all. The message
  gives the number of frames (0 to N-1) and how to save one as its own file;
* a missing PhotometricInterpretation. Nothing then says whether low values
  are black (MONOCHROME2) or white (MONOCHROME1); a guess would show bone dark
  for one of the two, and a model shown a negative fails silently. (The
  two such files of pydicom's test corpus lack Rows and Columns as well: their
  two bytes of "pixel data" are no image.)

Pixel spacing and identifiers come from the header (``vertkp.data.imaging.dicom_header``, whose
names this module exports too); no identifier is put in an error message or a result.
"""
from __future__ import annotations

import importlib.util
from typing import NamedTuple, Optional, Tuple

import numpy as np
import pydicom
from pydicom.datadict import dictionary_has_tag
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import UID, ExplicitVRBigEndian, ExplicitVRLittleEndian, ImplicitVRLittleEndian

from .dicom_header import (DICOM_ID_FIELDS, DICOM_SUFFIXES, FIX_HEADER, SQUARE_TOLERANCE, DicomError, DicomSpacing,
                           dicom_ids, dicom_pixel_spacing, field_name, has_dicom_preamble, header_number, header_value,
                           is_dicom_file, read_dicom, sop_class_name)

try:  # pydicom 3
    from pydicom.pixels import (apply_color_lut, apply_modality_lut, apply_voi, apply_windowing, convert_color_space,
                                get_decoder)
except ImportError:  # pydicom 2
    from pydicom.pixel_data_handlers.util import (apply_color_lut, apply_modality_lut, apply_voi, apply_windowing,
                                                  convert_color_space)
    get_decoder = None

__all__ = ["DICOM_SUFFIXES", "DICOM_EXTRA", "DICOM_ID_FIELDS", "SQUARE_TOLERANCE", "DicomError", "DicomSpacing",
           "has_dicom_preamble", "is_dicom_file", "read_dicom", "dicom_pixels", "dicom_pixel_spacing", "dicom_ids"]

# What installs the decoders of the compressed transfer syntaxes that pydicom and Pillow do not decode.
DICOM_EXTRA = "pip install 'vertkp[dicom]'"
_MONOCHROME = ("MONOCHROME1", "MONOCHROME2")
_PALETTE = "PALETTE COLOR"
# Three-sample interpretations read as RGB (the JPEG 2000 decoders undo YBR_ICT and YBR_RCT themselves).
_COLOUR = ("RGB", "YBR_FULL", "YBR_FULL_422", "YBR_ICT", "YBR_RCT")
# The Image Pixel fields without which pixel data cannot be laid out as an image.
_LAYOUT_FIELDS = ("Rows", "Columns", "SamplesPerPixel", "PhotometricInterpretation", "BitsAllocated", "BitsStored",
                  "PixelRepresentation")
# The modules of the dicom extra's plugins (pylibjpeg needs one of them per syntax).
_EXTRA_MODULES = {"pylibjpeg-libjpeg": "libjpeg", "pylibjpeg-openjpeg": "openjpeg"}
# Transfer syntax of a file without file meta, by the encoding pydicom read it in: (implicit VR, little endian).
_ENCODINGS = {(True, True): ImplicitVRLittleEndian, (False, True): ExplicitVRLittleEndian,
              (False, False): ExplicitVRBigEndian}


class _Layout(NamedTuple):
    """The Image Pixel fields of a single-frame DICOM, as numbers."""

    rows: int
    columns: int
    samples: int
    photometric: str
    allocated: int
    stored: int
    signed: bool


def _without_pixels(ds: Dataset) -> str:
    """Why a dataset without (7FE0,0010) Pixel Data has no image for vertkp."""
    sop = sop_class_name(ds)
    floats = [k for k in ("FloatPixelData", "DoubleFloatPixelData") if k in ds]
    if floats:
        return (f"its pixels are {field_name(floats[0])}: floating-point values (a parametric map), not a radiograph "
                "of 8 to 16 bits")
    if "DirectoryRecordSequence" in ds or sop == "Media Storage Directory Storage":
        what = "it is a DICOMDIR, the index of a DICOM disc or folder: read the image files it lists"
    elif "Image Storage" in sop:
        what = f"its SOP class is {sop}, but its pixels were left out (a header-only copy): export the image again"
    elif sop:
        what = f"its SOP class, {sop}, is not an image"
    elif not any(dictionary_has_tag(tag) for tag in ds.keys()):
        what = "pydicom finds no standard DICOM field in it: damaged at its start, or not DICOM"
    else:
        what = "nothing in its header says what it is (no SOP Class UID)"
    return f"the DICOM file has no pixel data (7FE0,0010): {what}"


def _multi_frame(path, frames: int) -> str:
    hint = f"PIL.Image.fromarray(pydicom.dcmread({str(path)!r}).pixel_array[0]).save('frame0.png')"
    return (f"a multi-frame DICOM ({frames} frames, 0 to {frames - 1}): vertkp reads one radiograph per file and "
            "does not pick a frame for you; save the frame to grade as its own image, e.g. frame 0 as a PNG: "
            f"python -c \"import pydicom, PIL.Image; {hint}\"")


def _layout_problem(layout: _Layout, sop: str) -> Optional[str]:
    """Why vertkp does not read pixels of this layout, None when it does."""
    what = f" ({sop})" if sop else ""
    pi, samples = layout.photometric, layout.samples
    if pi not in _MONOCHROME + (_PALETTE,) + _COLOUR:
        return (f"PhotometricInterpretation {pi} is not one vertkp reads ({', '.join(_MONOCHROME + _COLOUR)}, "
                f"{_PALETTE}): convert the image to MONOCHROME2 or RGB")
    if samples != (3 if pi in _COLOUR else 1):
        return (f"PhotometricInterpretation {pi}, but SamplesPerPixel {samples}: the header contradicts itself "
                f"({pi} has {3 if pi in _COLOUR else 1}); export the image again")
    if layout.allocated == 1:
        return f"1 bit per pixel{what}: a binary mask (a segmentation), not a radiograph"
    allocated, stored = layout.allocated, layout.stored
    if allocated not in (8, 16) or not 8 <= stored <= allocated:
        deep = ", the depth of radiographs (32 bits hold dose grids and computed maps)" if allocated > 16 else ""
        return f"{stored} bits stored in {allocated} allocated{what}: vertkp reads 8 to 16-bit DICOM{deep}"
    return None


def _absent(ds: Dataset, keyword: str) -> bool:
    try:
        return header_value(ds, keyword) is None
    except ValueError:  # present, but unreadable: _number names it
        return False


def _image_layout(ds: Dataset, path) -> _Layout:
    """The layout of the single frame of ``ds``.

    Raises:
        DicomError: no pixel data, Image Pixel fields absent or not numbers, multi-frame, a photometric
            interpretation or bit depth vertkp does not read.
    """
    if "PixelData" not in ds:
        raise DicomError(path, _without_pixels(ds))
    absent = [k for k in _LAYOUT_FIELDS if _absent(ds, k)]
    if absent == ["PhotometricInterpretation"]:
        raise DicomError(path, f"its {field_name(absent[0])} is absent: nothing says whether low values are black "
                               "(MONOCHROME2) or white (MONOCHROME1), and a guess shows bone dark for one of them; "
                               "set it (DCMTK: dcmodify -i \"(0028,0004)=MONOCHROME2\" FILE) or export the image again")
    if absent:
        raise DicomError(path, f"its header lacks {', '.join(field_name(k) for k in absent)}: nothing says how its pixel "
                               "data forms an image; export the image again from its source")
    frames = header_number(ds, path, "NumberOfFrames", 1)
    if frames < 1:
        raise DicomError(path, f"its {field_name('NumberOfFrames')} is {frames}: {FIX_HEADER}")
    if frames > 1:
        raise DicomError(path, _multi_frame(path, frames))
    try:
        photometric = str(header_value(ds, "PhotometricInterpretation")).strip().upper()
    except ValueError as e:
        raise DicomError(path, f"its {field_name('PhotometricInterpretation')} cannot be read ({e}): {FIX_HEADER}") \
            from None
    n = {k: header_number(ds, path, k) for k in _LAYOUT_FIELDS if k != "PhotometricInterpretation"}
    layout = _Layout(n["Rows"], n["Columns"], n["SamplesPerPixel"], photometric, n["BitsAllocated"], n["BitsStored"],
                     n["PixelRepresentation"] == 1)
    problem = _layout_problem(layout, sop_class_name(ds))
    if problem:
        raise DicomError(path, problem)
    return layout


def _transfer_syntax(ds: Dataset) -> Optional[UID]:
    """The file meta's transfer syntax; for a file without one, the encoding pydicom read the header in."""
    meta = getattr(ds, "file_meta", None)
    uid = meta.get("TransferSyntaxUID") if meta is not None else None
    if uid:
        return UID(str(uid))
    encoding = getattr(ds, "original_encoding", None) or (  # pydicom 3, else pydicom 2
        getattr(ds, "is_implicit_VR", None), getattr(ds, "is_little_endian", None))
    return _ENCODINGS.get(tuple(encoding))


def _extra_plugin(uid: UID) -> Optional[str]:
    """The package of the dicom extra that decodes ``uid`` (JPEG, JPEG-LS; JPEG 2000 and HTJ2K), None for RLE
    and the syntaxes it does not decode."""
    if not uid.startswith("1.2.840.10008.1.2.4.") or "JPEG" not in uid.name:
        return None
    return "pylibjpeg-openjpeg" if "2000" in uid.name else "pylibjpeg-libjpeg"


def _installed(plugin: str) -> bool:
    return all(importlib.util.find_spec(m) is not None for m in ("pylibjpeg", _EXTRA_MODULES[plugin]))


def _missing_decoder(uid: UID) -> Optional[str]:
    """Why pixel data in transfer syntax ``uid`` cannot be decoded here, or None when it can."""
    if not uid.is_transfer_syntax:
        return f"its transfer syntax {uid} is not one pydicom knows: export the image with a standard one"
    if not uid.is_compressed:
        return None
    if get_decoder is not None:
        try:
            if get_decoder(uid).is_available:
                return None
        except NotImplementedError:
            return (f"its pixel data is {uid.name} ({uid}), which pydicom has no decoder for (a video or "
                    "multi-component format): export the radiograph as an uncompressed DICOM or a PNG")
    else:
        handlers = [h for h in pydicom.config.pixel_data_handlers if h.supports_transfer_syntax(uid)]
        if any(h.is_available() for h in handlers):
            return None
    plugin = _extra_plugin(uid) or "pylibjpeg"
    return (f"its pixel data is compressed ({uid.name}) and no decoder for it is installed ({plugin}): "
            f"{DICOM_EXTRA}, or pip install python-gdcm")


def _short_pixel_data(ds: Dataset, layout: _Layout) -> Optional[str]:
    """Why uncompressed pixel data is too short for its layout (cut off), None when it is not."""
    need = layout.rows * layout.columns * layout.samples * layout.allocated // 8
    if layout.photometric == "YBR_FULL_422":
        need = need * 2 // 3  # two pixels share their Cb and Cr
    got = len(ds.PixelData)
    if got >= need:
        return None
    return (f"the DICOM pixel data cannot be decoded: it is cut short, {got} of the {need} bytes of "
            f"{layout.rows} x {layout.columns} pixels (a truncated copy or transfer): copy the file again")


def _undecodable(uid: UID, error: Exception) -> str:
    """Why pydicom's decoders failed, and what may read the file."""
    reason = " ".join(str(error).split()).replace(
        "Unable to decode as exceptions were raised by all available plugins: ", "")
    plugin = _extra_plugin(uid)
    if plugin and not _installed(plugin):
        return (f"the DICOM pixel data cannot be decoded ({reason}): {DICOM_EXTRA} installs {plugin}, which "
                f"decodes {uid.name} data that Pillow does not")
    if uid.is_compressed:
        return (f"the DICOM pixel data cannot be decoded by any installed decoder ({reason}): its {uid.name} "
                "data is damaged, or of a variant they do not read")
    return f"the DICOM pixel data cannot be decoded ({type(error).__name__}: {reason})"


def _decoded(ds: Dataset, path, uid: UID) -> Tuple[np.ndarray, str]:
    """The pixel array of ``ds`` and the photometric interpretation it is in (pydicom 3 returns YBR as RGB
    and says so; pydicom 2 changes the dataset's PhotometricInterpretation when its decoder converts)."""
    try:
        if get_decoder is None:
            return ds.pixel_array, str(ds.PhotometricInterpretation).strip().upper()
        pixels, meta = get_decoder(uid).as_array(ds)
        return pixels, str(meta.get("photometric_interpretation", ds.PhotometricInterpretation)).strip().upper()
    except Exception as e:  # truncated or corrupt pixel data: pydicom raises many types
        raise DicomError(path, _undecodable(uid, e)) from None


def _rgb(pixels: np.ndarray, photometric: str, ds: Dataset, path) -> np.ndarray:
    """[H, W, 3] RGB of decoded colour pixels."""
    try:
        if photometric == _PALETTE:
            return apply_color_lut(pixels, ds)
        if photometric in ("YBR_FULL", "YBR_FULL_422"):
            return convert_color_space(pixels, photometric, "RGB")
    except Exception as e:  # a missing or malformed lookup table
        raise DicomError(path, f"its {photometric} pixels cannot be made RGB ({type(e).__name__}: {e})") from None
    return pixels


def _stored_range(layout: _Layout) -> Tuple[int, int]:
    bits = layout.stored
    return (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1) if layout.signed else (0, 2 ** bits - 1)


def _has_modality_transform(ds: Dataset, path) -> bool:
    try:
        if header_value(ds, "ModalityLUTSequence"):
            return True
    except ValueError as e:
        raise DicomError(path, f"its {field_name('ModalityLUTSequence')} cannot be read ({e}): {FIX_HEADER}") from None
    slope = header_number(ds, path, "RescaleSlope", integer=False)
    intercept = header_number(ds, path, "RescaleIntercept", integer=False)
    return slope is not None and intercept is not None and (slope != 1.0 or intercept != 0.0)


def _to_uint8(y: np.ndarray, black: float, white: float) -> np.ndarray:
    """``black`` -> 0 and ``white`` -> 255, linearly (either may be the larger)."""
    if white == black:
        return np.zeros(y.shape, np.uint8)
    return np.clip(np.round((y.astype(np.float64) - black) * (255.0 / (white - black))), 0, 255).astype(np.uint8)


def _shown(values: np.ndarray, ds: Dataset) -> Optional[np.ndarray]:
    """uint8 of modality values through the file's first VOI LUT, else its first window, the
    output range of either made 0..255; None when it has neither, or only ones pydicom rejects
    (a window width under 1, an unknown VOI LUT Function, a malformed LUT, values that are no numbers)."""
    try:
        seq = ds.get("VOILUTSequence")
        if seq and "LUTDescriptor" in seq[0] and "LUTData" in seq[0]:
            if np.issubdtype(values.dtype, np.floating) and np.array_equal(values, np.round(values)):
                values = values.astype(np.int64)  # a LUT is indexed by integers
            desc = [int(v) for v in seq[0].LUTDescriptor]
            table = apply_voi(np.arange(desc[1], desc[1] + (desc[0] or 2 ** 16), dtype=np.int64), ds)
            return _to_uint8(apply_voi(values, ds), float(table.min()), float(table.max()))
    except Exception:  # pydicom raises many types for a bad LUT: try the window
        pass
    try:
        if ds.get("WindowCenter") not in (None, "") and ds.get("WindowWidth") not in (None, ""):
            ends = apply_windowing(np.array([-np.inf, np.inf]), ds)  # the output range
            return _to_uint8(apply_windowing(values, ds), float(ends[0]), float(ends[1]))
    except Exception:  # as for the LUT
        pass
    return None


def dicom_pixels(path, ds: Optional[Dataset] = None) -> np.ndarray:
    """The pixels of a single-frame DICOM file, bone bright (see the module docstring).

    Args:
        path: the file (named in errors).
        ds: its dataset when the caller has read it (:func:`read_dicom`, with its pixels),
            so that the file is parsed once; None: read here.

    Returns:
        greyscale files: [H, W], uint8 when the file says how to show it (VOI LUT, window) or
        holds 8-bit values without a rescale, otherwise the values (integer or float, any range)
        for ``vertkp.data.imaging.images``' percentile windowing; colour files: [H, W, 3] RGB
        (uint8 or uint16), of which ``vertkp.data.imaging.images`` takes the luminance.

    Raises:
        DicomError: not DICOM, no pixel data, multi-frame, a photometric interpretation or bit
            depth vertkp does not read, header fields that do not parse, a compressed syntax
            without its decoder, truncated or corrupt pixel data.
    """
    ds = read_dicom(path) if ds is None else ds
    layout = _image_layout(ds, path)
    uid = _transfer_syntax(ds)
    if uid is None:
        raise DicomError(path, "neither a transfer syntax (0002,0010) nor its encoding says how its pixel data is "
                               "stored: export the image again from its source")
    problem = _missing_decoder(uid) or (None if uid.is_compressed else _short_pixel_data(ds, layout))
    if problem:
        raise DicomError(path, problem)
    if getattr(ds, "file_meta", None) is None:
        ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = uid  # in memory, for a file without file meta
    stored, photometric = _decoded(ds, path, uid)
    expected = (layout.rows, layout.columns) + ((3,) if layout.samples == 3 else ())
    if stored.shape != expected:
        raise DicomError(path, f"the DICOM pixel data has shape {stored.shape}, expected {expected} "
                               "(rows, columns[, samples]) from its header")
    if photometric not in _MONOCHROME:
        return _rgb(stored, photometric, ds, path)
    inverted = photometric == "MONOCHROME1"
    transformed = _has_modality_transform(ds, path)
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
    lo, hi = _stored_range(layout)
    if stored.dtype == np.uint8 and lo == 0:
        return (hi - stored).astype(np.uint8)  # still 8-bit: used as is
    return lo + hi - stored.astype(np.int64)


