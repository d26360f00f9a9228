"""Rendering of a :class:`~vertkp.phantoms.geometry.Scene` into a radiograph-like image.

Image frame: pixels, x right, y down, integer coordinates at pixel centres
(the convention of ``vertkp.keypoints``). Bone shapes are drawn with 8x
supersampling and 1/16 sub-pixel vertex precision, so a corner of a vertebral
body sits on the rendered body's corner to well under 0.1 px.

Intensity model (linear, before display): soft-tissue background with a
smooth gradient and low-frequency variation, air and gas as negative soft
shapes, bone shapes added with a trabecular texture and a brighter cortical
rim. Then blur, a display window with gamma, quantum (signal-dependent) and
electronic noise, and an optional side marker letter. Harder difficulties
(:func:`degraded_style`) lower the bone contrast, blur more, add scatter (a share of
the image replaced by a wide blur of itself), motion blur and more noise.
"""
from __future__ import annotations

import cv2
import numpy as np

from .difficulty import Difficulty
from .geometry import Scene

__all__ = ["sample_style", "degraded_style", "render", "tint", "encode_jpeg", "render_jpeg", "JPEG_QUALITY"]

JPEG_QUALITY = 92
_SUPERSAMPLE = 8
_SHIFT = 4  # cv2 sub-pixel bits: vertices at 1/16 of a supersampled pixel
_SOFT_DOWN = 4  # soft layer resolution divisor


def sample_style(rng: np.random.Generator) -> dict:
    """Random acquisition and display parameters of one radiograph."""
    return {
        "tissue": rng.uniform(0.24, 0.4),
        "gradient": rng.uniform(-0.1, 0.1, size=2),
        "lowfreq": rng.uniform(0.02, 0.05),
        "bone_gain": rng.uniform(0.75, 1.25),
        "rim_gain": rng.uniform(0.7, 1.4),
        "texture": rng.uniform(0.08, 0.2),
        "blur_mm": rng.uniform(0.3, 0.65),
        "diffuse_mm": rng.uniform(0.8, 1.6),
        "soft_blur_mm": rng.uniform(4.0, 9.0),
        "window": (rng.uniform(0.0, 0.12), rng.uniform(0.9, 1.15)),
        "gamma": rng.uniform(0.75, 1.35),
        "quantum": rng.uniform(0.01, 0.035),
        "electronic": rng.uniform(0.004, 0.015),
        "marker": None if rng.random() < 0.5 else ("L" if rng.random() < 0.5 else "R"),
        "marker_corner": int(rng.integers(0, 4)),
        "field_seed": int(rng.integers(0, 2**31)),
    }


def degraded_style(style: dict, difficulty: Difficulty, rng: np.random.Generator) -> dict:
    """``style`` made as hard as ``difficulty`` asks (unchanged at ``clean``): lower bone
    contrast, more unsharpness, scatter, noise, exposure spread and, sometimes, motion blur."""
    if difficulty.clean:
        return style
    s = dict(style)
    contrast = rng.uniform(*difficulty.contrast)
    s["bone_gain"] = style["bone_gain"] * contrast
    s["rim_gain"] = style["rim_gain"] * rng.uniform(0.5, 1.0)
    s["tissue"] = rng.uniform(0.26, 0.5)
    s["lowfreq"] = rng.uniform(0.03, 0.09)
    s["texture"] = rng.uniform(0.15, 0.35)
    s["blur_mm"] = rng.uniform(*difficulty.blur_mm)
    s["scatter"] = rng.uniform(*difficulty.scatter)
    s["scatter_mm"] = rng.uniform(15.0, 30.0)
    s["window"] = (rng.uniform(-0.05, 0.15), rng.uniform(0.75, 1.25))
    s["gamma"] = rng.uniform(0.65, 1.5)
    s["quantum"] = style["quantum"] * difficulty.noise
    s["electronic"] = style["electronic"] * difficulty.noise
    if rng.random() < difficulty.motion_blur:
        s["motion"] = (rng.uniform(1.5, 4.0), rng.uniform(0.0, 180.0))  # length mm, direction degrees
    return s


def _motion_blur(img: np.ndarray, length_px: float, angle_deg: float) -> np.ndarray:
    """``img`` blurred along a line of ``length_px`` at ``angle_deg`` (a patient who moved)."""
    n = max(3, int(np.ceil(length_px)) | 1)
    kernel = np.zeros((n, n), np.float32)
    c = (n - 1) / 2
    d = np.array([np.cos(np.deg2rad(angle_deg)), np.sin(np.deg2rad(angle_deg))]) * length_px / 2
    cv2.line(kernel, (int(round(c - d[0])), int(round(c - d[1]))), (int(round(c + d[0])), int(round(c + d[1]))),
             1.0, 1, cv2.LINE_AA)
    return cv2.filter2D(img, -1, kernel / kernel.sum(), borderType=cv2.BORDER_REFLECT)


def _signed_area(poly: np.ndarray) -> float:
    x, y = poly[:, 0], poly[:, 1]
    return 0.5 * float(np.sum(x * np.roll(y, -1) - np.roll(x, -1) * y))


def inset(poly: np.ndarray, d: float) -> np.ndarray:
    """Polygon [N, 2] moved inwards by ``d`` px along its mitred vertex normals."""
    prev_edge = poly - np.roll(poly, 1, axis=0)
    next_edge = np.roll(poly, -1, axis=0) - poly
    sign = 1.0 if _signed_area(poly) > 0 else -1.0

    def normal(edge):
        n = np.stack([-edge[:, 1], edge[:, 0]], axis=1) * sign
        return n / np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-12)

    n1, n2 = normal(prev_edge), normal(next_edge)
    denom = np.maximum(1.0 + np.sum(n1 * n2, axis=1, keepdims=True), 0.4)
    return poly + d * (n1 + n2) / denom


def _coverage(poly: np.ndarray, width: int, height: int):
    """Area coverage in [0, 1] of a polygon over the pixels of its bounding box.

    Returns:
        ((y0, y1, x0, x1), float32 array [y1 - y0, x1 - x0]) or None when the
        polygon is outside the image.
    """
    x0 = max(int(np.floor(poly[:, 0].min())) - 1, 0)
    y0 = max(int(np.floor(poly[:, 1].min())) - 1, 0)
    x1 = min(int(np.ceil(poly[:, 0].max())) + 2, width)
    y1 = min(int(np.ceil(poly[:, 1].max())) + 2, height)
    if x1 <= x0 or y1 <= y0:
        return None
    ss = _SUPERSAMPLE
    # cv2 fills the supersampled pixels that the outline touches: pull the
    # outline in by half a supersampled pixel so the coverage is unbiased.
    poly = inset(poly, 0.5 / ss)
    hi = np.zeros(((y1 - y0) * ss, (x1 - x0) * ss), np.uint8)
    # pixel j spans [j - 0.5, j + 0.5]; supersampled pixel J has its centre at (J + 0.5) / ss - 0.5
    pts = ((poly - [x0, y0] + 0.5) * ss - 0.5) * (1 << _SHIFT)
    pts = np.clip(np.round(pts), -(2**30), 2**30).astype(np.int32)
    cv2.fillPoly(hi, [pts], 255, lineType=cv2.LINE_8, shift=_SHIFT)
    cov = cv2.resize(hi, (x1 - x0, y1 - y0), interpolation=cv2.INTER_AREA)
    return (y0, y1, x0, x1), cov.astype(np.float32) * (1.0 / 255.0)


def _soft_layer(scene: Scene, width: int, height: int, style: dict, rng: np.random.Generator) -> np.ndarray:
    """Background tissue, air and gas at 1/4 resolution, blurred and upsampled, float32 [H, W]."""
    d = _SOFT_DOWN
    w4, h4 = (width + d - 1) // d, (height + d - 1) // d
    yy, xx = np.mgrid[0:h4, 0:w4].astype(np.float32)
    gx, gy = style["gradient"]
    canvas = style["tissue"] + gx * (xx / w4 - 0.5) + gy * (yy / h4 - 0.5)
    low = cv2.resize(rng.standard_normal((6, 6)).astype(np.float32), (w4, h4), interpolation=cv2.INTER_CUBIC)
    canvas = canvas + style["lowfreq"] * low
    mask = np.zeros((h4, w4), np.float32)
    for s in scene.shapes:
        if not s.soft:
            continue
        pts = ((s.points + 0.5) / d - 0.5) * (1 << _SHIFT)
        pts = np.clip(np.round(pts), -(2**30), 2**30).astype(np.int32)
        mask[:] = 0.0
        cv2.fillPoly(mask, [pts], 1.0, lineType=cv2.LINE_8, shift=_SHIFT)
        canvas += s.fill * mask
    sigma = max(style["soft_blur_mm"] * scene.px_per_mm / d, 0.8)
    canvas = cv2.GaussianBlur(canvas, (0, 0), sigma)
    return cv2.resize(canvas, (w4 * d, h4 * d), interpolation=cv2.INTER_LINEAR)[:height, :width]


def render(scene: Scene, width: int, height: int, style: dict, rng: np.random.Generator) -> np.ndarray:
    """Render a scene in the image frame to a uint8 grayscale image [height, width].

    Args:
        scene: shapes and corners in pixels (``Scene.transformed``).
        width, height: image size, px.
        style: from :func:`sample_style`; its ``field_seed`` fixes the
            background and bone texture, so augmented copies of one source
            share them.
        rng: generator of the noise of this image.
    """
    field_rng = np.random.default_rng(style["field_seed"])
    img = _soft_layer(scene, width, height, style, field_rng)
    tex = field_rng.standard_normal((height, width), dtype=np.float32)
    tex_sigma = max(0.35 * scene.px_per_mm, 0.6)
    tex = cv2.GaussianBlur(tex, (0, 0), tex_sigma) * (style["texture"] * 2.0 * tex_sigma)
    bone = np.zeros((height, width), np.float32)
    diffuse = np.zeros((height, width), np.float32)
    for s in scene.shapes:
        if s.soft:
            continue
        canvas = diffuse if s.diffuse else bone
        got = _coverage(s.points, width, height)
        if got is None:
            continue
        (y0, y1, x0, x1), cov = got
        add = s.fill * cov * (1.0 + s.texture * tex[y0:y1, x0:x1])
        if s.rim > 0:
            inner = _coverage(inset(s.points, max(s.rim_mm * scene.px_per_mm, 0.8)), width, height)
            ring = cov.copy()
            if inner is not None:  # (a non-convex outline's inset can poke out of its box)
                (a0, a1, b0, b1), icov = inner
                r0, r1, c0, c1 = max(a0, y0), min(a1, y1), max(b0, x0), min(b1, x1)
                if r1 > r0 and c1 > c0:
                    ring[r0 - y0:r1 - y0, c0 - x0:c1 - x0] -= icov[r0 - a0:r1 - a0, c0 - b0:c1 - b0]
            add += s.rim * style["rim_gain"] * np.clip(ring, 0.0, 1.0)
        canvas[y0:y1, x0:x1] += add
    diffuse = cv2.GaussianBlur(diffuse, (0, 0), max(style["diffuse_mm"] * scene.px_per_mm, 0.8))
    img = img + style["bone_gain"] * (bone + diffuse)
    img = cv2.GaussianBlur(img, (0, 0), max(style["blur_mm"] * scene.px_per_mm, 0.4))
    if style.get("scatter"):
        wide = cv2.GaussianBlur(img, (0, 0), style["scatter_mm"] * scene.px_per_mm)
        img = (1.0 - style["scatter"]) * img + style["scatter"] * wide
    if style.get("motion"):
        img = _motion_blur(img, style["motion"][0] * scene.px_per_mm, style["motion"][1])
    lo, hi = style["window"]
    img = np.clip((img - lo) / (hi - lo), 0.0, 1.0) ** style["gamma"]
    noise = rng.standard_normal((2, height, width), dtype=np.float32)
    img = img + style["quantum"] * np.sqrt(img + 0.02) * noise[0] + style["electronic"] * noise[1]
    if style["marker"]:
        _marker(img, style["marker"], style["marker_corner"])
    return np.clip(img * 255.0 + 0.5, 0, 255).astype(np.uint8)


def _marker(img: np.ndarray, letter: str, corner: int) -> None:
    """Burn a radiographer's side marker letter into a corner of ``img`` (in place)."""
    h, w = img.shape
    scale = max(h, w) / 600.0
    size, _ = cv2.getTextSize(letter, cv2.FONT_HERSHEY_SIMPLEX, scale, max(1, int(2 * scale)))
    x = int(0.03 * w) if corner % 2 == 0 else int(0.97 * w) - size[0]
    y = int(0.03 * h) + size[1] if corner < 2 else int(0.97 * h)
    mask = np.zeros((h, w), np.uint8)  # OpenCV draws text on 8-bit images only
    cv2.putText(mask, letter, (x, y), cv2.FONT_HERSHEY_SIMPLEX, scale, 255, max(1, int(2 * scale)), cv2.LINE_AA)
    np.maximum(img, mask.astype(np.float32) * (0.95 / 255.0), out=img)


def tint(gray: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A slightly tinted 3-channel (BGR) uint8 copy of a grayscale image."""
    t = 1.0 + rng.uniform(-0.08, 0.08, size=3)
    t = t / t.max()
    return np.clip(gray[:, :, None].astype(np.float32) * t + 0.5, 0, 255).astype(np.uint8)


def encode_jpeg(img: np.ndarray) -> bytes:
    """JPEG bytes at the fixed quality ``JPEG_QUALITY`` (deterministic)."""
    ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    if not ok:
        raise RuntimeError("OpenCV could not encode the phantom image as JPEG")
    return buf.tobytes()


def render_jpeg(scene: Scene, width: int, height: int, style: dict, rng: np.random.Generator,
                colour: bool = False) -> bytes:
    """:func:`render`, tinted to 3 channels when ``colour``, as JPEG bytes (:func:`encode_jpeg`)."""
    img = render(scene, width, height, style, rng)
    return encode_jpeg(tint(img, rng) if colour else img)
