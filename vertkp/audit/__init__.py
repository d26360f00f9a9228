"""What is in a dataset: ``vertkp audit``. Findings are not errors.

    from vertkp.audit import FINDING_KINDS, Finding, Audit, audit_datasets, audit_files
    audit = audit_datasets({"train": coco_dict, "val": coco_dict}, {"train": root, "val": root})
    print(audit.format_summary())
    audit.write("output/audit", overlays=True)   # audit.json, audit.csv, overlays/*.png

Every kind, its severity and meaning is in :data:`FINDING_KINDS`; the thresholds are
module constants with a comment each (``geometry``: vertebrae; ``hashing``: images).
Torch-free, like the rest of vertkp's data side.

    findings   FINDING_KINDS, SEVERITIES, Finding
    geometry   the per-vertebra arithmetic (shapely, numpy) and its thresholds
    checks     per-image findings: shapes, overlaps, order (order_spine), slips (grade_spine)
    hashing    thumbnails (JPEG draft mode), perceptual hashes (imagehash), close pairs (numpy)
    across     duplicate images, source and patient overlaps between splits and files
    dataset    audit_datasets, Audit, where the images are; audit_files (files in, files out)
    overlay    the pictures;  report: audit.json, audit.csv, overlays/
    cli        vertkp audit
"""
from .dataset import Audit, AuditRun, audit_datasets, audit_files, resolve_image_root
from .findings import FINDING_COLUMNS, FINDING_KINDS, SEVERITIES, Finding
from ..grading.plausibility import (DUPLICATE_IOU, IMPLAUSIBLE_SLIP_PCT, MIN_DISC_HEIGHT_PX, NON_CONVEX_MIN_DEFICIT, OVERLAP_IOU,
                       TINY_AREA_FRACTION, TINY_BOX_PX)
from .hashing import HASH_BITS, NEAR_DUPLICATE_BITS

__all__ = [
    "FINDING_KINDS", "FINDING_COLUMNS", "SEVERITIES", "Finding", "Audit", "audit_datasets", "audit_files", "AuditRun",
    "resolve_image_root",
    "TINY_AREA_FRACTION", "TINY_BOX_PX", "DUPLICATE_IOU", "OVERLAP_IOU", "NON_CONVEX_MIN_DEFICIT",
    "IMPLAUSIBLE_SLIP_PCT", "MIN_DISC_HEIGHT_PX", "NEAR_DUPLICATE_BITS", "HASH_BITS",
]
