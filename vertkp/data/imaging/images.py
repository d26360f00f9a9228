"""The one image decoder of vertkp: conversion, training, evaluation and prediction read here.

``decode_image`` is what every pixel of vertkp comes from:

* PIL decodes every byte, so a truncated or corrupt file is an error, not a
  half-grey image;
* the EXIF orientation is applied (the picture as a viewer shows it, which
  is what annotation tools label and what detectron2's ``read_image`` gives);
  ``image_size`` reports the size after it, so the COCO files' ``width`` and
  ``height`` are those of the arrays the model sees;
* images deeper than 8 bits (16-bit PNG/TIFF, 32-bit integer or float) are
  windowed linearly between the ``WINDOW_PERCENTILES`` of their values into
  uint8 (a few saturated or dead pixels must not flatten the contrast);
* palette, CMYK and other modes become RGB, and RGBA loses its alpha;
* DICOM files (``.dcm``, ``.dicom``, or ``DICM`` at byte 128, whatever the name)
  are read by ``vertkp.data.imaging.dicom`` and are always grey: single-frame greyscale
  ones rescaled, shown through their VOI LUT or window when they have one, else
  windowed as above, MONOCHROME1 inverted (bone bright); colour ones (RGB, YBR,
  palette) as their luminance, windowed first when deeper than 8 bits, which is
  what ``read_xray`` makes of the same picture in a colour PNG.

Arrays are uint8, [H, W] (grey) or [H, W, 3]; pixel coordinates are never
moved (no resizing, no cropping).

``load_image``, what prediction reads with, returns beside the pixels the image's
:class:`ImageRecord`: what the file says of itself (a DICOM header's pixel spacing, and
its identifiers only when asked), from the same parse of the file as the pixels.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Optional, Tuple, Union

import cv2
import numpy as np
from PIL import Image, ImageOps

from .dicom import DICOM_SUFFIXES, DicomError, dicom_ids, dicom_pixel_spacing, dicom_pixels, is_dicom_file, read_dicom
from ...files import InvalidInput

__all__ = ["IMAGE_SUFFIXES", "WINDOW_PERCENTILES", "ImageReadError", "ImageRecord", "is_image_file", "exif_orientation",
           "image_size", "decode_thumbnail", "decode_image", "to_gray8", "read_xray", "load_image", "model_image"]

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff") + DICOM_SUFFIXES
WINDOW_PERCENTILES = (0.5, 99.5)
# EXIF orientations that swap width and height (transposed and rotated by 90 or 270 degrees).
_SWAPPING_ORIENTATIONS = (5, 6, 7, 8)
_TO_RGB_MODES = ("P", "PA", "CMYK", "YCbCr", "LAB", "HSV", "1", "RGBA", "LA")


class ImageReadError(InvalidInput):
    """A file that is not a readable image; the message names the file and the problem."""


@dataclass(frozen=True)
class ImageRecord:
    """What is known of one image besides its pixels: what its file says (:func:`load_image`),
    under what a user gives (:meth:`given`). None: not known.

    Attributes:
        pixel_spacing: mm per pixel.
        pixel_spacing_source: where it came from: "dicom:<header field>"
            (``vertkp.data.imaging.dicom.dicom_pixel_spacing``), or the source a user's spacing is given
            with ("given", a command-line flag).
        view: "lateral" or "ap".
        data_facing: the image's known facing ("left", "right"), as ``vertkp.grading.grade_spine``'s.
        dicom_ids: a DICOM file's patient and study identifiers
            (``vertkp.data.imaging.dicom.DICOM_ID_FIELDS``), read only when asked for.
        notes: readable caveats (why a DICOM header's spacing cannot be used).
    """

    pixel_spacing: Optional[float] = None
    pixel_spacing_source: Optional[str] = None
    view: Optional[str] = None
    data_facing: Optional[str] = None
    dicom_ids: Optional[dict] = None
    notes: Tuple[str, ...] = ()

    def given(self, user: "ImageRecord") -> "ImageRecord":
        """This record under what a user gives, whose known fields win: a given pixel spacing
        replaces this one with its source ("given" when it names none) and drops the notes
        on the file's spacing; a given view or facing replaces this one."""
        changes = {k: getattr(user, k) for k in ("view", "data_facing") if getattr(user, k) is not None}
        if user.pixel_spacing is not None:
            changes.update(pixel_spacing=user.pixel_spacing, pixel_spacing_source=user.pixel_spacing_source or "given",
                           notes=())
        return replace(self, **changes)


def is_image_file(path) -> bool:
    """Whether the file name has one of :data:`IMAGE_SUFFIXES` (case-insensitive); a DICOM
    file named otherwise is told by its content (``vertkp.data.imaging.dicom.has_dicom_preamble``)."""
    return Path(path).suffix.lower() in IMAGE_SUFFIXES


def exif_orientation(im: Image.Image) -> int:
    """The EXIF orientation tag of an opened image, 1 (as stored) when it has none."""
    try:
        value = im.getexif().get(0x0112, 1)
    except Exception:  # a broken EXIF block does not make the pixels unreadable
        return 1
    return int(value) if value in range(1, 9) else 1


def _check_file(path) -> Path:
    p = Path(path)
    if not p.is_file():
        raise ImageReadError(p, "no such file" if not p.exists() else "not a file")
    if p.stat().st_size == 0:
        raise ImageReadError(p, "the file is empty")
    return p


def _decode_dicom(path, keep_dicom_ids: bool = False) -> Tuple[np.ndarray, ImageRecord]:
    """uint8 [H, W] of a DICOM file (``vertkp.data.imaging.dicom.dicom_pixels``, then windowed as any image;
    colour pixels then made grey as :func:`read_xray` makes a colour PNG), and its record, from
    one parse of the file."""
    p = _check_file(path)
    try:
        ds = read_dicom(p)
        pixels = to_gray8(dicom_pixels(p, ds), "RGB")
    except (DicomError, ImageReadError) as e:
        raise ImageReadError(p, e.what) from None
    spacing = dicom_pixel_spacing(ds)
    return pixels, ImageRecord(spacing.mm, spacing.source and f"dicom:{spacing.source}",
                               dicom_ids=dicom_ids(ds) if keep_dicom_ids else None,
                               notes=(spacing.note,) if spacing.note else ())


def _open(path) -> Image.Image:
    p = _check_file(path)
    try:
        return Image.open(p)
    except (OSError, SyntaxError, ValueError) as e:
        raise ImageReadError(p, f"not a readable image ({e})") from None


def _draft_load(im: Image.Image, min_side: int) -> Tuple[int, int]:
    """Load an opened image; a JPEG at the smallest DCT scale (1/1 to 1/8) that keeps
    ``min_side`` px on each side (PIL's draft mode still reads every byte). Returns its
    (width, height) as :func:`decode_image` returns it (EXIF orientation applied)."""
    w, h = im.size
    swap = exif_orientation(im) in _SWAPPING_ORIENTATIONS
    if im.format == "JPEG":
        im.draft("L", (min(w, max(1, min_side)), min(h, max(1, min_side))))
    im.load()
    return (int(h), int(w)) if swap else (int(w), int(h))


def image_size(path) -> Tuple[int, int]:
    """(width, height) in pixels of an image as :func:`decode_image` returns it (EXIF
    orientation applied), after checking that every byte decodes.

    JPEGs are decoded at 1/8 scale (PIL's draft mode still reads every byte), which is
    what makes conversion fast; DICOM files are decoded whole.

    Raises:
        ImageReadError: missing, empty, not an image, truncated.
    """
    if is_dicom_file(path):
        a = _decode_dicom(path)[0]
        return int(a.shape[1]), int(a.shape[0])
    im = _open(path)
    try:
        with im:
            return _draft_load(im, 1)
    except (OSError, SyntaxError, ValueError) as e:
        raise ImageReadError(path, f"not a readable image ({e})") from None


def decode_thumbnail(path, min_side: int = 64) -> Tuple[np.ndarray, Tuple[int, int]]:
    """A small grey picture of an image, and the image's (width, height) as
    :func:`decode_image` returns it.

    A JPEG is decoded at the smallest DCT scale keeping ``min_side`` px on each side
    (every byte still read; EXIF orientation applied), any other format by
    :func:`decode_image` at full size. Returns (uint8 [h, w], (width, height)).

    Raises:
        ImageReadError: missing, empty, not an image, truncated.
    """
    im = None if is_dicom_file(path) else _open(path)
    if im is None or im.format != "JPEG":
        if im is not None:
            im.close()
        a = decode_image(path, "RGB")
        return to_gray8(a, "RGB"), (int(a.shape[1]), int(a.shape[0]))
    try:
        with im:
            size = _draft_load(im, min_side)
            small = ImageOps.exif_transpose(im)
            gray = np.asarray(small if small.mode == "L" else small.convert("L"))
    except (OSError, SyntaxError, ValueError) as e:
        raise ImageReadError(path, f"not a readable image ({e})") from None
    return np.ascontiguousarray(gray), size


def to_gray8(image: np.ndarray, image_format: str = "BGR") -> np.ndarray:
    """One uint8 luminance channel [H, W] from an image array.

    Args:
        image: [H, W], [H, W, 1], [H, W, 3] or [H, W, 4] (alpha ignored); uint8 is
            used as is, any other dtype is windowed from its WINDOW_PERCENTILES.
        image_format: channel order of 3/4-channel arrays, "BGR" (OpenCV) or "RGB".

    Raises:
        ImageReadError: wrong shape, empty, or no finite pixel (path "<array>").
    """
    a = _window8(np.asarray(image))
    if a.ndim == 3:
        code = {("BGR", 3): cv2.COLOR_BGR2GRAY, ("RGB", 3): cv2.COLOR_RGB2GRAY,
                ("BGR", 4): cv2.COLOR_BGRA2GRAY, ("RGB", 4): cv2.COLOR_RGBA2GRAY}[(image_format, a.shape[2])]
        a = cv2.cvtColor(np.ascontiguousarray(a), code)
    return np.ascontiguousarray(a)


def _window8(a: np.ndarray) -> np.ndarray:
    """Shape check, [H, W, 1] -> [H, W], and any dtype but uint8 windowed into uint8."""
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[:, :, 0]
    if a.ndim not in (2, 3) or (a.ndim == 3 and a.shape[2] not in (3, 4)) or a.size == 0:
        raise ImageReadError("<array>", f"expected an [H, W], [H, W, 1], [H, W, 3] or [H, W, 4] image, "
                             f"got shape {a.shape}")
    if a.dtype == np.uint8:
        return a
    f = a.astype(np.float64)
    finite = np.isfinite(f)
    if not finite.any():
        raise ImageReadError("<array>", "the image has no finite pixel value")
    lo, hi = np.percentile(f[finite], WINDOW_PERCENTILES)
    if hi <= lo:
        lo, hi = float(f[finite].min()), float(f[finite].max())
    scale = 255.0 / (hi - lo) if hi > lo else 0.0
    return np.clip((np.where(finite, f, lo) - lo) * scale, 0, 255).round().astype(np.uint8)


def decode_image(path, image_format: str = "RGB") -> np.ndarray:
    """Decode an image file: uint8 [H, W] for grey images and all DICOM files, [H, W, 3] in
    ``image_format`` ("RGB" or "BGR") for other colour ones; see the module docstring for the rules.

    Raises:
        ImageReadError: missing, empty, not an image, undecodable (truncated); for DICOM
            also multi-frame, no pixel data, a compressed syntax without its decoder, and the
            other refusals of ``vertkp.data.imaging.dicom`` (each with its reason).
    """
    if is_dicom_file(path):
        return _decode_dicom(path)[0]
    return _decode_picture(path, image_format)


def _decode_picture(path, image_format: str) -> np.ndarray:
    """:func:`decode_image` of a file that is not DICOM (PIL)."""
    im = _open(path)
    try:
        with im:
            im.load()
            im = ImageOps.exif_transpose(im)
            if im.mode in _TO_RGB_MODES:
                im = im.convert("RGB")
            a = np.asarray(im)
    except (OSError, SyntaxError, ValueError) as e:
        raise ImageReadError(path, f"not a readable image ({e})") from None
    try:
        a = _window8(a)
    except ImageReadError as e:
        raise ImageReadError(path, e.what) from None
    if a.ndim == 3 and image_format == "BGR":
        a = a[:, :, ::-1]
    return np.ascontiguousarray(a)


def read_xray(path) -> np.ndarray:
    """uint8 grey [H, W] of an image file (:func:`decode_image`, then its luminance)."""
    return to_gray8(decode_image(path, "RGB"), "RGB")


def load_image(source: Union[str, os.PathLike, np.ndarray], image_format: str = "BGR",
               keep_dicom_ids: bool = False) -> Tuple[np.ndarray, ImageRecord]:
    """``(uint8 image, record)`` of a path (:func:`decode_image`, channels in ``image_format``;
    a DICOM file's record holds its header's pixel spacing, or a note on why it has none, and with
    ``keep_dicom_ids`` its identifiers) or of an array (deeper than 8 bits windowed as files are;
    an empty record, as for other files).

    Raises:
        ImageReadError: as :func:`decode_image`.
    """
    if isinstance(source, (str, os.PathLike)):
        if is_dicom_file(source):  # opens the file: once per image, not again in decode_image
            return _decode_dicom(source, keep_dicom_ids)
        return _decode_picture(source, image_format), ImageRecord()
    if isinstance(source, np.ndarray):
        a = _window8(source)
        return (a[:, :, :3] if a.ndim == 3 else a), ImageRecord()
    raise TypeError(f"expected an image path or a numpy array, got {type(source).__name__}")


def model_image(image: np.ndarray, image_format: str = "BGR", grayscale: bool = True) -> np.ndarray:
    """The model's view of a decoded image: uint8 [H, W, 3] in ``image_format``.

    ``grayscale`` (``INPUT.GRAYSCALE``): the luminance replicated into 3 identical
    channels (X-rays are grey; a colour tint must not be a cue); otherwise a grey
    image is replicated and a colour one kept.
    """
    a = np.asarray(image)
    if grayscale or a.ndim == 2 or (a.ndim == 3 and a.shape[2] == 1):
        g = to_gray8(a, image_format)
        return np.repeat(g[:, :, None], 3, axis=2)
    return np.ascontiguousarray(_window8(a)[:, :, :3])
