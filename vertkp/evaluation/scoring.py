"""Score predictions against ground truth: the arithmetic shared by
``tools/evaluate.py`` and ``VertebraKeypointEvaluator``.

Per image (:func:`evaluate_image`):

1. predictions with score < ``score_threshold`` are dropped;
2. the rest are matched one to one to the GT vertebrae
   (``matching.match_vertebrae``: Hungarian on mean corner distance, gated
   at ``gate_factor`` x the GT vertebra's size);
3. every labelled GT corner gets an error: |pred - gt| px (x pixel spacing
   for mm) when its vertebra was matched, +inf when it was not (a failure in
   SDR, left out of MRE);
4. the GT spine is graded with ``grade_spine`` (its levels, view, the
   facing setting or the image's own facing), and so is the predicted spine
   (all kept predictions, no levels: what a deployed model would report; a
   matched prediction ignores the corners its GT vertebra does not label, as
   S1's missing inferior corners in BUU-LSPINE). Each measurable GT pair
   whose two vertebrae were both matched is scored by measuring the same
   two predicted vertebrae with the predicted spine's own facing; a pair
   with a missed vertebra is "unscored".

:func:`evaluate_dataset` aggregates images into the metrics of metrics.json.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Dict, List, Mapping, Optional, Sequence

import numpy as np

from ..grading import (
    DEFAULT_GAP_FACTOR,
    DEFAULT_NO_SLIP_PCT,
    SpineGrading,
    ap_pair_measures,
    grade_name,
    grade_spine,
    lateral_pair_measures,
)
from ..keypoints import KEYPOINT_NAMES
from .io import EvaluationInputError, ImagePredictions, ImageTruth
from .matching import DEFAULT_GATE_FACTOR, Matching, match_vertebrae
from .metrics import detection_scores, error_stats, slip_agreement, success_detection_rate

__all__ = [
    "DEFAULT_SDR_THRESHOLDS_PX",
    "DEFAULT_SDR_THRESHOLDS_MM",
    "DEFAULT_SCORE_THRESHOLD",
    "EvaluationSettings",
    "ImageEvaluation",
    "DatasetEvaluation",
    "evaluate_image",
    "evaluate_dataset",
    "flat_metrics",
    "threshold_key",
    "grade_label",
]

DEFAULT_SDR_THRESHOLDS_PX = (6.0, 12.0, 18.0, 24.0)
DEFAULT_SDR_THRESHOLDS_MM = (2.0, 2.5, 3.0, 4.0)
DEFAULT_SCORE_THRESHOLD = 0.5


def threshold_key(t: float) -> str:
    """How a threshold is written in metric keys: 6.0 -> "6", 2.5 -> "2.5"."""
    return f"{float(t):g}"


@dataclass
class EvaluationSettings:
    """Everything that changes the numbers; echoed into metrics.json.

    Attributes:
        facing: "left", "right" (every lateral image), or "auto" (the image's
            own facing when the data has one, else estimated per spine).
        score_threshold: predictions scoring below it are ignored.
        gate_factor: matching gate, fraction of the GT vertebra's size.
        no_slip_pct: half-width of the Meyerding no-slip band, percent.
        gap_factor: disc height / body height above which consecutive
            vertebrae are not a pair.
        sdr_thresholds_px, sdr_thresholds_mm: SDR thresholds.
    """

    facing: str = "auto"
    score_threshold: float = DEFAULT_SCORE_THRESHOLD
    gate_factor: float = DEFAULT_GATE_FACTOR
    no_slip_pct: float = DEFAULT_NO_SLIP_PCT
    gap_factor: float = DEFAULT_GAP_FACTOR
    sdr_thresholds_px: Sequence[float] = DEFAULT_SDR_THRESHOLDS_PX
    sdr_thresholds_mm: Sequence[float] = DEFAULT_SDR_THRESHOLDS_MM

    def __post_init__(self):
        if self.facing not in ("left", "right", "auto"):
            raise ValueError(f"facing must be 'left', 'right' or 'auto', got {self.facing!r}")
        for name in ("score_threshold", "gate_factor", "no_slip_pct", "gap_factor"):
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and math.isfinite(v) and v >= 0):
                raise ValueError(f"{name} must be a finite number >= 0, got {v!r}")
        if not 0 <= self.no_slip_pct < 25:
            raise ValueError(f"no_slip_pct must be in [0, 25), got {self.no_slip_pct}")
        for name in ("sdr_thresholds_px", "sdr_thresholds_mm"):
            ts = tuple(float(t) for t in getattr(self, name))
            if not ts or any(not (math.isfinite(t) and t > 0) for t in ts):
                raise ValueError(f"{name} must be positive numbers, got {getattr(self, name)!r}")
            setattr(self, name, tuple(sorted(set(ts))))

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass
class ImageEvaluation:
    """Per-image result of :func:`evaluate_image`.

    Attributes:
        truth: the image's ground truth.
        n_predictions: predictions kept (score >= threshold).
        matching: :class:`Matching` of GT vertebrae to kept predictions.
        pred_corners: [N, 4, 2] the matched prediction of each GT vertebra
            (NaN when unmatched).
        errors_px: [N, 4] error of each GT corner: NaN unlabelled, +inf
            labelled but its vertebra unmatched.
        gt_grading, pred_grading: the two spines' gradings (pred None when
            nothing was predicted).
        pairs: one dict per measurable GT pair (see ``_score_pairs``).
    """

    truth: ImageTruth
    n_predictions: int
    matching: Matching
    pred_corners: np.ndarray
    errors_px: np.ndarray
    gt_grading: SpineGrading
    pred_grading: Optional[SpineGrading]
    pairs: List[dict] = field(default_factory=list)

    @property
    def errors_mm(self) -> Optional[np.ndarray]:
        s = self.truth.pixel_spacing
        return None if s is None else self.errors_px * s

    @property
    def n_matched(self) -> int:
        return self.matching.n_matched


def _pair_measure(view, upper, lower, facing, no_slip_pct):
    if view == "lateral":
        m = lateral_pair_measures(upper, lower, facing, None, no_slip_pct)
        return m["slip_pct"], m["grade"]
    m = ap_pair_measures(upper, lower, no_slip_pct)
    return m["lateral_displacement_pct"], m["lateral_side"]


def _score_pairs(truth: ImageTruth, gt: SpineGrading, pred: Optional[SpineGrading], matching: Matching,
                 settings: EvaluationSettings) -> List[dict]:
    rows = []
    for p in gt.pairs:
        if not p.measurable:
            continue
        lateral = gt.view == "lateral"
        row = {
            "image_id": truth.image_id, "file_name": truth.file_name, "view": gt.view,
            "upper": p.upper_name, "lower": p.lower_name, "name": p.name,
            "gt_value": p.slip_pct if lateral else p.lateral_displacement_pct,
            "gt_class": p.grade if lateral else p.lateral_side,
            "pred_value": None, "pred_class": None, "scored": False, "reason": "",
        }
        pu, pl = int(matching.gt_to_pred[p.upper]), int(matching.gt_to_pred[p.lower])
        if pu < 0 or pl < 0:
            row["reason"] = "a vertebra of the pair was missed"
        elif pred is None:
            row["reason"] = "no predicted spine"
        else:
            facing = pred.facing.facing if pred.facing is not None else None
            try:
                value, cls = _pair_measure(gt.view, pred.oriented[pu], pred.oriented[pl], facing,
                                           settings.no_slip_pct)
            except ValueError as e:
                value, cls, row["reason"] = None, None, f"predicted corners are degenerate ({e})"
            if value is not None:
                row.update(pred_value=float(value), pred_class=cls, scored=True)
            elif not row["reason"]:
                row["reason"] = "predicted corners do not give the measure"
        rows.append(row)
    return rows


def evaluate_image(truth: ImageTruth, pred: Optional[ImagePredictions],
                   settings: Optional[EvaluationSettings] = None) -> ImageEvaluation:
    """Match, measure and grade one image; see the module docstring.

    Raises:
        EvaluationInputError: the GT spine cannot be graded.
    """
    settings = settings or EvaluationSettings()
    pred = pred if pred is not None else ImagePredictions.empty()
    keep = np.asarray(pred.scores) >= settings.score_threshold
    pc = np.asarray(pred.corners, dtype=np.float64).reshape(-1, 4, 2)[keep]
    g = truth.corners
    matching = match_vertebrae(g, pc, settings.gate_factor)
    matched = np.full_like(g, np.nan)
    ok = matching.gt_to_pred >= 0
    matched[ok] = pc[matching.gt_to_pred[ok]]
    errors = np.linalg.norm(matched - g, axis=-1)
    errors[~ok[:, None] & truth.visible] = np.inf
    facing = settings.facing
    try:
        gt_grading = grade_spine(g, truth.visible, truth.levels, view=truth.view, facing=facing,
                                 data_facing=truth.facing, pixel_spacing=truth.pixel_spacing,
                                 no_slip_pct=settings.no_slip_pct, gap_factor=settings.gap_factor)
    except ValueError as e:
        raise EvaluationInputError(f"image {truth.image_id!r} ({truth.file_name}): cannot grade its GT spine: {e}") \
            from None
    pred_grading = None
    if len(pc):
        vis = np.ones(pc.shape[:2], dtype=bool)
        for gi, pj in enumerate(matching.gt_to_pred):
            if pj >= 0:
                vis[pj] = truth.visible[gi]
        pred_grading = grade_spine(pc, vis, None, view=truth.view, facing=facing, data_facing=truth.facing,
                                   pixel_spacing=truth.pixel_spacing, no_slip_pct=settings.no_slip_pct,
                                   gap_factor=settings.gap_factor)
    res = ImageEvaluation(truth, int(len(pc)), matching, matched, errors, gt_grading, pred_grading)
    res.pairs = _score_pairs(truth, gt_grading, pred_grading, matching, settings)
    return res


@dataclass
class DatasetEvaluation:
    """Result of :func:`evaluate_dataset`: the metrics dict and the per-image details."""

    metrics: dict
    images: List[ImageEvaluation]
    settings: EvaluationSettings

    def landmark_rows(self) -> List[dict]:
        """One row per labelled GT corner (per_landmark.csv), GT spine order."""
        rows = []
        for ev in self.images:
            t = ev.truth
            for i in ev.gt_grading.order:
                for k, name in enumerate(KEYPOINT_NAMES):
                    if not t.visible[i, k]:
                        continue
                    e = ev.errors_px[i, k]
                    found = np.isfinite(e)
                    rows.append({
                        "image_id": t.image_id, "file_name": t.file_name, "vertebra": ev.gt_grading.names[i],
                        "corner": name, "gt_x": float(t.corners[i, k, 0]), "gt_y": float(t.corners[i, k, 1]),
                        "pred_x": float(ev.pred_corners[i, k, 0]) if found else None,
                        "pred_y": float(ev.pred_corners[i, k, 1]) if found else None,
                        "error_px": float(e) if found else None,
                        "error_mm": float(e * t.pixel_spacing) if found and t.pixel_spacing else None,
                    })
        return rows

    def pair_rows(self, view: str = "lateral") -> List[dict]:
        """Scored and unscored GT pairs of one view."""
        return [r for ev in self.images for r in ev.pairs if r["view"] == view]

    def all_errors(self, unit: str = "px") -> np.ndarray:
        """Errors of every labelled GT corner (inf = missed); mm only over images with spacing."""
        parts = []
        for ev in self.images:
            e = ev.errors_px if unit == "px" else ev.errors_mm
            if e is not None:
                parts.append(e[ev.truth.visible])
        return np.concatenate(parts) if parts else np.zeros(0)

    def matched_errors_by_corner(self) -> List[np.ndarray]:
        """Finite px errors per corner TL, TR, BL, BR."""
        out = [[] for _ in KEYPOINT_NAMES]
        for ev in self.images:
            for k in range(len(KEYPOINT_NAMES)):
                e = ev.errors_px[:, k]
                out[k].extend(e[np.isfinite(e)].tolist())
        return [np.asarray(x) for x in out]


def _aggregate(images: List[ImageEvaluation], settings: EvaluationSettings) -> dict:
    ds = DatasetEvaluation({}, images, settings)
    e_px, e_mm = ds.all_errors("px"), ds.all_errors("mm")
    n_spaced = sum(1 for ev in images if ev.truth.pixel_spacing is not None)
    s_px, s_mm = error_stats(e_px[np.isfinite(e_px)]), error_stats(e_mm[np.isfinite(e_mm)])
    by_corner = ds.matched_errors_by_corner()
    sdr_px = success_detection_rate(e_px, settings.sdr_thresholds_px)
    sdr_mm = success_detection_rate(e_mm, settings.sdr_thresholds_mm) if n_spaced else None
    tp = sum(ev.n_matched for ev in images)
    n_gt = sum(ev.truth.n for ev in images)
    n_pred = sum(ev.n_predictions for ev in images)
    det = detection_scores(tp, n_pred - tp, n_gt - tp)
    det.update(TP=tp, FP=n_pred - tp, FN=n_gt - tp)
    lat = [r for ev in images for r in ev.pairs if r["view"] == "lateral"]
    scored = [r for r in lat if r["scored"]]
    slip = slip_agreement([r["gt_value"] for r in scored], [r["pred_value"] for r in scored],
                          [r["gt_class"] for r in scored], [r["pred_class"] for r in scored],
                          len(lat) - len(scored))
    ap = [r for ev in images for r in ev.pairs if r["view"] == "ap"]
    ap_scored = [r for r in ap if r["scored"]]
    lateral_displacement = {
        "MAE_pp": float(np.mean([abs(r["pred_value"] - r["gt_value"]) for r in ap_scored])) if ap_scored else None,
        "side_accuracy": (float(100.0 * np.mean([r["pred_class"] == r["gt_class"] for r in ap_scored]))
                          if ap_scored else None),
        "n_pairs": len(ap_scored),
        "n_unscored_pairs": len(ap) - len(ap_scored),
    }
    auto = [ev for ev in images if ev.truth.n >= 2 and ev.gt_grading.facing is not None
            and ev.gt_grading.facing.source == "auto"]
    facing = {
        "setting": settings.facing,
        "n_lateral_images": sum(1 for ev in images if ev.gt_grading.view == "lateral"),
        "n_estimated": len(auto),
        "mean_gt_confidence": float(np.mean([ev.gt_grading.facing.confidence for ev in auto])) if auto else None,
        "n_pred_differs_from_gt": sum(1 for ev in images if ev.gt_grading.facing is not None
                                      and ev.pred_grading is not None and ev.pred_grading.facing is not None
                                      and ev.pred_grading.facing.facing != ev.gt_grading.facing.facing),
    }
    naming = {src: sum(1 for ev in images if ev.truth.n and ev.gt_grading.level_source == src)
              for src in ("data", "mixed", "position")}
    return {
        "MRE_px": s_px["mean"],
        "MRE_px_median": s_px["median"],
        "MRE_px_std": s_px["std"],
        "MRE_mm": s_mm["mean"] if n_spaced else None,
        "MRE_mm_median": s_mm["median"] if n_spaced else None,
        "MRE_mm_std": s_mm["std"] if n_spaced else None,
        "SDR_px": None if sdr_px is None else {threshold_key(t): v for t, v in sdr_px.items()},
        "SDR_mm": None if sdr_mm is None else {threshold_key(t): v for t, v in sdr_mm.items()},
        "per_corner_MRE_px": {n: (float(e.mean()) if e.size else None) for n, e in zip(KEYPOINT_NAMES, by_corner)},
        "detection": det,
        "slip": slip,
        "lateral_displacement": lateral_displacement,
        "facing": facing,
        "level_names": {"n_images_" + k: v for k, v in naming.items()},
        "n_images": len(images),
        "n_images_with_spacing": n_spaced,
        "n_gt_vertebrae": n_gt,
        "n_gt_corners": int(sum(int(ev.truth.visible.sum()) for ev in images)),
        "n_predictions": n_pred,
        "n_matched": tp,
        "units": {"MRE_px": "px", "MRE_mm": "mm", "SDR": "percent of labelled GT corners",
                  "detection": "percent", "slip.MAE_pp": "percentage points of slip",
                  "slip.grade_accuracy": "percent", "slip.kappa": "quadratic-weighted Cohen kappa"},
        "settings": settings.as_dict(),
    }


def evaluate_dataset(truths: Sequence[ImageTruth], predictions: Mapping[int, ImagePredictions],
                     settings: Optional[EvaluationSettings] = None) -> DatasetEvaluation:
    """Score predictions over a set of images.

    Args:
        truths: the GT images to evaluate (each once).
        predictions: image_id -> predictions; images without an entry had no
            detection (every GT vertebra is missed).
        settings: :class:`EvaluationSettings` (defaults when None).

    Returns:
        :class:`DatasetEvaluation` whose ``metrics`` is the content of
        metrics.json:

        * MRE_px, MRE_px_median, MRE_px_std: mean / median / population std
          of |pred - gt| over the labelled corners of matched vertebrae, px;
          MRE_mm, MRE_mm_median, MRE_mm_std: the same in mm over the images
          with a pixel spacing (None when none has one).
        * SDR_px, SDR_mm: threshold (as text, "6", "2.5") -> percent of all
          labelled GT corners with error <= threshold, corners of missed
          vertebrae counting as failures (SDR_mm over the images with a
          spacing; None when none has one).
        * per_corner_MRE_px: {TL, TR, BL, BR} -> mean px error.
        * detection: precision, recall, F1 (percent), TP, FP, FN.
        * slip: MAE_pp, grade_accuracy (percent), kappa, n_pairs (scored),
          n_unscored_pairs, confusion_matrix (lateral views; see
          ``metrics.slip_agreement``).
        * lateral_displacement: MAE_pp, side_accuracy, n_pairs,
          n_unscored_pairs (AP views).
        * facing: setting, n_lateral_images, n_estimated (auto, from the
          geometry), mean_gt_confidence, n_pred_differs_from_gt.
        * level_names: images whose vertebrae carry levels from the data
          ("n_images_data"), none ("n_images_position") or some ("..._mixed").
        * n_images, n_images_with_spacing, n_gt_vertebrae, n_gt_corners,
          n_predictions (kept), n_matched; units; settings.

    Raises:
        EvaluationInputError: predictions for images that are not in
            ``truths``, a GT spine that cannot be graded.
    """
    settings = settings or EvaluationSettings()
    ids = [t.image_id for t in truths]
    if len(set(ids)) != len(ids):
        raise EvaluationInputError("the ground truth lists an image id twice")
    unknown = set(predictions) - set(ids)
    if unknown:
        shown = sorted(unknown, key=str)[:5]
        raise EvaluationInputError(f"predictions for {len(unknown)} image id(s) not in the ground truth: {shown}")
    images = [evaluate_image(t, predictions.get(t.image_id), settings) for t in truths]
    return DatasetEvaluation(_aggregate(images, settings), images, settings)


def flat_metrics(metrics: Mapping) -> Dict[str, float]:
    """metrics.json flattened to floats for detectron2 (None -> NaN).

    Keys: MRE_px, MRE_px_median, MRE_px_std, MRE_mm, SDR_px@<t>, SDR_mm@<t>,
    MRE_px_<corner>, det_precision, det_recall, det_F1, slip_MAE_pp,
    grade_acc, kappa, n_pairs, n_unscored_pairs, lateral_MAE_pp, n_images,
    n_gt_vertebrae, n_matched.
    """
    def f(v):
        return float("nan") if v is None else float(v)

    out = {"MRE_px": f(metrics["MRE_px"]), "MRE_px_median": f(metrics["MRE_px_median"]),
           "MRE_px_std": f(metrics["MRE_px_std"]), "MRE_mm": f(metrics["MRE_mm"])}
    for unit in ("px", "mm"):
        for t in metrics["settings"][f"sdr_thresholds_{unit}"]:
            table = metrics[f"SDR_{unit}"]
            out[f"SDR_{unit}@{threshold_key(t)}"] = f(None if table is None else table[threshold_key(t)])
    for name, v in metrics["per_corner_MRE_px"].items():
        out[f"MRE_px_{name}"] = f(v)
    det, slip = metrics["detection"], metrics["slip"]
    out.update({
        "det_precision": f(det["precision"]), "det_recall": f(det["recall"]), "det_F1": f(det["F1"]),
        "slip_MAE_pp": f(slip["MAE_pp"]), "grade_acc": f(slip["grade_accuracy"]), "kappa": f(slip["kappa"]),
        "n_pairs": f(slip["n_pairs"]), "n_unscored_pairs": f(slip["n_unscored_pairs"]),
        "lateral_MAE_pp": f(metrics["lateral_displacement"]["MAE_pp"]),
        "n_images": f(metrics["n_images"]), "n_gt_vertebrae": f(metrics["n_gt_vertebrae"]),
        "n_matched": f(metrics["n_matched"]),
    })
    return out


def grade_label(grade) -> str:
    """CSV text of a grade: "none", "I".."V", "retrolisthesis", "" when missing."""
    return "" if grade is None else grade_name(grade)
