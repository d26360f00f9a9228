"""Facing of a lateral view: which side of the spine is anterior.

"left" means anterior is spine-left (``vertkp.grading.left_of`` of the
caudal axis): image-left on an upright image, the BUU-LSPINE convention; on a
rotated image, the side that is on the left once the image is turned cranial
end up. "right" is the mirror image (``docs/clinical.md``, "Corners and
facing"). Corners are in the spine frame of ``vertkp.grading.orientation``,
px, x right and y down.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Optional

import numpy as np

from ..anatomy import FACINGS
from .order import SpineOrder
from .vertebrae import _finite, left_of

__all__ = ["FACING_SIGMA_DEG", "FACING_WINDOW", "FacingEstimate", "estimate_facing", "resolve_facing"]

# Spread assumed for the lordosis measured by ``estimate_facing`` around its
# sign, in degrees (annotation noise of the endplates plus the anatomical
# spread towards flat lumbar spines). The confidence is Phi(|angle| / sigma).
FACING_SIGMA_DEG = 10.0
# Only the caudal-most vertebrae vote: the lordosis lives in the lumbar spine
# (L1-S1, six bodies) at the bottom of a lumbar radiograph; the thoracic
# kyphosis above it curves the other way.
FACING_WINDOW = 6


@dataclass(frozen=True)
class FacingEstimate:
    """The facing used for one spine.

    Attributes:
        facing: "left" or "right".
        source: "given" (by the caller), "data" (the dataset's own field) or
            "auto" (estimated from the geometry).
        confidence: 1.0 when given or from the data; for "auto",
            Phi(|curvature_deg| / FACING_SIGMA_DEG), a heuristic probability in
            [0.5, 1] that the side is right (0.5: no information).
        curvature_deg: the signed lordosis estimate behind "auto" (positive:
            the spine curves with its convex side spine-left), None otherwise.
        votes: the individual estimates that were averaged, degrees.
    """

    facing: str
    source: str
    confidence: float
    curvature_deg: Optional[float] = None
    votes: dict = field(default_factory=dict)


def _endplate_tilt_deg(plate: np.ndarray, s: np.ndarray) -> Optional[float]:
    """Tilt of an endplate in the spine frame, degrees.

    With e = (spine-left corner - spine-right corner) and l = left_of(s):
    psi = atan2(e . s, e . l). Positive when the spine-left end is the more
    caudal one (the sacral plateau of a spine facing left: its anterior corner
    is lower).
    """
    if not _finite(plate):
        return None
    e = plate[0] - plate[1]
    if np.hypot(*e) < 1e-9:
        return None
    return math.degrees(math.atan2(float(e @ s), float(e @ left_of(s))))


def estimate_facing(oriented: np.ndarray, spine: SpineOrder) -> FacingEstimate:
    """Estimate the facing of a lateral lumbar spine from its lordosis.

    The lumbar spine is lordotic: its convex side is anterior. Over the
    ``FACING_WINDOW`` caudal-most vertebrae, two estimates of the signed
    lordosis, in degrees, positive when the convex side is spine-left, are
    averaged (each only when available):

    * "endplate_tilt_deg": psi(most caudal vertebra) - psi(most cranial
      vertebra), psi the tilt of the vertebra's superior endplate (its
      inferior one if the superior is missing) in the spine frame, see
      ``_endplate_tilt_deg``. Going caudally, the endplates of a lordotic
      spine turn so that their anterior end drops (sacral slope 30-50
      degrees against a near-level L1). Needs two vertebrae with an endplate.
    * "centre_curve_deg": the turning of the centre line. Centres are put in
      the spine frame (t along s, n along left_of(s)), a parabola
      n = a t^2 + b t + c is fitted, and the angle is
      atan(n'(t_first)) - atan(n'(t_last)). Needs four vertebrae: through
      three centres the parabola is exact and a high-grade slip (which moves
      the centres, not the endplate angles) can bend it the wrong way.

    facing = "left" when the mean is >= 0, else "right"; confidence =
    Phi(|mean| / FACING_SIGMA_DEG). A flat or kyphotic lumbar spine makes the
    estimate unreliable (confidence near 0.5) or wrong: pass the facing
    explicitly whenever the dataset states it.
    """
    o = np.asarray(oriented, dtype=np.float64)
    order = list(spine.order)[-FACING_WINDOW:]
    s = spine.axis
    votes = {}
    tilts = []
    for i in order:
        psi = _endplate_tilt_deg(o[i, :2], s)
        if psi is None:
            psi = _endplate_tilt_deg(o[i, 2:], s)
        if psi is not None:
            tilts.append(psi)
    if len(tilts) >= 2:
        d = tilts[-1] - tilts[0]
        votes["endplate_tilt_deg"] = (d + 180.0) % 360.0 - 180.0
    if len(order) >= 4:
        ctr = np.nanmean(o[order], axis=1)
        ok = np.all(np.isfinite(ctr), axis=1)
        ctr = ctr[ok]
        if len(ctr) >= 4:
            rel = ctr - ctr[0]
            t, nn = rel @ s, rel @ left_of(s)
            if len(np.unique(np.round(t, 6))) >= 3:
                (a, b, _), *_ = np.linalg.lstsq(np.stack([t * t, t, np.ones_like(t)], axis=1), nn, rcond=None)
                turn = math.atan(2 * a * t[0] + b) - math.atan(2 * a * t[-1] + b)
                votes["centre_curve_deg"] = math.degrees(turn)
    if not votes:
        return FacingEstimate("left", "auto", 0.5, None, votes)
    mean = float(np.mean(list(votes.values())))
    conf = 0.5 * (1.0 + math.erf(abs(mean) / FACING_SIGMA_DEG / math.sqrt(2.0)))
    return FacingEstimate("left" if mean >= 0 else "right", "auto", conf, mean, votes)


def resolve_facing(facing, oriented: np.ndarray, spine: SpineOrder,
                   data_facing: Optional[str] = None) -> FacingEstimate:
    """The facing to use: given, from the data, or estimated.

    Args:
        facing: "left" or "right" (``vertkp.anatomy.FACINGS``, used as
            given) or "auto"/None (the data's facing when it has one, else
            :func:`estimate_facing`).
        oriented, spine: as for :func:`estimate_facing`.
        data_facing: the dataset's own facing of the image, if any.

    Raises:
        ValueError: an unknown facing.
    """
    if facing in FACINGS:
        return FacingEstimate(facing, "given", 1.0)
    if facing not in (None, "auto"):
        raise ValueError(f"facing must be 'left', 'right' or 'auto', got {facing!r}")
    if data_facing in FACINGS:
        return FacingEstimate(data_facing, "data", 1.0)
    return estimate_facing(oriented, spine)
