"""A phantom set's images as DICOM files (``vertkp phantoms --format dicom``).

The set itself is written as the real datasets are (JPEG, in their layouts, which
the converters expect); :func:`write_dicom_set` then writes every image of its
truth file again as ``<set>_dicom/<file_name>.dcm``, beside the set, not in it:
8-bit MONOCHROME2 Secondary Capture files of the decoded pixels (a colour phantom
becomes its luminance, the picture the model sees), with ``PixelSpacing`` equal
to the truth's ``pixel_spacing`` when it has one, empty patient fields, and UIDs
made from the set's layout, seed and file name (same set, same bytes).
"""
from __future__ import annotations

import io
from pathlib import Path
from typing import Optional

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, SecondaryCaptureImageStorage, generate_uid

from vertkp.data.imaging.images import read_xray
from vertkp.files import read_json

from .truth import TRUTH_FILE, write_file

__all__ = ["DICOM_DIR_SUFFIX", "dicom_dir", "check_dicom_dir", "save_dicom", "dicom_bytes", "write_dicom_set"]

DICOM_DIR_SUFFIX = "_dicom"
# DS values hold at most 16 characters.
_DS_CHARS = 16


def dicom_dir(set_dir) -> Path:
    """Where the DICOM copy of the set in ``set_dir`` goes: ``<set_dir>_dicom`` beside it."""
    p = Path(set_dir)
    return p.with_name(p.name + DICOM_DIR_SUFFIX)


def check_dicom_dir(path) -> None:
    """Raises FileExistsError unless ``path`` is new or an empty folder."""
    p = Path(path)
    if p.exists() and (not p.is_dir() or any(p.iterdir())):
        raise FileExistsError(f"{p} exists and is not empty; the DICOM copy is only written into a new or empty "
                              "folder (delete it or pass another --output)")


def save_dicom(ds: Dataset, target) -> None:
    """Write a dataset as a DICOM file (preamble, ``DICM``, file meta) to a path or a binary buffer."""
    if int(pydicom.__version__.split(".")[0]) >= 3:
        ds.save_as(target, enforce_file_format=True)
    else:  # pydicom 2
        ds.is_little_endian, ds.is_implicit_VR = True, False
        ds.save_as(target, write_like_original=False)


def _ds(value: float) -> str:
    text = repr(float(value))
    return text if len(text) <= _DS_CHARS else f"{float(value):.10g}"


def dicom_bytes(image: np.ndarray, pixel_spacing: Optional[float], key: str) -> bytes:
    """A single-frame MONOCHROME2 DICOM file of a grey image.

    Args:
        image: uint8 or uint16 [H, W].
        pixel_spacing: mm per pixel, written as PixelSpacing (row = column); None: none written.
        key: what makes the UIDs (the same key, the same UIDs).
    """
    a = np.ascontiguousarray(image)
    if a.ndim != 2 or a.dtype not in (np.uint8, np.uint16):
        raise ValueError(f"expected a uint8 or uint16 [H, W] image, got {a.dtype} {a.shape}")
    def uid(part: str) -> str:
        return generate_uid(entropy_srcs=[key, part])

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    meta.MediaStorageSOPInstanceUID = uid("instance")
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta, ds.preamble = meta, b"\0" * 128
    ds.SOPClassUID, ds.SOPInstanceUID = SecondaryCaptureImageStorage, meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID, ds.SeriesInstanceUID = uid("study"), uid("series")
    ds.Modality, ds.ConversionType = "OT", "SYN"  # a synthetic image
    for keyword in ("PatientName", "PatientID", "PatientBirthDate", "PatientSex", "StudyDate", "StudyTime",
                    "ReferringPhysicianName", "StudyID", "AccessionNumber"):
        setattr(ds, keyword, "")
    ds.SeriesNumber, ds.InstanceNumber = 1, 1
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.Rows, ds.Columns = a.shape
    bits = a.dtype.itemsize * 8
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = bits, bits, bits - 1, 0
    if pixel_spacing is not None:
        ds.PixelSpacing = [_ds(pixel_spacing), _ds(pixel_spacing)]
    ds.PixelData = a.astype(a.dtype.newbyteorder("<"), copy=False).tobytes()
    buf = io.BytesIO()
    save_dicom(ds, buf)
    return buf.getvalue()


def write_dicom_set(set_dir, out_dir=None) -> dict:
    """Write every image of the phantom set in ``set_dir`` (its truth file's ``images``) as DICOM.

    Args:
        set_dir: a folder written by ``make_phantoms``.
        out_dir: where to write; default :func:`dicom_dir` of ``set_dir``. Must be new or empty.

    Returns:
        {"out_dir", "images": files written, "with_spacing": how many have PixelSpacing}
    """
    set_dir = Path(set_dir)
    out = Path(out_dir) if out_dir is not None else dicom_dir(set_dir)
    check_dicom_dir(out)
    truth = read_json(set_dir / TRUTH_FILE)
    with_spacing = 0
    for rec in truth["images"]:
        name = rec["file_name"]
        key = f"vertkp phantom {truth['layout']} {truth['seed']} {name}"
        write_file(out / Path(name).with_suffix(".dcm"),
                   dicom_bytes(read_xray(set_dir / name), rec.get("pixel_spacing"), key))
        with_spacing += rec.get("pixel_spacing") is not None
    return {"out_dir": str(out), "images": len(truth["images"]), "with_spacing": with_spacing}
