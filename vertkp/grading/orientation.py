"""Corner names in the spine frame: :func:`orient_vertebrae`.

The data name corners by image position (canonical TL, TR, BL, BR of
``vertkp.keypoints``); grading needs them by anatomy. ``orient_vertebrae``
re-derives them from the spine's caudal axis ``s`` (``vertkp.grading.order``)
and from each vertebra's own caudal axis, mid(inferior endplate) -
mid(superior endplate): index 0 superior & spine-left, 1 superior &
spine-right, 2 inferior & spine-left, 3 inferior & spine-right, spine-left
being ``left_of(s)``. For an upright image this is exactly the canonical
order, so ``vertkp.keypoints.anatomical_corners`` applies to the result
unchanged: facing "left" means anterior is spine-left (``docs/clinical.md``,
"Corners and facing").
"""
from __future__ import annotations

import numpy as np

from .order import SpineOrder
from .vertebrae import _finite, _mid, _unit, left_of

__all__ = ["orient_vertebrae"]


def _endplates(q: np.ndarray, spine: SpineOrder, s_loc: np.ndarray, complete: bool):
    """(superior, inferior) endplate of one vertebra [4, 2], each [2, 2] in the data's corner order."""
    if not (complete and spine.rotated):
        return (q[2:], q[:2]) if spine.upside_down else (q[:2], q[2:])
    # rotated image: the pair of opposite sides whose axis is closer to the spine's
    groupings = [((0, 1), (2, 3)), ((0, 2), (1, 3))]

    def misalign(g):
        ax = _unit(_mid(*q[list(g[1])]) - _mid(*q[list(g[0])]))
        return 2.0 if ax is None else 1.0 - abs(float(ax @ s_loc))

    g = min(groupings, key=misalign)
    e1, e2 = q[list(g[0])], q[list(g[1])]
    return (e1, e2) if _mid(*e1) @ s_loc <= _mid(*e2) @ s_loc else (e2, e1)


def orient_vertebrae(corners: np.ndarray, spine: SpineOrder) -> np.ndarray:
    """Re-derive each vertebra's corner names in the spine frame.

    Returns an array [N, 4, 2] in the order (superior & spine-left,
    superior & spine-right, inferior & spine-left, inferior & spine-right),
    NaN where a corner is unlabelled. For an upright image whose cranial end
    is up this equals the canonical TL, TR, BL, BR input.

    Rules, for a vertebra with all four corners:

    * Endplates (which two opposite sides): unless ``spine.rotated``, the
      data's grouping (TL-TR and BL-BR) is kept: canonical TL/TR are
      "superior" in the image sense and the converter already checked the
      grouping. On a rotated image, image names carry no anatomy, so the
      endplates are the pair of opposite sides whose connecting axis
      (midpoint to midpoint) is closer in angle to the local spine axis.
    * Superior endplate: unless rotated, TL-TR, or BL-BR for every vertebra
      when ``spine.upside_down`` (levels say the cranial end is where the
      data's inferior endplates face); on a rotated image, the endplate whose
      midpoint projects further cranially on the local axis.
    * Spine-left corner of each endplate: the one further along
      ``left_of(c_v)``, with c_v the vertebra's own caudal axis (midpoint of
      its superior to midpoint of its inferior endplate), so that tilted
      vertebrae (S1 at 30-50 degrees) keep their names.

    A vertebra with missing corners keeps the data's grouping and superior
    label (TL/TR superior, swapped when upside down); its left/right are
    decided along the local spine axis.
    """
    c = np.asarray(corners, dtype=np.float64)
    out = np.full_like(c, np.nan)
    for i, q in enumerate(c):
        s_loc = spine.local_axes[i] if len(spine.local_axes) else spine.axis
        complete = _finite(q)
        sup, inf = _endplates(q, spine, s_loc, complete)
        cv = _unit(_mid(*inf) - _mid(*sup), fallback=s_loc) if complete else s_loc
        lv = left_of(cv)
        for k, plate in ((0, sup), (2, inf)):
            if _finite(plate):
                if plate[0] @ lv >= plate[1] @ lv:
                    out[i, k], out[i, k + 1] = plate[0], plate[1]
                else:
                    out[i, k], out[i, k + 1] = plate[1], plate[0]
            else:
                # one corner of this endplate is missing: keep what there is,
                # on the side it lies relative to the vertebra's centre
                for p in plate:
                    if _finite(p):
                        ctr = np.nanmean(q, axis=0)
                        j = k if (p - ctr) @ lv >= 0 else k + 1
                        out[i, j] = p
    return out
