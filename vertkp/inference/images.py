"""Read X-ray images for prediction: any bit depth, grey or colour, to 8-bit grey.

The model is trained on 8-bit images; :func:`to_gray8` maps whatever comes in
(uint8, uint16, float, 1 or 3/4 channels) to one uint8 luminance channel.
Pixel coordinates are kept: no resizing, no cropping.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Tuple, Union

import cv2
import numpy as np
from PIL import Image

from ..data.images import IMAGE_SUFFIXES

__all__ = ["IMAGE_SUFFIXES", "WINDOW_PERCENTILES", "ImageReadError", "to_gray8", "read_xray", "load_image"]

# Deeper-than-8-bit images are windowed linearly between these percentiles of
# their pixel values (a few saturated or dead pixels must not flatten the contrast).
WINDOW_PERCENTILES = (0.5, 99.5)


class ImageReadError(ValueError):
    """An input that is not a readable image; the message names the file and the problem."""


def to_gray8(image: np.ndarray, image_format: str = "BGR") -> np.ndarray:
    """One uint8 luminance channel [H, W] from an image array.

    Args:
        image: [H, W], [H, W, 1], [H, W, 3] or [H, W, 4] (alpha ignored); uint8
            is used as is, any other dtype (uint16, int, float) is windowed
            linearly from its WINDOW_PERCENTILES to 0..255.
        image_format: channel order of 3/4-channel arrays, "BGR" (OpenCV) or "RGB".

    Raises:
        ImageReadError: wrong shape, empty, or no finite pixel.
    """
    a = np.asarray(image)
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[:, :, 0]
    if a.ndim not in (2, 3) or (a.ndim == 3 and a.shape[2] not in (3, 4)) or a.size == 0:
        raise ImageReadError(f"expected an [H, W], [H, W, 1], [H, W, 3] or [H, W, 4] image, got shape {a.shape}")
    if a.dtype != np.uint8:
        f = a.astype(np.float64)
        finite = np.isfinite(f)
        if not finite.any():
            raise ImageReadError("the image has no finite pixel value")
        lo, hi = np.percentile(f[finite], WINDOW_PERCENTILES)
        if hi <= lo:
            lo, hi = float(f[finite].min()), float(f[finite].max())
        scale = 255.0 / (hi - lo) if hi > lo else 0.0
        a = np.clip((np.where(finite, f, lo) - lo) * scale, 0, 255).round().astype(np.uint8)
    if a.ndim == 3:
        code = {("BGR", 3): cv2.COLOR_BGR2GRAY, ("RGB", 3): cv2.COLOR_RGB2GRAY,
                ("BGR", 4): cv2.COLOR_BGRA2GRAY, ("RGB", 4): cv2.COLOR_RGBA2GRAY}[(image_format, a.shape[2])]
        a = cv2.cvtColor(np.ascontiguousarray(a), code)
    return np.ascontiguousarray(a)


def read_xray(path: Union[str, os.PathLike]) -> np.ndarray:
    """Read an image file at its full bit depth (8/16-bit grey, RGB, RGBA, palette) and
    return uint8 grey [H, W] (:func:`to_gray8`).

    Raises:
        ImageReadError: missing, empty, not an image, or undecodable (truncated).
    """
    p = Path(path)
    if not p.is_file():
        raise ImageReadError(f"{p}: no such file")
    if p.stat().st_size == 0:
        raise ImageReadError(f"{p}: the file is empty")
    try:  # PIL decodes every byte and raises on truncation, where OpenCV may return a half-grey image
        with Image.open(p) as im:
            im.load()
            if im.mode in ("P", "PA", "CMYK", "YCbCr", "LAB", "HSV", "1"):
                im = im.convert("RGB")
            image = np.asarray(im)
    except (OSError, SyntaxError, ValueError) as e:
        raise ImageReadError(f"{p}: not a readable image ({e})") from None
    try:
        return to_gray8(image, "RGB")
    except ImageReadError as e:
        raise ImageReadError(f"{p}: {e}") from None


def load_image(source, image_format: str = "BGR") -> Tuple[np.ndarray, str]:
    """``(uint8 grey [H, W], name)`` of a path or an array (``name`` "<array>")."""
    if isinstance(source, (str, os.PathLike)):
        return read_xray(source), str(source)
    if isinstance(source, np.ndarray):
        return to_gray8(source, image_format), "<array>"
    raise TypeError(f"expected an image path or a numpy array, got {type(source).__name__}")
