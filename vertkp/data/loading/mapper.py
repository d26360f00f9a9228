"""The dataset mapper: a vertkp dataset dict to the model's input.

Reads the image with vertkp's one decoder (``vertkp.data.imaging.images``: EXIF
orientation applied, 16-bit windowed, grey X-rays replicated to 3 channels),
runs the augmentations of ``vertkp.data.loading.augment`` with every vertebra's box passed
along (the crop needs them), then moves the corners with the same transforms:
keypoints by detectron2 (which swaps TL<->TR and BL<->BR after a horizontal
flip, by the flip map), boxes recomputed from the moved corners by the
converter's own rule (``vertkp.data.conversion.coco``: tight box of the corners grown by
10% of its longer side, clipped to the image), so a rotated vertebra gets the
box it would have had if it had been annotated that way. At test time the
annotations are dropped (evaluators read the registered dataset), and
:meth:`VertebraDatasetMapper.image_input` gives ``vertkp predict`` the same
model input from an image array (the one test-time resize).

Coordinates: detectron2's, continuous pixels with pixel i covering [i, i + 1)
(the registered keypoints already carry the +0.5 shift).
"""
from __future__ import annotations

import copy
import logging

import numpy as np
import torch
from detectron2.config import configurable
from detectron2.data import detection_utils as utils
from detectron2.data import transforms as T
from detectron2.structures import BoxMode, Keypoints

from ...keypoints import NUM_KEYPOINTS
from ..conversion.coco import body_outline, padded_box
from ..imaging.images import decode_image, model_image
from .augment import build_augmentations

__all__ = ["VertebraDatasetMapper", "transform_vertebra_annotation"]

_FLIPPED_FACING = {"left": "right", "right": "left"}


def transform_vertebra_annotation(annotation: dict, transforms, image_size, keypoint_hflip_indices=None) -> dict:
    """Move one vertebra's keypoints and box by ``transforms``.

    Args:
        annotation: detectron2 annotation dict with ``keypoints`` (12 floats,
            x, y, v in TL, TR, BL, BR order), ``bbox`` and ``bbox_mode``.
        transforms: a detectron2 ``TransformList``.
        image_size: (height, width) of the transformed image, pixels.
        keypoint_hflip_indices: int array [4] from the flip map.

    Returns:
        a new dict: ``keypoints`` float array [4, 3], ``bbox`` XYXY_ABS [4].
        The box is recomputed from the moved corners when they are all 4
        labelled, or TL and TR only (BUU S1); otherwise the old box's corners
        are moved and enclosed.
    """
    a = dict(annotation)
    kps = utils.transform_keypoint_annotations(a["keypoints"], transforms, image_size, keypoint_hflip_indices)
    labelled = kps[:, 2] > 0
    h, w = image_size
    if labelled.all() or (labelled.tolist() == [True, True, False, False]):
        x0, y0, bw, bh = padded_box(body_outline(kps[:, :2], labelled), w, h)
        box = np.array([x0, y0, x0 + bw, y0 + bh])
    else:
        box = BoxMode.convert(a["bbox"], a["bbox_mode"], BoxMode.XYXY_ABS)
        box = transforms.apply_box(np.array([box]))[0].clip(min=0)
        box = np.minimum(box, [w, h, w, h])
    a["keypoints"], a["bbox"], a["bbox_mode"] = kps, box, BoxMode.XYXY_ABS
    return a


class VertebraDatasetMapper:
    """Callable mapping one vertkp dataset dict to detectron2's model input.

    Output: the input dict plus ``image`` (uint8 Tensor[3, H, W] in
    ``image_format``) and, when training, ``instances`` (``gt_boxes``,
    ``gt_classes``, ``gt_keypoints`` [N, 4, 3]). ``facing`` is swapped after a
    horizontal flip.
    """

    @configurable
    def __init__(self, is_train: bool, *, augmentations: list, image_format: str = "BGR",
                 grayscale: bool = True, keypoint_hflip_indices=None):
        """
        Args:
            is_train: keep and transform annotations.
            augmentations: detectron2 ``Augmentation`` list.
            image_format: channel order of the model input ("BGR" or "RGB").
            grayscale: replicate the luminance into 3 channels (``INPUT.GRAYSCALE``).
            keypoint_hflip_indices: int array [4]; needed when a horizontal
                flip is among the augmentations.
        """
        self.is_train = is_train
        self.augmentations = T.AugmentationList(augmentations)
        self.image_format = image_format
        self.grayscale = grayscale
        self.keypoint_hflip_indices = keypoint_hflip_indices
        mode = "training" if is_train else "inference"
        logging.getLogger(__name__).info(f"[VertebraDatasetMapper] augmentations used in {mode}: {augmentations}")

    @classmethod
    def from_config(cls, cfg, is_train: bool = True):
        hflip = None
        if is_train and cfg.MODEL.KEYPOINT_ON:
            hflip = utils.create_keypoint_hflip_indices(cfg.DATASETS.TRAIN)
        return {
            "is_train": is_train,
            "augmentations": build_augmentations(cfg, is_train),
            "image_format": cfg.INPUT.FORMAT,
            "grayscale": cfg.INPUT.GRAYSCALE,
            "keypoint_hflip_indices": hflip,
        }

    def image_input(self, image: np.ndarray) -> dict:
        """Test-time model input of a decoded image (uint8 [H, W] or [H, W, 3] in
        ``image_format``): {"image": uint8 Tensor[3, h, w] after the test resize,
        "height": H, "width": W} (outputs come back in the input's pixels)."""
        image = model_image(image, self.image_format, self.grayscale)
        h, w = image.shape[:2]
        aug_input = T.AugInput(image)
        self.augmentations(aug_input)
        return {"image": torch.as_tensor(np.ascontiguousarray(aug_input.image.transpose(2, 0, 1))),
                "height": h, "width": w}

    def __call__(self, dataset_dict: dict) -> dict:
        d = copy.deepcopy(dataset_dict)
        image = model_image(decode_image(d["file_name"], self.image_format), self.image_format, self.grayscale)
        utils.check_image_size(d, image)
        annos = [a for a in d.pop("annotations", []) if a.get("iscrowd", 0) == 0] if self.is_train else []
        boxes = np.array([BoxMode.convert(a["bbox"], a["bbox_mode"], BoxMode.XYXY_ABS) for a in annos],
                         dtype=np.float64).reshape(-1, 4)
        aug_input = T.AugInput(image, boxes=boxes)
        transforms = self.augmentations(aug_input)
        image = aug_input.image
        h, w = image.shape[:2]
        d["image"] = torch.as_tensor(np.ascontiguousarray(image.transpose(2, 0, 1)))
        if not self.is_train:
            d.pop("annotations", None)
            return d
        if sum(isinstance(t, T.HFlipTransform) for t in transforms) % 2 == 1 and d.get("facing"):
            d["facing"] = _FLIPPED_FACING.get(d["facing"], d["facing"])
        for a in annos:
            if len(a.get("keypoints", ())) != 3 * NUM_KEYPOINTS:
                raise ValueError(f"{d['file_name']}: an annotation has {len(a.get('keypoints', ())) // 3} "
                                 f"keypoints; vertkp expects {NUM_KEYPOINTS} (TL, TR, BL, BR), each x, y, v")
        annos = [transform_vertebra_annotation(a, transforms, (h, w), self.keypoint_hflip_indices)
                 for a in annos]
        keypoints = np.stack([a.pop("keypoints") for a in annos]) if annos else np.zeros((0, NUM_KEYPOINTS, 3))
        instances = utils.annotations_to_instances(annos, (h, w))
        instances.gt_keypoints = Keypoints(torch.as_tensor(keypoints, dtype=torch.float32))
        d["instances"] = utils.filter_empty_instances(instances)
        return d
