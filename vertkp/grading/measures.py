"""Per-pair and per-spine measures from oriented corners (``docs/clinical.md``).

Every function takes corners in the spine frame of
``vertkp.grading.orient_vertebrae``: [4, 2] arrays (superior &
spine-left, superior & spine-right, inferior & spine-left, inferior &
spine-right), pixels, x right and y down, NaN for an unlabelled corner. Upper
vertebra U is the cranial one of a pair, L the caudal one.
"""
from __future__ import annotations

import math
from typing import Optional

import numpy as np

from ..keypoints import anatomical_corners
from .slip import DEFAULT_NO_SLIP_PCT, RETROLISTHESIS, lateral_displacement_percent, meyerding_grade, slip_percent
from .vertebrae import _finite, left_of

__all__ = [
    "wedge_angle_deg",
    "lateral_pair_measures",
    "ap_pair_measures",
    "lumbar_lordosis_deg",
]


def wedge_angle_deg(cranial_edge, caudal_edge, facing: str) -> float:
    """Signed angle between two endplates, degrees; positive when they open anteriorly.

    ``docs/clinical.md``, "Other measures". Both edges run posterior -> anterior: ``cranial_edge`` = (A_c - P_c) of the
    more cranial endplate, ``caudal_edge`` = (A_k - P_k) of the more caudal
    one. In the caudal endplate's own frame, a = unit(caudal_edge) (anterior)
    and c = its normal towards the cranial side, the result is
    atan2(cranial_edge . c, cranial_edge . a): the angle the cranial endplate
    makes with the caudal one, positive (lordotic) when its anterior end is
    further from the caudal endplate than its posterior end.

    The cranial normal follows from the facing (anterior is spine-left for
    "left"): c = left_of(a) = (-a_y, a_x) for "left" and (a_y, -a_x) for
    "right" (image coordinates, y down). Only the facing is needed, so the
    angle is right on tilted and rotated images alike.
    """
    k = np.asarray(caudal_edge, dtype=np.float64)
    e = np.asarray(cranial_edge, dtype=np.float64)
    n = float(np.hypot(*k))
    if n < 1e-12 or float(np.hypot(*e)) < 1e-12:
        raise ValueError("an endplate has zero length")
    a = k / n
    c = left_of(a) if facing == "left" else -left_of(a)
    return math.degrees(math.atan2(float(e @ c), float(e @ a)))


def lateral_pair_measures(upper: np.ndarray, lower: np.ndarray, facing: str,
                          pixel_spacing: Optional[float] = None,
                          no_slip_pct: float = DEFAULT_NO_SLIP_PCT) -> dict:
    """Measures of one adjacent pair on a lateral view.

    With U's anatomical corners and L's (``anatomical_corners(.., facing)``):

    * slip_pct (Taillard, ``docs/clinical.md``, "Slip percentage"): P = L posterior-superior,
      A = L anterior-superior, Q = U posterior-inferior;
      100 (Q - P) . (A - P) / |A - P|^2. Positive forward (anterolisthesis).
      Scale free.
    * grade: ``meyerding_grade(slip_pct, no_slip_pct)``: -1 retrolisthesis,
      0 no slip (|slip| <= no_slip_pct), 1..5 Meyerding I..V.
    * retrolisthesis_pct: -slip_pct when grade is -1, else None.
    * intervertebral_angle_deg: ``wedge_angle_deg`` of U's inferior endplate
      over L's superior endplate; positive when the disc opens anteriorly
      (lordotic), negative when it opens posteriorly.
    * disc_height_anterior_px = |U anterior-inferior - L anterior-superior|,
      disc_height_posterior_px = |U posterior-inferior - L posterior-superior|
      (corner-to-corner distances), and the same times ``pixel_spacing``
      (mm/px) as *_mm when a spacing is given.

    A measure whose corners are missing is None. Raises nothing for missing
    corners; raises ValueError for an unknown facing or a zero-length endplate.
    """
    u = anatomical_corners(upper, facing)
    lo = anatomical_corners(lower, facing)
    out = {
        "slip_pct": None, "grade": None, "retrolisthesis_pct": None,
        "intervertebral_angle_deg": None,
        "disc_height_anterior_px": None, "disc_height_posterior_px": None,
        "disc_height_anterior_mm": None, "disc_height_posterior_mm": None,
    }
    P, A = lo["posterior_superior"], lo["anterior_superior"]
    Q, Ai = u["posterior_inferior"], u["anterior_inferior"]
    if _finite(P, A, Q):
        slip = slip_percent(P, A, Q)
        grade = meyerding_grade(slip, no_slip_pct)
        out.update(slip_pct=slip, grade=grade, retrolisthesis_pct=(-slip if grade == RETROLISTHESIS else None))
    if _finite(P, A, Q, Ai):
        out["intervertebral_angle_deg"] = wedge_angle_deg(Ai - Q, A - P, facing)
    if _finite(Ai, A):
        out["disc_height_anterior_px"] = float(np.linalg.norm(Ai - A))
    if _finite(Q, P):
        out["disc_height_posterior_px"] = float(np.linalg.norm(Q - P))
    if pixel_spacing is not None:
        for side in ("anterior", "posterior"):
            px = out[f"disc_height_{side}_px"]
            out[f"disc_height_{side}_mm"] = None if px is None else px * float(pixel_spacing)
    return out


def ap_pair_measures(upper: np.ndarray, lower: np.ndarray, no_slip_pct: float = DEFAULT_NO_SLIP_PCT) -> dict:
    """Lateral displacement (laterolisthesis) of one adjacent pair on an AP view.

    * lateral_displacement_pct: :func:`~vertkp.grading.slip.lateral_displacement_percent`
      of L's superior and U's inferior corners (``docs/clinical.md``, "AP
      views"), positive when U is displaced to the spine-right (image-right
      on an upright image).
    * lateral_side: "right" / "left" (image sides, spine frame), "none" when
      |pct| <= no_slip_pct.
    * patient_side: the patient's side under the radiographic display
      convention of AP views (the patient's right on the image-left), so
      image-right is the patient's left. Nothing in the files confirms the
      convention for a given image.

    Returns None values when corners are missing; raises ValueError for a
    zero-length endplate.
    """
    out = {"lateral_displacement_pct": None, "lateral_side": None, "patient_side": None}
    if not _finite(lower[:2], upper[2:]):
        return out
    pct = lateral_displacement_percent(lower[0], lower[1], upper[2], upper[3])
    if abs(pct) <= no_slip_pct:
        side, patient = "none", "none"
    elif pct > 0:
        side, patient = "right", "left"
    else:
        side, patient = "left", "right"
    out.update(lateral_displacement_pct=pct, lateral_side=side, patient_side=patient)
    return out


def lumbar_lordosis_deg(l1: np.ndarray, s1: np.ndarray, facing: str) -> Optional[float]:
    """Lumbar lordosis L1-S1 (Cobb style), degrees; positive = lordotic.

    ``docs/clinical.md``, "Other measures". The angle between the superior endplate of L1 and that of S1:
    ``wedge_angle_deg(L1 edge, S1 edge, facing)`` with edges posterior ->
    anterior, i.e. positive when the two endplates open anteriorly. None when
    either endplate is missing.
    """
    a1, a2 = anatomical_corners(l1, facing), anatomical_corners(s1, facing)
    e1 = a1["anterior_superior"] - a1["posterior_superior"]
    e2 = a2["anterior_superior"] - a2["posterior_superior"]
    if not _finite(e1, e2):
        return None
    return wedge_angle_deg(e1, e2, facing)
