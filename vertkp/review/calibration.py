"""How well the flags, the error risk and the slip intervals do on evaluated images.

A corner of an evaluated image (``vertkp.evaluation.ImageEvaluation``) carries its error
against the label and the prediction's signals: heatmap confidence, detection score and,
with test-time augmentation, the passes' spread. This module turns them into a table
(:func:`corner_table`), scores the flags and the logistic error risk of an operating point on
it (:func:`calibration_at`; at the shipped one, :func:`evaluate_calibration`, metrics.json
"calibration"), and checks the slip intervals against the true slips
(:func:`slip_interval_stats`). The statistics are ``vertkp.review.statistics``'.
"""
from __future__ import annotations

from typing import Dict, Mapping, Optional

import numpy as np

from ..grading import DEFAULT_NO_SLIP_PCT, grade_doubt, vertebra_width
from .flags import FlagThresholds, flag_masks
from .operating_points import OPERATING_POINTS
from .statistics import calibration_report, logistic_risk, percent
from .uncertainty import CornerUncertainty, corner_sd_px, follow_orientation, slip_distribution

__all__ = [
    "SPREAD_CAP_PCT",
    "risk_features",
    "error_risk",
    "corner_table",
    "risk_signals",
    "calibration_at",
    "evaluate_calibration",
    "pair_doubts",
    "slip_interval_stats",
]

# A spread over this, % of the width, counts as this much in the risk (one pass alone: this).
SPREAD_CAP_PCT = 10.0


def risk_features(confidence, score, spread_pct=None) -> np.ndarray:
    """Features [n, 2] (1 - corner confidence, 1 - detection score) or, with TTA spreads
    (% of the width, NaN: one pass alone found the vertebra), [n, 3] with the spread
    capped at :data:`SPREAD_CAP_PCT`. All inputs broadcast to [n]."""
    conf = np.asarray(confidence, dtype=np.float64).reshape(-1)
    sc = np.broadcast_to(np.asarray(score, dtype=np.float64), conf.shape)
    cols = [1.0 - conf, 1.0 - sc]
    if spread_pct is not None:
        sp = np.asarray(spread_pct, dtype=np.float64).reshape(-1)
        cols.append(np.clip(np.nan_to_num(sp, nan=SPREAD_CAP_PCT), 0.0, SPREAD_CAP_PCT))
    return np.stack(cols, axis=1)


def error_risk(confidence, score, spread_pct=None, model: Optional[tuple] = None) -> np.ndarray:
    """Probability [n] that each corner's error exceeds 5% of its vertebra's width, by the
    logistic ``model`` (weights, bias) on :func:`risk_features`; None: the operating point's
    (``spread_pct`` None: "none"'s, else "flip"'s)."""
    weights, bias = model or OPERATING_POINTS["none" if spread_pct is None else "flip"].risk_model
    return logistic_risk(risk_features(confidence, score, spread_pct), np.asarray(weights, dtype=np.float64), bias)


def corner_table(images) -> Optional[Dict[str, np.ndarray]]:
    """The matched, labelled corners of evaluated images (``ImageEvaluation``) as columns
    [n]: "error_px", "width_px" (the GT vertebra's width), "error_pct_width" (their ratio,
    %), "confidence", "score", "spread_pct" (TTA spread over the predicted vertebra's
    width, %; NaN: one pass alone found it, or no TTA). None when the predictions carry no
    corner confidence."""
    if not images or any(im.pred_corner_confidence is None for im in images):
        return None
    cols = {k: [] for k in ("error_px", "width_px", "error_pct_width", "confidence", "score", "spread_pct")}
    for im in images:
        ok = np.isfinite(im.errors_px)  # labelled and matched
        gt_w = vertebra_width(im.truth.corners)[:, None]
        pred_w = np.full(len(im.pred_corners), np.nan)
        matched = np.all(np.isfinite(im.pred_corners), axis=(1, 2))
        if matched.any():
            pred_w[matched] = vertebra_width(im.pred_corners[matched])
        spread = im.pred_corner_spread if im.pred_corner_spread is not None else np.full(im.errors_px.shape, np.nan)
        cols["error_px"].append(im.errors_px[ok])
        cols["width_px"].append(np.broadcast_to(gt_w, ok.shape)[ok])
        with np.errstate(invalid="ignore", divide="ignore"):
            cols["error_pct_width"].append((100.0 * im.errors_px / gt_w)[ok])
            cols["spread_pct"].append((100.0 * spread / pred_w[:, None])[ok])
        cols["confidence"].append(im.pred_corner_confidence[ok])
        cols["score"].append(np.broadcast_to(im.pred_scores[:, None], ok.shape)[ok])
    table = {k: np.concatenate(v) if v else np.zeros(0) for k, v in cols.items()}
    keep = np.isfinite(table["error_pct_width"])  # a GT vertebra without an endplate has no width
    return {k: v[keep] for k, v in table.items()}


def risk_signals(table: Mapping[str, np.ndarray], tta: bool, model: Optional[tuple] = None) -> Dict[str, np.ndarray]:
    """The risks whose AUROC :func:`evaluate_calibration` reports: "heatmap_confidence"
    (1 - confidence), "detection_score" (1 - score), with ``tta`` "tta_spread" (NaN: the cap,
    :data:`SPREAD_CAP_PCT`), and "combined" (:func:`error_risk` with ``model``)."""
    out = {"heatmap_confidence": 1.0 - table["confidence"], "detection_score": 1.0 - table["score"]}
    if tta:
        out["tta_spread"] = np.nan_to_num(table["spread_pct"], nan=SPREAD_CAP_PCT)
    out["combined"] = error_risk(table["confidence"], table["score"], table["spread_pct"] if tta else None, model)
    return out


def calibration_at(table: Mapping[str, np.ndarray], thresholds: FlagThresholds, tta: bool,
                   model: Optional[tuple] = None) -> dict:
    """:func:`~vertkp.review.statistics.calibration_report` of the corners of :func:`corner_table`:
    the flags at ``thresholds`` (``flag_masks``), the AUROC of :func:`risk_signals` with the
    risk ``model`` (None: the operating point's) and the reliability of its probability."""
    signals = risk_signals(table, tta, model)
    return calibration_report(table["error_pct_width"], signals, flag_masks(table, thresholds, tta),
                              probability=signals["combined"])


def evaluate_calibration(images, thresholds: Optional[FlagThresholds] = None) -> Optional[dict]:
    """``metrics.json["calibration"]``: :func:`calibration_at` the operating point of the
    predictions' mode (``OPERATING_POINTS``: "flip" when they carry TTA spreads, else "none"),
    its thresholds replaced by ``thresholds`` when given; plus "tta" (whether they carry TTA
    spreads) and "thresholds". None when the predictions carry no corner signals."""
    table = corner_table(images)
    if table is None:
        return None
    tta = any(im.pred_corner_spread is not None for im in images)
    point = OPERATING_POINTS["flip" if tta else "none"]
    thresholds = point.thresholds if thresholds is None else thresholds
    report = calibration_at(table, thresholds, tta, point.risk_model)
    report["tta"] = tta
    report["thresholds"] = {k: float(getattr(thresholds, k)) for k in ("corner", "vertebra", "spread_pct")}
    return report


def _oriented_with_sd(im, gt_index: int, spread: np.ndarray, model: CornerUncertainty):
    """The matched prediction's oriented corners [4, 2] and their error SDs [4] px."""
    raw = im.pred_corners[gt_index]
    oriented = im.pred_grading.oriented[int(im.matching.gt_to_pred[gt_index])]
    sd = corner_sd_px(vertebra_width(raw[None]), spread[gt_index][None], model)[0]
    return oriented, follow_orientation(sd, raw, oriented)


def pair_doubts(images, model: CornerUncertainty, no_slip_pct: float = DEFAULT_NO_SLIP_PCT) -> Dict[str, np.ndarray]:
    """The scored lateral pairs of evaluated images as columns: "grade_doubt"
    (:func:`~vertkp.grading.grade_doubt` of the predicted slip's distribution with ``model``),
    "wrong_grade" (the predicted grade is not the true one) and "covered" (the slip interval,
    slip +- z SD, holds the true slip); [n] each."""
    doubts, wrong, covered = [], [], []
    for im in images:
        if im.pred_grading is None or im.pred_grading.facing is None:
            continue
        facing = im.pred_grading.facing.facing
        spread = im.pred_corner_spread if im.pred_corner_spread is not None else np.zeros(im.errors_px.shape)
        rows = iter(im.pairs)
        for p in im.gt_grading.pairs:
            if not p.measurable:
                continue
            row = next(rows)
            if not row["scored"] or row["view"] != "lateral":
                continue
            (u, sd_u), (lo, sd_l) = (_oriented_with_sd(im, i, spread, model) for i in (p.upper, p.lower))
            dist = slip_distribution(u, lo, sd_u, sd_l, facing)
            if dist is None:
                continue
            slip, sd = dist
            doubts.append(grade_doubt(slip, sd, no_slip_pct))
            wrong.append(row["pred_class"] != row["gt_class"])
            low, high = model.interval(slip, sd)
            covered.append(low <= row["gt_value"] <= high)
    return {"grade_doubt": np.asarray(doubts, dtype=np.float64), "wrong_grade": np.asarray(wrong, dtype=bool),
            "covered": np.asarray(covered, dtype=bool)}


def slip_interval_stats(images, model: CornerUncertainty, doubt: float = FlagThresholds.grade_doubt) -> dict:
    """On :func:`pair_doubts`' pairs: how often the slip interval holds the true slip
    ("coverage_pct"), how many pairs ``borderline_grade`` flags (grade doubt at least ``doubt``,
    "borderline_pct") and how many of the wrongly graded pairs those are
    ("wrong_grade_flagged_pct": its recall for grade errors); percent."""
    t = pair_doubts(images, model)
    n, w = t["wrong_grade"].size, t["wrong_grade"]
    flagged = t["grade_doubt"] >= doubt
    return {"n_pairs": n, "coverage_pct": percent(int(t["covered"].sum()), n),
            "borderline_pct": percent(int(flagged.sum()), n), "n_wrong_grade": int(w.sum()),
            "wrong_grade_flagged_pct": percent(int((flagged & w).sum()), int(w.sum())), "grade_doubt": float(doubt)}
