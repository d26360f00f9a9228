"""The annotator: where the label files put the corners, as against where they are.

Real labels disagree with the anatomy by a few pixels: annotators differ, and an
osteophyte beak makes the corner a choice. At ``realistic`` and ``hard`` every
labelled corner is jittered by a normal error of SD ``label_noise_frac`` times the
vertebra's tight-box width per coordinate (or a fixed ``--label-noise`` px), and a
corner with a beak is labelled at the beak's tip in ``osteophyte_tip_share`` of the
cases. ``phantom_truth.json`` keeps the exact ``corners`` beside the ``label_corners``.
"""
from __future__ import annotations

import numpy as np

from .difficulty import Difficulty
from .geometry import Scene, apply_affine

__all__ = ["label_noise_sd", "label_corners"]


def label_noise_sd(corners_px: np.ndarray, difficulty: Difficulty, label_noise_px: float | None) -> np.ndarray:
    """SD per coordinate of the label jitter of each vertebra, px: [K].

    Args:
        corners_px: corners [K, 4, 2] in the image, px.
        label_noise_px: a fixed SD, px (None: ``difficulty.label_noise_frac`` of each
            vertebra's tight-box width).
    """
    if label_noise_px is not None:
        if label_noise_px < 0:
            raise ValueError(f"label noise must be >= 0 px, got {label_noise_px}")
        return np.full(len(corners_px), float(label_noise_px))
    width = np.ptp(corners_px[..., 0], axis=1)
    return difficulty.label_noise_frac * width


def label_corners(scene: Scene, levels, affine: np.ndarray, difficulty: Difficulty, label_noise_px: float | None,
                  rng: np.random.Generator) -> np.ndarray | None:
    """The annotated corners of ``levels`` in the model frame (mm, the scene's corner order), or
    None when the labels are the exact corners (no jitter and no beak tips to choose).

    Args:
        scene: the view in the model frame (with its beak ``tips``, if any).
        affine: 2x3 model mm -> image px of the annotated image (the jitter is in its px).
        rng: generator of the annotator's choices and jitter.
    """
    idx = [scene.levels.index(lv) for lv in levels]
    exact = apply_affine(affine, scene.corners[idx])
    sd = label_noise_sd(exact, difficulty, label_noise_px)
    tips = None if scene.tips is None else apply_affine(affine, scene.tips[idx])
    has_tips = tips is not None and difficulty.osteophyte_tip_share > 0 and np.isfinite(tips).any()
    if not sd.any() and not has_tips:
        return None
    labelled = exact.copy()
    if has_tips:
        pick = np.isfinite(tips[..., 0]) & (rng.random(tips.shape[:2]) < difficulty.osteophyte_tip_share)
        labelled[pick] = tips[pick]
    labelled += rng.normal(0.0, 1.0, labelled.shape) * sd[:, None, None]
    inverse = np.linalg.inv(np.vstack([affine, [0.0, 0.0, 1.0]]))[:2]
    return apply_affine(inverse, labelled)
