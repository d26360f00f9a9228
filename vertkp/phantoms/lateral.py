"""The lateral (sagittal) scene of a synthetic spine: vertebral bodies T8..S1 with
their posterior elements, the sacrum, pelvis and soft tissue, and planted slips.

Slips follow ``docs/clinical.md`` and are planted with ``vertkp.grading.slip_percent``:
the upper vertebra U (with everything above it) is moved along the lower
vertebra L's superior endplate until the slip of the pair equals the planted value.
"""
from __future__ import annotations

import numpy as np

from vertkp.grading import slip_percent

from .clutter import degeneration_shapes, endplate_offsets, lateral_clutter
from .geometry import Scene, Shape, body_outline, cranial, direction, ellipse, local, unit
from .patients import LATERAL_LEVELS

__all__ = ["build_lateral"]


def _slip_shift(lower: np.ndarray, upper_q: np.ndarray, target: float, distort: np.ndarray) -> np.ndarray:
    """Model-frame shift that brings the slip of a pair to ``target`` percent.

    The slip is measured after the linear map ``distort`` (image-frame shape:
    mirror, tilt, anisotropic stretch), so it is exact in the image.
    """
    p, a = distort @ lower[1], distort @ lower[0]
    now = slip_percent(p, a, distort @ upper_q)
    delta = (target - now) / 100.0 * (a - p)
    return np.linalg.solve(distort, delta)


def _posterior_shapes(c: np.ndarray, level: str, pscale: float) -> list:
    """Pedicle, articular pillar and spinous process of one vertebra (lateral, mm)."""
    as_, ps, ai, pi = c
    e = unit(ps - as_)  # towards posterior
    down = unit(pi - ps)
    w = np.linalg.norm(ps - as_)
    h = np.linalg.norm(pi - ps)
    ex, ey = e * w * pscale, down * h

    def at(uv):
        return local(ps, ex, ey, uv)

    thoracic = level[0] == "T"
    pedicle = at([(0.0, 0.16), (0.36, 0.1), (0.4, 0.52), (0.0, 0.6)])
    pillar = at([(0.3, -0.12), (0.5, -0.22), (0.62, 0.3), (0.56, 0.95), (0.42, 1.08), (0.33, 0.62)])
    if thoracic:
        spinous = at([(0.5, 0.12), (0.95, 0.45), (1.3, 1.25), (1.18, 1.38), (0.52, 0.72)])
    else:
        spinous = at([(0.5, 0.1), (1.05, 0.12), (1.22, 0.38), (1.12, 0.76), (0.55, 0.72)])
    return [
        Shape(pedicle, fill=0.1, rim=0.09, rim_mm=1.8, texture=0.3, diffuse=True),
        Shape(pillar, fill=0.08, rim=0.05, rim_mm=1.5, texture=0.3, diffuse=True),
        Shape(spinous, fill=0.06, rim=0.05, rim_mm=1.5, texture=0.3, diffuse=True),
    ]


def _sacrum_shapes(s1: np.ndarray, rng: np.random.Generator) -> list:
    """S2..S5 and coccyx, the dorsal sacral mass, iliac wing and femoral head (lateral, mm)."""
    as_, ps, ai, pi = s1
    shapes = []
    w = np.linalg.norm(ps - as_)
    post = unit(ps - as_)
    down = np.array([0.0, 1.0])  # model frame: y is caudal
    lower = np.stack([ai, pi])
    theta = np.degrees(np.arctan2(*(pi - ai)[::-1]))
    fronts, backs = [ai], [pi]
    for k, (hk, wk) in enumerate([(0.6, 0.85), (0.5, 0.72), (0.42, 0.58), (0.35, 0.45), (0.3, 0.32)]):
        theta += rng.uniform(5.0, 11.0)  # sacral kyphosis: the sacrum curls forwards caudally
        e = direction(theta)
        top_mid = lower.mean(axis=0) - cranial(e) * 0.04 * w
        bot_mid = top_mid - cranial(e) * hk * w
        top = np.stack([top_mid - e * wk * w / 2, top_mid + e * wk * w / 2])
        bot = np.stack([bot_mid - e * wk * 0.85 * w / 2, bot_mid + e * wk * 0.85 * w / 2])
        quad = np.stack([top[0], top[1], bot[1], bot[0]])
        shapes.append(Shape(body_outline(quad, (0.01, 0.02, 0.01, 0.03)), 0.16 - 0.02 * k, 0.06, 1.5, 0.5,
                            diffuse=k > 0))
        fronts.append(bot[0])
        backs.append(bot[1] + e * (0.3 - 0.05 * k) * w)
        lower = bot
    # dorsal sacral mass (canal, laminae, crests) behind the segments
    dorsal = np.concatenate([[ps, ps + post * 0.4 * w], backs[1:], fronts[::-1][:1]])
    shapes.insert(0, Shape(dorsal, 0.07, 0.04, 1.5, 0.3, diffuse=True))
    centre = ps + post * rng.uniform(0.1, 0.6) * w + down * rng.uniform(0.0, 0.6) * w
    shapes.insert(0, Shape(ellipse(centre, 1.9 * w, 1.45 * w, rng.uniform(-25, 25)), 0.05, 0.04, 3.0, 0.2,
                           diffuse=True))
    head = as_ + post * rng.uniform(-0.4, 0.3) * w + down * rng.uniform(2.4, 3.0) * w
    shapes.insert(0, Shape(ellipse(head, 0.62 * w, 0.62 * w), 0.1, 0.08, 2.5, 0.3, diffuse=True))
    return shapes


def build_lateral(patient: dict, targets: dict, distort: np.ndarray, rng: np.random.Generator,
                  clutter: float = 0.0, degeneration: dict | None = None,
                  xrng: np.random.Generator | None = None) -> Scene:
    """Lateral scene (model frame, facing left) of the whole chain T8..S1.

    Built from S1 upwards: S1's superior endplate slopes down towards anterior
    by the sacral slope; each disc and body turns the next endplate by its
    lordotic (positive: anterior side taller) or kyphotic angle. After placing
    each vertebra, it and everything above is moved along the lower vertebra's
    superior endplate so that the pair's slip, measured after ``distort``,
    equals ``targets[upper]`` percent.

    Args:
        patient: from :func:`sample_patient`.
        targets: slip % keyed by upper level (missing levels: no shift).
        distort: 2x2 linear part of the model -> image map, up to scale.
        rng: generator for the decorative shapes (sacrum, ilium, gas, skin).
        clutter: amount of overlapping anatomy (``clutter.lateral_clutter``; 0 none).
        degeneration: from ``patients.sample_degeneration`` (the patient's discs
            already narrowed with ``patients.degenerated``): vacuum clefts,
            osteophyte beaks, rough endplates. None: none.
        xrng: generator of the clutter and degeneration shapes (needed with either),
            apart from ``rng`` so that a clean scene draws exactly what it always drew.

    Returns:
        Scene with corners [11, 4, 2] in AS, PS, AI, PI order, mm (and the beak
        tips, when there is degeneration).
    """
    bodies, discs = patient["bodies"], patient["discs"]
    s1 = bodies["S1"]
    e = direction(-patient["sacral_slope"])  # posterior end of S1's endplate is higher
    up = cranial(e)
    w, h = s1["depth"], s1["height"]
    as_, ps = -e * w / 2, e * w / 2
    ai = as_ - up * h + e * 0.04 * w
    pi = ps - up * 0.88 * h - e * 0.1 * w
    chain = {"S1": np.stack([as_, ps, ai, pi])}
    theta = -patient["sacral_slope"]
    lower = chain["S1"]
    for level in reversed(LATERAL_LEVELS[:-1]):
        b = bodies[level]
        w, h = b["depth"], b["height"]
        t_inf = theta + patient["disc_angle"][level]
        t_sup = t_inf + patient["body_angle"][level]
        e_inf, e_sup = direction(t_inf), direction(t_sup)
        mid_inf = (lower[0] + lower[1]) / 2 + cranial(direction((theta + t_inf) / 2)) * discs[level]
        w_inf = w * b["inferior_ratio"]
        ai, pi = mid_inf - e_inf * w_inf / 2, mid_inf + e_inf * w_inf / 2
        mid_sup = mid_inf + cranial(direction((t_inf + t_sup) / 2)) * h
        as_, ps = mid_sup - e_sup * w / 2, mid_sup + e_sup * w / 2
        quad = np.stack([as_, ps, ai, pi])
        if level in targets:
            quad = quad + _slip_shift(lower, quad[3], targets[level], distort)
        chain[level] = quad
        lower, theta = quad, t_sup
    corners = np.stack([chain[lv] for lv in LATERAL_LEVELS])

    shapes = _soft_tissue_lateral(corners, rng)
    shapes += _sacrum_shapes(chain["S1"], rng)
    for level, c in zip(LATERAL_LEVELS, corners):
        if level != "S1":
            shapes += _posterior_shapes(c, level, patient["posterior_scale"])
    tips = None
    if clutter > 0.0:
        shapes += lateral_clutter(chain, clutter, xrng)
    if degeneration is not None:
        extra, tips = degeneration_shapes(chain, LATERAL_LEVELS, degeneration, xrng)
        shapes += extra
    for level, c in zip(LATERAL_LEVELS, corners):
        bul = bodies[level]["bulges"]
        ring = np.stack([c[0], c[1], c[3], c[2]])  # AS -> PS -> PI -> AI
        # sides: superior endplate, posterior wall, inferior endplate, anterior wall
        rough = None if degeneration is None else endplate_offsets(degeneration["rough"].get(level, 0.0), 7, xrng)
        shapes.append(Shape(body_outline(ring, bul, offsets=rough), fill=0.3, rim=0.13, rim_mm=1.6, texture=1.0))
    return Scene("lateral", LATERAL_LEVELS, corners, shapes, tips=tips)


def _soft_tissue_lateral(corners: np.ndarray, rng: np.random.Generator) -> list:
    """Air behind the back, paraspinal density, bowel gas and a few ribs (mm, soft layer)."""
    shapes = []
    e = unit(unit(corners[:, 1] - corners[:, 0]).mean(axis=0))  # mean posterior direction
    back = corners[:, 1] + e * rng.uniform(95.0, 140.0)
    top = np.array([[back[0, 0], -400.0]])
    bottom = np.array([[back[-1, 0], 400.0]])
    air = np.concatenate([top, back, bottom, bottom + [600.0, 0.0], top + [600.0, 0.0]])
    shapes.append(Shape(air, fill=-0.22, soft=True))
    front = corners[:, 0] - e * rng.uniform(5.0, 20.0)
    behind = corners[:, 1] + e * rng.uniform(40.0, 70.0)
    shapes.append(Shape(np.concatenate([front, behind[::-1]]), fill=rng.uniform(0.03, 0.08), soft=True))
    anterior = corners[:, 0]
    for _ in range(int(rng.integers(2, 7))):
        k = int(rng.integers(3, len(corners)))
        c = anterior[k] - e * rng.uniform(25.0, 110.0) + [0.0, rng.uniform(-20, 20)]
        shapes.append(Shape(ellipse(c, rng.uniform(8, 30), rng.uniform(6, 18), rng.uniform(0, 180), 24),
                            fill=-rng.uniform(0.05, 0.12), soft=True))
    for k in range(0, 5):  # ribs project across the thoracic levels
        c = corners[k]
        start = c[1] + unit(c[3] - c[1]) * 5.0 - e * rng.uniform(10.0, 40.0)
        bend = rng.uniform(0.5, 2.0)
        pts = np.stack([start + e * t * 14.0 + np.array([0.0, -bend * 3.0 * t + 0.4 * t * t]) for t in range(9)])
        band = np.concatenate([pts, pts[::-1] + [0.0, 6.0]])
        shapes.append(Shape(band, fill=0.05, rim=0.04, rim_mm=1.5, diffuse=True))
    return shapes
