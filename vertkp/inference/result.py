"""What a prediction is: vertebrae, graded pairs and the flags that call for a human look.

Everything here is numpy and the grading code (``vertkp.grading.grade_spine``,
the one the evaluator uses); :class:`vertkp.inference.VertebraPredictor`
only adds the network in front.

Coordinates: pixels of the input image, x right, y down, the COCO files'
convention (detectron2's +0.5 already removed). Corners: canonical TL, TR, BL,
BR (``vertkp.keypoints``). Vertebrae are listed cranial to caudal.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import List, Optional, Sequence

import numpy as np

from ..anatomy import level_index, levels_up_from
from ..grading import (
    DEFAULT_GAP_FACTOR,
    DEFAULT_NO_SLIP_PCT,
    GRADE_NAMES,
    GRADES,
    PairMeasures,
    SpineGrading,
    grade_doubt,
    grade_probabilities,
    grade_spine,
    vertebra_width,
)
from ..grading.chain import repair_chain
from ..grading.levels import name_levels
from ..grading.plausibility import Problem, pair_problems, shape_problems
from ..review import (FLAGS, CornerUncertainty, FlagThresholds, corner_flags, corner_sd_px, follow_orientation,
                      image_risk, slip_distribution, spread_pct_width)
from ..keypoints import KEYPOINT_NAMES, NUM_KEYPOINTS

__all__ = [
    "FLAGS",
    "FlagThresholds",
    "VertebraResult",
    "PairResult",
    "SpinePrediction",
    "build_prediction",
]


@dataclass
class VertebraResult:
    """One detected vertebra.

    Attributes:
        name: its level ("L4") when known, else "#k from bottom".
        level: the level, or None.
        position_from_bottom: 1 = the most caudal vertebra of the image.
        score: detection score in [0, 1].
        box: [x0, y0, x1, y1], px.
        corners: float [4, 2], px, TL, TR, BL, BR.
        corner_scores: float [4], ``vertkp.keypoint_decoding.corner_confidence`` of each corner.
        detection: index in the model's output (highest score first).
        flags: codes of :data:`FLAGS`.
        corner_spread_px: float [4], px, the test-time augmentation passes' disagreement on
            each corner (``vertkp.modeling.fusion``); NaN (null in JSON) without TTA or when
            one pass alone found the vertebra.
        corner_spread_pct: the same, % of the vertebra's width.
        corner_sd_px: float [4], px, each corner's error SD per axis
            (``vertkp.review.uncertainty``), what the pairs' slip intervals use.
        level_confidence: probability in [0, 1] that ``level`` is right, None without a level
            or when it was given rather than estimated.
    """

    name: str
    level: Optional[str]
    position_from_bottom: int
    score: float
    box: List[float]
    corners: np.ndarray
    corner_scores: np.ndarray
    detection: int
    flags: List[str] = field(default_factory=list)
    corner_spread_px: np.ndarray = field(default_factory=lambda: np.full(NUM_KEYPOINTS, np.nan))
    corner_spread_pct: np.ndarray = field(default_factory=lambda: np.full(NUM_KEYPOINTS, np.nan))
    corner_sd_px: np.ndarray = field(default_factory=lambda: np.full(NUM_KEYPOINTS, np.nan))
    level_confidence: Optional[float] = None

    def as_dict(self) -> dict:
        d = asdict(self)
        d["corners"] = {k: [float(x), float(y)] for k, (x, y) in zip(KEYPOINT_NAMES, self.corners)}
        for key in ("corner_scores", "corner_spread_px", "corner_spread_pct", "corner_sd_px"):
            d[key] = {k: (float(v) if np.isfinite(v) else None) for k, v in zip(KEYPOINT_NAMES, getattr(self, key))}
        d["box"] = [float(v) for v in self.box]
        return d


@dataclass
class PairResult(PairMeasures):
    """:class:`vertkp.grading.PairMeasures` of one adjacent pair (``upper`` and
    ``lower`` index :attr:`SpinePrediction.vertebrae`), plus its flags and, on lateral
    views where the slip is measured (else None):

    * ``slip_low_pct``/``slip_high_pct``: the slip's interval (``vertkp.review.CornerUncertainty.interval``);
    * ``grade_probabilities``: grade name -> probability, for every grade of
      ``vertkp.grading.GRADES`` (``vertkp.grading.grade_probabilities`` of the slip's
      distribution, ``vertkp.review.slip_distribution``);
    * ``grade_probability``: that of the reported ``grade``."""

    flags: List[str] = field(default_factory=list)
    slip_low_pct: Optional[float] = None
    slip_high_pct: Optional[float] = None
    grade_probability: Optional[float] = None
    grade_probabilities: Optional[dict] = None


@dataclass
class SpinePrediction:
    """The prediction for one image.

    Attributes:
        image: the file path, or the name given for an array.
        height, width: image size, px.
        view: "lateral" or "ap".
        vertebrae: cranial to caudal.
        pairs: adjacent pairs, cranial first (not across a suspected missed vertebra).
        gaps: consecutive vertebrae that are not neighbours:
            {"upper", "lower" (indices), "upper_name", "lower_name", "disc_ratio"}.
        facing, facing_source, facing_confidence: as used for grading
            (``vertkp.grading.FacingEstimate``); None on AP views.
        level_source: "estimated" when levels were named up from an S1 recognised at the bottom
            (``vertkp.grading.levels``; each named vertebra's ``level_confidence``), "bottom_level"
            when named up from the given bottom level, else "position" (names are "#k from bottom").
        lordosis_deg: L1-S1 lordosis when both levels are known, else None.
        pixel_spacing: mm per pixel, or None (then the *_mm values are None).
        pixel_spacing_source: where it came from: "--pixel-spacing", "dicom:<header field>"
            (``vertkp.data.imaging.images.ImageRecord``), "--gt", "given" (a ``VertebraPredictor`` argument);
            None without one.
        flags: codes of :data:`FLAGS` for the image (those of its vertebrae and pairs included).
        notes: readable caveats.
        findings: what breaks the chain of vertebrae (``vertkp.grading.plausibility``, the rules
            ``vertkp audit`` applies to labels): {"code", "vertebrae" (names), "detections"
            (indices in the model's output), "repaired" (True: the detection was removed by
            ``vertkp.grading.chain.repair_chain``; False: it stays and is flagged
            ``implausible_chain``), "message"}.
        risk: probability in [0, 1] that a grade of the image is wrong: 1 - the product of its
            pairs' ``grade_probability`` and of the facing's confidence when estimated; 1 with
            an unrepaired finding; None without a graded pair. Review images in decreasing risk.
        thresholds: the :class:`FlagThresholds` the flags were raised with.
        uncertainty: the corner error model of the slip intervals
            (``vertkp.review.CornerUncertainty``).
        image_id: the COCO image id of the results file, if any.
        dicom_ids: a DICOM file's patient and study identifiers
            (``vertkp.data.imaging.dicom.DICOM_ID_FIELDS``), only when asked for (``keep_dicom_ids``);
            None, and then not in :meth:`as_dict`, otherwise.
        grading: the full :class:`vertkp.grading.SpineGrading` (not serialised); its indices
            are those of :attr:`vertebrae` but for a jumble of overlapping boxes whose order
            depends on the input order.
    """

    image: str
    height: int
    width: int
    view: str
    vertebrae: List[VertebraResult]
    pairs: List[PairResult]
    gaps: List[dict]
    facing: Optional[str]
    facing_source: Optional[str]
    facing_confidence: Optional[float]
    level_source: str
    lordosis_deg: Optional[float]
    pixel_spacing: Optional[float]
    flags: List[str]
    notes: List[str]
    thresholds: FlagThresholds = FlagThresholds()
    uncertainty: CornerUncertainty = CornerUncertainty()
    findings: List[dict] = field(default_factory=list)
    risk: Optional[float] = None
    image_id: Optional[int] = None
    pixel_spacing_source: Optional[str] = None
    dicom_ids: Optional[dict] = None
    grading: Optional[SpineGrading] = field(default=None, repr=False, compare=False)

    @property
    def corners(self) -> np.ndarray:
        """float [N, 4, 2], px, of :attr:`vertebrae`."""
        return np.array([v.corners for v in self.vertebrae], dtype=np.float64).reshape(-1, NUM_KEYPOINTS, 2)

    @property
    def scores(self) -> np.ndarray:
        """float [N] detection scores of :attr:`vertebrae`."""
        return np.array([v.score for v in self.vertebrae], dtype=np.float64)

    def as_dict(self) -> dict:
        """JSON-ready dict (what predictions.json holds per image)."""
        out = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "grading"}
        out["vertebrae"] = [v.as_dict() for v in self.vertebrae]
        out["pairs"] = [p.as_dict() for p in self.pairs]
        out["thresholds"] = asdict(self.thresholds)
        out["uncertainty"] = asdict(self.uncertainty)
        if self.dicom_ids is None:
            del out["dicom_ids"]
        return out


def build_prediction(corners, corner_scores, scores, boxes, *, image: str, height: int, width: int,
                     view: str = "lateral", facing: Optional[str] = "auto", data_facing: Optional[str] = None,
                     pixel_spacing: Optional[float] = None, bottom_level: Optional[str] = "auto",
                     no_slip_pct: float = DEFAULT_NO_SLIP_PCT, gap_factor: float = DEFAULT_GAP_FACTOR,
                     thresholds: FlagThresholds = FlagThresholds(),
                     pixel_spacing_source: Optional[str] = None, corner_spread=None,
                     uncertainty: CornerUncertainty = CornerUncertainty(), repair: bool = True) -> SpinePrediction:
    """Grade the detected vertebrae of one image and flag what needs a look.

    Args:
        corners: float [N, 4, 2], px, TL, TR, BL, BR (image coordinates).
        corner_scores: float [N, 4] corner confidences in [0, 1].
        scores: float [N] detection scores.
        boxes: float [N, 4], [x0, y0, x1, y1] px.
        image, height, width: name and size of the image.
        view, facing, data_facing, pixel_spacing, no_slip_pct, gap_factor:
            as for ``vertkp.grading.grade_spine``.
        bottom_level: "auto": name levels where the bottom vertebra is recognised as S1
            (``vertkp.grading.levels.name_levels``, lateral views); a level name: the most caudal
            vertebra in view is that level (the others are named upwards from it; not applied
            when a vertebra seems missed, noted); None: names by position.
        thresholds: :class:`FlagThresholds`.
        pixel_spacing_source: where ``pixel_spacing`` came from (:attr:`SpinePrediction.pixel_spacing_source`).
        corner_spread: float [N, 4] px, the TTA passes' disagreement per corner (NaN where one
            pass alone found the vertebra); None: predicted without TTA.
        uncertainty: the corner error model of the slip intervals.
        repair: remove the detections that break the chain first
            (``vertkp.grading.chain.repair_chain``; each removal is a finding).

    Returns:
        :class:`SpinePrediction`, vertebrae cranial to caudal.
    """
    c = np.asarray(corners, dtype=np.float64).reshape(-1, NUM_KEYPOINTS, 2)
    n = len(c)
    cs = np.asarray(corner_scores, dtype=np.float64).reshape(n, NUM_KEYPOINTS)
    s = np.asarray(scores, dtype=np.float64).reshape(n)
    b = np.asarray(boxes, dtype=np.float64).reshape(n, 4)
    tta = corner_spread is not None
    sp = (np.asarray(corner_spread, dtype=np.float64).reshape(n, NUM_KEYPOINTS) if tta
          else np.full((n, NUM_KEYPOINTS), np.nan))
    if bottom_level not in (None, "auto") and level_index(bottom_level) is None:
        raise ValueError(f"bottom_level must be 'auto' or a level name such as 'S1' or 'L5', got {bottom_level!r}")
    kw = dict(view=view, facing=facing, data_facing=data_facing, pixel_spacing=pixel_spacing,
              no_slip_pct=no_slip_pct, gap_factor=gap_factor)
    notes: List[str] = []
    detection = np.arange(n)
    removed: List[Problem] = []
    if repair and n:
        fix = repair_chain(c, s, cs, view=view, gap_factor=gap_factor)
        removed = fix.removed
        c, cs, s, b, sp, detection = c[fix.keep], cs[fix.keep], s[fix.keep], b[fix.keep], sp[fix.keep], detection[fix.keep]
        n = len(c)
    first = grade_spine(c, **kw)
    order = np.asarray(first.order, dtype=int)  # cranial to caudal; graded again in it: indices = list positions
    c, cs, s, b, sp, detection = c[order], cs[order], s[order], b[order], sp[order], detection[order]
    widths = vertebra_width(c) if n else np.zeros(0)
    sp_pct = spread_pct_width(sp, widths)
    sd = corner_sd_px(widths, sp, uncertainty)
    raised = corner_flags(cs, s[:, None], sp_pct, thresholds, tta)  # flag -> bool [n, 4]
    levels, level_confidence, level_source = None, None, "position"
    if bottom_level == "auto" and n:
        naming = name_levels(grade_spine(c, **kw))
        levels, level_confidence = naming.levels, naming.confidence
        level_source = "estimated" if levels is not None else "position"
        if naming.note:
            notes.append(naming.note)
    elif bottom_level is not None and n:
        if first.gaps:
            notes.append(f"levels not assigned from {bottom_level.upper()} at the bottom: a vertebra seems missed")
        else:
            levels = levels_up_from(bottom_level, n)[::-1]  # cranial first, as c
            level_source = "bottom_level"
    g = grade_spine(c, levels=levels, **kw)
    notes.extend(g.notes)
    # g's order is the identity, unless the order of a jumble of overlapping boxes depends on
    # the input order: list the vertebrae in g's order anyway, and index pairs and gaps by it
    perm = np.asarray(g.order, dtype=int).reshape(n)
    inv = np.empty(n, dtype=int)
    inv[perm] = np.arange(n)
    shapes, overlapping = shape_problems(_checked_corners(c, perm))
    unrepaired = shapes + pair_problems(g, overlapping)
    implausible = {int(m) for pr in unrepaired for m in pr.members}

    vertebrae = []
    for i in perm:
        flags = [f for f, hit in raised.items() if hit[i].any()] + (["implausible_chain"] if i in implausible else [])
        level = levels[i] if levels is not None else None
        vertebrae.append(VertebraResult(g.names[i], level, g.positions_from_bottom[i], float(s[i]),
                                        [float(v) for v in b[i]], c[i].copy(), cs[i].copy(), int(detection[i]), flags,
                                        sp[i].copy(), sp_pct[i].copy(), sd[i].copy(),
                                        level_confidence if level is not None else None))
    pairs = []
    for pm in g.pairs:
        # corners that make the pair's measures: upper's inferior (BL, BR), lower's superior (TL, TR)
        flags = [f for f, hit in raised.items() if hit[pm.upper, 2:].any() or hit[pm.lower, :2].any()]
        dist = None
        if g.view == "lateral" and pm.slip_pct is not None and g.facing is not None:
            u, lo = pm.upper, pm.lower
            dist = slip_distribution(g.oriented[u], g.oriented[lo], follow_orientation(sd[u], c[u], g.oriented[u]),
                                     follow_orientation(sd[lo], c[lo], g.oriented[lo]), g.facing.facing)
        extra, doubt = {}, None
        if dist is not None:
            slip, slip_sd = dist
            doubt = grade_doubt(slip, slip_sd, no_slip_pct)
            low, high = uncertainty.interval(slip, slip_sd)
            extra = dict(slip_low_pct=low, slip_high_pct=high, grade_probability=1.0 - doubt,
                         grade_probabilities={GRADE_NAMES[k]: float(v) for k, v in
                                              zip(GRADES, grade_probabilities(slip, slip_sd, no_slip_pct))})
        if not pm.measurable:
            flags.append("not_measurable")
        elif doubt is not None and doubt >= thresholds.grade_doubt:
            flags.append("borderline_grade")
        if pm.upper in implausible or pm.lower in implausible:
            flags.append("implausible_chain")
        pairs.append(PairResult(**{**pm.as_dict(), "upper": int(inv[pm.upper]), "lower": int(inv[pm.lower])},
                                flags=flags, **extra))
    gaps = [{"upper": int(inv[u]), "lower": int(inv[lo]), "upper_name": g.names[u], "lower_name": g.names[lo],
             "disc_ratio": next(a["disc_ratio"] for a in g.adjacency if a["upper"] == u and a["lower"] == lo)}
            for u, lo in g.gaps]
    findings = _findings(removed, unrepaired, g.names, detection)
    notes.extend(f["message"] for f in findings)
    fe = g.facing
    image_flags = []
    if n == 0:
        image_flags.append("no_vertebrae")
    if gaps:
        image_flags.append("suspected_missed_vertebra")
        notes.extend(f"a vertebra seems missed between {x['upper_name']} and {x['lower_name']}" for x in gaps)
    if pairs and fe is not None and fe.source == "auto" and fe.confidence < thresholds.facing:
        image_flags.append("uncertain_facing")
    if unrepaired:
        image_flags.append("implausible_chain")
    for item in (*vertebrae, *pairs):
        image_flags.extend(f for f in item.flags if f not in image_flags)
    return SpinePrediction(
        image=image, height=int(height), width=int(width), view=g.view, vertebrae=vertebrae, pairs=pairs,
        gaps=gaps, facing=fe.facing if fe else None, facing_source=fe.source if fe else None,
        facing_confidence=float(fe.confidence) if fe else None,
        level_source=level_source, lordosis_deg=g.lordosis_deg,
        pixel_spacing=pixel_spacing, flags=[f for f in FLAGS if f in image_flags], notes=notes,
        thresholds=thresholds, uncertainty=uncertainty, findings=findings,
        risk=image_risk([p.grade_probability for p in pairs],
                        fe.confidence if fe is not None and fe.source == "auto" else None, bool(unrepaired)),
        pixel_spacing_source=pixel_spacing_source if pixel_spacing is not None else None,
        grading=g)


def _checked_corners(corners: np.ndarray, order: np.ndarray) -> np.ndarray:
    """The corners [N, 4, 2] the shape rules check: all but the inferior ones (BL, BR) of the most
    caudal vertebra (``order``: cranial to caudal), which enter no measure and which a model
    trained on BUU-LSPINE (S1 labelled by its superior endplate only) never learnt."""
    out = np.array(corners, dtype=np.float64)
    if len(order):
        out[order[-1], 2:] = np.nan
    return out


def _findings(removed: List[Problem], unrepaired: List[Problem], names: List[str], detection: np.ndarray) -> List[dict]:
    """:attr:`SpinePrediction.findings` from the repair's removed detections (members: indices in
    the model's output) and the problems left (members: indices of the graded vertebrae)."""
    kept = {int(d): names[i] for i, d in enumerate(detection)}
    out = []
    for pr in removed:
        lost, *others = pr.members
        seen = [kept[o] for o in others if o in kept]
        where = f" ({', '.join(seen)} kept)" if seen else ""
        out.append({"code": pr.code, "vertebrae": seen, "detections": [int(m) for m in pr.members], "repaired": True,
                    "message": f"{pr.code.replace('_', ' ')}: detection {lost} {pr.detail}{where}"})
    for pr in unrepaired:
        who = [names[m] for m in pr.members]
        out.append({"code": pr.code, "vertebrae": who, "detections": [int(detection[m]) for m in pr.members],
                    "repaired": False, "message": f"{pr.code.replace('_', ' ')}: {', '.join(who)}: {pr.detail}"})
    return out
