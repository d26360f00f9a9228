"""Geometry of a synthetic spine: vertebral corners, slips and the shapes to render.

Frames and units:
  * model frame, millimetres, y down (caudal). Lateral views are built facing
    left: x grows towards the patient's back, so anterior is image-left until
    :func:`frame_affine` mirrors the scene for a right-facing image. AP views:
    x grows to the image-right.
  * image frame, pixels, x right, y down, integer values at pixel centres
    (the convention of ``vertkp.keypoints``).
A :class:`Scene` is built in the model frame and moved to the image frame with
one 2x3 affine matrix, so corners and rendered shapes can never disagree.

Lateral corners are kept in anatomical order (AS, PS, AI, PI = anterior-
superior, posterior-superior, anterior-inferior, posterior-inferior);
:func:`canonical_from_anatomical` turns them into the canonical TL, TR, BL, BR
order of ``vertkp.keypoints`` for a given facing. AP corners are kept in
canonical order directly.

Slips follow CLINICAL.md and are planted with ``vertkp.grading.slip``: the upper
vertebra U (with everything above it) is moved along the lower vertebra L's
superior endplate until ``slip_percent`` of the pair equals the planted value.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from vertkp.grading.slip import slip_percent

__all__ = [
    "LATERAL_LEVELS",
    "AP_LEVELS",
    "Shape",
    "Scene",
    "sample_patient",
    "sample_slip_targets",
    "sample_lateral_targets",
    "SLIP_CASES",
    "NORMAL_SLIP_RANGE",
    "lateral_percent",
    "build_lateral",
    "build_ap",
    "canonical_from_anatomical",
    "rotation",
    "frame_affine",
    "apply_affine",
]

# Cranial to caudal. The chain always runs T8..S1; a layout labels a window of it.
LATERAL_LEVELS = ("T8", "T9", "T10", "T11", "T12", "L1", "L2", "L3", "L4", "L5", "S1")
AP_LEVELS = ("T11", "T12", "L1", "L2", "L3", "L4", "L5")

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
# Transverse (AP view) body width relative to the lateral depth.
_AP_WIDTH_RATIO = {"T11": 1.08, "T12": 1.12, "L1": 1.18, "L2": 1.2, "L3": 1.24, "L4": 1.26, "L5": 1.3}
# Share of the lumbar lordosis taken by each disc (upper level) and each body.
_LORDOSIS_DISC = {"L1": 0.07, "L2": 0.11, "L3": 0.17, "L4": 0.27, "L5": 0.38}
_LORDOSIS_BODY = {"L1": -0.03, "L2": 0.03, "L3": 0.15, "L4": 0.3, "L5": 0.55}


@dataclass
class Shape:
    """One filled polygon of a scene.

    Attributes:
        points: float array [N, 2], (x, y) in mm (model frame) or px (image frame).
        fill: intensity added inside the polygon (linear attenuation units;
            negative for air or gas).
        rim: extra intensity of a band just inside the outline (cortical bone).
        rim_mm: width of that band, mm.
        texture: amplitude of the trabecular texture multiplied into the fill.
        soft: True to draw it on the low-resolution, strongly blurred layer
            (soft tissue, gas, air); False for bone.
        diffuse: bone seen through more tissue or at an angle (posterior
            elements, pelvis): drawn on a layer blurred by about 1 mm.
    """

    points: np.ndarray
    fill: float
    rim: float = 0.0
    rim_mm: float = 0.0
    texture: float = 0.0
    soft: bool = False
    diffuse: bool = False


@dataclass
class Scene:
    """Corners and shapes of one view.

    Attributes:
        view: "lateral" or "ap".
        levels: level names, cranial to caudal, of ``corners``.
        corners: float array [K, 4, 2]; lateral: AS, PS, AI, PI; AP: TL, TR, BL, BR.
        shapes: polygons to render, back to front.
        px_per_mm: mean scale of the frame (1.0 in the model frame).
    """

    view: str
    levels: tuple
    corners: np.ndarray
    shapes: list = field(default_factory=list)
    px_per_mm: float = 1.0

    def transformed(self, m: np.ndarray) -> "Scene":
        """The scene moved by the 2x3 affine ``m`` (model mm -> image px)."""
        scale = float(np.sqrt(abs(np.linalg.det(m[:, :2]))))
        shapes = [replace(s, points=apply_affine(m, s.points)) for s in self.shapes]
        return Scene(self.view, self.levels, apply_affine(m, self.corners), shapes, self.px_per_mm * scale)

    def corner(self, level: str) -> np.ndarray:
        """Corners [4, 2] of one level."""
        return self.corners[self.levels.index(level)]


# ----------------------------------------------------------------------------- small maths


def rotation(deg: float) -> np.ndarray:
    """2x2 rotation by ``deg`` degrees; positive turns +x towards +y (clockwise on screen)."""
    a = np.deg2rad(deg)
    return np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])


def apply_affine(m: np.ndarray, pts: np.ndarray) -> np.ndarray:
    """Apply a 2x3 affine to points [..., 2]."""
    pts = np.asarray(pts, dtype=np.float64)
    return pts @ m[:, :2].T + m[:, 2]


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def _direction(deg: float) -> np.ndarray:
    """Unit vector at ``deg`` degrees from +x (y down)."""
    a = np.deg2rad(deg)
    return np.array([np.cos(a), np.sin(a)])


def _cranial(e: np.ndarray) -> np.ndarray:
    """Normal of an endplate direction ``e`` (pointing posterior / image-right) towards cranial."""
    return np.array([e[1], -e[0]])


def _local(origin: np.ndarray, ex: np.ndarray, ey: np.ndarray, uv) -> np.ndarray:
    """Points origin + u * ex + v * ey for rows (u, v) of ``uv``."""
    uv = np.asarray(uv, dtype=np.float64)
    return origin + uv[:, :1] * ex + uv[:, 1:2] * ey


def ellipse(center, rx: float, ry: float, angle_deg: float = 0.0, n: int = 40) -> np.ndarray:
    """Polygon [n, 2] of an ellipse."""
    t = np.linspace(0.0, 2 * np.pi, n, endpoint=False)
    pts = np.stack([rx * np.cos(t), ry * np.sin(t)], axis=1) @ rotation(angle_deg).T
    return pts + np.asarray(center, dtype=np.float64)


def body_outline(quad: np.ndarray, bulges, n: int = 7) -> np.ndarray:
    """Outline [4 * n, 2] of a vertebral body through the 4 corners of ``quad``.

    ``quad`` is a closed ring of 4 corners; each side i (quad[i] -> quad[i+1])
    is bowed towards the centroid by ``bulges[i]`` times its length at its
    middle (parabolic profile), so the corners stay exact vertices.
    """
    quad = np.asarray(quad, dtype=np.float64)
    centre = quad.mean(axis=0)
    s = np.arange(n) / n
    out = []
    for i in range(4):
        a, b = quad[i], quad[(i + 1) % 4]
        d = b - a
        normal = np.array([-d[1], d[0]])
        if normal @ (centre - (a + b) / 2) < 0:
            normal = -normal
        pts = a + s[:, None] * d + (4 * s * (1 - s))[:, None] * bulges[i] * normal
        out.append(pts)
    return np.concatenate(out)


# ----------------------------------------------------------------------------- patients and slips


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


# Planted sagittal slip per case: (name, probability, slip % range). Ranges keep
# clear of the grade boundaries and of the default 5% no-slip band.
SLIP_CASES = (
    ("none", 0.42, None),
    ("I", 0.20, (8.0, 21.0)),
    ("II", 0.12, (29.0, 46.0)),
    ("III", 0.07, (54.0, 71.0)),
    ("IV", 0.03, (79.0, 96.0)),
    ("V", 0.01, (104.0, 118.0)),
    ("retrolisthesis", 0.15, (-20.0, -8.0)),
)
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


def sample_slip_targets(rng: np.random.Generator, uppers) -> dict:
    """Planted sagittal slips, percent, keyed by the upper level of each pair.

    Args:
        uppers: the upper levels of the pairs that the image will label.

    Every pair gets a target: a small normal value inside the no-slip band,
    except the planted one(s): one case drawn from ``SLIP_CASES`` (mostly at
    L5/S1 and L4/L5) and, in 10% of spines, an extra retrolisthesis higher up.
    """
    uppers = list(uppers)
    targets = {u: float(rng.uniform(*NORMAL_SLIP_RANGE)) for u in LATERAL_LEVELS[:-1]}
    p = np.array([c[1] for c in SLIP_CASES])
    name, _, span = SLIP_CASES[int(rng.choice(len(SLIP_CASES), p=p / p.sum()))]
    if span is not None:
        level = _pick(rng, _RETRO_LEVELS if span[0] < 0 else _ANTERO_LEVELS, uppers)
        if level is not None:
            targets[level] = float(rng.uniform(*span))
    if rng.random() < 0.1:
        level = _pick(rng, {"L1": 1.0, "L2": 1.0, "L3": 1.0}, uppers)
        if level is not None and abs(targets[level]) < 5.0:
            targets[level] = float(rng.uniform(-16.0, -8.0))
    return targets


def sample_lateral_targets(rng: np.random.Generator) -> dict:
    """Planted AP lateral displacements, percent (see :func:`lateral_percent`), keyed by upper level."""
    targets = {u: float(rng.uniform(-2.0, 2.0)) for u in AP_LEVELS[:-1]}
    if rng.random() < 0.18:
        level = _pick(rng, {"L2": 0.25, "L3": 0.45, "L4": 0.3}, AP_LEVELS)
        targets[level] = float(rng.choice([-1.0, 1.0]) * rng.uniform(7.0, 20.0))
    return targets


def lateral_percent(lower_tl, lower_tr, upper_bl, upper_br):
    """Lateral displacement (laterolisthesis) of U over L on an AP view, percent.

    With L's superior endplate from its image-left corner TL to its
    image-right corner TR (length w) and m = the midpoint of U's inferior
    endplate: 100 * d / w, d = projection of (m - mid(TL, TR)) onto
    (TR - TL) / w. Positive: U shifted to the image-right. Computed with
    ``slip_percent`` (TL as its P, TR as its A), minus 50.
    """
    m = (np.asarray(upper_bl, dtype=np.float64) + np.asarray(upper_br, dtype=np.float64)) / 2
    return slip_percent(lower_tl, lower_tr, m) - 50.0


# ----------------------------------------------------------------------------- lateral view


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
    e = _unit(ps - as_)  # towards posterior
    down = _unit(pi - ps)
    w = np.linalg.norm(ps - as_)
    h = np.linalg.norm(pi - ps)
    ex, ey = e * w * pscale, down * h

    def at(uv):
        return _local(ps, ex, ey, uv)

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
    post = _unit(ps - as_)
    down = np.array([0.0, 1.0])  # model frame: y is caudal
    lower = np.stack([ai, pi])
    theta = np.degrees(np.arctan2(*(pi - ai)[::-1]))
    fronts, backs = [ai], [pi]
    for k, (hk, wk) in enumerate([(0.6, 0.85), (0.5, 0.72), (0.42, 0.58), (0.35, 0.45), (0.3, 0.32)]):
        theta += rng.uniform(5.0, 11.0)  # sacral kyphosis: the sacrum curls forwards caudally
        e = _direction(theta)
        top_mid = lower.mean(axis=0) - _cranial(e) * 0.04 * w
        bot_mid = top_mid - _cranial(e) * hk * w
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


def build_lateral(patient: dict, targets: dict, distort: np.ndarray, rng: np.random.Generator) -> Scene:
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

    Returns:
        Scene with corners [11, 4, 2] in AS, PS, AI, PI order, mm.
    """
    bodies, discs = patient["bodies"], patient["discs"]
    s1 = bodies["S1"]
    e = _direction(-patient["sacral_slope"])  # posterior end of S1's endplate is higher
    up = _cranial(e)
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
        e_inf, e_sup = _direction(t_inf), _direction(t_sup)
        mid_inf = (lower[0] + lower[1]) / 2 + _cranial(_direction((theta + t_inf) / 2)) * discs[level]
        w_inf = w * b["inferior_ratio"]
        ai, pi = mid_inf - e_inf * w_inf / 2, mid_inf + e_inf * w_inf / 2
        mid_sup = mid_inf + _cranial(_direction((t_inf + t_sup) / 2)) * h
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
    for level, c in zip(LATERAL_LEVELS, corners):
        bul = bodies[level]["bulges"]
        ring = np.stack([c[0], c[1], c[3], c[2]])  # AS -> PS -> PI -> AI
        # sides: superior endplate, posterior wall, inferior endplate, anterior wall
        shapes.append(Shape(body_outline(ring, bul), fill=0.3, rim=0.13, rim_mm=1.6, texture=1.0))
    return Scene("lateral", LATERAL_LEVELS, corners, shapes)


def _soft_tissue_lateral(corners: np.ndarray, rng: np.random.Generator) -> list:
    """Air behind the back, paraspinal density, bowel gas and a few ribs (mm, soft layer)."""
    shapes = []
    e = _unit(_unit(corners[:, 1] - corners[:, 0]).mean(axis=0))  # mean posterior direction
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
        start = c[1] + _unit(c[3] - c[1]) * 5.0 - e * rng.uniform(10.0, 40.0)
        bend = rng.uniform(0.5, 2.0)
        pts = np.stack([start + e * t * 14.0 + np.array([0.0, -bend * 3.0 * t + 0.4 * t * t]) for t in range(9)])
        band = np.concatenate([pts, pts[::-1] + [0.0, 6.0]])
        shapes.append(Shape(band, fill=0.05, rim=0.04, rim_mm=1.5, diffuse=True))
    return shapes


# ----------------------------------------------------------------------------- AP view


def build_ap(patient: dict, targets: dict, distort: np.ndarray, rng: np.random.Generator) -> Scene:
    """AP (frontal) scene, model frame, levels T11..L5 plus sacrum and ilia.

    Bodies are stacked upwards from L5 with a gentle scoliotic curve; each
    upper vertebra is moved along the lower one's superior endplate so that
    :func:`lateral_percent` of the pair, measured after ``distort``, equals
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
            mid_inf = (lower[0] + lower[1]) / 2 + _cranial(_direction((theta + t_inf) / 2)) * gap
        t_sup = t_inf + curve[2 * i]
        e_inf, e_sup = _direction(t_inf), _direction(t_sup)
        bl, br = mid_inf - e_inf * w / 2, mid_inf + e_inf * w / 2
        mid_sup = mid_inf + _cranial(_direction((t_inf + t_sup) / 2)) * h
        tl, tr = mid_sup - e_sup * w * 0.97 / 2, mid_sup + e_sup * w * 0.97 / 2
        quad = np.stack([tl, tr, bl, br])
        if lower is not None and level in targets:
            p, a = distort @ lower[0], distort @ lower[1]
            now = lateral_percent(p, a, distort @ bl, distort @ br)
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
    ex = _unit(tr - tl)
    ey = _unit((bl + br) / 2 - (tl + tr) / 2)
    mid = (tl + tr) / 2
    ring = np.stack([tl, tr, br, bl])
    shapes = []
    reach = {"L1": 0.28, "L2": 0.36, "L3": 0.46, "L4": 0.38, "L5": 0.4}.get(level, 0.15)
    for side in (-1.0, 1.0):
        base = mid + side * ex * w * 0.42
        tp = _local(base, side * ex * w, ey * h, [(0, 0.18), (reach, 0.22), (reach + 0.03, 0.36), (0, 0.5)])
        shapes.append(Shape(tp, 0.08, 0.05, 1.2, 0.3, diffuse=True))
        if level in ("T11", "T12"):  # short floating ribs, laterally and downwards
            length = rng.uniform(60.0, 110.0) * (1.3 if level == "T11" else 1.0)
            d = _unit(side * ex + ey * np.tan(np.deg2rad(rng.uniform(20.0, 40.0))))
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
    ex = _unit(br - bl)
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
        wing = _local(top, side * ex * w, ey * w, uv)
        shapes.append(Shape(wing, 0.07, 0.07, 3.5, 0.3, diffuse=True))
    return shapes


# ----------------------------------------------------------------------------- orders and framing


def canonical_from_anatomical(anat: np.ndarray, facing: str) -> np.ndarray:
    """Lateral corners [..., 4, 2] from AS, PS, AI, PI to canonical TL, TR, BL, BR.

    The inverse of ``vertkp.keypoints.anatomical_corners``: facing "left"
    puts anterior on image-left (TL = AS), facing "right" on image-right (TL = PS).
    """
    anat = np.asarray(anat, dtype=np.float64)
    if facing == "left":
        order = [0, 1, 2, 3]
    elif facing == "right":
        order = [1, 0, 3, 2]
    else:
        raise ValueError(f"facing must be 'left' or 'right', got {facing!r}")
    return anat[..., order, :]


def frame_affine(linear: np.ndarray, keep_mm: np.ndarray, width: int, height: int, scale: float | None,
                 x_centre: float, y_place: float, margins_mm=(0.0, 0.0)) -> np.ndarray:
    """2x3 affine model mm -> image px that keeps ``keep_mm`` points in the image.

    Args:
        linear: 2x2 shape part (mirror, tilt, stretch) applied before scaling.
        keep_mm: points [N, 2] that must land in the image (the labelled corners).
        width, height: image size, px.
        scale: px per mm; None fits the points plus ``margins_mm`` (top,
            bottom, mm after ``linear``) to the image height, or to 88% of the
            width when that is tighter.
        x_centre: wanted x of the points' centre, as a fraction of the width.
        y_place: for a fixed scale, where the spare height goes: 0 = all below
            the points, 1 = all above.

    The result is shifted, if needed, so every kept point lies at least 2% of
    the image size inside the border.
    """
    p = np.asarray(keep_mm, dtype=np.float64).reshape(-1, 2) @ linear.T
    lo, hi = p.min(axis=0), p.max(axis=0)
    span = hi - lo
    top, bottom = margins_mm
    if scale is None:
        scale = min(height / (span[1] + top + bottom), 0.88 * width / span[0])
    m = np.zeros((2, 3))
    m[:, :2] = scale * linear
    spare_y = height - scale * span[1]
    if margins_mm != (0.0, 0.0) and scale * (span[1] + top + bottom) <= height + 1e-9:
        ty = scale * top + (spare_y - scale * (top + bottom)) / 2 - scale * lo[1]
    else:
        ty = spare_y * y_place - scale * lo[1]
    tx = x_centre * width - scale * (lo[0] + hi[0]) / 2
    m[:, 2] = [tx, ty]
    q = p * scale + m[:, 2]
    for axis, size in ((0, width), (1, height)):
        pad = 0.02 * size
        low, high = q[:, axis].min(), q[:, axis].max()
        if high - low <= size - 2 * pad:
            m[axis, 2] += max(0.0, pad - low) - max(0.0, high - (size - pad))
    return m
