"""The AP (frontal) scene of a synthetic spine: vertebral bodies T11..L5 with their
processes, pedicles and ribs, the sacrum, ilia and soft tissue, and planted lateral
displacements (``vertkp.grading.lateral_displacement_percent``, ``docs/clinical.md``).
"""
from __future__ import annotations

import numpy as np

from vertkp.grading import lateral_displacement_percent

from .geometry import Scene, Shape, body_outline, cranial, direction, ellipse, local, unit
from .patients import AP_LEVELS

__all__ = ["build_ap"]

# Transverse (AP view) body width relative to the lateral depth.
_AP_WIDTH_RATIO = {"T11": 1.08, "T12": 1.12, "L1": 1.18, "L2": 1.2, "L3": 1.24, "L4": 1.26, "L5": 1.3}


def build_ap(patient: dict, targets: dict, distort: np.ndarray, rng: np.random.Generator) -> Scene:
    """AP (frontal) scene, model frame, levels T11..L5 plus sacrum and ilia.

    Bodies are stacked upwards from L5 with a gentle scoliotic curve; each
    upper vertebra is moved along the lower one's superior endplate so that
    ``lateral_displacement_percent`` of the pair, measured after ``distort``, equals
    ``targets[upper]``.

    Returns:
        Scene with corners [7, 4, 2] in TL, TR, BL, BR order, mm.
    """
    bodies, discs = patient["bodies"], patient["discs"]
    n = len(AP_LEVELS)
    curve = patient["scoliosis_deg"] * np.sin(np.linspace(0.0, np.pi, 2 * n + 1))
    curve = np.diff(curve)  # per disc / body turn, degrees
    theta = rng.normal(0.0, 1.5)  # L5 inferior endplate
    chain = {}
    lower = None
    for i, level in enumerate(reversed(AP_LEVELS)):
        b = bodies[level]
        w = b["depth"] * _AP_WIDTH_RATIO[level] * rng.uniform(0.95, 1.05)
        h = b["height"] * rng.uniform(0.86, 0.95)
        if lower is None:
            mid_inf = np.zeros(2)
            t_inf = theta
        else:
            t_inf = theta + curve[2 * i - 1]
            gap = discs[level] * rng.uniform(0.65, 0.85)
            mid_inf = (lower[0] + lower[1]) / 2 + cranial(direction((theta + t_inf) / 2)) * gap
        t_sup = t_inf + curve[2 * i]
        e_inf, e_sup = direction(t_inf), direction(t_sup)
        bl, br = mid_inf - e_inf * w / 2, mid_inf + e_inf * w / 2
        mid_sup = mid_inf + cranial(direction((t_inf + t_sup) / 2)) * h
        tl, tr = mid_sup - e_sup * w * 0.97 / 2, mid_sup + e_sup * w * 0.97 / 2
        quad = np.stack([tl, tr, bl, br])
        if lower is not None and level in targets:
            p, a = distort @ lower[0], distort @ lower[1]
            now = lateral_displacement_percent(p, a, distort @ bl, distort @ br)
            quad = quad + np.linalg.solve(distort, (targets[level] - now) / 100.0 * (a - p))
        chain[level] = quad
        lower, theta = quad, t_sup
    corners = np.stack([chain[lv] for lv in AP_LEVELS])
    shapes = _ap_extras(corners, rng)
    for level, c in zip(AP_LEVELS, corners):
        shapes += _ap_vertebra(c, level, rng)
    return Scene("ap", AP_LEVELS, corners, shapes)


def _ap_vertebra(c: np.ndarray, level: str, rng: np.random.Generator) -> list:
    """Body, transverse processes, pedicle rings, spinous process (and rib) of one AP vertebra (mm)."""
    tl, tr, bl, br = c
    w = np.linalg.norm(tr - tl)
    h = np.linalg.norm((bl + br) / 2 - (tl + tr) / 2)
    ex = unit(tr - tl)
    ey = unit((bl + br) / 2 - (tl + tr) / 2)
    mid = (tl + tr) / 2
    ring = np.stack([tl, tr, br, bl])
    shapes = []
    reach = {"L1": 0.28, "L2": 0.36, "L3": 0.46, "L4": 0.38, "L5": 0.4}.get(level, 0.15)
    for side in (-1.0, 1.0):
        base = mid + side * ex * w * 0.42
        tp = local(base, side * ex * w, ey * h, [(0, 0.18), (reach, 0.22), (reach + 0.03, 0.36), (0, 0.5)])
        shapes.append(Shape(tp, 0.08, 0.05, 1.2, 0.3, diffuse=True))
        if level in ("T11", "T12"):  # short floating ribs, laterally and downwards
            length = rng.uniform(60.0, 110.0) * (1.3 if level == "T11" else 1.0)
            d = unit(side * ex + ey * np.tan(np.deg2rad(rng.uniform(20.0, 40.0))))
            normal = np.array([-d[1], d[0]])
            start = base + ey * 0.3 * h + side * ex * reach * 0.5 * w
            t = np.linspace(0.0, 1.0, 8)[:, None]
            spine_pts = start + d * length * t + normal * (side * 8.0 * t * (1 - t))
            width = 9.0 * (1.0 - 0.6 * t)
            rib = np.concatenate([spine_pts + normal * width / 2, (spine_pts - normal * width / 2)[::-1]])
            shapes.append(Shape(rib, 0.06, 0.06, 1.5, 0.2, diffuse=True))
    shapes.append(Shape(body_outline(ring, (0.015, 0.05, 0.015, 0.05)), 0.26, 0.12, 1.6, 1.0))
    for side in (-1.0, 1.0):
        centre = mid + side * ex * w * 0.31 + ey * h * 0.3
        shapes.append(Shape(ellipse(centre, 0.085 * w, 0.17 * h, rng.uniform(-8, 8), 24), 0.02, 0.1, 1.8))
    sp = mid + ey * h * 0.72 + ex * rng.normal(0.0, 0.02) * w
    shapes.append(Shape(ellipse(sp, 0.06 * w, 0.3 * h, 0.0, 24), 0.04, 0.06, 1.5))
    return shapes


def _ap_extras(corners: np.ndarray, rng: np.random.Generator) -> list:
    """Soft tissue, sacrum, ilia and psoas margins of an AP view (mm)."""
    shapes = []
    l5 = corners[-1]
    w = np.linalg.norm(l5[1] - l5[0])
    bl, br = l5[2], l5[3]
    ex = unit(br - bl)
    ey = np.array([-ex[1], ex[0]])  # caudal
    mid = (bl + br) / 2
    for side in (-1.0, 1.0):  # flanks: air beyond the body outline
        edge = mid + side * ex * rng.uniform(140.0, 180.0)
        air = np.stack([edge + [0, -600], edge + [side * 500, -600], edge + [side * 500, 600], edge + [0, 600]])
        shapes.append(Shape(air, -0.2, soft=True))
    column = np.concatenate([corners[:, 0] - ex * 25.0, corners[::-1, 1] + ex * 25.0])
    shapes.append(Shape(column, rng.uniform(0.03, 0.07), soft=True))
    for _ in range(int(rng.integers(3, 8))):
        c = mid + ex * rng.uniform(-120, 120) + ey * rng.uniform(-200, 60)
        shapes.append(Shape(ellipse(c, rng.uniform(10, 35), rng.uniform(8, 20), rng.uniform(0, 180), 24),
                            -rng.uniform(0.04, 0.1), soft=True))
    for side in (-1.0, 1.0):  # psoas margins
        top = corners[2].mean(axis=0) + side * ex * 0.5 * w
        bot = mid + side * ex * 1.6 * w + ey * 40.0
        band = np.stack([top, bot, bot + side * ex * 4.0, top + side * ex * 4.0])
        shapes.append(Shape(band, 0.04, soft=True))
    # sacrum: a broad inverted triangle with its alae, S1 body and foramina
    top = mid + ey * rng.uniform(6.0, 10.0)
    sacrum = np.stack([top - ex * 1.05 * w - ey * 0.1 * w, top + ex * 1.05 * w - ey * 0.1 * w,
                       top + ex * 0.75 * w + ey * 0.8 * w, top + ex * 0.12 * w + ey * 2.3 * w,
                       top - ex * 0.12 * w + ey * 2.3 * w, top - ex * 0.75 * w + ey * 0.8 * w])
    shapes.append(Shape(sacrum, 0.12, 0.06, 2.5, 0.4, diffuse=True))
    s1 = np.stack([top - ex * 0.5 * w, top + ex * 0.5 * w, top + ex * 0.45 * w + ey * 0.55 * w,
                   top - ex * 0.45 * w + ey * 0.55 * w])
    shapes.append(Shape(body_outline(s1, (0.02, 0.02, 0.02, 0.02)), 0.1, 0.06, 1.5, 0.6, diffuse=True))
    for k in range(4):
        for side in (-1.0, 1.0):
            c = top + ey * (0.45 + 0.38 * k) * w + side * ex * (0.33 - 0.05 * k) * w
            shapes.append(Shape(ellipse(c, 0.08 * w, 0.06 * w, 0.0, 16), -0.06, diffuse=True))
    for side in (-1.0, 1.0):  # iliac wing: crest at about L4/L5, flaring out from the sacro-iliac joint
        uv = np.array([(0.85, 0.5), (0.9, -0.3), (1.3, -0.9), (1.8, -1.15), (2.3, -1.0), (2.7, -0.6),
                       (2.85, -0.1), (2.75, 0.3), (2.4, 0.55), (2.0, 0.9), (1.5, 1.3), (1.05, 1.5), (0.85, 1.2)])
        uv = uv * [rng.uniform(0.95, 1.05), rng.uniform(0.95, 1.1)]
        wing = local(top, side * ex * w, ey * w, uv)
        shapes.append(Shape(wing, 0.07, 0.07, 3.5, 0.3, diffuse=True))
    return shapes
