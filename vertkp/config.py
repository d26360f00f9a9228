"""vertkp's detectron2 config: its keys, and building a run's config from a file.

Importing this module registers vertkp's datasets (``vertkp.data.loading.registration``)
and its timm backbone (``vertkp.modeling.timm_backbone``) with detectron2, so that

    from detectron2.config import get_cfg
    from detectron2.modeling import build_model
    from vertkp.config import add_vertkp_config

    cfg = get_cfg()
    add_vertkp_config(cfg)
    cfg.merge_from_file("configs/kprcnn_hrnet_w32.yaml")
    model = build_model(cfg)

works with nothing else imported (``build_cfg`` does the same in one call).

``add_vertkp_config(cfg)`` adds every key the project defines (call it after
``get_cfg()`` and before ``merge_from_file``). Existing detectron2 keys keep
their meaning; the augmentation pipeline reads these detectron2 keys too:

  INPUT.MIN_SIZE_TRAIN / MAX_SIZE_TRAIN / MIN_SIZE_TRAIN_SAMPLING  multi-scale resize
  INPUT.MIN_SIZE_TEST / MAX_SIZE_TEST  the one test-time resize (training's
                       evaluation and ``vertkp predict`` alike)
  TEST.AUG.ENABLED / FLIP / MIN_SIZES  test-time augmentation
                       (``vertkp.modeling.test_time_augmentation``)
  INPUT.RANDOM_FLIP    "horizontal" or "none" ("vertical" is refused: it would
                       swap superior and inferior corners without relabelling)
  INPUT.CROP.ENABLED / TYPE / SIZE  crop window, grown so that it never cuts a
                       vertebra (see ``vertkp.data.loading.augment.SafeCrop``)
  INPUT.FORMAT         "BGR" (detectron2's ResNet weights) or "RGB" (timm's)
"""
from __future__ import annotations

import logging
import os

import torch
from detectron2.config import CfgNode as CN
from detectron2.config import get_cfg

from .modeling import keypoint_head, timm_backbone  # noqa: F401  (register the backbone and the keypoint head)
from .data.loading import registration  # noqa: F401  (registers vertkp's datasets)

__all__ = ["ConfigError", "REMOVED_KEYS", "add_vertkp_config", "build_cfg", "resolve_device"]

# Keys vertkp once had -> what replaces each, told to a config file or command line that still sets one.
REMOVED_KEYS = {
    "MODEL.TIMM_HRNET": (
        "it is MODEL.TIMM now, with the same keys, as any timm model can be the backbone: BACKBONE.NAME "
        "\"build_timm_fpn_backbone\" and the feature names c2..c5 (were hr2..hr5) in TIMM.OUT_FEATURES and "
        "FPN.IN_FEATURES (configs/kprcnn_hrnet_w32.yaml)"),
    "MODEL.TIMM.PRETRAINED": (
        "ImageNet weights come through MODEL.WEIGHTS, as for every backbone: `vertkp download hrnet-w32-imagenet` "
        "writes weights/hrnet_w32_imagenet.pth (the file configs/kprcnn_hrnet_w32.yaml names), `vertkp "
        "convert-weights` converts a timm checkpoint you have; MODEL.WEIGHTS \"\" starts from random weights"),
    "VERTKP.TTA": (
        "test-time augmentation is set by detectron2's TEST.AUG keys (ENABLED, FLIP, MIN_SIZES; "
        "vertkp.modeling.test_time_augmentation); `vertkp predict --tta none|flip|flip,scale` sets them"),
    "VERTKP.TTA_SCALES": (
        "the sizes of test-time augmentation are detectron2's TEST.AUG.MIN_SIZES (shortest edges, px; "
        "vertkp.modeling.test_time_augmentation)"),
}


class ConfigError(ValueError):
    """A config that cannot train or evaluate vertkp's model as it stands; the message says what to change."""


def add_vertkp_config(cfg) -> None:
    """Add vertkp's keys, with their defaults, to ``cfg`` (a detectron2 CfgNode)."""
    # ---- a timm model as the backbone (vertkp.modeling.timm_backbone), read by build_timm_fpn_backbone.
    cfg.MODEL.TIMM = CN()
    # timm model name ("hrnet_w32", "mobilenetv4_conv_small", ...): features at strides 2..32.
    cfg.MODEL.TIMM.NAME = "hrnet_w32"
    # timm feature_location: "" = the model's stage outputs (hrnet_w32: HRNet's branches, 32, 64, 128,
    # 256 channels); HRNet's "incre" = after its classification "increase" blocks (128..1024 channels).
    cfg.MODEL.TIMM.FEATURE_LOCATION = ""
    # Feature maps given to the FPN, named by stride: c2 = 1/4, c3 = 1/8, c4 = 1/16, c5 = 1/32.
    cfg.MODEL.TIMM.OUT_FEATURES = ["c2", "c3", "c4", "c5"]
    # Normalisation layers of the timm model: "FrozenBN" (ImageNet statistics, frozen), "BN"
    # (trainable, per GPU), "SyncBN" (trainable, across GPUs) or "GN" (GroupNorm, 32 groups).
    cfg.MODEL.TIMM.NORM = "FrozenBN"
    # (No weights key: ImageNet weights come through MODEL.WEIGHTS, vertkp.modeling.weights.)

    # ---- Input and augmentation (vertkp.data.loading.augment, vertkp.data.loading.mapper)
    # Convert every image to one luminance channel replicated 3 times (X-rays are grey;
    # some exports carry a colour tint that would otherwise be a spurious cue).
    cfg.INPUT.GRAYSCALE = True
    # Probability of the (vertebra-preserving) crop when INPUT.CROP.ENABLED, in [0, 1].
    cfg.INPUT.CROP.PROB = 0.5
    cfg.INPUT.ROTATION = CN()
    # Random in-plane rotation about the image centre; the canvas grows so no corner leaves it.
    cfg.INPUT.ROTATION.ENABLED = True
    # Largest rotation angle, degrees; the angle is uniform in [-ANGLE, ANGLE].
    cfg.INPUT.ROTATION.ANGLE = 10.0
    # Probability of rotating an image, in [0, 1].
    cfg.INPUT.ROTATION.PROB = 0.5
    # Pixel-only intensity transforms (albumentations); boxes and corners are untouched.
    cfg.INPUT.INTENSITY = CN()
    # Master switch of all intensity transforms below.
    cfg.INPUT.INTENSITY.ENABLED = True
    # CLAHE probability, in [0, 1].
    cfg.INPUT.INTENSITY.CLAHE_PROB = 0.3
    # CLAHE clip limit range, [low, high] (OpenCV units; 1 = no clipping).
    cfg.INPUT.INTENSITY.CLAHE_CLIP_LIMIT = [1.0, 3.0]
    # Gamma probability, in [0, 1].
    cfg.INPUT.INTENSITY.GAMMA_PROB = 0.3
    # Gamma range, [low, high] in percent (100 = identity).
    cfg.INPUT.INTENSITY.GAMMA_RANGE = [70.0, 150.0]
    # Brightness/contrast probability, in [0, 1].
    cfg.INPUT.INTENSITY.BRIGHTNESS_CONTRAST_PROB = 0.5
    # Largest brightness shift, fraction of the full intensity range.
    cfg.INPUT.INTENSITY.BRIGHTNESS_LIMIT = 0.2
    # Largest contrast change, fraction (0.2 = contrast x [0.8, 1.2]).
    cfg.INPUT.INTENSITY.CONTRAST_LIMIT = 0.2
    # Gaussian noise probability, in [0, 1].
    cfg.INPUT.INTENSITY.NOISE_PROB = 0.3
    # Gaussian noise standard deviation range, [low, high], fraction of 255.
    cfg.INPUT.INTENSITY.NOISE_STD = [0.01, 0.04]
    # Gaussian blur probability, in [0, 1].
    cfg.INPUT.INTENSITY.BLUR_PROB = 0.2
    # Gaussian blur sigma range, [low, high], pixels of the augmented image.
    cfg.INPUT.INTENSITY.BLUR_SIGMA = [0.3, 1.0]

    # ---- Training and evaluation (vertkp.engine)
    cfg.VERTKP = CN()
    # Metric the best-checkpoint hook tracks (a key of the evaluation results, "/"-joined).
    cfg.VERTKP.BEST_METRIC = "vertkp/MRE_px"
    # "min" keeps the lowest value of BEST_METRIC (errors), "max" the highest (F1, AP).
    cfg.VERTKP.BEST_MODE = "min"
    # Also run detectron2's COCOEvaluator (box and keypoint AP with the project's OKS sigmas).
    cfg.VERTKP.COCO_EVAL = True
    # Let VertebraKeypointEvaluator draw its PNG plots into OUTPUT_DIR/inference/<dataset>.
    cfg.VERTKP.EVAL_PLOTS = True

    # ---- Keypoint decoding (vertkp.modeling.keypoint_head, ROI_KEYPOINT_HEAD.NAME "VertebraKeypointHead")
    # Sub-pixel refinement of each heatmap's peak: "none" (detectron2's argmax), "dark" (Taylor
    # expansion of the logits around the peak) or "soft_argmax" (local expectation around the peak).
    cfg.MODEL.ROI_KEYPOINT_HEAD.SUBPIXEL = "dark"


def resolve_device(cfg) -> None:
    """Run on the CPU when ``MODEL.DEVICE`` asks for CUDA and there is none, and turn
    off AMP there (detectron2's AMP trainer is CUDA-only). ``cfg`` must be unfrozen."""
    logger = logging.getLogger(__name__)
    if cfg.MODEL.DEVICE.startswith("cuda") and not torch.cuda.is_available():
        logger.warning("CUDA is not available: running on the CPU (MODEL.DEVICE cpu)")
        cfg.MODEL.DEVICE = "cpu"
    if cfg.MODEL.DEVICE == "cpu" and cfg.SOLVER.AMP.ENABLED:
        logger.warning("SOLVER.AMP.ENABLED is ignored on the CPU: training in float32")
        cfg.SOLVER.AMP.ENABLED = False


def build_cfg(config_file: str, opts=(), *, freeze: bool = True):
    """detectron2 defaults + vertkp keys + ``config_file`` (with its ``_BASE_``
    chain) + ``opts`` (KEY VALUE pairs), with the device resolved.

    Raises:
        FileNotFoundError: ``config_file`` does not exist.
        ConfigError: it (or ``opts``) sets a key vertkp no longer has (:data:`REMOVED_KEYS`).
    """
    if not os.path.isfile(config_file):
        raise FileNotFoundError(f"config file {config_file} does not exist (configs/ holds vertkp's)")
    cfg = get_cfg()
    add_vertkp_config(cfg)
    try:
        cfg.merge_from_file(config_file)
        cfg.merge_from_list(list(opts))
    except (KeyError, AssertionError) as e:  # yacs: KeyError from a file, AssertionError from a list
        removed = next((k for k in sorted(REMOVED_KEYS, key=len, reverse=True) if k in str(e)), None)
        if removed is None:
            raise
        raise ConfigError(f"{removed} is no longer a vertkp config key: {REMOVED_KEYS[removed]}") from None
    resolve_device(cfg)
    if freeze:
        cfg.freeze()
    return cfg
