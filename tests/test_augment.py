"""Augmentations keep corners on their image features; the mapper; config switches."""
import numpy as np
import pytest

from tests.helpers import DETECTRON2_SKIP_REASON

pytest.importorskip("detectron2", reason=DETECTRON2_SKIP_REASON)
from detectron2.config import get_cfg  # noqa: E402
from detectron2.data import transforms as T  # noqa: E402
from detectron2.structures import BoxMode  # noqa: E402

from vertkp.config import add_vertkp_config  # noqa: E402
from vertkp.data.loading.augment import (  # noqa: E402
    IntensityAugmentation,
    PixelOnlyTransform,
    SafeCrop,
    build_augmentations,
    build_intensity_pipeline,
)
from vertkp.data.loading.mapper import VertebraDatasetMapper, transform_vertebra_annotation  # noqa: E402

FLIP_INDICES = np.array([1, 0, 3, 2])  # TL<->TR, BL<->BR
# Two vertebrae, corners TL, TR, BL, BR as pixel indices (x, y) of the dots drawn there.
QUADS = np.array([[[60, 40], [118, 34], [64, 80], [122, 76]],
                  [[70, 110], [130, 112], [66, 152], [128, 156]]], dtype=np.float64)
H, W = 200, 180


def _cfg():
    cfg = get_cfg()
    add_vertkp_config(cfg)
    return cfg


def _dots_image():
    """Grey uint8 image [H, W, 3] with a Gaussian dot (sigma 1.6 px) centred on every corner."""
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float64)
    img = np.full((H, W), 10.0)
    for x, y in QUADS.reshape(-1, 2):
        img += 230.0 * np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / (2 * 1.6 ** 2))
    return np.repeat(np.clip(img, 0, 255).astype(np.uint8)[:, :, None], 3, axis=2)


def _annotations():
    """detectron2 annotation dicts: keypoints carry the +0.5 of the continuous pixel convention."""
    annos = []
    for q in QUADS:
        kp = np.concatenate([q + 0.5, np.full((4, 1), 2.0)], axis=1)
        lo, hi = q.min(axis=0) - 8, q.max(axis=0) + 8
        annos.append({"keypoints": kp.reshape(-1).tolist(), "bbox": [*lo, *(hi - lo)], "bbox_mode": BoxMode.XYWH_ABS,
                      "category_id": 0, "iscrowd": 0})
    return annos


def _dot_centres(image, near, radius=5):
    """Intensity-weighted centre (continuous coords: index + 0.5) of the dot around each point of ``near``."""
    g = image[:, :, 0].astype(np.float64)
    g = g - np.median(g)
    out = []
    for x, y in near:
        x0, y0 = int(round(x - 0.5)) - radius, int(round(y - 0.5)) - radius
        win = g[max(y0, 0):y0 + 2 * radius + 1, max(x0, 0):x0 + 2 * radius + 1]
        win = np.where(win > 0.2 * win.max(), win, 0.0)
        ys, xs = np.mgrid[0:win.shape[0], 0:win.shape[1]]
        out.append([(xs * win).sum() / win.sum() + max(x0, 0) + 0.5, (ys * win).sum() / win.sum() + max(y0, 0) + 0.5])
    return np.array(out)


def _apply(augs, image=None, annos=None):
    image = _dots_image() if image is None else image
    annos = _annotations() if annos is None else annos
    boxes = np.array([BoxMode.convert(a["bbox"], a["bbox_mode"], BoxMode.XYXY_ABS) for a in annos])
    aug_input = T.AugInput(image, boxes=boxes)
    tfm = T.AugmentationList(augs)(aug_input)
    out = [transform_vertebra_annotation(a, tfm, aug_input.image.shape[:2], FLIP_INDICES) for a in annos]
    return aug_input.image, out, tfm


def _assert_on_dots(image, annos, tol=0.3):
    kps = np.concatenate([a["keypoints"] for a in annos])
    assert (kps[:, 2] == 2).all(), "a corner was dropped"
    found = _dot_centres(image, kps[:, :2])
    err = np.linalg.norm(found - kps[:, :2], axis=1)
    assert err.max() < tol, f"corners moved off their dots by up to {err.max():.2f} px"
    for a in annos:  # the box holds every corner
        k, b = a["keypoints"], a["bbox"]
        assert (k[:, :2] >= b[:2]).all() and (k[:, :2] <= b[2:]).all()


def test_dots_sit_on_corners_without_augmentation():
    image, annos, _ = _apply([])
    _assert_on_dots(image, annos, tol=0.05)


@pytest.mark.parametrize("aug", [
    T.Resize((120, 108)),
    T.Resize((330, 297)),
    T.ResizeShortestEdge((96, 256), max_size=1000, sample_style="range"),
], ids=["resize_down", "resize_up", "multi_scale"])
def test_resize_keeps_corners_on_dots(aug):
    np.random.seed(0)
    image, annos, _ = _apply([aug])
    tol = 0.3 if image.shape[0] >= H else 0.45  # a downscaled dot is a few pixels wide
    _assert_on_dots(image, annos, tol=tol)


@pytest.mark.parametrize("angle", [-10.0, 4.0, 10.0])
def test_rotation_keeps_corners_on_dots_and_in_the_image(angle):
    image, annos, _ = _apply([T.RandomRotation([angle, angle], expand=True, sample_style="range")])
    assert image.shape[:2] != (H, W)  # the canvas grew
    _assert_on_dots(image, annos)


def test_rotation_recomputes_boxes_from_the_moved_corners():
    from vertkp.data.conversion.coco import BOX_PAD_FRACTION

    _, annos, _ = _apply([T.RandomRotation([10.0, 10.0], expand=True, sample_style="range")])
    for a in annos:
        k, b = a["keypoints"][:, :2], a["bbox"]
        margin = BOX_PAD_FRACTION * (k.max(axis=0) - k.min(axis=0)).max()
        np.testing.assert_allclose(b, [*(k.min(axis=0) - margin), *(k.max(axis=0) + margin)], atol=1e-6)


def test_horizontal_flip_keeps_corners_on_dots_and_swaps_left_right():
    image, annos, _ = _apply([T.RandomFlip(prob=1.0, horizontal=True, vertical=False)])
    _assert_on_dots(image, annos)
    for a, q in zip(annos, QUADS):
        k = a["keypoints"][:, :2]
        mirrored = np.stack([W - (q[:, 0] + 0.5), q[:, 1] + 0.5], axis=1)
        np.testing.assert_allclose(k, mirrored[[1, 0, 3, 2]])  # TL is the old TR mirrored, and so on
        assert k[0, 0] < k[1, 0] and k[2, 0] < k[3, 0]  # TL left of TR, BL left of BR


def test_safe_crop_never_cuts_a_vertebra():
    np.random.seed(0)
    for crop_type, size in [("relative_range", (0.3, 0.3)), ("relative", (0.2, 0.2)), ("absolute", (30, 30)),
                            ("absolute_range", (20, 90))]:
        for _ in range(20):
            image, annos, tfm = _apply([SafeCrop(crop_type, size, prob=1.0)])
            assert image.shape[0] <= H and image.shape[1] <= W
            _assert_on_dots(image, annos)
    # the window is only as large as it must be: it hugs the union of the boxes at most
    crop = SafeCrop("relative", (0.1, 0.1), prob=1.0).get_transform(_dots_image(), np.array([[50, 30, 140, 170]]))
    assert (crop.x0, crop.y0, crop.w, crop.h) == (50, 30, 90, 140)


def test_safe_crop_without_boxes_and_with_prob_zero():
    np.random.seed(0)
    t = SafeCrop("relative", (0.5, 0.5), prob=1.0).get_transform(_dots_image(), np.zeros((0, 4)))
    assert (t.w, t.h) == (90, 100)
    assert isinstance(SafeCrop("relative", (0.5, 0.5), prob=0.0).get_transform(_dots_image(), None), T.NoOpTransform)


@pytest.mark.parametrize("seed", range(6))
def test_full_training_pipeline_keeps_corners_on_dots(seed):
    cfg = _cfg()
    cfg.INPUT.INTENSITY.ENABLED = False  # positions are measured on the clean dots
    cfg.INPUT.ROTATION.PROB = 1.0
    cfg.INPUT.CROP.ENABLED, cfg.INPUT.CROP.PROB, cfg.INPUT.CROP.SIZE = True, 1.0, [0.5, 0.5]
    cfg.INPUT.MIN_SIZE_TRAIN, cfg.INPUT.MAX_SIZE_TRAIN = (160, 240, 320), 1000
    np.random.seed(seed)
    image, annos, tfm = _apply(build_augmentations(cfg, is_train=True))
    _assert_on_dots(image, annos, tol=0.35)
    flipped = sum(isinstance(t, T.HFlipTransform) for t in tfm) % 2 == 1
    for a in annos:  # after any flip, TL stays left of TR along the endplate
        k = a["keypoints"][:, :2]
        assert k[0, 0] < k[1, 0] and k[2, 0] < k[3, 0], f"names not swapped (flipped={flipped})"


def test_intensity_changes_pixels_only_and_keeps_grey():
    cfg = _cfg()
    for key in ("CLAHE_PROB", "GAMMA_PROB", "BRIGHTNESS_CONTRAST_PROB", "NOISE_PROB", "BLUR_PROB"):
        setattr(cfg.INPUT.INTENSITY, key, 1.0)
    aug = IntensityAugmentation(build_intensity_pipeline(cfg))
    image = _dots_image()
    np.random.seed(0)
    t = aug.get_transform(image)
    assert isinstance(t, PixelOnlyTransform)
    out = t.apply_image(image)
    assert out.shape == image.shape and out.dtype == np.uint8 and not np.array_equal(out, image)
    assert (out[..., 0] == out[..., 1]).all() and (out[..., 0] == out[..., 2]).all()
    pts = np.array([[1.5, 2.5], [100.25, 7.75]])
    np.testing.assert_array_equal(t.apply_coords(pts.copy()), pts)
    np.random.seed(0)
    np.testing.assert_array_equal(aug.get_transform(image).apply_image(image), out)  # seeded by numpy


def test_every_augmentation_is_switchable():
    cfg = _cfg()
    kinds = lambda c: [type(a).__name__ for a in build_augmentations(c, is_train=True)]  # noqa: E731
    assert kinds(cfg) == ["RandomApply", "ResizeShortestEdge", "RandomFlip", "IntensityAugmentation"]
    cfg.INPUT.CROP.ENABLED = True
    assert kinds(cfg) == ["RandomApply", "SafeCrop", "ResizeShortestEdge", "RandomFlip", "IntensityAugmentation"]
    cfg.INPUT.ROTATION.ENABLED, cfg.INPUT.CROP.ENABLED, cfg.INPUT.RANDOM_FLIP = False, False, "none"
    cfg.INPUT.INTENSITY.ENABLED = True
    for key in ("CLAHE_PROB", "GAMMA_PROB", "BRIGHTNESS_CONTRAST_PROB", "NOISE_PROB"):
        setattr(cfg.INPUT.INTENSITY, key, 0.0)
    assert [type(t).__name__ for t in build_intensity_pipeline(cfg).transforms] == ["GaussianBlur"]
    cfg.INPUT.INTENSITY.ENABLED = False
    assert kinds(cfg) == ["ResizeShortestEdge"]
    assert [type(a).__name__ for a in build_augmentations(cfg, is_train=False)] == ["ResizeShortestEdge"]
    cfg.INPUT.RANDOM_FLIP = "vertical"
    with pytest.raises(ValueError, match="swap superior and inferior"):
        build_augmentations(cfg, is_train=True)


def test_mapper_on_phantoms(registered_phantoms):
    """The mapper on real phantom dicts: grey 3-channel tensor, 4 corners per vertebra inside boxes."""
    from detectron2.data import DatasetCatalog

    cfg = _cfg()
    cfg.MODEL.KEYPOINT_ON = True
    cfg.DATASETS.TRAIN = ("phantoms_train",)
    cfg.INPUT.CROP.ENABLED = True
    cfg.INPUT.MIN_SIZE_TRAIN, cfg.INPUT.MAX_SIZE_TRAIN = (128,), 256
    mapper = VertebraDatasetMapper(cfg, is_train=True)
    np.random.seed(1)
    for d in DatasetCatalog.get("phantoms_train")[:3]:
        out = mapper(d)
        img, inst = out["image"], out["instances"]
        assert img.shape[0] == 3 and min(img.shape[1:]) == 128
        assert (img[0] == img[1]).all() and (img[0] == img[2]).all()
        assert len(inst) == len(d["annotations"]) and inst.gt_keypoints.tensor.shape[1:] == (4, 3)
        k, b = inst.gt_keypoints.tensor, inst.gt_boxes.tensor
        assert (k[..., 2] > 0).all()
        assert (k[..., 0] >= b[:, None, 0]).all() and (k[..., 0] <= b[:, None, 2]).all()
    test = VertebraDatasetMapper(cfg, is_train=False)(DatasetCatalog.get("phantoms_train")[0])
    assert "instances" not in test and "annotations" not in test
