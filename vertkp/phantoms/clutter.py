"""What makes a lateral radiograph hard to read, as scene shapes: overlapping anatomy and
degenerated discs (``--difficulty realistic`` and ``hard``).

Model frame, mm, y caudal, facing left (``vertkp.phantoms.geometry``). Lateral
corners are in anatomical order AS, PS, AI, PI. Every shape is additive
(``render``), so drawing order does not matter.

* overlapping anatomy (:func:`lateral_clutter`): the two iliac wings with their
  crests over L4-S1, ribs crossing the thoracic and upper lumbar bodies, bowel gas
  over the bodies, both femoral heads below the sacrum;
* degeneration (:func:`degeneration_shapes`): the vacuum cleft of a degenerated
  disc, and osteophyte beaks at the anterior corners facing it, whose tips an
  annotator may label instead of the body corner.
"""
from __future__ import annotations

import numpy as np

from .geometry import Shape, ellipse, unit

__all__ = ["lateral_clutter", "degeneration_shapes", "endplate_offsets"]


def _wing(centre: np.ndarray, rx: float, ry: float, angle: float, rng: np.random.Generator) -> np.ndarray:
    """An iliac wing: an ellipse flattened at its lower side, mm."""
    pts = ellipse(centre, rx, ry, angle, 48)
    low = centre[1] + 0.35 * ry
    pts[:, 1] = np.minimum(pts[:, 1], low + 0.15 * (pts[:, 1] - low))
    return pts + rng.normal(0.0, 0.01 * rx, pts.shape)


def lateral_clutter(chain: dict, amount: float, rng: np.random.Generator) -> list:
    """Overlapping anatomy of a lateral view (mm), ``amount`` 1 for the archive's, more for harder.

    Args:
        chain: corners [4, 2] (AS, PS, AI, PI) by level name, T8..S1.
    """
    shapes = []
    s1, l5, l4 = chain["S1"], chain["L5"], chain["L4"]
    post = unit(s1[1] - s1[0])
    depth = float(np.linalg.norm(s1[1] - s1[0]))
    # iliac wings: their crests run across L4-L5 (the intercrestal line), the wings cover L5-S1
    crest_y = (l4[0, 1] + l4[2, 1]) / 2 + rng.uniform(-0.6, 0.9) * np.linalg.norm(l4[2] - l4[0])
    for k in range(2):
        rx, ry = depth * rng.uniform(1.3, 1.8), depth * rng.uniform(1.1, 1.5)
        cx = (l5[1, 0] + s1[1, 0]) / 2 + post[0] * depth * rng.uniform(-0.2, 0.5) + k * rng.uniform(4.0, 14.0)
        centre = np.array([cx, crest_y + ry + k * rng.uniform(2.0, 9.0)])
        shapes.append(Shape(_wing(centre, rx, ry, rng.uniform(-25.0, 10.0), rng), fill=0.03 * amount,
                            rim=rng.uniform(0.03, 0.06) * amount, rim_mm=rng.uniform(2.0, 3.5), texture=0.4,
                            diffuse=True))
    # ribs: bands from behind the spine sweeping forwards and down across the bodies
    levels = [lv for lv in ("T8", "T9", "T10", "T11", "T12", "L1") if lv in chain]
    for level in levels:
        if level == "L1" and rng.random() > 0.4 * amount:
            continue
        c = chain[level]
        for side in range(2 if rng.random() < 0.6 * amount else 1):
            start = c[1] + post * rng.uniform(10.0, 30.0) + np.array([0.0, rng.uniform(-8.0, 8.0) + 6.0 * side])
            slope = np.deg2rad(rng.uniform(20.0, 45.0))
            along = np.array([-np.cos(slope), np.sin(slope)])  # anterior and caudal
            length = rng.uniform(60.0, 110.0)
            t = np.linspace(0.0, 1.0, 10)[:, None]
            mid = start + t * length * along + (t * t) * np.array([0.0, rng.uniform(0.0, 15.0)])
            width = rng.uniform(7.0, 11.0)
            band = np.concatenate([mid, mid[::-1] + [0.0, width]])
            shapes.append(Shape(band, fill=rng.uniform(0.03, 0.05) * amount, rim=rng.uniform(0.03, 0.06) * amount,
                                rim_mm=1.5, texture=0.3, diffuse=True))
    # bowel gas over the lumbar bodies and in front of them
    lumbar = [chain[lv] for lv in ("L1", "L2", "L3", "L4", "L5", "S1") if lv in chain]
    for _ in range(int(rng.poisson(4.0 * amount))):
        c = lumbar[int(rng.integers(0, len(lumbar)))]
        centre = c.mean(axis=0) + np.array([rng.uniform(-0.9, 0.6) * depth, rng.uniform(-15.0, 15.0)])
        for _ in range(int(rng.integers(1, 4))):
            p = centre + rng.normal(0.0, 6.0, 2)
            shapes.append(Shape(ellipse(p, rng.uniform(4.0, 14.0), rng.uniform(3.0, 9.0), rng.uniform(0, 180), 20),
                                fill=-rng.uniform(0.03, 0.09) * amount, diffuse=True))
    # both femoral heads, below and in front of the sacrum
    head = s1[0] + post * rng.uniform(-0.4, 0.3) * depth + np.array([0.0, rng.uniform(2.2, 2.8) * depth])
    for k in range(2):
        r = rng.uniform(21.0, 26.0)
        centre = head + k * rng.uniform(3.0, 12.0, 2)
        shapes.append(Shape(ellipse(centre, r, r), fill=0.05 * amount, rim=0.06 * amount, rim_mm=3.0, texture=0.4,
                            diffuse=True))
    return shapes


def endplate_offsets(roughness: float, n: int, rng: np.random.Generator) -> np.ndarray:
    """``body_outline`` offsets [4, n] roughening the two endplates (sides 0 and 2) of a body ring
    AS -> PS -> PI -> AI: a smooth random profile of amplitude ``roughness`` (fraction of the
    endplate length), and now and then a Schmorl's node (a local dent)."""
    out = np.zeros((4, n))
    if roughness <= 0.0:
        return out
    s = np.arange(n) / n
    for side in (0, 2):
        prof = np.interp(s, np.linspace(0.0, 1.0, 4), rng.normal(0.0, 1.0, 4)) * roughness
        if rng.random() < 0.15:
            prof += 3.0 * roughness * np.exp(-0.5 * ((s - rng.uniform(0.3, 0.7)) / 0.08) ** 2)
        out[side] = prof * np.sin(np.pi * s)  # zero at the corners
    return out


def _beak(corner: np.ndarray, wall: np.ndarray, plate: np.ndarray, length: float,
          rng: np.random.Generator) -> tuple:
    """An osteophyte beak at a body corner: (polygon, tip), mm.

    Args:
        corner: the body corner.
        wall: unit vector along the anterior wall, away from the corner.
        plate: unit vector along the endplate, away from the corner (posterior).
        length: beak length, mm.

    The beak grows forwards and towards the disc; the polygon is the triangle
    (a wall point, tip, an endplate point) less the body's own corner.
    """
    tip = corner - plate * length * rng.uniform(0.55, 0.9) - wall * length * rng.uniform(0.35, 0.8)
    poly = np.stack([corner + wall * length * rng.uniform(1.1, 1.6), tip,
                     corner + plate * length * rng.uniform(0.3, 0.6), corner])
    return poly, tip


def degeneration_shapes(chain: dict, levels, degeneration: dict, rng: np.random.Generator) -> tuple:
    """Vacuum clefts and osteophyte beaks of the degenerated discs (``patients.sample_degeneration``).

    Returns:
        (shapes, tips): tips is float [len(levels), 4, 2] in the corners' anatomical
        order, NaN where no beak grows.
    """
    shapes = []
    tips = np.full((len(levels), 4, 2), np.nan)
    for upper, disc in degeneration["discs"].items():
        u = chain[upper]
        lower = levels[list(levels).index(upper) + 1]
        low = chain[lower]
        if disc["vacuum"]:
            front = (u[2] + low[0]) / 2
            back = (u[3] + low[1]) / 2
            gap = float(np.linalg.norm((u[2] + u[3]) / 2 - (low[0] + low[1]) / 2))
            a, b = front + rng.uniform(0.1, 0.25) * (back - front), front + rng.uniform(0.55, 0.8) * (back - front)
            normal = unit(np.array([-(b - a)[1], (b - a)[0]]))
            t = np.linspace(0.0, np.pi, 9)
            top = a + np.outer((1 - np.cos(t)) / 2, b - a) + np.outer(np.sin(t), normal) * 0.2 * gap
            bottom = a + np.outer((1 - np.cos(t)) / 2, b - a) - np.outer(np.sin(t), normal) * 0.2 * gap
            shapes.append(Shape(np.concatenate([top, bottom[::-1]]), fill=-rng.uniform(0.08, 0.15), diffuse=True))
        for (level, k), length in disc["beaks"].items():
            c = chain[level]
            if k == 2:  # AI of the upper vertebra: wall goes up to AS, endplate to PI
                wall, plate = unit(c[0] - c[2]), unit(c[3] - c[2])
            else:  # AS of the lower vertebra: wall goes down to AI, endplate to PS
                wall, plate = unit(c[2] - c[0]), unit(c[1] - c[0])
            poly, tip = _beak(c[k], wall, plate, length, rng)
            shapes.append(Shape(poly, fill=0.26, rim=0.1, rim_mm=1.0, texture=0.6))
            tips[list(levels).index(level), k] = tip
    return shapes, tips
