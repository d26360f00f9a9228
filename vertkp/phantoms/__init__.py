"""Synthetic spine radiographs written in the raw layouts of the two real datasets.

``make_phantoms(layout, out_dir, num_images, seed)`` writes a Mendeley-style
("spondylolisthesis") or BUU-LSPINE-style ("buu-lspine") folder, exactly as
shared/DATASETS.md describes the real ones, plus ``phantom_truth.json`` with
every image's corners (canonical TL, TR, BL, BR, pixels), levels, facing and
the slip of every adjacent pair computed with ``vertkp.grading.slip``.

Modules: ``spine`` (geometry, slips), ``render`` (image synthesis),
``layouts`` (file layouts, labels, truth).
"""
from .layouts import (  # noqa: F401
    BUU_LABEL_CODES,
    DEFAULT_IMAGE_SIZE,
    LAYOUTS,
    MENDELEY_LABEL_ROOT,
    TRUTH_FILE,
    buu_csv,
    ensure_phantoms,
    json_label,
    make_phantoms,
    summarize,
    yolo_label,
)

__all__ = [
    "BUU_LABEL_CODES",
    "DEFAULT_IMAGE_SIZE",
    "LAYOUTS",
    "MENDELEY_LABEL_ROOT",
    "TRUTH_FILE",
    "buu_csv",
    "ensure_phantoms",
    "json_label",
    "make_phantoms",
    "summarize",
    "yolo_label",
]
