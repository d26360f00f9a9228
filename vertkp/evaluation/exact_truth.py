"""Scores against a phantom set's exact truth, beside the scores against its labels.

A phantom's label files carry annotators' jitter (``vertkp.phantoms.labelling``);
``phantom_truth.json`` keeps, per vertebra, the exact ``corners`` beside the
``label_corners``. Scored against the labels, even a perfect model shows the
labels' own error; scored against the exact truth, it shows what it learnt. This
module puts the exact corners in place of the labelled ones and measures both
that and the floor: the labels themselves scored against the exact truth.

Flat keys (``METRICS``): ``truth_<name>`` for MRE_px, MRE_pct_width, SDR_px@<t>, det_F1,
slip_MAE_pp, grade_acc, the slip tails (slip_off10_pct, slip_off20_pct) and
corners_off10pct_width against the exact truth, and ``label_MRE_px`` /
``label_SDR_px@<t>``: the labels against it. "against_truth" holds every flat metric
against the exact truth, "by_level_against_truth" its per-level section (``by_level``).
"""
from __future__ import annotations

from dataclasses import replace
from pathlib import PurePosixPath
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from ..phantoms.truth import TRUTH_FILE
from .dataset import evaluate_dataset, flat_metrics
from .ground_truth import EvaluationInputError, ImageTruth, read_json_input
from ..modeling.outputs import ImagePredictions
from .scoring import EvaluationSettings

__all__ = ["MATCH_TOLERANCE_PX", "TRUTH_METRICS", "exact_truth", "truth_metrics", "add_truth_scores"]

# A label file's corner and the truth's label_corners agree to this, px (both on a 1/1000 px grid).
MATCH_TOLERANCE_PX = 1e-3
# The headline metrics repeated against the exact truth (prefix "truth_"); "label_" ones are
# the labels' own error.
TRUTH_METRICS = ("MRE_px", "MRE_pct_width", "det_F1", "slip_MAE_pp", "grade_acc", "slip_off10_pct", "slip_off20_pct",
                 "corners_off10pct_width")


def _parts(name: str) -> tuple:
    return PurePosixPath(str(name).replace("\\", "/")).parts


def _record_for(file_name: str, by_parts: Dict[tuple, dict], source: str) -> dict:
    """The truth record whose file name ends like ``file_name`` (or that ``file_name`` ends like)."""
    want = _parts(file_name)
    hits = [rec for parts, rec in by_parts.items()
            if parts[-len(want):] == want or want[-len(parts):] == parts]
    if len(hits) != 1:
        what = "no" if not hits else f"{len(hits)}"
        raise EvaluationInputError(f"{source}: {what} truth record for image {file_name!r}; is it the truth of "
                                   "the phantom set this ground truth was converted from?")
    return hits[0]


def _grid(points) -> np.ndarray:
    return np.array([[np.nan, np.nan] if p is None else p for p in points], dtype=np.float64)


def exact_truth(truth, gt: Sequence[ImageTruth]) -> Tuple[List[ImageTruth], Dict[int, ImagePredictions]]:
    """The ground truth with every labelled vertebra's corners replaced by the exact ones.

    Args:
        truth: a phantom truth file (``phantom_truth.json``) or its parsed dict.
        gt: the ground-truth images converted from that phantom set's label files.

    Returns:
        (images, labels): ``gt``'s images with the exact corners and the truth's levels
        (the labels' where the truth names none), and their labelled
        corners as predictions (score 1) by image id, to score the labels' own error.

    Raises:
        EvaluationInputError: not a phantom truth, or an image or vertebra it does not have.
    """
    data, source = read_json_input(truth, "truth")
    images = data.get("images") if isinstance(data, dict) else None
    if not isinstance(images, list) or \
            not all(isinstance(r, dict) and "file_name" in r and isinstance(r.get("vertebrae"), list) for r in images) or \
            any(not isinstance(v, dict) or "label_corners" not in v for r in images for v in r["vertebrae"]):
        raise EvaluationInputError(f"{source} is not a vertkp phantom truth file ({TRUTH_FILE} with exact "
                                   "'corners' and 'label_corners' per vertebra)")
    by_parts = {_parts(r["file_name"]): r for r in images}
    exact_images, labels = [], {}
    for t in gt:
        rec = _record_for(t.file_name, by_parts, source)
        labelled = [_grid(v["label_corners"]) for v in rec["vertebrae"]]
        corners, levels = t.corners.copy(), list(t.levels) + [None] * (t.n - len(t.levels))
        for k in range(t.n):
            seen = t.visible[k]
            hit = [j for j, lab in enumerate(labelled)
                   if np.all(np.abs(lab[seen] - t.corners[k][seen]) <= MATCH_TOLERANCE_PX)]
            if not hit:
                level = f" ({t.levels[k]})" if k < len(t.levels) and t.levels[k] else ""
                raise EvaluationInputError(f"{source}: vertebra {k + 1}{level} of {t.file_name!r} is not one the "
                                           "truth labels (its corners differ from every label_corners)")
            exact = rec["vertebrae"][hit[0]]
            corners[k][seen] = _grid(exact["corners"])[seen]
            levels[k] = exact.get("level") or levels[k]
        exact_images.append(replace(t, corners=corners, levels=levels))
        filled = np.where(t.visible[..., None], t.corners, np.nanmean(np.where(t.visible[..., None], t.corners,
                                                                              np.nan), axis=1, keepdims=True))
        labels[t.image_id] = ImagePredictions(filled, np.ones(t.n))
    return exact_images, labels


def truth_metrics(against_truth: dict, labels_against_truth: dict) -> dict:
    """The flat ``truth_*`` and ``label_*`` scalars from the metrics (``evaluate_dataset``) of the
    predictions and of the labels, each scored against the exact truth."""
    out = {f"truth_{name}": against_truth.get(name) for name in TRUTH_METRICS}
    out.update({f"truth_{k}": v for k, v in against_truth.items() if k.startswith("SDR_px@")})
    out["label_MRE_px"] = labels_against_truth.get("MRE_px")
    out.update({f"label_{k}": v for k, v in labels_against_truth.items() if k.startswith("SDR_px@")})
    return out


def add_truth_scores(metrics: dict, truth, gt: Sequence[ImageTruth], predictions: Mapping[int, ImagePredictions],
                     settings: Optional[EvaluationSettings] = None) -> None:
    """Add to ``metrics`` (``evaluate_dataset``'s, against the labels) the scores against the exact
    truth: the flat ``truth_*`` and ``label_*`` scalars (:func:`truth_metrics`), every flat
    metric of both under "against_truth" and "labels_against_truth", and the predictions'
    ``by_level`` against the exact truth under "by_level_against_truth". No bootstrap."""
    exact, labels = exact_truth(truth, gt)
    quiet = replace(settings or EvaluationSettings(), bootstrap=0)
    against = evaluate_dataset(exact, predictions, quiet).metrics
    floor = evaluate_dataset(exact, labels, quiet).metrics
    metrics.update(truth_metrics(against, floor))
    metrics["against_truth"] = flat_metrics(against)
    metrics["labels_against_truth"] = flat_metrics(floor)
    metrics["by_level_against_truth"] = against["by_level"]
