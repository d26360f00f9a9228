"""Grade one spine: order, orient, pair and measure its vertebrae.

:func:`grade_spine` is the one entry point; ground truth and predictions go
through the same function, so that the evaluation compares like with like.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import List, Optional, Sequence

import numpy as np

from ..anatomy import FACINGS, VIEWS, level_index, level_name
from .adjacency import DEFAULT_GAP_FACTOR, find_gaps
from .facing import FacingEstimate, resolve_facing
from .measures import ap_pair_measures, lateral_pair_measures, lumbar_lordosis_deg
from .order import SpineOrder, order_spine
from .orientation import orient_vertebrae
from .slip import DEFAULT_NO_SLIP_PCT, grade_name
from .vertebrae import _finite

__all__ = ["PairMeasures", "SpineGrading", "grade_spine", "vertebra_name", "pair_name"]


def vertebra_name(level: Optional[str], position_from_bottom: int) -> str:
    """A vertebra's name: its level when known ("L4"), else "#k from bottom"
    (k = 1 for the most caudal vertebra of the image)."""
    name = level_name(level)
    return name if name is not None else f"#{position_from_bottom} from bottom"


def pair_name(upper_level, lower_level, lower_position_from_bottom: int) -> str:
    """A pair's name: "L4/L5" when both levels are known, else by position:
    "pair k from the bottom", k being the lower vertebra's position from the
    bottom (pair 1 = the two most caudal vertebrae)."""
    upper, lower = level_name(upper_level), level_name(lower_level)
    if upper is not None and lower is not None:
        return f"{upper}/{lower}"
    return f"pair {lower_position_from_bottom} from the bottom"


@dataclass
class PairMeasures:
    """Measures of one adjacent pair, upper (cranial) vertebra over lower.

    Indices refer to the input arrays of :func:`grade_spine`. Lateral views
    fill slip_pct .. disc heights (see ``lateral_pair_measures``); AP views
    fill the lateral displacement fields (see ``ap_pair_measures``). Any
    measure that the available corners do not allow is None, and
    ``measurable`` is False with a ``reason`` when the main measure (slip % or
    lateral displacement %) is missing.
    """

    upper: int
    lower: int
    upper_name: str
    lower_name: str
    name: str
    position_from_bottom: int
    adjacency: str = "unknown"
    disc_ratio: Optional[float] = None
    measurable: bool = False
    reason: str = ""
    slip_pct: Optional[float] = None
    grade: Optional[int] = None
    grade_name: Optional[str] = None
    retrolisthesis_pct: Optional[float] = None
    intervertebral_angle_deg: Optional[float] = None
    disc_height_anterior_px: Optional[float] = None
    disc_height_posterior_px: Optional[float] = None
    disc_height_anterior_mm: Optional[float] = None
    disc_height_posterior_mm: Optional[float] = None
    lateral_displacement_pct: Optional[float] = None
    lateral_side: Optional[str] = None
    patient_side: Optional[str] = None

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass
class SpineGrading:
    """Everything :func:`grade_spine` found about one spine.

    Attributes:
        view: "lateral" or "ap".
        order: input indices, cranial to caudal.
        names: per input vertebra, its level or "#k from bottom".
        positions_from_bottom: per input vertebra, 1 = most caudal.
        level_source: "data" (every vertebra has a level from the data),
            "position" (none has: names and pair names are positional) or
            "mixed".
        oriented: [N, 4, 2] corners re-derived in the spine frame
            (``orient_vertebrae``), NaN where unlabelled.
        spine: the :class:`SpineOrder` (axis, direction method/confidence).
        facing: the :class:`FacingEstimate` used (None on AP views).
        adjacency: ``find_gaps`` records of every consecutive pair.
        pairs: the adjacent pairs (consecutive and not a gap), cranial first.
        lordosis_deg: L1-S1 lordosis, only when the data names L1 and S1 and
            both superior endplates exist; else None.
        pixel_spacing: mm/px used for the mm values, or None.
        notes: caveats worth reporting.
    """

    view: str
    order: List[int]
    names: List[str]
    positions_from_bottom: List[int]
    level_source: str
    oriented: np.ndarray
    spine: SpineOrder
    facing: Optional[FacingEstimate]
    adjacency: list
    pairs: List[PairMeasures]
    lordosis_deg: Optional[float] = None
    pixel_spacing: Optional[float] = None
    notes: list = field(default_factory=list)

    def pair(self, upper: int, lower: int) -> Optional[PairMeasures]:
        """The pair with these input indices, or None if they are no pair."""
        for p in self.pairs:
            if p.upper == upper and p.lower == lower:
                return p
        return None

    @property
    def gaps(self) -> list:
        """(upper, lower) index pairs that are consecutive but not neighbours."""
        return [(a["upper"], a["lower"]) for a in self.adjacency if a["gap"]]


def _as_corners(corners, visible) -> np.ndarray:
    c = np.array(corners, dtype=np.float64)
    if c.ndim != 3 or c.shape[1:] != (4, 2):
        raise ValueError(f"corners must be an array [N, 4, 2] in TL, TR, BL, BR order, got shape {c.shape}")
    if visible is not None:
        v = np.asarray(visible, dtype=bool)
        if v.shape != c.shape[:2]:
            raise ValueError(f"visible must be [N, 4] like corners, got shape {v.shape}")
        c[~v] = np.nan
    bad = np.isfinite(c[..., 0]) != np.isfinite(c[..., 1])
    if np.any(bad) or np.any(np.isinf(c)):
        raise ValueError("corner coordinates must be finite numbers (NaN for both x and y of an unlabelled corner)")
    return c


def grade_spine(corners, visible=None, levels: Optional[Sequence] = None, *, view: Optional[str] = "lateral",
                facing: Optional[str] = "auto", data_facing: Optional[str] = None,
                pixel_spacing: Optional[float] = None, no_slip_pct: float = DEFAULT_NO_SLIP_PCT,
                gap_factor: float = DEFAULT_GAP_FACTOR) -> SpineGrading:
    """Order, orient, pair and measure the vertebrae of one image.

    Args:
        corners: [N, 4, 2] px in canonical TL, TR, BL, BR order (image
            coordinates, x right, y down). Unlabelled corners: NaN, or mark
            them with ``visible``.
        visible: optional [N, 4] bool, False for unlabelled corners.
        levels: optional [N] level names from the data ("L1".."S1", None).
        view: "lateral" (slip, Meyerding, angles, disc heights, lordosis) or
            "ap" (lateral displacement); None means lateral.
        facing: "left", "right" or "auto" (see ``resolve_facing``); ignored
            on AP views.
        data_facing: the dataset's facing of this image, used by "auto".
        pixel_spacing: mm per pixel, for the *_mm values.
        no_slip_pct: half-width of the no-slip band of the Meyerding grade.
        gap_factor: disc height over body height above which two consecutive
            vertebrae are not neighbours (``find_gaps``).

    Returns:
        :class:`SpineGrading`.

    Raises:
        ValueError: bad shapes, non-finite values, a vertebra without any
            labelled corner, an unknown view or facing.
    """
    view = "lateral" if view is None else str(view).lower()
    if view not in VIEWS:
        raise ValueError(f"view must be one of {VIEWS}, got {view!r}")
    if facing not in (None, "auto", *FACINGS):
        raise ValueError(f"facing must be 'left', 'right' or 'auto', got {facing!r}")
    if pixel_spacing is not None and not (np.isfinite(pixel_spacing) and pixel_spacing > 0):
        raise ValueError(f"pixel_spacing must be a positive number of mm per pixel, got {pixel_spacing!r}")
    c = _as_corners(corners, visible)
    n = len(c)
    levels = list(levels) if levels is not None else [None] * n
    if len(levels) != n:
        raise ValueError(f"levels has {len(levels)} entries for {n} vertebrae")
    notes = []
    spine = order_spine(c, levels)
    notes.extend(spine.notes)
    oriented = orient_vertebrae(c, spine)
    order = [int(i) for i in spine.order]
    pos = [0] * n
    for k, i in enumerate(order):
        pos[i] = n - k
    names = [vertebra_name(levels[i], pos[i]) for i in range(n)]
    n_known = sum(level_index(lv) is not None for lv in levels)
    level_source = "data" if n and n_known == n else ("position" if n_known == 0 else "mixed")
    fe = resolve_facing(facing, oriented, spine, data_facing) if view == "lateral" else None
    adjacency = find_gaps(oriented, spine, levels, gap_factor)
    pairs = []
    for a in adjacency:
        if a["gap"]:
            continue
        u, lo = a["upper"], a["lower"]
        pm = PairMeasures(u, lo, names[u], names[lo], pair_name(levels[u], levels[lo], pos[lo]), pos[lo],
                          adjacency=a["method"], disc_ratio=a["disc_ratio"])
        try:
            if view == "lateral":
                vals = lateral_pair_measures(oriented[u], oriented[lo], fe.facing, pixel_spacing, no_slip_pct)
                main = vals["slip_pct"]
            else:
                vals = ap_pair_measures(oriented[u], oriented[lo], no_slip_pct)
                main = vals["lateral_displacement_pct"]
        except ValueError as e:
            pm.reason = str(e)
            pairs.append(pm)
            continue
        for k, v in vals.items():
            setattr(pm, k, v)
        if pm.grade is not None:
            pm.grade_name = grade_name(pm.grade)
        pm.measurable = main is not None
        if main is None:
            if not _finite(oriented[u, 2:]):
                pm.reason = "the upper vertebra has no inferior endplate"
            else:
                pm.reason = "the lower vertebra has no superior endplate"
        pairs.append(pm)
    lordosis = None
    if view == "lateral":
        by_level = {level_name(lv): i for i, lv in enumerate(levels)}
        i1, i2 = by_level.get("L1"), by_level.get("S1")
        if i1 is not None and i2 is not None:
            try:
                lordosis = lumbar_lordosis_deg(oriented[i1], oriented[i2], fe.facing)
            except ValueError as e:
                notes.append(f"lordosis not measured: {e}")
            if lordosis is None:
                notes.append("lordosis not measured: L1 or S1 has no superior endplate")
    return SpineGrading(view, order, names, pos, level_source, oriented, spine, fe, adjacency, pairs,
                        lordosis, pixel_spacing, notes)
