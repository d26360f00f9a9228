"""What a phantom set says of itself: the truth of every image, and its summary.

Every coordinate is image pixels, x right, y down, integer values at pixel
centres. The truth file (``TRUTH_FILE``) holds, for every image and vertebra,
the exact ``corners`` of the rendered anatomy and the ``label_corners`` the label
file holds (``vertkp.phantoms.labelling``: equal at ``clean``), both on a 1/1000 px
grid (:func:`on_label_grid`) that JSON and CSV labels write exactly; a YOLO TXT
label's corners are its written normalised decimals times the image width or
height (``vertkp.data.datasets.spondylolisthesis.txt_label_corners``). Each pair's
``slip_pct`` and ``grade`` are measured on the exact corners, ``label_slip_pct`` and
``label_grade`` on the labelled ones.
"""
from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np

from vertkp.grading import GRADE_NAMES, GRADES, lateral_displacement_percent, meyerding_grade, slip_percent
from vertkp.keypoints import anatomical_corners

__all__ = [
    "TRUTH_FILE",
    "inside_image",
    "LABEL_DECIMALS",
    "LATERAL_DISPLACEMENT_PCT_DEFINITION",
    "on_label_grid",
    "slip_pairs",
    "lateral_displacement_pairs",
    "vertebra_records",
    "write_file",
    "summarize",
]

TRUTH_FILE = "phantom_truth.json"
# Decimals of the pixel coordinates that JSON and CSV labels hold (a 1/1000 px grid).
LABEL_DECIMALS = 3
LATERAL_DISPLACEMENT_PCT_DEFINITION = (
    "lateral_displacement_pct, AP views (docs/clinical.md): 100 * d / w, d = displacement of the midpoint "
    "of the upper vertebra's inferior endplate (BL, BR) from the midpoint of the lower vertebra's superior "
    "endplate (TL, TR), projected on TL -> TR of the lower vertebra, w = |TR - TL|; positive = to the image-right"
)


def inside_image(corners, width: int, height: int) -> np.ndarray:
    """Corners [..., 2] px moved into the image, [0, width] x [0, height]: an annotator clicks
    inside it, so a jittered label corner near the border stays there."""
    a = np.asarray(corners, dtype=np.float64).copy()
    a[..., 0] = np.clip(a[..., 0], 0.0, float(width))
    a[..., 1] = np.clip(a[..., 1], 0.0, float(height))
    return a


def on_label_grid(corners) -> np.ndarray:
    """Corners (any shape) rounded to ``LABEL_DECIMALS`` decimals, the values the labels write exactly."""
    a = np.asarray(corners, dtype=np.float64)
    return np.vectorize(lambda v: float(round(float(v), LABEL_DECIMALS)))(a) if a.size else a.copy()


def _slips(corners: np.ndarray, facing: str) -> list:
    anat = anatomical_corners(corners, facing)
    return [slip_percent(anat["posterior_superior"][k + 1], anat["anterior_superior"][k + 1],
                         anat["posterior_inferior"][k]) for k in range(len(corners) - 1)]


def slip_pairs(levels, corners: np.ndarray, facing: str, no_slip_pct: float, label_corners=None) -> list:
    """Slip and Meyerding grade of every adjacent pair, from canonical corners [K, 4, 2] and the
    facing: exact (``slip_pct``, ``grade``) and labelled (``label_slip_pct``, ``label_grade``;
    ``label_corners`` None: the same corners)."""
    exact = _slips(corners, facing)
    labelled = exact if label_corners is None else _slips(label_corners, facing)
    return [{"upper": levels[k], "lower": levels[k + 1], "slip_pct": s, "grade": meyerding_grade(s, no_slip_pct),
             "label_slip_pct": ls, "label_grade": meyerding_grade(ls, no_slip_pct)}
            for k, (s, ls) in enumerate(zip(exact, labelled))]


def _displacements(corners: np.ndarray) -> list:
    return [lateral_displacement_percent(corners[k + 1][0], corners[k + 1][1], corners[k][2], corners[k][3])
            for k in range(len(corners) - 1)]


def lateral_displacement_pairs(levels, corners: np.ndarray, label_corners=None) -> list:
    """Lateral displacement (``LATERAL_DISPLACEMENT_PCT_DEFINITION``) of every adjacent AP pair:
    exact and labelled (``label_lateral_displacement_pct``)."""
    exact = _displacements(corners)
    labelled = exact if label_corners is None else _displacements(label_corners)
    return [{"upper": levels[k], "lower": levels[k + 1], "lateral_displacement_pct": d,
             "label_lateral_displacement_pct": ld} for k, (d, ld) in enumerate(zip(exact, labelled))]


def _points(q, level, superior_only) -> list:
    pts = [[float(x), float(y)] for x, y in q]
    if level in superior_only:
        pts[2] = pts[3] = None
    return pts


def vertebra_records(levels, corners: np.ndarray, label_corners=None, superior_only=()) -> list:
    """``[{"level", "corners": [[x, y] x 4], "label_corners": [[x, y] x 4]}]``: the exact and the
    labelled corners (``label_corners`` None: the same); the inferior corners of
    ``superior_only`` levels are None."""
    label_corners = corners if label_corners is None else label_corners
    return [{"level": level, "corners": _points(q, level, superior_only),
             "label_corners": _points(lq, level, superior_only)}
            for level, q, lq in zip(levels, corners, label_corners)]


def write_file(path: Path, data: bytes) -> None:
    """One image or label file of a phantom set (its folders made as needed)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def summarize(truth: dict, out_dir, seconds: float | None = None, patients: int | None = None) -> dict:
    """Counts of a truth dict: images per split or view, vertebrae, pairs per grade."""
    per_split, grades, lateral = {}, Counter(), {"none": 0, "laterolisthesis": 0}
    vertebrae = 0
    for rec in truth["images"]:
        key = rec["split"] if rec["split"] is not None else rec["view"].upper().replace("LATERAL", "LA")
        per_split[key] = per_split.get(key, 0) + 1
        if rec["split"] == "test":
            continue
        vertebrae += len(rec["vertebrae"])
        for p in rec["pairs"]:
            if "grade" in p:
                grades[p["grade"]] += 1
            else:
                slipped = abs(p["lateral_displacement_pct"]) > truth["no_slip_pct"]
                lateral["laterolisthesis" if slipped else "none"] += 1
    summary = {
        "layout": truth["layout"],
        "out_dir": str(out_dir),
        "seed": truth["seed"],
        "images": len(truth["images"]),
        "images_per_split": dict(sorted(per_split.items())),
        "labelled_vertebrae": vertebrae,
        "pairs_per_grade": {GRADE_NAMES[g]: grades[g] for g in GRADES},
    }
    if patients is not None:
        summary["patients"] = patients
        summary["ap_pairs"] = lateral
    if seconds is not None:
        summary["seconds"] = round(seconds, 2)
        summary["seconds_per_image"] = round(seconds / max(1, len(truth["images"])), 3)
    return summary
