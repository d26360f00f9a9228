"""The Mendeley archive's folder layout (``datasets/README.md``) and its file names.

Relative to the dataset root: the labelled images are
``KEYPOINTRCNN_DIR/IMAGES_DIR/<split>/``, their labels
``KEYPOINTRCNN_DIR/LABELS_DIR/<split>/``; the unlabelled test images sit in a
``TEST_DIR`` folder (where exactly is unconfirmed, so it is searched for). Images
are Roboflow exports named ``<source stem>_jpg.rf.<32 hex>``.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Optional

from ....files import InvalidInput
from ...imaging.images import is_image_file
from ...raw.sources import is_junk

__all__ = ["KEYPOINTRCNN_DIR", "IMAGES_DIR", "LABELS_DIR", "TEST_DIR", "SPLITS", "source_stem", "roboflow_name",
           "find_keypointrcnn_dir", "find_test_images"]

KEYPOINTRCNN_DIR = "Dataset/Train/Keypointrcnn_data"
IMAGES_DIR = "images"
LABELS_DIR = "labels"
TEST_DIR = "Test"
SPLITS = ("train", "val")
ROBOFLOW_NAME = re.compile(r"^(?P<stem>.+)_(?:jpe?g|png|bmp)\.rf\.[0-9a-fA-F]{32}$")


def source_stem(stem: str) -> Optional[str]:
    """Source image stem of a Roboflow export name, or None if it is not one.

    ``3209-F-073Y1_jpg.rf.<32 hex>`` -> ``3209-F-073Y1``.
    """
    m = ROBOFLOW_NAME.match(stem)
    return m.group("stem") if m else None


def roboflow_name(stem: str, digest: str) -> str:
    """The Roboflow export name of a source image: the inverse of :func:`source_stem`.

    ``roboflow_name("3209-F-073Y1", 32 hex digits)`` -> ``3209-F-073Y1_jpg.rf.<digest>``.
    """
    name = f"{stem}_jpg.rf.{digest}"
    if not ROBOFLOW_NAME.match(name):
        raise ValueError(f"digest must be 32 hexadecimal digits, got {digest!r}")
    return name


def find_keypointrcnn_dir(root: Path) -> Path:
    """The ``Keypointrcnn_data`` folder under ``root`` (expected at
    ``root/KEYPOINTRCNN_DIR``; searched 4 levels deep)."""
    root = Path(root)
    expected = root / KEYPOINTRCNN_DIR
    if expected.is_dir():
        return expected
    name = expected.name
    found = sorted(p for depth in range(5) for p in root.glob("/".join(["*"] * depth + [name]))
                   if p.is_dir() and not is_junk(p.relative_to(root)))
    if len(found) == 1:
        return found[0]
    if not found:
        raise InvalidInput(root, f"no {name} folder found; expected {KEYPOINTRCNN_DIR} "
                           "(see datasets/README.md for the layout)")
    raise InvalidInput(root, f"several {name} folders: " + ", ".join(map(str, found)))


def find_test_images(root: Path, kp_dir: Path) -> tuple:
    """Unlabelled test images: every image in folders named ``TEST_DIR`` (``Test``,
    or ``test``) up to 3 levels under ``root``, outside ``kp_dir``. Where the archive
    puts them is unconfirmed, so the folders found are returned for the report.

    Returns:
        (sorted image paths, sorted folders)
    """
    root = Path(root)
    dirs = sorted(
        {
            p
            for depth in range(3)
            for p in root.glob("/".join(["*"] * (depth + 1)))
            if p.name in (TEST_DIR, TEST_DIR.lower()) and p.is_dir() and kp_dir not in p.parents and p != kp_dir
            and not is_junk(p.relative_to(root))
        }
    )
    images = sorted(f for d in dirs for f in d.rglob("*") if f.is_file() and is_image_file(f) and not is_junk(f))
    return images, dirs
