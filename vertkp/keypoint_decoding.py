"""Keypoint heatmap decoding: the peak of each heatmap, to a fraction of a cell, its
place in the image, and how confident the heatmap is of it (:func:`corner_confidence`).

Pure numpy (no torch, no detectron2): the arithmetic behind
``MODEL.ROI_KEYPOINT_HEAD.SUBPIXEL`` and ``vertkp.modeling.keypoint_head.VertebraKeypointHead``.

Coordinates:

* heatmap cells: a map has H x W cells; cell (i, j) (row i, column j) has its centre at
  (x, y) = (j, i), so x is the column and y the row, both in cell units; the map covers
  [-0.5, W - 0.5] x [-0.5, H - 0.5].
* image: detectron2's continuous pixel coordinates (pixel i covers [i, i + 1), its centre
  is i + 0.5; ``vertkp.keypoints.DETECTRON2_KEYPOINT_OFFSET`` away from vertkp's files).
  A box (x0, y0, x1, y1) is split into W x H equal cells, so cell coordinate u maps to
  x = x0 + (u + 0.5) / W * w with w = max(x1 - x0, 1) (:func:`cells_to_image`), the
  inverse of detectron2's training targets (``Keypoints.to_heatmap``) and the mapping of
  its ``heatmaps_to_keypoints``.

Methods (:data:`SUBPIXEL_METHODS`):

* "none": the argmax cell, integer coordinates.
* "dark": DARK (Zhang et al., CVPR 2020) without its Gaussian modulation: the logits of
  Keypoint R-CNN's head are the log of its softmax heatmap up to a constant, so their
  second-order Taylor expansion at the argmax cell, with gradient and Hessian by central
  differences over the 3 x 3 neighbourhood, gives the offset -H^-1 g. It is exact for a
  quadratic logit surface (a Gaussian heatmap). Fallback to the argmax cell when that cell
  is on the map's border, when the Hessian is not negative definite (flat, saddle, ridge)
  or when the offset is not finite. Each axis of the offset is clipped to
  [-:data:`DARK_MAX_OFFSET`, +:data:`DARK_MAX_OFFSET`] = 1 cell: the estimate comes from the
  3 x 3 neighbourhood and must stay in it, while a tilted, elongated peak can lie more than
  half a cell from its argmax cell along one axis (a 0.5 clip would cut those).
* "soft_argmax": the expectation of softmax(logits) over the (2r + 1) x (2r + 1) window
  centred on the argmax cell, r = :data:`SOFT_ARGMAX_RADIUS` = 1 (the 3 x 3 neighbourhood
  DARK reads too: Keypoint R-CNN's heatmaps are trained on one-hot targets and put nearly
  all their mass within a cell of the peak, a wider window adds mostly noise and other
  modes). Cells of the window outside the map are left out (weight 0); the result is
  always within r cells of the argmax cell and inside the map.
"""
from __future__ import annotations

import numpy as np

__all__ = [
    "SUBPIXEL_METHODS",
    "DARK_MAX_OFFSET",
    "SOFT_ARGMAX_RADIUS",
    "refine_peaks",
    "argmax_peaks",
    "dark_peaks",
    "soft_argmax_peaks",
    "cells_to_image",
    "corner_confidence",
]

SUBPIXEL_METHODS = ("none", "dark", "soft_argmax")
# Largest "dark" offset from the argmax cell, cells per axis.
DARK_MAX_OFFSET = 1.0
# Half-width of the "soft_argmax" window, cells (the window is 2r + 1 cells wide).
SOFT_ARGMAX_RADIUS = 1


def _as_maps(logits) -> np.ndarray:
    """float64 numpy array [R, K, H, W] of a numpy array or a torch tensor (any device)."""
    if hasattr(logits, "detach"):  # a torch tensor, without importing torch
        logits = logits.detach().cpu().double().numpy()
    maps = np.asarray(logits, dtype=np.float64)
    if maps.ndim != 4 or maps.shape[2] < 1 or maps.shape[3] < 1:
        raise ValueError(f"heatmaps must be [R, K, H, W] with H, W >= 1, got shape {maps.shape}")
    return maps


def _argmax_cells(maps: np.ndarray):
    """Row and column [R, K] (int) of each map's maximum (the first one on ties, as numpy's
    argmax over the flattened map)."""
    n, k, h, w = maps.shape
    flat = maps.reshape(n, k, h * w).argmax(axis=2)
    return flat // w, flat % w


def _windows(maps: np.ndarray, rows, cols, r: int, fill) -> np.ndarray:
    """The (2r + 1) x (2r + 1) windows [R, K, 2r + 1, 2r + 1] of ``maps`` centred on
    (rows, cols); cells outside the map are ``fill`` ("edge" repeats the border)."""
    if fill == "edge":
        padded = np.pad(maps, ((0, 0), (0, 0), (r, r), (r, r)), mode="edge")
    else:
        padded = np.pad(maps, ((0, 0), (0, 0), (r, r), (r, r)), constant_values=fill)
    d = np.arange(2 * r + 1)
    n, k = maps.shape[:2]
    return padded[np.arange(n)[:, None, None, None], np.arange(k)[None, :, None, None],
                  (rows[..., None, None] + d[:, None]), (cols[..., None, None] + d[None, :])]


def argmax_peaks(logits) -> np.ndarray:
    """Integer argmax cell of each heatmap.

    Args:
        logits: float [R, K, H, W] (numpy array or torch tensor).

    Returns:
        float64 [R, K, 2]: (x, y) = (column, row) of the maximum, cell units.
    """
    maps = _as_maps(logits)
    rows, cols = _argmax_cells(maps)
    return np.stack([cols, rows], axis=-1).astype(np.float64)


def dark_peaks(logits, max_offset: float = DARK_MAX_OFFSET) -> np.ndarray:
    """DARK peak of each heatmap: Taylor expansion of the logits at the argmax cell.

    Args:
        logits: float [R, K, H, W] (numpy array or torch tensor), spatial logits.
        max_offset: largest offset from the argmax cell, cells per axis.

    Returns:
        float64 [R, K, 2]: (x, y) peak, cell units; the argmax cell where the expansion has
        no maximum (border cell, Hessian not negative definite, non-finite values).
    """
    maps = _as_maps(logits)
    rows, cols = _argmax_cells(maps)
    f = _windows(maps, rows, cols, 1, "edge")
    gx = (f[..., 1, 2] - f[..., 1, 0]) / 2
    gy = (f[..., 2, 1] - f[..., 0, 1]) / 2
    hxx = f[..., 1, 2] - 2 * f[..., 1, 1] + f[..., 1, 0]
    hyy = f[..., 2, 1] - 2 * f[..., 1, 1] + f[..., 0, 1]
    hxy = (f[..., 2, 2] - f[..., 2, 0] - f[..., 0, 2] + f[..., 0, 0]) / 4
    det = hxx * hyy - hxy * hxy
    h, w = maps.shape[2:]
    ok = (hxx < 0) & (det > 0) & (rows > 0) & (rows < h - 1) & (cols > 0) & (cols < w - 1)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        safe = np.where(ok, det, 1.0)
        dx = -(hyy * gx - hxy * gy) / safe
        dy = -(hxx * gy - hxy * gx) / safe
    offset = np.stack([dx, dy], axis=-1)
    ok = ok[..., None] & np.isfinite(offset)
    offset = np.clip(np.where(ok, offset, 0.0), -max_offset, max_offset)
    return np.stack([cols, rows], axis=-1) + offset


def soft_argmax_peaks(logits, radius: int = SOFT_ARGMAX_RADIUS) -> np.ndarray:
    """Local soft-argmax of each heatmap: the expectation of softmax(logits) over the
    (2 radius + 1)^2 window centred on the argmax cell, cells outside the map left out.

    Args:
        logits: float [R, K, H, W] (numpy array or torch tensor), spatial logits.
        radius: half-width of the window, cells (0 gives the argmax cell).

    Returns:
        float64 [R, K, 2]: (x, y) expectation, cell units; the argmax cell where the
        logits are not finite.
    """
    maps = _as_maps(logits)
    rows, cols = _argmax_cells(maps)
    win = _windows(maps, rows, cols, radius, -np.inf)
    with np.errstate(invalid="ignore", over="ignore"):
        p = np.exp(win - win[..., radius:radius + 1, radius:radius + 1])  # 1 at the peak, 0 outside
        total = p.sum(axis=(2, 3))
        # Sums of weights per column (x) and per row (y), then the expectation of the offset
        # by symmetric pairs: a window symmetric about its centre gives exactly 0.
        px, py = p.sum(axis=2), p.sum(axis=3)
        d = np.arange(1, radius + 1)
        ex = ((px[..., radius + d] - px[..., radius - d]) * d).sum(axis=-1) / total
        ey = ((py[..., radius + d] - py[..., radius - d]) * d).sum(axis=-1) / total
    offset = np.stack([ex, ey], axis=-1)
    offset = np.where(np.isfinite(offset), offset, 0.0)
    return np.stack([cols, rows], axis=-1) + offset


def refine_peaks(logits, method: str) -> np.ndarray:
    """Peak of each heatmap by ``method`` (one of :data:`SUBPIXEL_METHODS`).

    Args:
        logits: float [R, K, H, W] (numpy array or torch tensor), spatial logits; R may be 0.
        method: "none" (argmax cell), "dark" or "soft_argmax" (see the module's docstring).

    Returns:
        float64 [R, K, 2]: (x, y) = (column, row) position, cell units, cell (i, j)
        centred at (j, i).

    Raises:
        ValueError: an unknown method, or logits that are not 4-dimensional.
    """
    if method == "none":
        return argmax_peaks(logits)
    if method == "dark":
        return dark_peaks(logits)
    if method == "soft_argmax":
        return soft_argmax_peaks(logits)
    raise ValueError(f"unknown sub-pixel method {method!r}; use one of {', '.join(SUBPIXEL_METHODS)}")


def cells_to_image(cells, boxes, heatmap_size) -> np.ndarray:
    """Heatmap cell coordinates to image coordinates, as detectron2 maps its heatmaps.

    Args:
        cells: float [R, K, 2] (x, y) positions in cell units (cell (i, j) centred at (j, i)).
        boxes: float [R, 4] (x0, y0, x1, y1), the boxes the heatmaps were pooled from,
            image pixels (numpy array or torch tensor).
        heatmap_size: S or (H, W), the heatmap's cells.

    Returns:
        float64 [R, K, 2]: x = x0 + (u + 0.5) / W * w, y = y0 + (v + 0.5) / H * h, with the
        box's width and height clamped to at least 1 px as detectron2's
        ``heatmaps_to_keypoints`` clamps them. On a one-cell peak detectron2's own result
        (the argmax of the map resized bicubically to ceil(w) x ceil(h) px) is this mapping
        of the argmax cell to half a pixel, except on the map's border cells (its argmax moves
        up to half a cell towards the box edge) and in boxes under S / 2 px (the map is
        point-sampled more than 2 cells apart and can miss the peak).
    """
    if hasattr(boxes, "detach"):
        boxes = boxes.detach().cpu().double().numpy()
    b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    c = np.asarray(cells, dtype=np.float64)
    h, w = (heatmap_size, heatmap_size) if np.ndim(heatmap_size) == 0 else heatmap_size
    origin = b[:, None, :2]
    size = np.maximum(b[:, None, 2:] - b[:, None, :2], 1.0)
    return origin + (c + 0.5) / np.array([w, h], dtype=np.float64) * size


def corner_confidence(heatmaps, radius: int = 1) -> np.ndarray:
    """Confidence of each predicted corner from its heatmap logits.

    The keypoint head is trained with a softmax over the cells of each
    heatmap, so softmax(logits) is a distribution of the corner's cell. The
    confidence is its mass within ``radius`` cells (Chebyshev) of the peak:
    near 1 for a sharp single peak, low when the mass is spread or split.

    Args:
        heatmaps: float [R, K, S, S] logits (detectron2's ``pred_keypoint_heatmaps``).
        radius: half-width of the window around the peak, cells.

    Returns:
        float [R, K] in (0, 1].
    """
    h = np.asarray(heatmaps, dtype=np.float64)
    if h.ndim != 4:
        raise ValueError(f"heatmaps must be [R, K, S, S], got shape {h.shape}")
    r, k, sy, sx = h.shape
    flat = h.reshape(r, k, -1)
    p = np.exp(flat - flat.max(axis=-1, keepdims=True))
    p /= p.sum(axis=-1, keepdims=True)
    p = p.reshape(r, k, sy, sx)
    peak = flat.argmax(axis=-1)
    out = np.empty((r, k))
    for i in range(r):
        for j in range(k):
            y, x = divmod(int(peak[i, j]), sx)
            out[i, j] = p[i, j, max(0, y - radius):y + radius + 1, max(0, x - radius):x + radius + 1].sum()
    return out
