"""Random patients: who they are, the shape of their spine and the slips planted in it.

Cranial to caudal, the modelled chain always runs T8..S1 (``LATERAL_LEVELS``)
on lateral views and T11..L5 on AP views; a layout labels a window of it.
Sizes are millimetres, angles degrees. Planted slips (``sample_slip_targets``)
and lateral displacements (``sample_lateral_displacements``) are percentages as
``vertkp.grading`` measures them (``docs/clinical.md``).
"""
from __future__ import annotations

import numpy as np

from vertkp.anatomy import LEVELS

from .difficulty import SLIP_CASES, Difficulty

__all__ = [
    "LATERAL_LEVELS",
    "AP_LEVELS",
    "stream",
    "sample_people",
    "sample_patient",
    "NORMAL_SLIP_RANGE",
    "sample_slip_targets",
    "sample_lateral_displacements",
    "sample_degeneration",
    "degenerated",
]

LATERAL_LEVELS = LEVELS[LEVELS.index("T8"):]  # T8 .. S1
AP_LEVELS = LEVELS[LEVELS.index("T11"):LEVELS.index("L5") + 1]  # T11 .. L5

# Typical adult body height (lateral view), mm. The endplate depth is the
# height times 1.3-1.6 (lumbar) or 1.22-1.45 (thoracic); S1's is _S1_DEPTH_MM.
_BODY_HEIGHT_MM = {
    "T8": 20.0, "T9": 21.0, "T10": 22.0, "T11": 23.0, "T12": 24.5, "L1": 26.0,
    "L2": 27.0, "L3": 28.0, "L4": 28.0, "L5": 27.0, "S1": 26.0,
}
_S1_DEPTH_MM = 41.0
# Disc height below each level (mean of anterior and posterior), mm.
_DISC_MM = {
    "T8": 5.0, "T9": 5.0, "T10": 5.5, "T11": 6.0, "T12": 7.0, "L1": 8.0,
    "L2": 9.0, "L3": 10.0, "L4": 11.0, "L5": 10.5,
}
# Share of the lumbar lordosis taken by each disc (upper level) and each body.
_LORDOSIS_DISC = {"L1": 0.07, "L2": 0.11, "L3": 0.17, "L4": 0.27, "L5": 0.38}
_LORDOSIS_BODY = {"L1": -0.03, "L2": 0.03, "L3": 0.15, "L4": 0.3, "L5": 0.55}


def stream(seed: int, *keys: int) -> np.random.Generator:
    """The random generator of one stream of a phantom set: the seed and the stream's keys
    (layout, purpose, image), so that each image's draws do not depend on the others'."""
    return np.random.default_rng([int(seed), *keys])


def sample_people(rng: np.random.Generator, n: int) -> list:
    """n distinct (patient id 1..3600, sex "F"/"M", age in years), sorted by id."""
    ids = np.sort(rng.choice(np.arange(1, 3601), size=n, replace=False))
    return [(int(i), "F" if rng.random() < 0.55 else "M", int(rng.integers(18, 90))) for i in ids]


def sample_patient(rng: np.random.Generator) -> dict:
    """Random shape parameters of one spine (mm and degrees)."""
    scale = rng.uniform(0.86, 1.14)
    bodies = {}
    for level, h in _BODY_HEIGHT_MM.items():
        lumbar = level[0] != "T"
        ratio = rng.uniform(1.3, 1.6) if lumbar else rng.uniform(1.22, 1.45)
        h = h * scale * rng.uniform(0.94, 1.06)
        bodies[level] = {
            "height": h,
            "depth": h * ratio if level != "S1" else _S1_DEPTH_MM * scale * rng.uniform(0.92, 1.08),
            "inferior_ratio": rng.uniform(0.98, 1.05),
            "bulges": (rng.uniform(0.0, 0.025), rng.uniform(0.015, 0.04),
                       rng.uniform(0.0, 0.025), rng.uniform(0.025, 0.06)),
        }
    discs = {}
    for level, h in _DISC_MM.items():
        h = h * scale * rng.uniform(0.85, 1.15)
        if level[0] == "L" and rng.random() < 0.2:  # degenerated, narrowed disc
            h *= rng.uniform(0.35, 0.7)
        discs[level] = h
    sacral_slope = rng.uniform(30.0, 50.0)
    lordosis = rng.uniform(max(25.0, sacral_slope - 5.0), sacral_slope + 22.0)
    disc_angle, body_angle = {}, {}
    for level in LATERAL_LEVELS[:-1]:
        if level[0] == "T":
            disc_angle[level] = rng.uniform(-2.5, -0.5) if level != "T12" else rng.uniform(-1.5, 1.5)
            body_angle[level] = rng.uniform(-4.0, -1.0)
        else:
            disc_angle[level] = 0.75 * lordosis * _LORDOSIS_DISC[level]
            body_angle[level] = 0.25 * lordosis * _LORDOSIS_BODY[level]
    return {
        "bodies": bodies,
        "discs": discs,
        "sacral_slope": sacral_slope,
        "lordosis": lordosis,
        "disc_angle": disc_angle,
        "body_angle": body_angle,
        "scoliosis_deg": rng.normal(0.0, 2.5),
        "posterior_scale": rng.uniform(0.9, 1.1),
    }


# Where each kind of slip is planted: pair named by its upper level.
_ANTERO_LEVELS = {"L5": 0.55, "L4": 0.33, "L3": 0.08, "L2": 0.04}
_RETRO_LEVELS = {"L5": 0.2, "L4": 0.2, "L3": 0.28, "L2": 0.22, "L1": 0.1}
NORMAL_SLIP_RANGE = (-2.5, 2.5)


def _pick(rng: np.random.Generator, weights: dict, allowed) -> str | None:
    keys = [k for k in weights if k in allowed]
    if not keys:
        return None
    p = np.array([weights[k] for k in keys])
    return keys[int(rng.choice(len(keys), p=p / p.sum()))]


def sample_slip_targets(rng: np.random.Generator, uppers, cases=SLIP_CASES) -> dict:
    """Planted sagittal slips, percent, keyed by the upper level of each pair.

    Args:
        uppers: the upper levels of the pairs that the image will label.
        cases: (name, probability, slip % range) of the planted case
            (``vertkp.phantoms.difficulty``).

    Every pair gets a target: a small normal value inside the no-slip band,
    except the planted one(s): one case drawn from ``cases`` (mostly at
    L5/S1 and L4/L5) and, in 10% of spines, an extra retrolisthesis higher up.
    """
    uppers = list(uppers)
    targets = {u: float(rng.uniform(*NORMAL_SLIP_RANGE)) for u in LATERAL_LEVELS[:-1]}
    p = np.array([c[1] for c in cases])
    name, _, span = cases[int(rng.choice(len(cases), p=p / p.sum()))]
    if span is not None:
        level = _pick(rng, _RETRO_LEVELS if span[0] < 0 else _ANTERO_LEVELS, uppers)
        if level is not None:
            targets[level] = float(rng.uniform(*span))
    if rng.random() < 0.1:
        level = _pick(rng, {"L1": 1.0, "L2": 1.0, "L3": 1.0}, uppers)
        if level is not None and abs(targets[level]) < 5.0:
            targets[level] = float(rng.uniform(-16.0, -8.0))
    return targets


def sample_lateral_displacements(rng: np.random.Generator) -> dict:
    """Planted AP lateral displacements, percent (``vertkp.grading.lateral_displacement_percent``),
    keyed by the upper level of each pair."""
    targets = {u: float(rng.uniform(-2.0, 2.0)) for u in AP_LEVELS[:-1]}
    if rng.random() < 0.18:
        level = _pick(rng, {"L2": 0.25, "L3": 0.45, "L4": 0.3}, AP_LEVELS)
        targets[level] = float(rng.choice([-1.0, 1.0]) * rng.uniform(7.0, 20.0))
    return targets


# Where degeneration strikes, by the upper level of the disc (relative odds).
_DEGENERATION_ODDS = {"L1": 0.3, "L2": 0.45, "L3": 0.7, "L4": 1.0, "L5": 1.0}


def sample_degeneration(rng: np.random.Generator, difficulty: Difficulty) -> dict:
    """Degenerated lumbar discs of one spine, keyed by the disc's upper level.

    Each value: {"narrowing": disc height factor (0.3-0.75), "vacuum": a gas cleft
    in the disc, "beaks": {(level, corner): length mm} osteophytes at the anterior
    corners facing the disc (corner 2 = AI of the upper vertebra, 0 = AS of the
    lower)}. Also, under "rough", {level: endplate irregularity} for every level
    (fraction of the endplate length). Empty at ``clean``.
    """
    out = {"discs": {}, "rough": {}}
    if difficulty.degeneration <= 0.0:
        return out
    for upper, odds in _DEGENERATION_ODDS.items():
        if rng.random() >= min(1.0, difficulty.degeneration * odds):
            continue
        lower = LATERAL_LEVELS[LATERAL_LEVELS.index(upper) + 1]
        beaks = {}
        for key in ((upper, 2), (lower, 0)):
            if rng.random() < 0.7:
                beaks[key] = float(rng.uniform(*difficulty.osteophyte_mm))
        out["discs"][upper] = {"narrowing": float(rng.uniform(0.3, 0.75)), "vacuum": bool(rng.random() < 0.35),
                               "beaks": beaks}
    for level in LATERAL_LEVELS:
        out["rough"][level] = float(difficulty.endplate_roughness * rng.uniform(0.3, 1.0))
    return out


def degenerated(patient: dict, degeneration: dict) -> dict:
    """A copy of ``patient`` with the degenerated discs narrowed."""
    discs = dict(patient["discs"])
    for upper, d in degeneration["discs"].items():
        discs[upper] = discs[upper] * d["narrowing"]
    return dict(patient, discs=discs)
