"""Score one image's predictions against its ground truth: the arithmetic shared by
``vertkp evaluate`` and ``VertebraKeypointEvaluator`` (``dataset`` adds images up).

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
   with a missed vertebra is "unscored". On lateral views the pair's
   intervertebral angle and disc heights are kept too, true and predicted
   (``PAIR_MEASURES``), for their agreement statistics;
5. when the predictions name levels (``ImagePredictions.levels``), each matched GT
   vertebra with a known level gets a ``LEVEL_OUTCOMES`` entry: its prediction's
   level is right, "unnamed" (None: left positional) or wrong.

:func:`vertkp.evaluation.dataset.evaluate_dataset` aggregates images into metrics.json.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import List, Optional, Sequence

import numpy as np

from ..anatomy import FACINGS, level_name
from ..grading.chain import repair_chain
from ..grading.levels import name_levels
from ..grading import (
    DEFAULT_GAP_FACTOR,
    DEFAULT_NO_SLIP_PCT,
    SpineGrading,
    ap_pair_measures,
    grade_spine,
    lateral_pair_measures,
)
from .ground_truth import EvaluationInputError, ImageTruth
from .matching import DEFAULT_GATE_FACTOR, DEFAULT_SCORE_THRESHOLD, Matching, match_vertebrae
from ..modeling.outputs import ImagePredictions

__all__ = [
    "DEFAULT_SDR_THRESHOLDS_PX",
    "DEFAULT_SDR_THRESHOLDS_MM",
    "DEFAULT_BOOTSTRAP",
    "PAIR_MEASURES",
    "LEVEL_OUTCOMES",
    "EvaluationSettings",
    "ImageEvaluation",
    "evaluate_image",
    "level_outcomes",
]

DEFAULT_SDR_THRESHOLDS_PX = (6.0, 12.0, 18.0, 24.0)
DEFAULT_SDR_THRESHOLDS_MM = (2.0, 2.5, 3.0, 4.0)
# Bootstrap resamples behind the 95% confidence intervals of metrics.json's "ci95"
# (``vertkp.evaluation.bootstrap``); 0 turns them off.
DEFAULT_BOOTSTRAP = 1000
# The lateral pair measures besides the slip whose agreement is reported, and the unit of
# each one's differences (``lateral_pair_measures``): their metrics.json "agreement" keys.
PAIR_MEASURES = {
    "disc_height_anterior_px": "px",
    "disc_height_posterior_px": "px",
    "disc_height_anterior_mm": "mm",
    "disc_height_posterior_mm": "mm",
    "intervertebral_angle_deg": "deg",
}

# What the predicted level of a matched GT vertebra with a known level is:
# the GT's, None (the prediction stayed positional), or another level.
LEVEL_OUTCOMES = ("right", "unnamed", "wrong")


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
        bootstrap: resamples for the bootstrap 95% confidence intervals
            (``vertkp.evaluation.bootstrap``); 0: none (the "ci95" bounds are None).
        seed: seed of the bootstrap's random generator: the same seed, the same intervals.
        repair_chain: remove, before matching, the kept predictions that break the chain, as
            ``vertkp predict`` does (``vertkp.grading.chain.repair_chain``): a model's raw output,
            which carries corner confidences; a results file (no confidences: ``vertkp
            predict``'s were repaired when made) is taken as it is.
        name_levels: name the levels of predictions that carry none (``ImagePredictions.levels``
            None) as ``vertkp predict`` does (``vertkp.grading.levels.name_levels``), for the
            level scores.
    """

    facing: str = "auto"
    score_threshold: float = DEFAULT_SCORE_THRESHOLD
    gate_factor: float = DEFAULT_GATE_FACTOR
    no_slip_pct: float = DEFAULT_NO_SLIP_PCT
    gap_factor: float = DEFAULT_GAP_FACTOR
    sdr_thresholds_px: Sequence[float] = DEFAULT_SDR_THRESHOLDS_PX
    sdr_thresholds_mm: Sequence[float] = DEFAULT_SDR_THRESHOLDS_MM
    bootstrap: int = DEFAULT_BOOTSTRAP
    seed: int = 0
    repair_chain: bool = True
    name_levels: bool = True

    def __post_init__(self):
        if self.facing not in (*FACINGS, "auto"):
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
        for name in ("bootstrap", "seed"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 0:
                raise ValueError(f"{name} must be a whole number >= 0, got {v!r}")
            setattr(self, name, int(v))

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
        pred_scores: [N] the matched prediction's score (NaN when unmatched).
        pred_corner_confidence, pred_corner_spread: [N, 4] the matched prediction's
            corner signals (``ImagePredictions``), NaN when unmatched; None when the
            predictions carry none.
        level_outcomes: [N] per GT vertebra, one of ``LEVEL_OUTCOMES`` when it was
            matched and its GT level is known, else None; the list is None when the
            predictions name no level (``ImagePredictions.levels`` None).
    """

    truth: ImageTruth
    n_predictions: int
    matching: Matching
    pred_corners: np.ndarray
    errors_px: np.ndarray
    gt_grading: SpineGrading
    pred_grading: Optional[SpineGrading]
    pairs: List[dict] = field(default_factory=list)
    pred_scores: Optional[np.ndarray] = None
    pred_corner_confidence: Optional[np.ndarray] = None
    pred_corner_spread: Optional[np.ndarray] = None
    level_outcomes: Optional[List[Optional[str]]] = None

    @property
    def errors_mm(self) -> Optional[np.ndarray]:
        s = self.truth.pixel_spacing
        return None if s is None else self.errors_px * s

    @property
    def n_matched(self) -> int:
        return self.matching.n_matched


def _pair_measure(view, upper, lower, facing, no_slip_pct, pixel_spacing):
    """(main value, class, {PAIR_MEASURES name: value}) of one predicted pair."""
    if view == "lateral":
        m = lateral_pair_measures(upper, lower, facing, pixel_spacing, no_slip_pct)
        return m["slip_pct"], m["grade"], {k: m[k] for k in PAIR_MEASURES}
    m = ap_pair_measures(upper, lower, no_slip_pct)
    return m["lateral_displacement_pct"], m["lateral_side"], {}


def _score_pairs(truth: ImageTruth, gt: SpineGrading, pred: Optional[SpineGrading], matching: Matching,
                 settings: EvaluationSettings) -> List[dict]:
    """One dict per measurable GT pair: image_id, file_name, view, upper, lower, name (the
    grading's pair name), gt_value/pred_value (slip % or lateral displacement %),
    gt_class/pred_class (grade or side), scored, reason (why not scored), and on lateral
    views gt_measures/pred_measures ({``PAIR_MEASURES`` name: value or None})."""
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
            "gt_measures": {k: getattr(p, k) for k in PAIR_MEASURES} if lateral else {},
            "pred_measures": {},
        }
        pu, pl = int(matching.gt_to_pred[p.upper]), int(matching.gt_to_pred[p.lower])
        if pu < 0 or pl < 0:
            row["reason"] = "a vertebra of the pair was missed"
        elif pred is None:
            row["reason"] = "no predicted spine"
        else:
            facing = pred.facing.facing if pred.facing is not None else None
            try:
                value, cls, extra = _pair_measure(gt.view, pred.oriented[pu], pred.oriented[pl], facing,
                                                  settings.no_slip_pct, truth.pixel_spacing)
            except ValueError as e:
                value, cls, extra, row["reason"] = None, None, {}, f"predicted corners are degenerate ({e})"
            if value is not None:
                row.update(pred_value=float(value), pred_class=cls, scored=True, pred_measures=extra)
            elif not row["reason"]:
                row["reason"] = "predicted corners do not give the measure"
        rows.append(row)
    return rows


def level_outcomes(gt_levels: Sequence, pred_levels: Sequence, gt_to_pred: np.ndarray) -> List[Optional[str]]:
    """Per GT vertebra, how its matched prediction names it (``LEVEL_OUTCOMES``); None where
    it was not matched or its GT level is unknown.

    Args:
        gt_levels: [N] GT level names or None.
        pred_levels: [M] predicted level names or None, indexed like ``gt_to_pred``'s values.
        gt_to_pred: [N] index of the matched prediction, -1 when unmatched.
    """
    out: List[Optional[str]] = []
    for i, j in enumerate(np.asarray(gt_to_pred, dtype=int)):
        truth = level_name(gt_levels[i]) if i < len(gt_levels) else None
        if j < 0 or truth is None:
            out.append(None)
            continue
        said = pred_levels[j]
        out.append("unnamed" if said is None else ("right" if level_name(said) == truth else "wrong"))
    return out


def _matched_rows(values: np.ndarray, gt_to_pred: np.ndarray) -> np.ndarray:
    """Per GT vertebra, the row of ``values`` (indexed by kept prediction) of its match; NaN unmatched."""
    out = np.full((len(gt_to_pred),) + values.shape[1:], np.nan)
    ok = gt_to_pred >= 0
    out[ok] = values[gt_to_pred[ok]]
    return out


def evaluate_image(truth: ImageTruth, pred: Optional[ImagePredictions],
                   settings: Optional[EvaluationSettings] = None) -> ImageEvaluation:
    """Match, measure and grade one image; see the module docstring.

    Raises:
        EvaluationInputError: the GT spine cannot be graded.
    """
    settings = settings or EvaluationSettings()
    pred = pred if pred is not None else ImagePredictions.empty()
    keep = np.asarray(pred.scores) >= settings.score_threshold
    if settings.repair_chain and pred.corner_confidence is not None and keep.any():
        kept = np.flatnonzero(keep)
        fix = repair_chain(np.asarray(pred.corners, dtype=np.float64).reshape(-1, 4, 2)[kept],
                           np.asarray(pred.scores, dtype=np.float64)[kept],
                           np.asarray(pred.corner_confidence, dtype=np.float64).reshape(-1, 4)[kept],
                           view=truth.view, gap_factor=settings.gap_factor)
        keep = keep.copy()
        keep[kept[~fix.keep]] = False
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
    res.pred_scores = _matched_rows(np.asarray(pred.scores, dtype=np.float64)[keep], matching.gt_to_pred)
    for name in ("corner_confidence", "corner_spread"):
        values = getattr(pred, name)
        if values is not None:
            rows = np.asarray(values, dtype=np.float64).reshape(-1, 4)[keep]
            setattr(res, f"pred_{name}", _matched_rows(rows, matching.gt_to_pred))
    if pred.levels is not None:
        kept = [lv for lv, k in zip(pred.levels, keep) if k]
        res.level_outcomes = level_outcomes(truth.levels, kept, matching.gt_to_pred)
    elif settings.name_levels and pred_grading is not None and truth.view == "lateral":
        named = name_levels(pred_grading).levels
        res.level_outcomes = level_outcomes(truth.levels, named or [None] * len(pc), matching.gt_to_pred)
    res.pairs = _score_pairs(truth, gt_grading, pred_grading, matching, settings)
    return res
