"""Geometry of a synthetic view: shapes, scenes, 2-D maths and the framing affine.

Frames and units:
  * model frame, millimetres, y down (caudal). Lateral views are built facing
    left: x grows towards the patient's back, so anterior is image-left until
    :func:`frame_affine` mirrors the scene for a right-facing image. AP views:
    x grows to the image-right.
  * image frame, pixels, x right, y down, integer values at pixel centres
    (the convention of ``vertkp.keypoints``).
A :class:`Scene` is built in the model frame (``lateral.build_lateral``,
``ap.build_ap``) and moved to the image frame with one 2x3 affine matrix, so
corners and rendered shapes can never disagree.

Lateral corners are kept in anatomical order (AS, PS, AI, PI = anterior-
superior, posterior-superior, anterior-inferior, posterior-inferior);
:func:`canonical_from_anatomical` turns them into the canonical TL, TR, BL, BR
order of ``vertkp.keypoints`` for a given facing. AP corners are kept in
canonical order directly.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

__all__ = [
    "Shape",
    "Scene",
    "rotation",
    "apply_affine",
    "unit",
    "direction",
    "cranial",
    "local",
    "ellipse",
    "body_outline",
    "canonical_from_anatomical",
    "frame_affine",
]

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
        tips: float array [K, 4, 2] like ``corners``: the tip of the osteophyte beak
            growing at a corner, NaN where there is none (None: no beaks at all).
    """

    view: str
    levels: tuple
    corners: np.ndarray
    shapes: list = field(default_factory=list)
    px_per_mm: float = 1.0
    tips: np.ndarray | None = None

    def transformed(self, m: np.ndarray) -> "Scene":
        """The scene moved by the 2x3 affine ``m`` (model mm -> image px)."""
        scale = float(np.sqrt(abs(np.linalg.det(m[:, :2]))))
        shapes = [replace(s, points=apply_affine(m, s.points)) for s in self.shapes]
        tips = None if self.tips is None else apply_affine(m, self.tips)
        return Scene(self.view, self.levels, apply_affine(m, self.corners), shapes, self.px_per_mm * scale, tips)

    def corner(self, level: str) -> np.ndarray:
        """Corners [4, 2] of one level."""
        return self.corners[self.levels.index(level)]


# ----------------------------------------------------------------------------- 2-D maths


def rotation(deg: float) -> np.ndarray:
    """2x2 rotation by ``deg`` degrees; positive turns +x towards +y (clockwise on screen)."""
    a = np.deg2rad(deg)
    return np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])


def apply_affine(m: np.ndarray, pts: np.ndarray) -> np.ndarray:
    """Apply a 2x3 affine to points [..., 2]."""
    pts = np.asarray(pts, dtype=np.float64)
    return pts @ m[:, :2].T + m[:, 2]


def unit(v: np.ndarray) -> np.ndarray:
    """Vectors [..., 2] scaled to unit length."""
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def direction(deg: float) -> np.ndarray:
    """Unit vector at ``deg`` degrees from +x (y down)."""
    a = np.deg2rad(deg)
    return np.array([np.cos(a), np.sin(a)])


def cranial(e: np.ndarray) -> np.ndarray:
    """Normal of an endplate direction ``e`` (pointing posterior / image-right) towards cranial."""
    return np.array([e[1], -e[0]])


def local(origin: np.ndarray, ex: np.ndarray, ey: np.ndarray, uv) -> np.ndarray:
    """Points origin + u * ex + v * ey for rows (u, v) of ``uv``."""
    uv = np.asarray(uv, dtype=np.float64)
    return origin + uv[:, :1] * ex + uv[:, 1:2] * ey


def ellipse(center, rx: float, ry: float, angle_deg: float = 0.0, n: int = 40) -> np.ndarray:
    """Polygon [n, 2] of an ellipse."""
    t = np.linspace(0.0, 2 * np.pi, n, endpoint=False)
    pts = np.stack([rx * np.cos(t), ry * np.sin(t)], axis=1) @ rotation(angle_deg).T
    return pts + np.asarray(center, dtype=np.float64)


def body_outline(quad: np.ndarray, bulges, n: int = 7, offsets: np.ndarray | None = None) -> np.ndarray:
    """Outline [4 * n, 2] of a vertebral body through the 4 corners of ``quad``.

    ``quad`` is a closed ring of 4 corners; each side i (quad[i] -> quad[i+1])
    is bowed towards the centroid by ``bulges[i]`` times its length at its
    middle (parabolic profile), so the corners stay exact vertices.
    ``offsets`` [4, n] (optional) adds more inward bowing per outline point, as a
    fraction of the side's length (an irregular endplate); its column 0 (the
    corners) is ignored.
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
        bow = 4 * s * (1 - s) * bulges[i]
        if offsets is not None:
            bow = bow + np.where(s > 0, offsets[i], 0.0)
        out.append(a + s[:, None] * d + bow[:, None] * normal)
    return np.concatenate(out)


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
