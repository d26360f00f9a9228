"""What the audit reports: the kinds of finding, their severities, and :class:`Finding`.

A finding is not an error: it says what is in a dataset that a person should know
before training or evaluating on it. Severities:

* "error": the annotation or image is certainly unusable as it stands (a corner the
  model cannot see, corners that no longer name the vertebra's corners, one vertebra
  annotated twice, an image that cannot be read);
* "warning": probably a problem for training or evaluation (a leak between splits,
  an implausible shape or slip, levels that contradict the geometry);
* "info": worth knowing, often harmless (near-duplicate pictures, an annotation
  order that tools pairing vertebrae by file order would get wrong).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

from ..grading.plausibility import (DUPLICATE_IOU, IMPLAUSIBLE_SLIP_PCT, MIN_ENDPLATE_RATIO, OVERLAP_IOU,
                                    TINY_AREA_FRACTION, TINY_BOX_PX)
from .hashing import HASH_BITS, NEAR_DUPLICATE_BITS

__all__ = ["SEVERITIES", "FINDING_KINDS", "FINDING_COLUMNS", "Finding", "make_finding"]

SEVERITIES = ("error", "warning", "info")

# kind -> (severity, one-line meaning), in the order the audit reports them.
FINDING_KINDS: Dict[str, Tuple[str, str]] = {
    "unreadable_image": ("error", "the image file is missing, empty, truncated or not an image"),
    "corner_outside_image": ("error", "a labelled corner lies outside [0, width] x [0, height]"),
    "self_intersecting": ("error", "the quadrilateral TL, TR, BR, BL crosses itself (corners out of order)"),
    "duplicate_vertebra": ("error", f"two quadrilaterals of one image overlap with IoU > {DUPLICATE_IOU:g}: one "
                                    "vertebra twice"),
    "non_convex": ("warning", "the quadrilateral TL, TR, BR, BL has a reflex corner"),
    "misshapen_vertebra": ("warning", f"one endplate (TL-TR or BL-BR) is under {100 * MIN_ENDPLATE_RATIO:g}% of the "
                                      "other's length"),
    "tiny_vertebra": ("warning", f"area under {100 * TINY_AREA_FRACTION:g}% of the image's median vertebra area, or "
                                 f"corner box under {TINY_BOX_PX[0]:g} x {TINY_BOX_PX[1]:g} px"),
    "overlapping_vertebrae": ("warning", f"two quadrilaterals of one image overlap with {OVERLAP_IOU:g} < IoU <= "
                                         f"{DUPLICATE_IOU:g}"),
    "out_of_order": ("warning", "levels contradict the order along the spine (info when the file has no levels "
                                "and only its annotation order runs neither cranial-to-caudal nor back)"),
    "implausible_slip": ("warning", f"|slip| > {IMPLAUSIBLE_SLIP_PCT:g}% or a negative disc height between "
                                    "neighbouring vertebrae"),
    "duplicate_image": ("warning", "identical decoded pixels to another image (same or other file)"),
    "near_duplicate_image": ("info", f"perceptual hash within {NEAR_DUPLICATE_BITS} of {HASH_BITS} bits of another "
                                     "image, pixels not identical"),
    "source_overlap": ("warning", "one Roboflow source image in more than one split or file"),
    "patient_overlap": ("warning", "one BUU-LSPINE patient (NNNN-S-AAAYv names) in more than one split or file"),
}
# The fields of a finding: the columns of audit.csv and the keys of audit.json's findings.
FINDING_COLUMNS = ("kind", "severity", "gt_file", "file_name", "annotation_ids", "detail")


@dataclass
class Finding:
    """One thing found in a dataset.

    Attributes:
        kind: a key of :data:`FINDING_KINDS`.
        severity: "error", "warning" or "info" (:data:`FINDING_KINDS`, but
            "info" for an ``out_of_order`` file order without levels).
        gt_file: the label of the dataset (split or GT file) it was found in;
            for a finding across files, the first, the others in ``detail``.
        file_name: the image, as the COCO file names it.
        annotation_ids: COCO annotation ids involved ([] for image-level findings).
        detail: a short readable text with the numbers.
    """

    kind: str
    severity: str
    gt_file: str
    file_name: str
    annotation_ids: List = field(default_factory=list)
    detail: str = ""

    def as_dict(self) -> dict:
        return {"kind": self.kind, "severity": self.severity, "gt_file": self.gt_file,
                "file_name": self.file_name, "annotation_ids": list(self.annotation_ids), "detail": self.detail}


def make_finding(kind: str, gt_file: str, file_name: str, annotation_ids=(), detail: str = "",
                 severity: Optional[str] = None) -> Finding:
    """A :class:`Finding` with the severity of its kind unless ``severity`` is given."""
    if kind not in FINDING_KINDS:
        raise ValueError(f"unknown finding kind {kind!r}; the kinds are {list(FINDING_KINDS)}")
    severity = severity or FINDING_KINDS[kind][0]
    if severity not in SEVERITIES:
        raise ValueError(f"severity must be one of {SEVERITIES}, got {severity!r}")
    return Finding(kind, severity, str(gt_file), str(file_name), list(annotation_ids), detail)
