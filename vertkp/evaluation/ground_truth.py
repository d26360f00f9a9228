"""Ground truth: the one loader of vertkp COCO keypoint files.

``vertkp evaluate``, the detectron2 evaluator (which reads the registered
dataset's COCO file, as COCOEvaluator does) and ``vertkp predict --gt`` all read
ground truth with :func:`load_ground_truth`.

Coordinates are those of the COCO files: source pixels, x right, y down, no
+0.5 shift (``vertkp.keypoints``). Every problem with an input raises
:class:`EvaluationInputError` with a message that names the file, the entry and
what to fix.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Mapping, Optional, Sequence, Union

import numpy as np

from ..anatomy import FACINGS, VIEWS
from ..data.raw.provenance import patient_of
from ..files import InvalidInput, read_input_json
from ..data.imaging.spacing import find_pixel_spacing, spacing_lookup
from ..keypoints import KEYPOINT_NAMES, NUM_KEYPOINTS

__all__ = [
    "EvaluationInputError",
    "ImageTruth",
    "GroundTruth",
    "load_ground_truth",
    "apply_pixel_spacing",
    "read_json_input",
    "is_coco_id",
    "keypoint_array",
]


class EvaluationInputError(ValueError):
    """Bad ground truth, predictions or pixel spacing; the message says what and where."""


@dataclass
class ImageTruth:
    """Ground truth of one image.

    Attributes:
        image_id: the COCO image id.
        file_name: as in the GT file (relative path) or the dataset dict.
        corners: float [N, 4, 2], px, TL, TR, BL, BR; NaN where unlabelled.
        visible: bool [N, 4], True where labelled (COCO v > 0).
        levels: [N] vertebra levels ("L1".."S1") or None.
        ann_ids: [N] COCO annotation ids (None when unknown).
        view: "lateral" or "ap".
        pixel_spacing: mm per pixel, or None.
        facing: the dataset's facing ("left"/"right") or None.
        source_stem: the source image's stem (Roboflow copies share one), or None.
        patient_id: who the image is of (``vertkp.data.raw.provenance.patient_of``), or None; the
            bootstrap resamples patients when the images have one.
    """

    image_id: int
    file_name: str
    corners: np.ndarray
    visible: np.ndarray
    levels: list = field(default_factory=list)
    ann_ids: list = field(default_factory=list)
    view: str = "lateral"
    pixel_spacing: Optional[float] = None
    facing: Optional[str] = None
    source_stem: Optional[str] = None
    patient_id: Optional[str] = None

    @property
    def n(self) -> int:
        return len(self.corners)


@dataclass
class GroundTruth:
    """A whole ground-truth file: images in file order, and what was skipped."""

    images: List[ImageTruth]
    category_id: int = 1
    source: str = "<dict>"
    notes: list = field(default_factory=list)


def read_json_input(source, what: str):
    """(data, name) of a JSON file path (UTF-8, a byte-order mark allowed), or of
    already-parsed data (name "<what>")."""
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if not path.is_file():
            raise EvaluationInputError(f"{what} file {path} does not exist")
        try:
            return read_input_json(path), str(path)
        except InvalidInput as e:
            raise EvaluationInputError(f"{what} file {path}: {e.what}") from None
    return source, f"<{what}>"


def is_coco_id(value) -> bool:
    """Whether ``value`` can be a COCO image or annotation id: an integer (or a string), not a
    bool, a float, a list or null."""
    return isinstance(value, (int, str)) and not isinstance(value, bool)


def _positive_or_none(value, where: str) -> Optional[float]:
    if value is None:
        return None
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise EvaluationInputError(
            f"{where}: pixel_spacing {value!r} is not a number (mm per pixel, or null)") from None
    if not (math.isfinite(v) and v > 0):
        raise EvaluationInputError(
            f"{where}: pixel_spacing {value!r} must be a positive number of mm per pixel, or null")
    return v


def _keypoint_category(cats, name: str) -> int:
    if not isinstance(cats, list):
        raise EvaluationInputError(f"{name}: 'categories' must be a list")
    found = [c for c in cats if isinstance(c, dict) and isinstance(c.get("keypoints"), list)]
    if not found:
        raise EvaluationInputError(
            f"{name} is not a COCO keypoint file: no category lists 'keypoints' (vertkp expects one category "
            f"with keypoints {list(KEYPOINT_NAMES)}; make it with vertkp convert)")
    for c in found:
        if [str(k) for k in c["keypoints"]] == list(KEYPOINT_NAMES):
            return int(c["id"])
    raise EvaluationInputError(
        f"{name}: keypoint names {found[0]['keypoints']} are not vertkp's {list(KEYPOINT_NAMES)} "
        "(TL, TR, BL, BR, in that order)")


def keypoint_array(kps, where: str) -> np.ndarray:
    """A COCO keypoint list as float [4, 3] (x, y, v), checked; errors name ``where``."""
    if not isinstance(kps, (list, tuple)) or len(kps) != 3 * NUM_KEYPOINTS:
        n = len(kps) if isinstance(kps, (list, tuple)) else type(kps).__name__
        raise EvaluationInputError(
            f"{where}: 'keypoints' has {n} numbers, expected {3 * NUM_KEYPOINTS} "
            f"(x, y, v for {', '.join(KEYPOINT_NAMES)})")
    try:
        a = np.asarray(kps, dtype=np.float64).reshape(NUM_KEYPOINTS, 3)
    except (TypeError, ValueError):
        raise EvaluationInputError(f"{where}: 'keypoints' must be numbers") from None
    if not np.all(np.isfinite(a)):
        raise EvaluationInputError(f"{where}: 'keypoints' contain NaN or infinite values")
    return a


def load_ground_truth(source) -> GroundTruth:
    """Read a vertkp COCO keypoint file (``tools/convert_to_coco.py``).

    Args:
        source: path of the JSON file, or the already-parsed dict.

    Returns:
        :class:`GroundTruth` with one :class:`ImageTruth` per image (images
        without annotations included: every prediction on them is a false
        positive). Crowd annotations, annotations of other categories and
        annotations with no labelled corner are skipped (counted in
        ``notes``).

    Raises:
        EvaluationInputError: not COCO keypoints, unknown image ids,
            keypoints of the wrong length, NaN, v outside {0, 1, 2},
            ids that are not integers, duplicate image or annotation ids, a bad
            pixel spacing, view or facing.
    """
    data, name = read_json_input(source, "ground-truth")
    if not isinstance(data, dict):
        raise EvaluationInputError(
            f"{name} is not a COCO file: expected a JSON object with 'images', 'annotations' and 'categories', "
            f"got a JSON {type(data).__name__}" + (" (is it a predictions list? pass it as --predictions)"
                                                   if isinstance(data, list) else ""))
    missing = [k for k in ("images", "annotations", "categories") if k not in data]
    if missing:
        raise EvaluationInputError(f"{name} is not a COCO file: missing {missing}")
    for key in ("images", "annotations"):
        if not isinstance(data[key], list):
            got = "null" if data[key] is None else type(data[key]).__name__
            raise EvaluationInputError(f"{name} is not a COCO file: '{key}' must be a list, got a JSON {got}")
    cat = _keypoint_category(data["categories"], name)
    images: Dict[int, dict] = {}
    order = []
    for k, im in enumerate(data["images"]):
        if not isinstance(im, dict) or "id" not in im:
            raise EvaluationInputError(f"{name}: images[{k}] has no 'id'")
        iid = im["id"]
        if not is_coco_id(iid):
            raise EvaluationInputError(f"{name}: images[{k}] has the id {iid!r}: an image id is an integer")
        if iid in images:
            raise EvaluationInputError(f"{name}: image id {iid!r} appears twice in 'images'")
        where = f"{name}: image {iid!r}"
        view = im.get("view") or "lateral"
        if view not in VIEWS:
            raise EvaluationInputError(f"{where}: view {view!r} is not one of {VIEWS}")
        facing = im.get("facing")
        if facing is not None and facing not in FACINGS:
            raise EvaluationInputError(f"{where}: facing {facing!r} is not 'left', 'right' or null")
        images[iid] = dict(file_name=str(im.get("file_name", "")), view=view, facing=facing,
                           pixel_spacing=_positive_or_none(im.get("pixel_spacing"), where),
                           source_stem=im.get("source_stem"),
                           patient_id=patient_of(im, str(im.get("file_name", ""))), anns=[])
        order.append(iid)
    n_crowd = n_other = n_empty = 0
    ann_ids = set()
    for k, ann in enumerate(data["annotations"]):
        if not isinstance(ann, dict):
            raise EvaluationInputError(f"{name}: annotations[{k}] is not an object")
        where = f"{name}: annotation {ann.get('id', f'#{k}')!r}"
        if "id" in ann:
            if not is_coco_id(ann["id"]):
                raise EvaluationInputError(f"{name}: annotations[{k}] has the id {ann['id']!r}: an annotation id is "
                                           "an integer")
            if ann["id"] in ann_ids:
                raise EvaluationInputError(f"{where} appears twice in 'annotations' (COCO tools keep one of the two): "
                                           "give every annotation its own id")
            ann_ids.add(ann["id"])
        if not is_coco_id(ann.get("image_id")) or ann.get("image_id") not in images:
            raise EvaluationInputError(f"{where}: image_id {ann.get('image_id')!r} is not in 'images'")
        if ann.get("category_id", cat) != cat:
            n_other += 1
            continue
        if ann.get("iscrowd", 0):
            n_crowd += 1
            continue
        a = keypoint_array(ann.get("keypoints"), where)
        if not np.all(np.isin(a[:, 2], (0, 1, 2))):
            raise EvaluationInputError(f"{where}: visibility flags {a[:, 2].tolist()} must be 0, 1 or 2")
        if not np.any(a[:, 2] > 0):
            n_empty += 1
            continue
        images[ann["image_id"]]["anns"].append((ann.get("id"), a, ann.get("vertebra_level")))
    notes = []
    if n_crowd:
        notes.append(f"{n_crowd} crowd annotation(s) skipped")
    if n_other:
        notes.append(f"{n_other} annotation(s) of other categories skipped")
    if n_empty:
        notes.append(f"{n_empty} annotation(s) without any labelled corner skipped")
    truths = []
    for iid in order:
        im = images[iid]
        anns = im.pop("anns")
        corners = np.array([a[:, :2] for _, a, _ in anns], dtype=np.float64).reshape(-1, NUM_KEYPOINTS, 2)
        visible = np.array([a[:, 2] > 0 for _, a, _ in anns], dtype=bool).reshape(-1, NUM_KEYPOINTS)
        corners[~visible] = np.nan
        truths.append(ImageTruth(iid, im["file_name"], corners, visible, [lv for _, _, lv in anns],
                                 [aid for aid, _, _ in anns], im["view"], im["pixel_spacing"], im["facing"],
                                 im["source_stem"], im["patient_id"]))
    return GroundTruth(truths, cat, name, notes)


def apply_pixel_spacing(truths: Sequence[ImageTruth], spacing: Union[None, float, Mapping[str, float]]) -> int:
    """Override the images' pixel spacing in place.

    A float applies to every image. A table is looked up by the image's
    file_name, its base name, its stem, its ``source_stem`` and its id (as
    text), in that order, against the table's keys, their base names and
    stems; images that are not in the table keep the spacing of the GT file.

    Returns:
        the number of images whose spacing came from ``spacing``.
    """
    if spacing is None:
        return 0
    if not isinstance(spacing, Mapping):
        for t in truths:
            t.pixel_spacing = float(spacing)
        return len(truths)
    lookup = spacing_lookup(spacing)
    n = 0
    for t in truths:
        hit = find_pixel_spacing(lookup, t.file_name, [t.source_stem, t.image_id])
        if hit is not None:
            t.pixel_spacing = hit
            n += 1
    return n
