"""A predicted spine made consistent before it is graded: :func:`repair_chain`.

A detector proposes vertebrae one by one; a spine is one chain of bodies stacked along it,
separated by discs. Two kinds of proposal break the chain and are removed here:

* a body that overlaps another (``vertkp.grading.plausibility.iou_pairs``, IoU above
  ``OVERLAP_IOU``, the audit's rule for labels): one vertebra found twice, or two overlapping
  guesses; the higher detection score stays (non-maximum suppression on the quadrilaterals,
  which detectron2's box NMS does not see);
* a body at either end of the chain that a gap (``vertkp.grading.find_gaps``) separates from
  the rest and whose mean corner confidence is under :data:`DETACHED_MAX_CONFIDENCE`: on
  realistic phantoms these were femoral heads, bowel gas or ribs, never a vertebra. A detached
  body with confident corners stays (a real S1 under a missed L5 keeps its place, and the gap
  is reported). The rule runs again on the shortened chain, for two false bodies in a row.

Corners are [N, 4, 2] px, TL, TR, BL, BR (image coordinates, x right, y down).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import List

import numpy as np

from .adjacency import DEFAULT_GAP_FACTOR
from .grade import grade_spine
from .plausibility import OVERLAP_IOU, Problem, full_corners, iou_pairs

__all__ = ["DETACHED_MAX_CONFIDENCE", "ChainRepair", "repair_chain"]

# A body detached from the end of the chain by a gap is removed when its corners' mean heatmap
# confidence (``vertkp.keypoint_decoding.corner_confidence``) is under this. With the `make demo`
# model on the three held-out phantom sets of ``vertkp benchmark review`` (README, "A consistent
# chain, named levels and flags that separate") 45 bodies removed so matched no vertebra and 2
# did (two S1 under a gap); on other held-out sets false bodies reached 0.59.
DETACHED_MAX_CONFIDENCE = 0.6


@dataclass(frozen=True)
class ChainRepair:
    """What :func:`repair_chain` kept and why it removed the rest.

    Attributes:
        keep: bool [N], the proposals kept (input order).
        removed: one :class:`~vertkp.grading.plausibility.Problem` per removed proposal, its
            first member the removed index, the second (overlaps) the one kept in its place;
            codes ``duplicate_vertebra``, ``overlapping_vertebrae`` or ``detached_vertebra``.
    """

    keep: np.ndarray
    removed: List[Problem]


def repair_chain(corners, scores, corner_confidence, *, view: str = "lateral",
                 gap_factor: float = DEFAULT_GAP_FACTOR) -> ChainRepair:
    """Remove the proposals that break the chain (module docstring).

    Args:
        corners: float [N, 4, 2] px, the proposals' corners.
        scores: float [N] detection scores.
        corner_confidence: float [N, 4] corner heatmap confidences in [0, 1].
        view, gap_factor: as for :func:`vertkp.grading.grade_spine`.
    """
    c = np.asarray(corners, dtype=np.float64).reshape(-1, 4, 2)
    s = np.asarray(scores, dtype=np.float64).reshape(-1)
    conf = np.asarray(corner_confidence, dtype=np.float64).reshape(-1, 4)
    keep = np.ones(len(c), dtype=bool)
    removed: List[Problem] = []
    full = np.flatnonzero(full_corners(c))
    overlaps = sorted(iou_pairs(c[full], OVERLAP_IOU), key=lambda t: -t[2])
    for a, b, iou in overlaps:
        i, j = int(full[a]), int(full[b])
        if not (keep[i] and keep[j]):
            continue
        lose, win = (i, j) if (s[i], -i) < (s[j], -j) else (j, i)
        keep[lose] = False
        code = "duplicate_vertebra" if iou > 0.5 else "overlapping_vertebrae"
        removed.append(Problem(code, (lose, win), f"IoU {iou:.2f} with a vertebra of higher score "
                                                  f"({s[lose]:.2f} < {s[win]:.2f}): removed"))
    while keep.sum() >= 2:
        idx = np.flatnonzero(keep)
        g = grade_spine(c[idx], view=view, facing="auto", gap_factor=gap_factor)
        ends = {g.order[0], g.order[-1]}
        detached = [(u if u in ends and u == g.order[0] else lo) for u, lo in g.gaps
                    if (u == g.order[0]) or (lo == g.order[-1])]
        weak = [k for k in detached if conf[idx[k]].mean() < DETACHED_MAX_CONFIDENCE]
        if not weak:
            break
        for k in weak:
            keep[idx[k]] = False
            removed.append(Problem("detached_vertebra", (int(idx[k]),),
                                   f"separated from the chain by a gap, mean corner confidence "
                                   f"{conf[idx[k]].mean():.2f} < {DETACHED_MAX_CONFIDENCE:g}: removed"))
    return ChainRepair(keep, removed)
