"""vertkp's detectron2 config keys.

``add_vertkp_config(cfg)`` adds every key the project defines to a detectron2
``CfgNode`` (call it after ``detectron2.config.get_cfg()`` and before
``merge_from_file``). Existing detectron2 keys keep their meaning; the
augmentation pipeline reads these detectron2 keys too:

  INPUT.MIN_SIZE_TRAIN / MAX_SIZE_TRAIN / MIN_SIZE_TRAIN_SAMPLING  multi-scale resize
  INPUT.RANDOM_FLIP    "horizontal" or "none" ("vertical" is refused: it would
                       swap superior and inferior corners without relabelling)
  INPUT.CROP.ENABLED / TYPE / SIZE  crop window, grown so that it never cuts a
                       vertebra (see ``vertkp.data.augment.SafeCrop``)
  INPUT.FORMAT         "BGR" (detectron2's ResNet weights) or "RGB" (timm's)
"""
from __future__ import annotations

__all__ = ["add_vertkp_config"]


def add_vertkp_config(cfg) -> None:
    """Add vertkp's keys, with their defaults, to ``cfg`` (a detectron2 CfgNode)."""
    from detectron2.config import CfgNode as CN

    # ---- HRNet backbone (vertkp.modeling.hrnet), used by build_hrnet_fpn_backbone
    cfg.MODEL.HRNET = CN()
    # timm model name of the HRNet ("hrnet_w18", "hrnet_w32", "hrnet_w48", ...).
    cfg.MODEL.HRNET.NAME = "hrnet_w32"
    # timm feature_location: "" = the raw branch outputs (W32: 32, 64, 128, 256 channels),
    # "incre" = after timm's classification "increase" blocks (128, 256, 512, 1024 channels).
    cfg.MODEL.HRNET.FEATURE_LOCATION = ""
    # Feature maps given to the FPN, named by stride: hr2 = 1/4, hr3 = 1/8, hr4 = 1/16, hr5 = 1/32.
    cfg.MODEL.HRNET.OUT_FEATURES = ["hr2", "hr3", "hr4", "hr5"]
    # Normalisation layers of the HRNet: "FrozenBN" (ImageNet statistics, frozen), "BN"
    # (trainable, per GPU), "SyncBN" (trainable, across GPUs) or "GN" (GroupNorm, 32 groups).
    cfg.MODEL.HRNET.NORM = "FrozenBN"
    # Backbone initialisation: "" = random, "imagenet" = timm's hub weights (downloads once),
    # or a path to a local timm checkpoint (.pth / .bin / .safetensors) of the same model.
    cfg.MODEL.HRNET.PRETRAINED = ""

    # ---- Input and augmentation (vertkp.data.augment, vertkp.data.mapper)
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
