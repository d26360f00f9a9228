"""Which consecutive vertebrae are anatomical neighbours: :func:`find_gaps`.

Corners are in the spine frame of ``vertkp.grading.orientation`` ([N, 4, 2]
px, superior & spine-left, superior & spine-right, inferior & spine-left,
inferior & spine-right; NaN where unlabelled). Levels are the names of
``vertkp.anatomy.LEVELS`` (``docs/clinical.md``, "Levels").
"""
from __future__ import annotations

from typing import Optional, Sequence

import numpy as np

from ..anatomy import level_index
from .order import SpineOrder
from .vertebrae import _finite, _mid, _unit, vertebra_heights

__all__ = ["DEFAULT_GAP_FACTOR", "find_gaps"]

# A pair (U over L) is a gap, i.e. not anatomical neighbours, when the disc
# space between U's inferior and L's superior endplate is taller than this
# fraction of the vertebral body height. A normal lumbar disc is about 0.3-0.5
# body heights (mean of anterior and posterior); a missed vertebra leaves at
# least one body height (a body plus two discs, about 1.3-1.6).
DEFAULT_GAP_FACTOR = 0.7


def _endplate_normal_cranial(plate: np.ndarray, cranial: np.ndarray):
    """Unit normal of a 2-corner endplate pointing to the cranial side."""
    e = _unit(plate[1] - plate[0])
    if e is None:
        return None
    nrm = np.array([-e[1], e[0]])
    return nrm if nrm @ cranial >= 0 else -nrm


def find_gaps(oriented: np.ndarray, spine: SpineOrder, levels: Optional[Sequence] = None,
              gap_factor: float = DEFAULT_GAP_FACTOR):
    """Decide, for each consecutive pair along ``spine.order``, if it is a gap.

    A gap means the two vertebrae are not anatomical neighbours (a vertebra
    between them was missed or not annotated), so they must not form a pair.

    Rules, first that applies:

    1. "levels": both vertebrae have known levels: a gap when their level
       indices do not differ by exactly 1.
    2. "geometry": U has an inferior and L a superior endplate: the disc
       height h_d = mean over U's two inferior corners of their signed
       distance to the line of L's superior endplate, measured along its
       cranial normal (so a forward slip does not inflate it and a vertebra
       that fell below the endplate gives h_d < 0). A gap when
       h_d > gap_factor * h_ref, with h_ref the body height of U (else of L,
       else the median body height of the image, else 0.6 x L's endplate
       width, the usual lumbar height/width ratio).
    3. "unknown": neither is possible; assumed neighbours (such a pair has no
       measurable endplates anyway).

    Args:
        oriented: [N, 4, 2] from :func:`vertkp.grading.orient_vertebrae`.
        spine: the :class:`SpineOrder` used to build ``oriented``.
        levels: optional [N] level names.
        gap_factor: see :data:`DEFAULT_GAP_FACTOR`.

    Returns:
        list of dicts, one per consecutive pair cranial to caudal, with
        "upper", "lower" (input indices), "gap" (bool), "method" and
        "disc_ratio" (h_d / h_ref, None unless "geometry").
    """
    o = np.asarray(oriented, dtype=np.float64)
    heights = vertebra_heights(o)
    finite_h = heights[np.isfinite(heights) & (heights > 0)]
    median_h = float(np.median(finite_h)) if len(finite_h) else float("nan")
    out = []
    order = list(spine.order)
    for u, l in zip(order, order[1:]):
        iu = level_index(levels[u]) if levels is not None else None
        il = level_index(levels[l]) if levels is not None else None
        rec = {"upper": int(u), "lower": int(l), "gap": False, "method": "unknown", "disc_ratio": None}
        if iu is not None and il is not None:
            rec.update(gap=bool((il - iu) != 1), method="levels")
        elif _finite(o[u, 2:], o[l, :2]):
            sup_l = o[l, :2]
            nrm = _endplate_normal_cranial(sup_l, -spine.local_axes[l])
            h_ref = next((h for h in (heights[u], heights[l], median_h) if np.isfinite(h) and h > 0),
                         0.6 * float(np.linalg.norm(sup_l[1] - sup_l[0])))
            if nrm is not None and h_ref > 0:
                h_d = float(np.mean((o[u, 2:] - _mid(*sup_l)) @ nrm))
                ratio = h_d / h_ref
                rec.update(gap=bool(ratio > gap_factor), method="geometry", disc_ratio=float(ratio))
        out.append(rec)
    return out
