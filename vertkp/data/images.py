"""Reading image sizes and checking that images decode."""
from __future__ import annotations

from pathlib import Path

from PIL import Image

from .report import InvalidInput

__all__ = ["IMAGE_SUFFIXES", "image_size", "is_image_file"]

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff")


def is_image_file(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_SUFFIXES


def image_size(path) -> tuple:
    """(width, height) in pixels of an image file, after checking it decodes.

    The whole file is decoded (JPEGs at 1/8 scale through PIL's draft mode,
    which still reads every byte), so a truncated or corrupt file is caught
    here rather than during training.

    Raises:
        InvalidInput: the file is missing, empty, not an image or truncated.
    """
    try:
        with Image.open(path) as im:
            size = im.size
            im.draft("L", (max(1, size[0] // 8), max(1, size[1] // 8)))
            im.load()
    except FileNotFoundError:
        raise InvalidInput(path, "image file not found") from None
    except (OSError, SyntaxError, ValueError) as e:
        raise InvalidInput(path, f"unreadable image ({e})") from None
    return int(size[0]), int(size[1])
