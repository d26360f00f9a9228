"""Where a converted image comes from: its source image and its patient.

Both are read from a COCO image entry (``source_stem``, ``patient_id``) and, when the
entry lacks them, from the names the real archives use: Roboflow export names
(``<stem>_jpg.rf.<32 hex>``) and BUU-LSPINE names (``NNNN-S-AAAYv``). The audit groups
copies and patients with them, and the evaluation resamples patients.
"""
from __future__ import annotations

from pathlib import Path
from typing import Mapping, Optional

from ..datasets.buu_lspine.layout import parse_name
from ..datasets.spondylolisthesis.layout import source_stem

__all__ = ["source_of", "patient_of"]


def source_of(image: Mapping, file_name: str) -> Optional[str]:
    """The source stem of an image: its ``source_stem`` field, else parsed from its file
    name's Roboflow form (``<stem>_jpg.rf.<32 hex>``), else its file stem."""
    value = image.get("source_stem")
    if isinstance(value, str) and value.strip():
        return value.strip()
    stem = Path(file_name).stem
    return source_stem(stem) or stem or None


def patient_of(image: Mapping, file_name: str = "") -> Optional[str]:
    """The BUU-LSPINE patient id of an image: its ``patient_id`` field (digits are
    written with 4 digits, as in the names: 1 -> "0001"), else parsed from its source
    stem or file stem when one is a ``NNNN-S-AAAYv`` name; None otherwise."""
    value = image.get("patient_id")
    if value is not None and str(value).strip():
        text = str(value).strip()
        return f"{int(text):04d}" if text.isdigit() else text
    stem = Path(file_name).stem if file_name else ""
    for candidate in (image.get("source_stem"), source_stem(stem) if stem else None, stem):
        name = parse_name(candidate.strip()) if isinstance(candidate, str) and candidate.strip() else None
        if name is not None:
            return name.patient
    return None
