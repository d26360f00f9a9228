"""Files written by ``vertkp predict``: predictions.json, report.csv, COCO results, summary.

* ``predictions.json``: {"settings", "summary", "images": [SpinePrediction.as_dict()],
  "failures": [{"image", "error"}]}.
* ``report.csv``: one row per adjacent pair (:data:`REPORT_COLUMNS`); an image
  with no pair gets one row with an empty pair, so no image goes unreported.
* ``coco_results.json``: COCO keypoint results ({"image_id", "category_id",
  "keypoints": [x, y, score] * 4, "score"}), x, y in image pixels, the
  format ``vertkp evaluate --predictions`` reads.

JSON and CSV go through ``vertkp.files`` (atomic; NaN written as null).
"""
from __future__ import annotations

import os
from collections import Counter
from pathlib import Path
from typing import Dict, List, Optional, Sequence

from ..evaluation.ground_truth import ImageTruth
from ..files import write_csv
from ..grading import GRADE_NAMES, GRADES
from .result import FLAGS, SpinePrediction

__all__ = ["REPORT_COLUMNS", "report_rows", "coco_results", "summarize", "format_summary", "write_report_csv",
           "match_image_ids"]

REPORT_COLUMNS = (
    "image", "pair", "upper", "lower", "slip_pct", "slip_low_pct", "slip_high_pct", "grade", "retrolisthesis_pct",
    "lateral_displacement_pct", "lateral_side", "intervertebral_angle_deg", "disc_height_anterior_px",
    "disc_height_posterior_px", "disc_height_anterior_mm", "disc_height_posterior_mm", "facing", "flags", "image_flags",
)
# The Meyerding category of a pair, in the order summaries list them.
GRADE_ORDER = tuple(GRADE_NAMES[g] for g in GRADES) + ("not measurable",)
# Numbers in report.csv, a file people read: 4 significant digits.
REPORT_FLOAT_FORMAT = "{:.4g}"


def report_rows(prediction: SpinePrediction) -> List[Dict[str, str]]:
    """The report.csv rows of one image: one per pair, or one empty-pair row when it has none.

    ``grade`` is the grade's name ("none", "I".."V", "retrolisthesis"); numbers
    are written with 4 significant digits (:data:`REPORT_FLOAT_FORMAT`); ``flags``
    are the pair's, ``image_flags`` the image's (codes of ``vertkp.inference.FLAGS``,
    ";"-separated).
    """
    base = {"image": prediction.image, "facing": prediction.facing or "",
            "image_flags": ";".join(prediction.flags)}
    if not prediction.pairs:
        return [{**{c: "" for c in REPORT_COLUMNS}, **base}]
    rows = []
    for p in prediction.pairs:
        row = {c: getattr(p, c, None) for c in REPORT_COLUMNS}
        row.update(base, pair=p.name, upper=p.upper_name, lower=p.lower_name, grade=p.grade_name or "",
                   lateral_side=p.lateral_side or "", flags=";".join(p.flags))
        rows.append(row)
    return rows


def coco_results(predictions: Sequence[SpinePrediction], category_id: int = 1) -> List[dict]:
    """COCO keypoint results of the predictions that have an ``image_id``
    (the others cannot be matched to a ground truth and are left out)."""
    out = []
    for pred in predictions:
        if pred.image_id is None:
            continue
        for v in pred.vertebrae:
            kps = []
            for (x, y), c in zip(v.corners, v.corner_scores):
                kps += [float(x), float(y), float(c)]
            out.append({"image_id": pred.image_id, "category_id": category_id, "keypoints": kps,
                        "score": float(v.score), "bbox": [v.box[0], v.box[1], v.box[2] - v.box[0],
                                                          v.box[3] - v.box[1]]})
    return out


def summarize(predictions: Sequence[SpinePrediction], failures: Sequence[dict]) -> dict:
    """Counts over a run: images, failures, vertebrae, pairs per grade, images per flag."""
    grades = Counter()
    for pred in predictions:
        for p in pred.pairs:
            grades[p.grade_name if p.grade_name is not None else "not measurable"] += 1
    flags = Counter(f for pred in predictions for f in pred.flags)
    return {
        "images": len(predictions) + len(failures),
        "predicted": len(predictions),
        "failed": len(failures),
        "vertebrae": sum(len(p.vertebrae) for p in predictions),
        "pairs": sum(len(p.pairs) for p in predictions),
        "pairs_per_grade": {g: grades[g] for g in GRADE_ORDER if grades[g]},
        "images_per_flag": {f: flags[f] for f in FLAGS if flags[f]},
    }


def format_summary(summary: dict) -> str:
    """A few readable lines of :func:`summarize`."""
    lines = [f"images: {summary['images']} ({summary['predicted']} predicted, {summary['failed']} failed)",
             f"vertebrae: {summary['vertebrae']}, adjacent pairs: {summary['pairs']}"]
    if summary["pairs_per_grade"]:
        lines.append("pairs per grade: " + ", ".join(f"{g} {n}" for g, n in summary["pairs_per_grade"].items()))
    if summary["images_per_flag"]:
        lines.append("images flagged: " + ", ".join(f"{f} {n}" for f, n in summary["images_per_flag"].items()))
    return "\n".join(lines)


def write_report_csv(path, predictions: Sequence[SpinePrediction]) -> Path:
    """Write report.csv (:func:`report_rows` of every prediction)."""
    rows = [r for pred in predictions for r in report_rows(pred)]
    return write_csv(path, rows, REPORT_COLUMNS, float_format=REPORT_FLOAT_FORMAT)


def match_image_ids(paths: Sequence[str], gt_images: Sequence[ImageTruth]) -> List[Optional[int]]:
    """COCO image id of each input path among a ground truth's images (``load_ground_truth``).

    A path matches the image whose ``file_name`` (relative to the dataset
    root) is its trailing path components; failing that, the one image with
    the same file name. None when there is no match or it is ambiguous.
    """
    by_parts: Dict[tuple, list] = {}
    by_name: Dict[str, list] = {}
    for im in gt_images:
        parts = tuple(Path(str(im.file_name)).parts)
        by_parts.setdefault(parts, []).append(im.image_id)
        by_name.setdefault(parts[-1], []).append(im.image_id)
    out = []
    for p in paths:
        parts = Path(os.path.abspath(p)).parts
        found = None
        for k in range(1, len(parts) + 1):
            ids = by_parts.get(parts[-k:])
            if ids and len(ids) == 1:
                found = ids[0]
        if found is None and len(by_name.get(parts[-1], [])) == 1:
            found = by_name[parts[-1]][0]
        out.append(found)
    return out
