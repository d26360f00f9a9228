"""Files written by ``vertkp predict``: predictions.json, report.csv, COCO results, summary.

* ``predictions.json``: {"settings", "summary", "images": [SpinePrediction.as_dict()],
  "failures": [{"image", "error"}]}.
* ``report.csv``: one row per adjacent pair (:data:`REPORT_COLUMNS`); an image
  with no pair gets one row with an empty pair, so no image goes unreported.
* ``coco_results.json``: COCO keypoint results ({"image_id", "category_id",
  "keypoints": [x, y, score] * 4, "score"}), x, y in image pixels, the
  format ``vertkp evaluate --predictions`` reads.
* ``predictions.jsonl``, the line per image they are all written from: ``vertkp.inference.stream``.

JSON and CSV go through ``vertkp.files`` (atomic; NaN written as null).
"""
from __future__ import annotations

import os
from collections import Counter
from pathlib import Path
from typing import Dict, Iterable, List, Mapping, Optional, Sequence

from ..evaluation.ground_truth import ImageTruth
from ..files import write_csv
from ..grading import GRADE_NAMES, GRADES
from .result import FLAGS, SpinePrediction

__all__ = ["REPORT_COLUMNS", "report_rows", "coco_results", "RunSummary", "summarize", "format_summary",
           "write_report_csv", "write_report_rows", "match_image_ids"]

REPORT_COLUMNS = (
    "image", "pair", "upper", "lower", "level_confidence", "slip_pct", "slip_low_pct", "slip_high_pct", "grade",
    "grade_probability", "retrolisthesis_pct",
    "lateral_displacement_pct", "lateral_side", "intervertebral_angle_deg", "disc_height_anterior_px",
    "disc_height_posterior_px", "disc_height_anterior_mm", "disc_height_posterior_mm", "facing", "flags", "image_risk", "image_flags",
)
# The Meyerding category of a pair, in the order summaries list them.
GRADE_ORDER = tuple(GRADE_NAMES[g] for g in GRADES) + ("not measurable",)
# Numbers in report.csv, a file people read: 4 significant digits.
REPORT_FLOAT_FORMAT = "{:.4g}"


def report_rows(prediction: SpinePrediction) -> List[Dict[str, str]]:
    """The report.csv rows of one image: one per pair, or one empty-pair row when it has none.

    ``grade`` is the grade's name ("none", "I".."V", "retrolisthesis") and ``grade_probability``
    its probability; ``level_confidence`` the probability that the pair's level names are right
    (empty when they are given or positional); numbers are written with 4 significant digits
    (:data:`REPORT_FLOAT_FORMAT`); ``flags`` are the pair's, ``image_flags`` the image's (codes of
    ``vertkp.inference.FLAGS``, ";"-separated), ``image_risk`` the image's ``risk``.
    """
    base = {"image": prediction.image, "facing": prediction.facing or "", "image_risk": prediction.risk,
            "image_flags": ";".join(prediction.flags)}
    if not prediction.pairs:
        return [{**{c: "" for c in REPORT_COLUMNS}, **base}]
    rows = []
    for p in prediction.pairs:
        row = {c: getattr(p, c, None) for c in REPORT_COLUMNS}
        row.update(base, pair=p.name, upper=p.upper_name, lower=p.lower_name, grade=p.grade_name or "",
                   level_confidence=prediction.vertebrae[p.lower].level_confidence,
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


def _field(obj, name: str):
    """A field of a prediction or pair, the object or its ``as_dict()``."""
    return obj[name] if isinstance(obj, Mapping) else getattr(obj, name)


class RunSummary:
    """:func:`summarize`'s counts, gathered one image at a time (``vertkp predict`` adds each
    predictions.jsonl line as it streams them).

    ``add`` takes a :class:`SpinePrediction` or its ``as_dict()`` (what predictions.jsonl
    holds); ``add_failure`` counts an input that could not be read; ``as_dict()`` is the summary.
    """

    def __init__(self):
        self.predicted = self.failed = self.vertebrae = self.pairs = 0
        self.grades, self.flags = Counter(), Counter()

    def add(self, prediction) -> None:
        """Count one predicted image (a SpinePrediction or its ``as_dict()``)."""
        grades = [_field(p, "grade_name") for p in _field(prediction, "pairs")]
        self.predicted += 1
        self.vertebrae += len(_field(prediction, "vertebrae"))
        self.pairs += len(grades)
        self.grades.update(g if g is not None else "not measurable" for g in grades)
        self.flags.update(_field(prediction, "flags"))

    def add_failure(self) -> None:
        """Count one input that could not be read."""
        self.failed += 1

    def as_dict(self) -> dict:
        """The summary: images, predicted, failed, vertebrae, pairs, pairs per grade, images per flag."""
        return {
            "images": self.predicted + self.failed,
            "predicted": self.predicted,
            "failed": self.failed,
            "vertebrae": self.vertebrae,
            "pairs": self.pairs,
            "pairs_per_grade": {g: self.grades[g] for g in GRADE_ORDER if self.grades[g]},
            "images_per_flag": {f: self.flags[f] for f in FLAGS if self.flags[f]},
        }


def summarize(predictions: Sequence, failures: Sequence[dict]) -> dict:
    """Counts over a run (:class:`RunSummary`): images, failures, vertebrae, pairs per grade,
    images per flag. ``predictions``: SpinePrediction objects or their ``as_dict()``."""
    summary = RunSummary()
    for pred in predictions:
        summary.add(pred)
    for _ in failures:
        summary.add_failure()
    return summary.as_dict()


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
    return write_report_rows(path, (r for pred in predictions for r in report_rows(pred)))


def write_report_rows(path, rows: Iterable[Mapping]) -> Path:
    """Write report.csv from :func:`report_rows` rows (streamed: an iterator is never held in memory)."""
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
