"""Predictions: COCO keypoint results read and checked against their ground truth."""
from __future__ import annotations

import math
from typing import Dict

import numpy as np

from ..modeling.outputs import ImagePredictions
from .ground_truth import EvaluationInputError, GroundTruth, is_coco_id, keypoint_array, read_json_input

__all__ = ["load_predictions"]


def load_predictions(source, gt: GroundTruth) -> Dict[int, ImagePredictions]:
    """Read COCO keypoint results (what detectron2's COCOEvaluator writes).

    Each entry: ``{"image_id", "category_id", "keypoints": [x, y, s] * 4,
    "score"}`` with x, y in the GT file's coordinates (COCOEvaluator already
    removed detectron2's 0.5); the per-keypoint s is not used.

    Args:
        source: path of the JSON list, or the parsed list.
        gt: the ground truth the predictions are for.

    Returns:
        dict image_id -> :class:`ImagePredictions` (only images with results).

    Raises:
        EvaluationInputError: not a list, unknown image ids, another
            category, keypoints of the wrong length, NaN, a missing score.
    """
    data, name = read_json_input(source, "predictions")
    if isinstance(data, dict) and "annotations" in data and "images" in data:
        raise EvaluationInputError(
            f"{name} looks like a COCO ground-truth file; predictions must be a JSON list of COCO keypoint results "
            "[{'image_id', 'category_id', 'keypoints', 'score'}, ...]")
    if not isinstance(data, list):
        raise EvaluationInputError(
            f"{name}: predictions must be a JSON list of COCO keypoint results "
            f"[{{'image_id', 'category_id', 'keypoints', 'score'}}, ...], got a JSON {type(data).__name__}")
    known = {im.image_id for im in gt.images}
    unknown = {}
    per_image: Dict[int, list] = {}
    for k, r in enumerate(data):
        if not isinstance(r, dict):
            raise EvaluationInputError(f"{name}: result #{k} is not an object")
        iid = r.get("image_id")
        where = f"{name}: result #{k} (image_id {iid!r})"
        if not is_coco_id(iid):
            raise EvaluationInputError(f"{where}: 'image_id' must be the integer id of a ground-truth image")
        if iid not in known:
            unknown[iid] = unknown.get(iid, 0) + 1
            continue
        if "category_id" in r and r["category_id"] != gt.category_id:
            raise EvaluationInputError(
                f"{where}: category_id {r['category_id']!r} is not the vertebra category {gt.category_id} of the "
                "ground truth (detectron2's contiguous id 0 must be mapped back to the dataset's id)")
        a = keypoint_array(r.get("keypoints"), where)
        score = r.get("score")
        if isinstance(score, bool) or not isinstance(score, (int, float)) or not math.isfinite(score):
            raise EvaluationInputError(f"{where}: 'score' must be a finite number, got {score!r}")
        per_image.setdefault(iid, []).append((a[:, :2], float(score)))
    if unknown:
        ids = sorted(unknown, key=str)
        shown = ", ".join(repr(i) for i in ids[:5]) + (", ..." if len(ids) > 5 else "")
        raise EvaluationInputError(
            f"{name}: {sum(unknown.values())} result(s) refer to {len(ids)} image id(s) that are not in the ground "
            f"truth {gt.source}: {shown}. Were the predictions made on another dataset or split?")
    return {iid: ImagePredictions(np.array([c for c, _ in rs]), np.array([s for _, s in rs]))
            for iid, rs in per_image.items()}
