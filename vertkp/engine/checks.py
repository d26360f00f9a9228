"""Checks of a training config against the common Keypoint R-CNN pitfalls.

Each failure raises :class:`ConfigError` whose message says what to change.
"""
from __future__ import annotations

from detectron2.data import DatasetCatalog, MetadataCatalog

from ..config import ConfigError
from ..data.loading.registration import DATASETS, DatasetNotConverted
from ..keypoint_decoding import SUBPIXEL_METHODS
from ..keypoints import KEYPOINT_FLIP_MAP, KEYPOINT_NAMES, NUM_KEYPOINTS, OKS_SIGMAS
from ..modeling.test_time_augmentation import tta_mode

__all__ = ["ConfigError", "check_config"]


def _check_metadata(name: str, for_training: bool) -> None:
    if name not in DatasetCatalog.list():
        raise ConfigError(
            f"dataset {name!r} is not registered. vertkp registers {sorted(DATASETS)}; register "
            "another COCO file with vertkp.data.loading.registration.register_dataset(name, json_file, image_root)")
    meta = MetadataCatalog.get(name)
    names = list(getattr(meta, "keypoint_names", []) or [])
    if names != list(KEYPOINT_NAMES):
        raise ConfigError(
            f"dataset {name!r} has keypoint_names {names or 'missing'}; vertkp's model predicts "
            f"{list(KEYPOINT_NAMES)} in that order. Register the dataset with "
            "vertkp.data.loading.registration.register_dataset, which sets the metadata")
    if for_training:
        flip = [tuple(p) for p in (getattr(meta, "keypoint_flip_map", None) or [])]
        if sorted(flip) != sorted(KEYPOINT_FLIP_MAP):
            raise ConfigError(
                f"dataset {name!r} has keypoint_flip_map {flip or 'missing'}; detectron2 needs it whenever "
                f"keypoints are on (even with flipping off) and it must be {list(KEYPOINT_FLIP_MAP)}: "
                f"set MetadataCatalog.get({name!r}).keypoint_flip_map, or register the dataset with "
                "vertkp.data.loading.registration.register_dataset")


def check_config(cfg, *, training: bool = True, load_datasets: bool = True) -> None:
    """Raise :class:`ConfigError` for a config that would fail or silently mislearn.

    Checks: keypoints on with 4 keypoints and 1 class; one OKS sigma per
    keypoint; no vertical flip; test-time augmentation keys vertkp can run (``TEST.AUG``) and a known sub-pixel method; every dataset registered with vertkp's
    keypoint names (and flip map, for training); and, with
    ``load_datasets``, that each dataset file exists (the error of a
    dataset not converted yet carries the command that makes it).
    """
    if not cfg.MODEL.KEYPOINT_ON:
        raise ConfigError("MODEL.KEYPOINT_ON is False: vertkp predicts corners, set MODEL.KEYPOINT_ON True")
    k = cfg.MODEL.ROI_KEYPOINT_HEAD.NUM_KEYPOINTS
    if k != NUM_KEYPOINTS:
        raise ConfigError(f"MODEL.ROI_KEYPOINT_HEAD.NUM_KEYPOINTS is {k}; vertkp has {NUM_KEYPOINTS} corners "
                          f"({', '.join(KEYPOINT_NAMES)}): set it to {NUM_KEYPOINTS}")
    if cfg.MODEL.ROI_HEADS.NUM_CLASSES != 1:
        raise ConfigError(f"MODEL.ROI_HEADS.NUM_CLASSES is {cfg.MODEL.ROI_HEADS.NUM_CLASSES}; vertkp has one "
                          "class ('vertebra'): set it to 1")
    sigmas = list(cfg.TEST.KEYPOINT_OKS_SIGMAS)
    if len(sigmas) != NUM_KEYPOINTS or any(not isinstance(s, (int, float)) or s <= 0 for s in sigmas):
        raise ConfigError(
            f"TEST.KEYPOINT_OKS_SIGMAS is {sigmas}; it must be a flat list of {NUM_KEYPOINTS} positive numbers, "
            f"one per corner (vertkp.keypoints.OKS_SIGMAS: {list(OKS_SIGMAS)}); with COCO's 17 sigmas "
            "the keypoint AP fails")
    if cfg.INPUT.RANDOM_FLIP not in ("horizontal", "none"):
        raise ConfigError(
            f"INPUT.RANDOM_FLIP is {cfg.INPUT.RANDOM_FLIP!r}: set it to 'horizontal' or 'none' (a vertical flip "
            "would swap superior and inferior corners without relabelling them)")
    try:
        tta_mode(cfg)
    except ValueError as e:
        raise ConfigError(str(e)) from None
    if cfg.MODEL.ROI_KEYPOINT_HEAD.SUBPIXEL not in SUBPIXEL_METHODS:
        raise ConfigError(f"MODEL.ROI_KEYPOINT_HEAD.SUBPIXEL is {cfg.MODEL.ROI_KEYPOINT_HEAD.SUBPIXEL!r}; set it to "
                          f"one of {', '.join(SUBPIXEL_METHODS)}")
    names = (list(cfg.DATASETS.TRAIN) if training else []) + list(cfg.DATASETS.TEST)
    if training and not cfg.DATASETS.TRAIN:
        raise ConfigError("DATASETS.TRAIN is empty: name the registered datasets to train on")
    for name in names:
        _check_metadata(name, for_training=training and name in cfg.DATASETS.TRAIN)
    if load_datasets:
        for name in dict.fromkeys(names):
            try:
                dicts = DatasetCatalog.get(name)
            except DatasetNotConverted as e:
                raise ConfigError(str(e)) from e
            if name in cfg.DATASETS.TRAIN and training and not any(d.get("annotations") for d in dicts):
                raise ConfigError(f"training dataset {name!r} has no annotated image")
