"""Training augmentations for vertebra corners, as detectron2 ``Augmentation`` objects.

Geometric augmentations are detectron2 transforms, so the mapper moves the
image, the boxes and the corners with the same matrix: multi-scale resize,
horizontal flip (the mapper swaps TL<->TR and BL<->BR with the flip map), a
small rotation about the centre on a grown canvas (no corner can leave the
image) and a crop that always contains every vertebra (:class:`SafeCrop`).
Intensity augmentations (CLAHE, gamma, brightness/contrast, noise, blur) come
from albumentations and change pixels only (:class:`IntensityAugmentation`).

Order: rotation, crop, resize, flip, intensity. Every step has a config switch
(``vertkp.config``); at test time only the resize runs.

Coordinates follow detectron2: continuous pixels, x right, y down, pixel i
covering [i, i + 1).
"""
from __future__ import annotations

import numpy as np
from detectron2.data import transforms as T

__all__ = [
    "SafeCrop",
    "PixelOnlyTransform",
    "IntensityAugmentation",
    "build_intensity_pipeline",
    "build_augmentations",
]


class SafeCrop(T.Augmentation):
    """Random crop whose window always contains every box of the image.

    The window size is drawn as detectron2's ``RandomCrop`` does ("relative",
    "relative_range", "absolute" or "absolute_range"), then grown where needed
    to hold the union of the boxes, so no vertebra (boxes enclose their
    corners) is ever cut; its position is uniform among those that hold them.

    Args:
        crop_type: one of the four types above.
        crop_size: "relative": (h, w) fractions of the image; "relative_range":
            (h, w) smallest fractions, each uniform in [fraction, 1];
            "absolute": (h, w) pixels; "absolute_range": (min, max) pixels.
        prob: probability of cropping at all.
    """

    def __init__(self, crop_type: str, crop_size, prob: float = 1.0):
        super().__init__()
        if crop_type not in ("relative", "relative_range", "absolute", "absolute_range"):
            raise ValueError(f"unknown crop type {crop_type!r}")
        self.crop_type, self.crop_size, self.prob = crop_type, tuple(crop_size), float(prob)

    def _size(self, h: int, w: int):
        """Window (height, width) before growing, pixels."""
        a, b = self.crop_size
        if self.crop_type == "relative":
            return int(h * a + 0.5), int(w * b + 0.5)
        if self.crop_type == "relative_range":
            fh, fw = np.random.uniform(a, 1.0), np.random.uniform(b, 1.0)
            return int(h * fh + 0.5), int(w * fw + 0.5)
        if self.crop_type == "absolute":
            return min(int(a), h), min(int(b), w)
        # absolute_range: (a, b) = (min, max) pixels, for height and width alike
        return (int(np.random.randint(min(h, a), min(h, b) + 1)),
                int(np.random.randint(min(w, a), min(w, b) + 1)))

    def get_transform(self, image, boxes=None):
        h, w = image.shape[:2]
        if np.random.rand() >= self.prob:
            return T.NoOpTransform()
        ch, cw = self._size(h, w)
        if boxes is not None and len(boxes):
            b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
            lo = np.floor(np.clip(b[:, :2].min(axis=0), 0, [w, h])).astype(int)  # x0, y0
            hi = np.ceil(np.clip(b[:, 2:].max(axis=0), 0, [w, h])).astype(int)  # x1, y1
        else:
            lo, hi = np.array([w, h]), np.array([0, 0])  # nothing to keep
        cw, ch = max(cw, hi[0] - lo[0], 1), max(ch, hi[1] - lo[1], 1)
        # the window start s must satisfy s <= lo and s + size >= hi, inside the image
        x0 = np.random.randint(max(0, hi[0] - cw), min(lo[0], w - cw) + 1)
        y0 = np.random.randint(max(0, hi[1] - ch), min(lo[1], h - ch) + 1)
        if (x0, y0, cw, ch) == (0, 0, w, h):
            return T.NoOpTransform()
        return T.CropTransform(int(x0), int(y0), int(cw), int(ch), orig_w=w, orig_h=h)


class PixelOnlyTransform(T.Transform):
    """Applies ``fn`` (uint8 image -> uint8 image of the same shape) to the
    image and leaves coordinates, boxes and masks unchanged."""

    def __init__(self, fn):
        super().__init__()
        self.fn = fn

    def apply_image(self, img: np.ndarray) -> np.ndarray:
        return self.fn(img)

    def apply_coords(self, coords: np.ndarray) -> np.ndarray:
        return coords

    def apply_segmentation(self, segmentation: np.ndarray) -> np.ndarray:
        return segmentation

    def inverse(self) -> T.Transform:
        return T.NoOpTransform()


class IntensityAugmentation(T.Augmentation):
    """Pixel-only augmentation by an albumentations pipeline.

    The pipeline is seeded from numpy's global generator at every call (which
    detectron2 reseeds in each data-loader worker), so workers differ and
    ``np.random.seed`` makes it reproducible. A grey image (3 equal channels)
    is augmented as one channel and replicated, so it stays grey.
    """

    def __init__(self, pipeline):
        super().__init__()
        self.pipeline = pipeline

    def get_transform(self, image):
        seed = int(np.random.randint(0, 2**31 - 1))
        pipeline = self.pipeline

        def run(img: np.ndarray) -> np.ndarray:
            pipeline.set_random_seed(seed)
            if img.ndim == 3 and img.shape[2] == 3 and (img[..., 0] == img[..., 1]).all() \
                    and (img[..., 0] == img[..., 2]).all():
                out = pipeline(image=np.ascontiguousarray(img[..., 0]))["image"]
                return np.repeat(out[:, :, None], 3, axis=2)
            return pipeline(image=img)["image"]

        return PixelOnlyTransform(run)


def build_intensity_pipeline(cfg):
    """albumentations ``Compose`` of the enabled intensity transforms of
    ``cfg.INPUT.INTENSITY``, or None when all are off."""
    c = cfg.INPUT.INTENSITY
    if not c.ENABLED:
        return None
    import albumentations as A

    steps = []
    if c.CLAHE_PROB > 0:
        steps.append(A.CLAHE(clip_limit=tuple(c.CLAHE_CLIP_LIMIT), tile_grid_size=(8, 8), p=c.CLAHE_PROB))
    if c.GAMMA_PROB > 0:
        steps.append(A.RandomGamma(gamma_limit=tuple(c.GAMMA_RANGE), p=c.GAMMA_PROB))
    if c.BRIGHTNESS_CONTRAST_PROB > 0:
        steps.append(A.RandomBrightnessContrast(brightness_limit=c.BRIGHTNESS_LIMIT,
                                                contrast_limit=c.CONTRAST_LIMIT,
                                                p=c.BRIGHTNESS_CONTRAST_PROB))
    if c.NOISE_PROB > 0:
        steps.append(A.GaussNoise(std_range=tuple(c.NOISE_STD), p=c.NOISE_PROB))
    if c.BLUR_PROB > 0:
        steps.append(A.GaussianBlur(blur_limit=0, sigma_limit=tuple(c.BLUR_SIGMA), p=c.BLUR_PROB))
    return A.Compose(steps) if steps else None


def build_augmentations(cfg, is_train: bool) -> list:
    """The augmentation list of ``cfg`` (see the module docstring for the order).

    Raises:
        ValueError: INPUT.RANDOM_FLIP is "vertical" (it would silently turn
            superior corners into inferior ones) or not a known value.
    """
    if not is_train:
        return [T.ResizeShortestEdge(cfg.INPUT.MIN_SIZE_TEST, cfg.INPUT.MAX_SIZE_TEST, "choice")]
    augs = []
    rot = cfg.INPUT.ROTATION
    if rot.ENABLED and rot.ANGLE > 0 and rot.PROB > 0:
        rotate = T.RandomRotation([-rot.ANGLE, rot.ANGLE], expand=True, sample_style="range")
        augs.append(T.RandomApply(rotate, prob=rot.PROB) if rot.PROB < 1 else rotate)
    if cfg.INPUT.CROP.ENABLED and cfg.INPUT.CROP.PROB > 0:
        augs.append(SafeCrop(cfg.INPUT.CROP.TYPE, cfg.INPUT.CROP.SIZE, prob=cfg.INPUT.CROP.PROB))
    augs.append(T.ResizeShortestEdge(cfg.INPUT.MIN_SIZE_TRAIN, cfg.INPUT.MAX_SIZE_TRAIN,
                                     cfg.INPUT.MIN_SIZE_TRAIN_SAMPLING))
    flip = cfg.INPUT.RANDOM_FLIP
    if flip == "horizontal":
        augs.append(T.RandomFlip(prob=0.5, horizontal=True, vertical=False))
    elif flip == "vertical":
        raise ValueError(
            "INPUT.RANDOM_FLIP 'vertical' would swap superior and inferior corners without "
            "relabelling them (the flip map only covers left/right): set INPUT.RANDOM_FLIP to "
            "'horizontal' or 'none'")
    elif flip != "none":
        raise ValueError(f"INPUT.RANDOM_FLIP must be 'horizontal' or 'none', got {flip!r}")
    pipeline = build_intensity_pipeline(cfg)
    if pipeline is not None:
        augs.append(IntensityAugmentation(pipeline))
    return augs
