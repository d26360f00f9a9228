"""vertkp's datasets in detectron2's DatasetCatalog/MetadataCatalog.

Importing this module registers every dataset of :data:`DATASETS`, the names each dataset's
spec gives (``vertkp.data.datasets``) and the phantoms' (``vertkp.config`` imports it, so
every detectron2-facing part of vertkp does). Registration is lazy:
no file is read until a dataset is used. Files live under ``$VERTKP_DATASETS``
(default ``./datasets``), as read at import; call :func:`register_all` again after
changing it:

  spondylolisthesis_{train,val,test}  spondylolisthesis/coco/{split}.json
  buu_lspine_{lateral,ap}_{train,val} buu_lspine/coco/{view}/{split}.json
  phantoms_{train,val}                phantoms/coco/{split}.json

with image paths relative to the dataset folder (``spondylolisthesis/``,
``buu_lspine/``, ``phantoms/``). Keypoints are loaded by detectron2's
``load_coco_json``, which adds ``vertkp.keypoints.DETECTRON2_KEYPOINT_OFFSET`` (0.5)
to x and y.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.data.datasets import load_coco_json

from ...keypoints import KEYPOINT_CONNECTION_RULES, KEYPOINT_FLIP_MAP, KEYPOINT_NAMES, OKS_SIGMAS
from ..datasets import SPECS

__all__ = ["DATASETS", "IMAGE_EXTRA_KEYS", "ANNOTATION_EXTRA_KEYS", "datasets_root", "register_dataset",
           "register_all", "vertkp_metadata", "DatasetNotConverted"]

# name -> (dataset folder under $VERTKP_DATASETS, json path inside it, command that makes it)
_CONVERT = "vertkp convert"
DATASETS = {name: (spec.folder, json_file, " ".join((_CONVERT, "--dataset", spec.name, *flags, "--root {root}")))
            for spec in SPECS.values() for name, (json_file, flags) in spec.registered.items()}
for _split in ("train", "val"):
    DATASETS[f"phantoms_{_split}"] = (
        "phantoms", f"coco/{_split}.json",
        "vertkp phantoms --layout spondylolisthesis --output {root} --num-images 64 --seed 0 && "
        f"{_CONVERT} --dataset spondylolisthesis --root {{root}}")

IMAGE_EXTRA_KEYS = ("source_stem", "view", "pixel_spacing", "facing")
ANNOTATION_EXTRA_KEYS = ["vertebra_level", "source_label"]


class DatasetNotConverted(FileNotFoundError):
    """A registered dataset whose COCO file has not been made yet."""


def datasets_root() -> Path:
    """``$VERTKP_DATASETS`` (default ``./datasets``), made absolute."""
    return Path(os.environ.get("VERTKP_DATASETS", "datasets")).resolve()


def vertkp_metadata() -> dict:
    """Metadata every vertkp dataset carries (keypoints on needs all of it)."""
    return {
        "thing_classes": ["vertebra"],
        "keypoint_names": list(KEYPOINT_NAMES),
        "keypoint_flip_map": [tuple(p) for p in KEYPOINT_FLIP_MAP],
        "keypoint_connection_rules": list(KEYPOINT_CONNECTION_RULES),
        "keypoint_oks_sigmas": list(OKS_SIGMAS),
        "evaluator_type": "vertkp",
    }


def _load(json_file: Path, image_root: Path, name: str, command: str) -> list:
    if not json_file.is_file():
        raise DatasetNotConverted(
            f"dataset {name!r} needs {json_file}, which does not exist. Make it with:\n  {command}\n"
            "(or point VERTKP_DATASETS at the folder that holds it)"
        )
    dicts = load_coco_json(str(json_file), str(image_root), name, extra_annotation_keys=ANNOTATION_EXTRA_KEYS)
    with open(json_file, encoding="utf-8") as f:
        extras = {im["id"]: im for im in json.load(f)["images"]}
    for d in dicts:
        im = extras[d["image_id"]]
        for key in IMAGE_EXTRA_KEYS:
            d[key] = im.get(key)
    return dicts


def register_dataset(name: str, json_file, image_root, command: str = "") -> None:
    """Register one vertkp COCO file under ``name`` (replacing an earlier one)."""
    json_file, image_root = Path(json_file), Path(image_root)
    if name in DatasetCatalog.list():
        DatasetCatalog.remove(name)
        MetadataCatalog.remove(name)
    DatasetCatalog.register(name, lambda: _load(json_file, image_root, name, command))
    MetadataCatalog.get(name).set(json_file=str(json_file), image_root=str(image_root), **vertkp_metadata())


def register_all(root=None) -> list:
    """Register every dataset of ``DATASETS`` under ``root`` (default
    ``datasets_root()``). Call again after changing VERTKP_DATASETS.

    Returns:
        the registered names.
    """
    root = Path(root).resolve() if root is not None else datasets_root()
    for name, (folder, rel, command) in DATASETS.items():
        register_dataset(name, root / folder / rel, root / folder, command.format(root=root / folder))
    return list(DATASETS)


register_all()
