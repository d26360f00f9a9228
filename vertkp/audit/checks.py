"""Findings about the vertebrae of one image: shapes, overlaps, order and slips.

:func:`vertebra_findings` runs every per-vertebra check on one image's ground truth
(``vertkp.evaluation.ImageTruth``: corners [N, 4, 2] px, TL, TR, BL, BR, NaN where
unlabelled, in file order). The rules are ``vertkp.grading.plausibility``'s (predictions are checked by them too) and
``vertkp.grading``; this module turns it into findings with their numbers.
"""
from __future__ import annotations

from typing import List, Optional, Sequence, Set, Tuple

import numpy as np

from ..anatomy import LEVELS, level_index
from ..evaluation.ground_truth import ImageTruth
from ..grading import SpineGrading, grade_spine
from ..keypoints import KEYPOINT_NAMES
from .findings import Finding, make_finding
from ..grading.plausibility import corners_outside, pair_problems, shape_problems

__all__ = ["vertebra_findings", "shape_findings", "order_findings", "slip_findings", "outside_findings",
           "file_order_misplaced", "level_violations"]


def _ids(ids: Sequence, ks) -> list:
    return [ids[int(k)] for k in ks]


def _id_text(ids: Sequence) -> str:
    return ", ".join(str(i) for i in ids)


def outside_findings(label: str, t: ImageTruth, width: Optional[float], height: Optional[float]) -> List[Finding]:
    """``corner_outside_image``: one finding per annotation with a labelled corner outside
    [0, width] x [0, height] px (the image's size from its COCO entry)."""
    if width is None or height is None:
        return []
    out = []
    mask = corners_outside(t.corners, width, height)
    for k in np.flatnonzero(mask.any(axis=1)):
        where = ", ".join(f"{KEYPOINT_NAMES[c]} ({t.corners[k, c, 0]:.1f}, {t.corners[k, c, 1]:.1f})"
                          for c in np.flatnonzero(mask[k]))
        s = "s" if mask[k].sum() > 1 else ""
        out.append(make_finding("corner_outside_image", label, t.file_name, [t.ann_ids[k]],
                                f"corner{s} {where} outside the {width:g} x {height:g} image"))
    return out


def shape_findings(label: str, t: ImageTruth) -> Tuple[List[Finding], Set[Tuple[int, int]]]:
    """``vertkp.grading.plausibility.shape_problems`` of the image's labels as findings; also returns
    the pairs of input indices (i < j) found duplicate or overlapping."""
    problems, overlapping = shape_problems(t.corners)
    out = []
    for p in problems:
        detail = p.detail if len(p.members) == 1 else f"{p.detail} with annotation {t.ann_ids[p.members[1]]}"
        out.append(make_finding(p.code, label, t.file_name, [t.ann_ids[k] for k in p.members], detail))
    return out, overlapping


def level_violations(order: Sequence[int], level_idx: Sequence[Optional[int]]) -> list:
    """Consecutive pairs (i, j) of input indices, along ``order`` (cranial first) and
    among the vertebrae with a known level index, whose levels do not increase."""
    known = [k for k in order if level_idx[k] is not None]
    return [(a, b) for a, b in zip(known, known[1:]) if level_idx[a] >= level_idx[b]]


def file_order_misplaced(order: Sequence[int]) -> list:
    """Input indices out of place when the file order (0, 1, ..) is read as ``order``
    (cranial first) or its reverse, whichever fits more; [] when one fits exactly."""
    order = [int(k) for k in order]
    forward = [k for pos, k in enumerate(order) if k != pos]
    backward = [k for pos, k in enumerate(order[::-1]) if k != pos]
    if not forward or not backward:
        return []
    return sorted(forward if len(forward) <= len(backward) else backward)


def order_findings(label: str, t: ImageTruth, g: SpineGrading) -> List[Finding]:
    """``out_of_order``: with levels (two or more vertebrae with a known level), levels
    that do not increase cranial to caudal along the spine (``order_spine``'s order), or
    that increase up the image against the corners' superior endplates; without,
    (severity info) a file order that is neither cranial-to-caudal nor the reverse."""
    idx = [level_index(lv) for lv in t.levels]
    known = [k for k in g.order if idx[k] is not None]
    if len(known) >= 2:
        bad = level_violations(g.order, idx)
        along = ", ".join(LEVELS[idx[k]] for k in known)
        if bad:
            involved = sorted({k for pair in bad for k in pair}, key=known.index)
            return [make_finding("out_of_order", label, t.file_name, _ids(t.ann_ids, involved),
                                 f"levels along the spine, cranial to caudal: {along} "
                                 f"(annotations {_id_text(_ids(t.ann_ids, known))})")]
        if g.spine.upside_down and not g.spine.rotated:
            top_down = ", ".join(LEVELS[idx[k]] for k in known[::-1])
            return [make_finding("out_of_order", label, t.file_name, _ids(t.ann_ids, known),
                                 f"levels from the top of the image down: {top_down}; they increase up the image, "
                                 "against the corners' superior endplates")]
        return []
    misplaced = file_order_misplaced(g.order)
    if not misplaced:
        return []
    return [make_finding("out_of_order", label, t.file_name, _ids(t.ann_ids, misplaced),
                         f"annotations in the file: {_id_text(t.ann_ids)}; along the spine, cranial to caudal: "
                         f"{_id_text(_ids(t.ann_ids, g.order))}", severity="info")]


def slip_findings(label: str, t: ImageTruth, g: SpineGrading,
                  skip: Set[Tuple[int, int]] = frozenset()) -> List[Finding]:
    """``implausible_slip`` (``vertkp.grading.plausibility.pair_problems``) of the image's labels as
    findings; pairs of input indices in ``skip`` (found duplicate or overlapping) are left out."""
    out = []
    for p in pair_problems(g, skip):
        up, lo = (t.ann_ids[k] for k in p.members)
        out.append(make_finding(p.code, label, t.file_name, [up, lo], f"{p.detail} between annotations {up} and {lo}"))
    return out


def vertebra_findings(label: str, t: ImageTruth, width: Optional[float] = None,
                      height: Optional[float] = None) -> List[Finding]:
    """Every per-vertebra finding of one image (``label``: its dataset's label; width and
    height: its COCO size, px, for the outside check). The order and slip checks grade
    the spine with ``vertkp.grading.grade_spine`` (facing from the image's ``facing``
    field, else estimated); an image it cannot grade gets neither. A pair found duplicate
    or overlapping is not also reported as an implausible slip."""
    shapes, overlapping = shape_findings(label, t)
    out = outside_findings(label, t, width, height) + shapes
    if t.n >= 2:
        try:
            g = grade_spine(t.corners, levels=t.levels, view=t.view, facing="auto", data_facing=t.facing)
        except ValueError:
            g = None
        if g is not None:
            out += order_findings(label, t, g) + slip_findings(label, t, g, overlapping)
    return out
