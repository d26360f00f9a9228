"""Read and validate ground truth, predictions and pixel spacings.

Coordinates everywhere in ``vertkp.evaluation`` are those of the COCO files:
source pixels, x right, y down, no +0.5 shift. detectron2's dataset dicts and
``Instances.pred_keypoints`` are 0.5 larger (detectron2's continuous pixel
coordinates); :func:`truths_from_dataset_dicts` and the evaluator subtract it.

Every problem with an input raises :class:`EvaluationInputError` with a
message that names the file, the entry and what to fix.
"""
from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Mapping, Optional, Sequence, Union

import numpy as np

from ..data.report import InvalidInput
from ..data.spacing import read_pixel_spacing
from ..keypoints import KEYPOINT_NAMES, NUM_KEYPOINTS

__all__ = [
    "EvaluationInputError",
    "ImageTruth",
    "ImagePredictions",
    "GroundTruth",
    "load_ground_truth",
    "load_predictions",
    "load_pixel_spacing",
    "apply_pixel_spacing",
    "spacing_lookup",
    "find_pixel_spacing",
    "truths_from_dataset_dicts",
]

_VIEWS = ("lateral", "ap")
_FACINGS = ("left", "right")


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

    @property
    def n(self) -> int:
        return len(self.corners)


@dataclass
class ImagePredictions:
    """Predicted vertebrae of one image: corners float [M, 4, 2] px (file
    coordinates, TL, TR, BL, BR) and scores float [M]."""

    corners: np.ndarray
    scores: np.ndarray

    @classmethod
    def empty(cls) -> "ImagePredictions":
        return cls(np.zeros((0, NUM_KEYPOINTS, 2)), np.zeros(0))


@dataclass
class GroundTruth:
    """A whole ground-truth file: images in file order, and what was skipped."""

    images: List[ImageTruth]
    category_id: int = 1
    source: str = "<dict>"
    notes: list = field(default_factory=list)

    def by_id(self) -> Dict[int, ImageTruth]:
        return {im.image_id: im for im in self.images}


def _read_json(source, what: str):
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if not path.is_file():
            raise EvaluationInputError(f"{what} file {path} does not exist")
        try:
            with open(path, encoding="utf-8") as f:
                return json.load(f), str(path)
        except json.JSONDecodeError as e:
            raise EvaluationInputError(f"{what} file {path} is not valid JSON: {e}") from None
    return source, f"<{what}>"


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
            f"with keypoints {list(KEYPOINT_NAMES)}; make it with tools/convert_to_coco.py)")
    for c in found:
        if [str(k) for k in c["keypoints"]] == list(KEYPOINT_NAMES):
            return int(c["id"])
    raise EvaluationInputError(
        f"{name}: keypoint names {found[0]['keypoints']} are not vertkp's {list(KEYPOINT_NAMES)} "
        "(TL, TR, BL, BR, in that order)")


def _keypoint_array(kps, where: str) -> np.ndarray:
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
            duplicate image ids, a bad pixel spacing, view or facing.
    """
    data, name = _read_json(source, "ground-truth")
    if not isinstance(data, dict):
        raise EvaluationInputError(
            f"{name} is not a COCO file: expected a JSON object with 'images', 'annotations' and 'categories', "
            f"got a JSON {type(data).__name__}" + (" (is it a predictions list? pass it as --predictions)"
                                                   if isinstance(data, list) else ""))
    missing = [k for k in ("images", "annotations", "categories") if k not in data]
    if missing:
        raise EvaluationInputError(f"{name} is not a COCO file: missing {missing}")
    cat = _keypoint_category(data["categories"], name)
    images: Dict[int, dict] = {}
    order = []
    for k, im in enumerate(data["images"]):
        if not isinstance(im, dict) or "id" not in im:
            raise EvaluationInputError(f"{name}: images[{k}] has no 'id'")
        iid = im["id"]
        if iid in images:
            raise EvaluationInputError(f"{name}: image id {iid!r} appears twice in 'images'")
        where = f"{name}: image {iid!r}"
        view = im.get("view") or "lateral"
        if view not in _VIEWS:
            raise EvaluationInputError(f"{where}: view {view!r} is not one of {_VIEWS}")
        facing = im.get("facing")
        if facing is not None and facing not in _FACINGS:
            raise EvaluationInputError(f"{where}: facing {facing!r} is not 'left', 'right' or null")
        images[iid] = dict(file_name=str(im.get("file_name", "")), view=view, facing=facing,
                           pixel_spacing=_positive_or_none(im.get("pixel_spacing"), where),
                           source_stem=im.get("source_stem"), anns=[])
        order.append(iid)
    n_crowd = n_other = n_empty = 0
    for k, ann in enumerate(data["annotations"]):
        if not isinstance(ann, dict):
            raise EvaluationInputError(f"{name}: annotations[{k}] is not an object")
        where = f"{name}: annotation {ann.get('id', f'#{k}')!r}"
        if ann.get("image_id") not in images:
            raise EvaluationInputError(f"{where}: image_id {ann.get('image_id')!r} is not in 'images'")
        if ann.get("category_id", cat) != cat:
            n_other += 1
            continue
        if ann.get("iscrowd", 0):
            n_crowd += 1
            continue
        a = _keypoint_array(ann.get("keypoints"), where)
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
                                 im["source_stem"]))
    return GroundTruth(truths, cat, name, notes)


def load_predictions(source, gt: GroundTruth) -> Dict[int, ImagePredictions]:
    """Read COCO keypoint results (what detectron2's COCOEvaluator writes).

    Each entry: ``{"image_id", "category_id", "keypoints": [x, y, s] * 4,
    "score"}`` with x, y in the GT file's coordinates (COCOEvaluator already
    removed detectron2's 0.5); the per-keypoint s is not used.

    Args:
        source: path of the JSON list, or the parsed list.
        gt: the ground truth the predictions are for.

    Returns:
        dict image_id -> :class:`ImagePredictions` (only images with results).

    Raises:
        EvaluationInputError: not a list, unknown image ids, another
            category, keypoints of the wrong length, NaN, a missing score.
    """
    data, name = _read_json(source, "predictions")
    if isinstance(data, dict) and "annotations" in data and "images" in data:
        raise EvaluationInputError(
            f"{name} looks like a COCO ground-truth file; predictions must be a JSON list of COCO keypoint results "
            "[{'image_id', 'category_id', 'keypoints', 'score'}, ...]")
    if not isinstance(data, list):
        raise EvaluationInputError(
            f"{name}: predictions must be a JSON list of COCO keypoint results "
            f"[{{'image_id', 'category_id', 'keypoints', 'score'}}, ...], got a JSON {type(data).__name__}")
    known = {im.image_id for im in gt.images}
    unknown = {}
    per_image: Dict[int, list] = {}
    for k, r in enumerate(data):
        if not isinstance(r, dict):
            raise EvaluationInputError(f"{name}: result #{k} is not an object")
        iid = r.get("image_id")
        where = f"{name}: result #{k} (image_id {iid!r})"
        if iid not in known:
            unknown[iid] = unknown.get(iid, 0) + 1
            continue
        if "category_id" in r and r["category_id"] != gt.category_id:
            raise EvaluationInputError(
                f"{where}: category_id {r['category_id']!r} is not the vertebra category {gt.category_id} of the "
                "ground truth (detectron2's contiguous id 0 must be mapped back to the dataset's id)")
        a = _keypoint_array(r.get("keypoints"), where)
        score = r.get("score")
        if isinstance(score, bool) or not isinstance(score, (int, float)) or not math.isfinite(score):
            raise EvaluationInputError(f"{where}: 'score' must be a finite number, got {score!r}")
        per_image.setdefault(iid, []).append((a[:, :2], float(score)))
    if unknown:
        ids = sorted(unknown, key=str)
        shown = ", ".join(repr(i) for i in ids[:5]) + (", ..." if len(ids) > 5 else "")
        raise EvaluationInputError(
            f"{name}: {sum(unknown.values())} result(s) refer to {len(ids)} image id(s) that are not in the ground "
            f"truth {gt.source}: {shown}. Were the predictions made on another dataset or split?")
    return {iid: ImagePredictions(np.array([c for c, _ in rs]), np.array([s for _, s in rs]))
            for iid, rs in per_image.items()}


def load_pixel_spacing(spec: Union[str, float, os.PathLike]) -> Union[float, Dict[str, float]]:
    """Pixel spacing given on the command line: one number, or a table.

    Args:
        spec: a number (mm per pixel for every image), or the path of a CSV
            (comma, semicolon or tab separated), .xlsx or .json table, read
            by ``vertkp.data.spacing.read_pixel_spacing`` (the converter's
            reader: same columns, same rules).

    Returns:
        a float, or dict key -> mm per pixel.

    Raises:
        EvaluationInputError: missing file, unknown columns, a value that is
            not a positive number.
    """
    try:
        v = float(spec)
    except (TypeError, ValueError):
        v = None
    if v is not None:
        if not (math.isfinite(v) and v > 0):
            raise EvaluationInputError(f"pixel spacing {spec!r} must be a positive number of mm per pixel")
        return v
    if not Path(spec).is_file():
        raise EvaluationInputError(f"pixel spacing {spec!r} is neither a number nor an existing file")
    try:
        return read_pixel_spacing(spec)
    except InvalidInput as e:
        raise EvaluationInputError(f"pixel spacing {e}") from None


def _keys(name: str) -> List[str]:
    base = os.path.basename(str(name).replace("\\", "/"))
    return [str(name), base, os.path.splitext(base)[0]]


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


def spacing_lookup(spacing: Mapping[str, float]) -> Dict[str, float]:
    """A spacing table keyed also by its keys' base names and stems (exact keys win)."""
    lookup = {}
    for k, v in spacing.items():
        for key in reversed(_keys(k)):
            lookup[key] = v
    for k, v in spacing.items():
        lookup[str(k)] = v
    return lookup


def find_pixel_spacing(lookup: Mapping[str, float], file_name: str, extra_keys: Sequence = ()) -> Optional[float]:
    """mm per pixel of an image from a :func:`spacing_lookup` table: by its
    file name, base name, stem, then ``extra_keys`` (e.g. source stem, id) in
    order; None when none is in the table."""
    cands = _keys(file_name) + [str(k) for k in extra_keys if k is not None]
    hit = next((lookup[c] for c in cands if c in lookup), None)
    return None if hit is None else float(hit)


def truths_from_dataset_dicts(dicts: Sequence[Mapping], keypoint_offset: float = 0.5) -> List[ImageTruth]:
    """Ground truth from detectron2 dataset dicts (``DatasetCatalog.get(name)``).

    detectron2's ``load_coco_json`` added 0.5 to every keypoint x and y; this
    subtracts ``keypoint_offset`` again so that the values equal the COCO
    file's. Crowd annotations are skipped, and so are annotations without a
    labelled corner.

    Raises:
        EvaluationInputError: keypoints of the wrong length, NaN.
    """
    out = []
    for d in dicts:
        iid = d["image_id"]
        corners, visible, levels = [], [], []
        for k, ann in enumerate(d.get("annotations", []) or []):
            if ann.get("iscrowd", 0):
                continue
            a = _keypoint_array(list(ann.get("keypoints", [])), f"dataset image {iid!r}, annotation #{k}")
            vis = a[:, 2] > 0
            if not vis.any():
                continue
            xy = a[:, :2] - keypoint_offset
            xy[~vis] = np.nan
            corners.append(xy)
            visible.append(vis)
            levels.append(ann.get("vertebra_level"))
        view = d.get("view") or "lateral"
        facing = d.get("facing") if d.get("facing") in _FACINGS else None
        out.append(ImageTruth(
            iid, str(d.get("file_name", "")),
            np.array(corners, dtype=np.float64).reshape(-1, NUM_KEYPOINTS, 2),
            np.array(visible, dtype=bool).reshape(-1, NUM_KEYPOINTS),
            levels, [None] * len(levels), view if view in _VIEWS else "lateral",
            _positive_or_none(d.get("pixel_spacing"), f"dataset image {iid!r}"), facing, d.get("source_stem")))
    return out
