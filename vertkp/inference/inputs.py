"""What a ``vertkp predict`` run's inputs are: the image files its PATHs name, their COCO image
ids and overlay names, and what the command line and --gt say of each (:class:`PredictPlan`,
:func:`image_record`; numpy only, no torch). Every process of a sharded run gets the same plan
and predicts its share of it.
"""
from __future__ import annotations

import glob
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple, Union

from ..data.imaging.dicom import has_dicom_preamble
from ..data.imaging.images import IMAGE_SUFFIXES, ImageRecord
from ..files import InvalidInput
from ..data.imaging.spacing import find_pixel_spacing, load_pixel_spacing, spacing_lookup
from ..drawing import overlay_names
from ..evaluation.ground_truth import EvaluationInputError, load_ground_truth
from .outputs import match_image_ids

__all__ = ["expand_inputs", "PredictPlan", "plan_inputs", "image_record"]


def _is_input_image(path: Path) -> bool:
    return path.is_file() and (path.suffix.lower() in IMAGE_SUFFIXES or has_dicom_preamble(path))


def expand_inputs(specs) -> Tuple[List[str], List[dict]]:
    """Image paths of files, folders (recursive: files with an image suffix, and DICOM
    files of any name) and globs, in order, without duplicates; and a failure record
    for each spec that matches nothing."""
    paths, failures, seen = [], [], set()

    def add(p):
        key = os.path.abspath(p)
        if key not in seen:
            seen.add(key)
            paths.append(str(p))

    for spec in specs:
        spec = str(spec)
        if os.path.isdir(spec):
            found = sorted(str(f) for f in Path(spec).rglob("*") if _is_input_image(f))
            if not found:
                failures.append({"image": spec, "error": "folder holds no image (" + " ".join(IMAGE_SUFFIXES)
                                 + ", or DICOM)"})
            for f in found:
                add(f)
        elif os.path.isfile(spec):
            add(spec)  # any file given by name is tried, and reported if it is not an image
        elif glob.has_magic(spec):
            found = sorted(f for f in glob.glob(spec, recursive=True) if os.path.isfile(f))
            if not found:
                failures.append({"image": spec, "error": "the pattern matches no file"})
            for f in found:
                add(f)
        else:
            failures.append({"image": spec, "error": "no such file or folder"})
    return paths, failures


@dataclass
class PredictPlan:
    """What every process of a run shares: the expanded inputs and how each is predicted.

    Attributes:
        paths: the inputs, expanded (:func:`expand_inputs`); an input's index is its position here.
        failures: the input specs that matched no file.
        ids: each input's COCO image id (--gt's, else its index + 1; None: not in --gt).
        overlays: each input's overlay stem (``vertkp.drawing.overlay_names`` of all of ``paths``).
        view: what the images are, unless --gt says.
        spacing: --pixel-spacing: mm per pixel, a ``spacing_lookup`` table, or None.
        gt: --gt's images by id.
    """

    paths: List[str]
    failures: List[dict]
    ids: List[Optional[int]]
    overlays: List[str]
    view: str = "lateral"
    spacing: Union[None, float, Dict[str, float]] = None
    gt: Optional[dict] = None


def plan_inputs(inputs: Sequence[str], *, view: str = "lateral", pixel_spacing=None, gt=None) -> PredictPlan:
    """Expand the inputs and read --pixel-spacing and --gt (:class:`PredictPlan`).

    Raises:
        ValueError: nothing to predict, bad pixel spacing or ground truth.
    """
    paths, failures = expand_inputs(inputs)
    if not paths:
        raise ValueError("nothing to predict: " + "; ".join(f"{f['image']}: {f['error']}" for f in failures))
    try:
        spacing = load_pixel_spacing(pixel_spacing) if pixel_spacing is not None else None
        gt_images = load_ground_truth(gt).images if gt is not None else None
    except (InvalidInput, EvaluationInputError) as e:
        raise ValueError(str(e)) from None
    ids = match_image_ids(paths, gt_images) if gt_images is not None else list(range(1, len(paths) + 1))
    return PredictPlan(paths, failures, ids, overlay_names(paths), view,
                       spacing_lookup(spacing) if isinstance(spacing, dict) else spacing,
                       {im.image_id: im for im in gt_images} if gt_images is not None else None)


def image_record(plan: PredictPlan, k: int, record: ImageRecord) -> ImageRecord:
    """The record of input ``k``, given the one its file makes (``vertkp.data.imaging.images.load_image``).
    Pixel spacing: --pixel-spacing's, else the file's own (a DICOM header's), else the ground
    truth's, with its source; view and facing: the ground truth's, else the view of the run."""
    im = (plan.gt or {}).get(plan.ids[k])
    spacing = plan.spacing
    if isinstance(spacing, dict):
        spacing = find_pixel_spacing(spacing, plan.paths[k], [im.source_stem if im is not None else None])
    record = record.given(ImageRecord(spacing, "--pixel-spacing", view=im.view if im is not None else plan.view,
                                      data_facing=im.facing if im is not None else None))
    if record.pixel_spacing is None and im is not None and im.pixel_spacing:
        record = record.given(ImageRecord(float(im.pixel_spacing), "--gt"))
    return record
