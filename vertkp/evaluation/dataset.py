"""Scores over a set of images: metrics.json (every scalar under its name in
``vertkp.evaluation.metric_names.METRICS``)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Mapping, Optional, Sequence

import numpy as np

from ..anatomy import LEVELS, level_index, level_name
from ..grading.slip import GRADE_NAMES
from ..grading.vertebrae import vertebra_width
from ..keypoints import KEYPOINT_NAMES
from ..review import evaluate_calibration
from .agreement import GRADE_ORDER, measure_agreement, slip_groups
from .bootstrap import CI_METRICS, bootstrap_ci95
from .ground_truth import EvaluationInputError, ImageTruth
from .metric_names import METRICS, metric_unit, threshold_key
from .metrics import (
    corners_off_width,
    detection_scores,
    error_stats,
    level_scores,
    mean_vertebra_width,
    slip_agreement,
    slip_tails,
    success_detection_rate,
)
from ..modeling.outputs import ImagePredictions
from .scoring import PAIR_MEASURES, EvaluationSettings, ImageEvaluation, evaluate_image, level_outcomes

__all__ = ["DatasetEvaluation", "evaluate_dataset", "flat_metrics", "pair_level"]

@dataclass
class DatasetEvaluation:
    """Result of :func:`evaluate_dataset`: the metrics (metrics.json) and the per-image details."""

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


def _sdr(errors: np.ndarray, thresholds, unit: str, defined: bool) -> dict:
    rates = success_detection_rate(errors, thresholds) if defined else None
    return {f"SDR_{unit}@{threshold_key(t)}": (None if rates is None else rates[float(t)]) for t in thresholds}


def _ap_agreement(rows: List[dict]) -> dict:
    scored = [r for r in rows if r["scored"]]
    return {
        "lateral_displacement_MAE_pp": (float(np.mean([abs(r["pred_value"] - r["gt_value"]) for r in scored]))
                                        if scored else None),
        "lateral_side_acc": (float(100.0 * np.mean([r["pred_class"] == r["gt_class"] for r in scored]))
                             if scored else None),
        "n_ap_pairs": len(scored),
        "n_unscored_ap_pairs": len(rows) - len(scored),
    }


def _agreement(scored: List[dict]) -> dict:
    """metrics.json "agreement": slip_pct over every scored lateral pair, and each of
    ``PAIR_MEASURES`` over the scored pairs where both values exist (omitted when none)."""
    out = {"slip_pct": measure_agreement([r["gt_value"] for r in scored], [r["pred_value"] for r in scored], "pp")}
    for name, unit in PAIR_MEASURES.items():
        both = [(r["gt_measures"][name], r["pred_measures"][name]) for r in scored
                if r["gt_measures"].get(name) is not None and r["pred_measures"].get(name) is not None]
        if both:
            out[name] = measure_agreement([t for t, _ in both], [p for _, p in both], unit)
    return out


def pair_level(row: dict) -> Optional[str]:
    """A pair's level ("L4/L5") when the data names both vertebrae, else None (a pair
    named by position is no level)."""
    if level_index(row["upper"]) is None or level_index(row["lower"]) is None:
        return None
    return f"{row['upper']}/{row['lower']}"


def _slip_tables(scored: List[dict]) -> tuple:
    """(slip_by_level, slip_by_grade) of metrics.json: ``slip_groups`` by level, in
    spine order, and by true grade, in ordinal order."""
    args = ([r["gt_value"] for r in scored], [r["pred_value"] for r in scored],
            [r["gt_class"] for r in scored], [r["pred_class"] for r in scored])
    levels = [pair_level(r) for r in scored]
    by_level = slip_groups(*args, levels, sorted({lv for lv in levels if lv},
                                                 key=lambda lv: level_index(lv.split("/")[0])))
    by_grade = slip_groups(*args, [GRADE_NAMES[r["gt_class"]] for r in scored], GRADE_ORDER)
    return by_level, by_grade


def _gt_vertebrae(images: List[ImageEvaluation]) -> tuple:
    """Every GT vertebra of ``images``, in order: (levels [V] name or None, missed bool [V],
    errors_px [V, 4] (``ImageEvaluation.errors_px``), widths [V] px (``vertebra_width``))."""
    levels = [level_name(ev.truth.levels[i]) if i < len(ev.truth.levels) else None
              for ev in images for i in range(ev.truth.n)]
    missed = np.concatenate([ev.matching.gt_to_pred < 0 for ev in images] or [np.zeros(0, bool)])
    errors = np.concatenate([ev.errors_px for ev in images] or [np.zeros((0, 4))])
    widths = np.concatenate([vertebra_width(ev.truth.corners) for ev in images] or [np.zeros(0)])
    return levels, missed, errors, widths


def _vertebra_tails(missed: np.ndarray, errors: np.ndarray, widths: np.ndarray) -> dict:
    """n, missed, MRE_px (matched labelled corners) and corners_off10pct_width of some GT
    vertebrae (rows of ``_gt_vertebrae``)."""
    found = errors[np.isfinite(errors)]
    return {"n": int(len(missed)), "missed": int(missed.sum()),
            "MRE_px": float(found.mean()) if found.size else None,
            "corners_off10pct_width": corners_off_width(errors, widths)}


def _pair_tails(scored: List[dict]) -> dict:
    """n_pairs, slip_MAE_pp, grade_acc and the slip tails of some scored lateral pairs."""
    slip = slip_agreement([r["gt_value"] for r in scored], [r["pred_value"] for r in scored],
                          [r["gt_class"] for r in scored], [r["pred_class"] for r in scored])
    return {"n_pairs": slip["n_pairs"], "slip_MAE_pp": slip["slip_MAE_pp"], "grade_acc": slip["grade_acc"],
            **slip_tails([r["gt_value"] for r in scored], [r["pred_value"] for r in scored])}


def _by_level(scored: List[dict], lateral: List[dict], vertebrae: tuple) -> dict:
    """metrics.json "by_level": {"pairs": {"L5/S1": ``_pair_tails`` + n_unscored} over the
    lateral pairs, "vertebrae": {"S1": ``_vertebra_tails``} over ``_gt_vertebrae``}; only the
    levels the data names, in spine order."""
    pairs = {}
    for level in sorted({pair_level(r) for r in lateral} - {None}, key=lambda lv: level_index(lv.split("/")[0])):
        pairs[level] = {**_pair_tails([r for r in scored if pair_level(r) == level]),
                        "n_unscored": sum(1 for r in lateral if not r["scored"] and pair_level(r) == level)}
    levels, missed, errors, widths = vertebrae
    named = np.array(levels, dtype=object)
    by_vertebra = {lv: _vertebra_tails(missed[named == lv], errors[named == lv], widths[named == lv])
                   for lv in LEVELS if lv in levels}
    return {"pairs": pairs, "vertebrae": by_vertebra}


def _level_naming(images: List[ImageEvaluation]) -> dict:
    """level_acc, level_wrong_pct, level_named_pct, n_level_scored (``level_scores``) when the
    predictions of some image name levels, else None each. Where they do, an image whose
    predictions name none counts its matched vertebrae as unnamed."""
    if all(ev.level_outcomes is None for ev in images):
        return {"level_acc": None, "level_wrong_pct": None, "level_named_pct": None, "n_level_scored": None}
    outcomes = [ev.level_outcomes if ev.level_outcomes is not None
                else level_outcomes(ev.truth.levels, [None] * ev.n_predictions, ev.matching.gt_to_pred)
                for ev in images]
    return level_scores([o for image in outcomes for o in image])


def _flat_agreement(slip: dict, ci95: dict) -> dict:
    """The scalars of "agreement"["slip_pct"] and "ci95" under their METRICS names."""
    flat = {"slip_bias_pp": slip["bias_pp"], "slip_sd_pp": slip["sd_pp"], "slip_loa_low_pp": slip["loa_low_pp"],
            "slip_loa_high_pp": slip["loa_high_pp"], "slip_icc_a1": slip["icc_a1"],
            "slip_icc_a1_ci95_low": slip["icc_a1_ci95"][0], "slip_icc_a1_ci95_high": slip["icc_a1_ci95"][1],
            "slip_pearson_r": slip["pearson_r"]}
    for name in CI_METRICS:
        flat[f"{name}_ci95_low"], flat[f"{name}_ci95_high"] = ci95[name]
    return flat


def _facing_summary(images: List[ImageEvaluation], setting: str) -> dict:
    auto = [ev for ev in images if ev.truth.n >= 2 and ev.gt_grading.facing is not None
            and ev.gt_grading.facing.source == "auto"]
    return {
        "setting": setting,
        "n_lateral_images": sum(1 for ev in images if ev.gt_grading.view == "lateral"),
        "n_estimated": len(auto),
        "mean_gt_confidence": float(np.mean([ev.gt_grading.facing.confidence for ev in auto])) if auto else None,
        "n_pred_differs_from_gt": sum(1 for ev in images if ev.gt_grading.facing is not None
                                      and ev.pred_grading is not None and ev.pred_grading.facing is not None
                                      and ev.pred_grading.facing.facing != ev.gt_grading.facing.facing),
    }


def _pct_width(mre_px: Optional[float], images: List[ImageEvaluation]) -> Optional[float]:
    width = mean_vertebra_width([ev.truth.corners for ev in images])
    return None if mre_px is None or not np.isfinite(width) or width <= 0 else 100.0 * mre_px / width


def _flat_calibration(calibration: Optional[dict]) -> dict:
    """flag_recall, flag_rate (every flag together) and risk_auroc of metrics.json["calibration"]."""
    if calibration is None:
        return {"flag_recall": None, "flag_rate": None, "risk_auroc": None}
    anyflag = calibration["flags"]["any"]
    return {"flag_recall": anyflag["recall"], "flag_rate": anyflag["flag_rate"],
            "risk_auroc": calibration["auroc"]["combined"]}


def _aggregate(images: List[ImageEvaluation], settings: EvaluationSettings) -> dict:
    ds = DatasetEvaluation({}, images, settings)
    e_px, e_mm = ds.all_errors("px"), ds.all_errors("mm")
    n_spaced = sum(1 for ev in images if ev.truth.pixel_spacing is not None)
    s_px, s_mm = error_stats(e_px[np.isfinite(e_px)]), error_stats(e_mm[np.isfinite(e_mm)])
    tp = sum(ev.n_matched for ev in images)
    n_gt = sum(ev.truth.n for ev in images)
    n_pred = sum(ev.n_predictions for ev in images)
    lateral = ds.pair_rows("lateral")
    scored = [r for r in lateral if r["scored"]]
    slip = slip_agreement([r["gt_value"] for r in scored], [r["pred_value"] for r in scored],
                          [r["gt_class"] for r in scored], [r["pred_class"] for r in scored],
                          len(lateral) - len(scored))
    det = detection_scores(tp, n_pred - tp, n_gt - tp)
    agreement = _agreement(scored)
    by_level, by_grade = _slip_tables(scored)
    ci95, boot = bootstrap_ci95(images, settings.bootstrap, settings.seed)
    point = {"MRE_px": s_px["mean"], "det_F1": det["det_F1"], **slip}
    ci95 = {k: (v if point[k] is not None else [None, None]) for k, v in ci95.items()}
    calibration = evaluate_calibration(images)
    vertebrae = _gt_vertebrae(images)
    s1 = np.array([lv == "S1" for lv in vertebrae[0]], dtype=bool)
    naming = {src: sum(1 for ev in images if ev.truth.n and ev.gt_grading.level_source == src)
              for src in ("data", "mixed", "position")}
    metrics = {
        "n_images": len(images),
        "n_images_with_spacing": n_spaced,
        "n_gt_vertebrae": n_gt,
        "n_gt_corners": int(sum(int(ev.truth.visible.sum()) for ev in images)),
        "n_predictions": n_pred,
        "n_matched": tp,
        "MRE_px": s_px["mean"], "MRE_px_median": s_px["median"], "MRE_px_std": s_px["std"],
        "MRE_pct_width": _pct_width(s_px["mean"], images),
        **{f"MRE_px_{n}": (float(e.mean()) if e.size else None)
           for n, e in zip(KEYPOINT_NAMES, ds.matched_errors_by_corner())},
        "MRE_mm": s_mm["mean"] if n_spaced else None,
        "MRE_mm_median": s_mm["median"] if n_spaced else None,
        "MRE_mm_std": s_mm["std"] if n_spaced else None,
        **_sdr(e_px, settings.sdr_thresholds_px, "px", True),
        **_sdr(e_mm, settings.sdr_thresholds_mm, "mm", n_spaced > 0),
        **det,
        "n_gt_S1": int(s1.sum()),
        "n_missed_S1": int((s1 & vertebrae[1]).sum()),
        "corners_off10pct_width": corners_off_width(vertebrae[2], vertebrae[3]),
        **{k: v for k, v in slip.items() if k != "grade_confusion"},
        **_ap_agreement(ds.pair_rows("ap")),
        **_flat_agreement(agreement["slip_pct"], ci95),
        **slip_tails([r["gt_value"] for r in scored], [r["pred_value"] for r in scored]),
        **_level_naming(images),
        "grade_confusion": slip["grade_confusion"],
        "agreement": agreement,
        "slip_by_level": by_level,
        "slip_by_grade": by_grade,
        "by_level": _by_level(scored, lateral, vertebrae),
        "ci95": ci95,
        "bootstrap": boot,
        "facing": _facing_summary(images, settings.facing),
        "level_names": {"n_images_" + k: v for k, v in naming.items()},
        **_flat_calibration(calibration),
        **({"calibration": calibration} if calibration is not None else {}),
        "units": {name: unit for name, (unit, _) in METRICS.items()},
        "settings": settings.as_dict(),
    }
    return metrics


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
        metrics.json: every scalar of :data:`METRICS` at the top level (None
        where undefined: no corner matched, no pixel spacing, no pair), plus
        ``grade_confusion`` ({"labels", "matrix"}: rows GT, columns prediction,
        over the scored lateral pairs), ``agreement`` (``measure_agreement`` of
        "slip_pct" over the scored lateral pairs, keys suffixed "_pp", and of
        each ``PAIR_MEASURES`` name that has scored values: "_px", "_mm",
        "_deg"), ``slip_by_level`` ({"L4/L5": ``slip_groups`` entry, ...}, only
        pairs whose levels the data names, in spine order), ``slip_by_grade``
        (the same by true grade name, in ordinal order), ``by_level`` ({"pairs":
        {"L5/S1": {n_pairs, slip_MAE_pp, grade_acc, slip_off10_pct, slip_off20_pct,
        n_slip_off10, n_slip_off20, n_unscored}}, "vertebrae": {"S1": {n, missed, MRE_px,
        corners_off10pct_width}}}: lateral pairs and GT vertebrae of every view whose
        levels the data names, in spine order), ``ci95`` ({name of
        ``bootstrap.CI_METRICS``: [low, high]}, [None, None] without a
        bootstrap or a value), ``bootstrap`` (n_resamples, seed, unit, n_units,
        method), ``facing`` (setting, n_lateral_images,
        n_estimated, mean_gt_confidence, n_pred_differs_from_gt),
        ``level_names`` (images whose levels come from the data, from their
        position, or mixed), ``units`` and ``settings``.

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
    """The scalar metrics of a metrics.json dict as floats (None -> NaN), under the same
    names: what the detectron2 evaluator returns and detectron2 logs."""
    return {k: (float("nan") if v is None else float(v)) for k, v in metrics.items()
            if metric_unit(k) is not None and (v is None or isinstance(v, (int, float)))}
