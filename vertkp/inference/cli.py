"""``vertkp predict`` / ``tools/predict.py``: corners, slips and Meyerding grades for X-ray
images, with overlays and a report.

    vertkp predict --config-file CFG --weights W --input PATH [PATH ...] --output OUT
            [--facing left|right|auto] [--pixel-spacing MM_OR_FILE] [--score-threshold 0.5]
            [--device cpu|cuda] [--gt GT.json] [--view lateral|ap] [--bottom-level S1] [--keep-dicom-ids]

PATH: image files, folders (searched recursively for .png .jpg .jpeg .bmp .tif
.tiff .dcm .dicom, and DICOM files of any name) or glob patterns. Writes
OUT/predictions.json, OUT/report.csv (one row per adjacent pair),
OUT/overlays/<stem>.png and OUT/coco_results.json (COCO keypoint results for
``vertkp evaluate``; image ids from --gt when given, else numbered from 1 in
input order). An image's pixel spacing is --pixel-spacing's, else its DICOM
header's, else --gt's (predictions.json: pixel_spacing_source). No DICOM
patient or study identifier is written unless --keep-dicom-ids. A file that
cannot be read is reported and skipped. Exit status: 0 all images predicted,
1 some failed (the rest are written), 2 bad arguments or nothing to predict.
"""
from __future__ import annotations

import argparse
import glob
import json
import logging
import os
import sys
import warnings
from pathlib import Path
from typing import List, Optional, Sequence, Tuple

import cv2
from tqdm import tqdm

from .. import HAS_DETECTRON2
from ..data.dicom import has_dicom_preamble
from ..data.images import IMAGE_SUFFIXES, ImageReadError
from ..data.report import InvalidInput
from ..data.spacing import find_pixel_spacing, load_pixel_spacing, spacing_lookup
from ..evaluation.ground_truth import EvaluationInputError, load_ground_truth
from ..evaluation.matching import DEFAULT_SCORE_THRESHOLD
from ..drawing import overlay_names
from ..files import write_json
from ..grading import DEFAULT_GAP_FACTOR, DEFAULT_NO_SLIP_PCT
from .outputs import coco_results, format_summary, match_image_ids, summarize, write_report_csv
from .overlay import draw_overlay
from .fusion import TTA_MODES
from ..flags import SINGLE_PASS_THRESHOLDS
from .result import FlagThresholds, file_options, merge_options

if HAS_DETECTRON2:
    from .predictor import VertebraPredictor

__all__ = ["build_parser", "expand_inputs", "predict_files", "main"]


def build_parser() -> argparse.ArgumentParser:
    tta, one = FlagThresholds(), SINGLE_PASS_THRESHOLDS
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--config-file", required=True, metavar="CFG", help="vertkp config (configs/*.yaml)")
    p.add_argument("--weights", required=True, metavar="W", help="checkpoint (.pth), e.g. OUTPUT_DIR/model_best.pth")
    p.add_argument("--input", required=True, nargs="+", metavar="PATH", help="images, folders or glob patterns")
    p.add_argument("--output", required=True, metavar="OUT", help="output folder")
    p.add_argument("--facing", choices=("left", "right", "auto"), default="auto",
                   help="side the patient faces on lateral views; auto: estimated per image")
    p.add_argument("--pixel-spacing", metavar="MM_OR_FILE", default=None,
                   help="mm per pixel: one number, or a CSV/XLSX/JSON table by file name (as for vertkp evaluate); "
                        "over a DICOM file's own")
    p.add_argument("--score-threshold", type=float, default=DEFAULT_SCORE_THRESHOLD,
                   help="drop detections under this score")
    p.add_argument("--device", default=None, help="cpu, cuda or cuda:N (default: CUDA when available)")
    p.add_argument("--gt", metavar="GT.json", default=None,
                   help="vertkp COCO file of these images: its image ids go into coco_results.json, and its "
                        "view, pixel spacing and facing are used per image")
    p.add_argument("--view", choices=("lateral", "ap"), default="lateral", help="what the images are")
    p.add_argument("--bottom-level", default=None, metavar="LEVEL",
                   help="level of the most caudal vertebra in view (e.g. S1), to name vertebrae by level")
    p.add_argument("--batch-size", type=int, default=1, help="images per forward pass")
    p.add_argument("--tta", choices=TTA_MODES, default=None,
                   help="test-time augmentation: flip (the image and its mirror, fused: better corners, the "
                        "passes' disagreement per corner, the unstable_corner flag; 2x the model's time), "
                        "flip,scale (also at VERTKP.TTA_SCALES: 6x) or none; default: the config's VERTKP.TTA")
    p.add_argument("--spread-threshold", type=float, default=None,
                   help="with TTA: flag corners whose passes disagree by more than this, %% of the vertebra width "
                        f"(None: the calibrated {tta.spread_pct})")
    p.add_argument("--corner-threshold", type=float, default=None,
                   help=f"flag corners whose heatmap confidence is under this (None: the calibrated {tta.corner} "
                        f"with TTA, {one.corner} without)")
    p.add_argument("--vertebra-threshold", type=float, default=None,
                   help=f"flag vertebrae whose detection score is under this (None: the calibrated "
                        f"{tta.vertebra} with TTA, {one.vertebra} without)")
    p.add_argument("--no-slip-pct", type=float, default=DEFAULT_NO_SLIP_PCT,
                   help="|slip| at or under this is grade 'none'")
    p.add_argument("--gap-factor", type=float, default=DEFAULT_GAP_FACTOR,
                   help="disc height / body height above which a vertebra seems missed")
    p.add_argument("--keep-dicom-ids", action="store_true",
                   help="record DICOM files' patient and study identifiers (PatientID, PatientName, StudyDate, "
                        "...) in predictions.json, under dicom_ids; by default none is written anywhere")
    p.add_argument("--no-overlays", action="store_true", help="skip the overlay PNGs")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    p.add_argument("--quiet", action="store_true", help="print nothing but errors")
    return p


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


def _per_image_options(paths, view: str, gt_images, spacing, keep_dicom_ids: bool = False) -> Tuple[List[dict], List]:
    """Grading overrides and COCO image id of each input. Pixel spacing: --pixel-spacing's,
    else the file's own (a DICOM header's), else the ground truth's; with its source."""
    ids = match_image_ids(paths, gt_images) if gt_images is not None else list(range(1, len(paths) + 1))
    by_id = {im.image_id: im for im in gt_images or []}
    lookup = spacing_lookup(spacing) if isinstance(spacing, dict) else None
    options = []
    for path, iid in zip(paths, ids):
        im = by_id.get(iid)
        o = {"view": im.view if im is not None else view}
        if isinstance(spacing, float):
            o["pixel_spacing"] = spacing
        elif lookup is not None:
            o["pixel_spacing"] = find_pixel_spacing(lookup, path, [im.source_stem if im is not None else None])
        if o.get("pixel_spacing") is not None:
            o["pixel_spacing_source"] = "--pixel-spacing"
        o = merge_options(file_options(path, keep_dicom_ids), o)
        if o.get("pixel_spacing") is None and im is not None and im.pixel_spacing:
            o.update(pixel_spacing=float(im.pixel_spacing), pixel_spacing_source="--gt")
            o.pop("notes", None)
        if im is not None and im.facing:
            o["data_facing"] = im.facing
        options.append(o)
    return options, ids


def predict_files(predictor, inputs: Sequence[str], output, *, view: str = "lateral", pixel_spacing=None,
                  gt=None, batch_size: int = 1, overlays: bool = True, progress: bool = True, quiet: bool = False,
                  settings: Optional[dict] = None, keep_dicom_ids: bool = False) -> dict:
    """Predict image files and write predictions.json, report.csv, coco_results.json and
    overlays/ into ``output``; returns :func:`vertkp.inference.outputs.summarize`.

    Args:
        predictor: a :class:`vertkp.inference.VertebraPredictor`.
        inputs: files, folders (searched recursively) and glob patterns.
        view: what the images are, unless ``gt`` says.
        pixel_spacing: mm per pixel for every image, or a table file (``vertkp.data.spacing``);
            over a DICOM file's own.
        gt: a vertkp COCO file of these images: its image ids go into coco_results.json,
            and its view, pixel spacing and facing are used per image.
        settings: recorded as predictions.json's "settings".
        keep_dicom_ids: record DICOM files' identifiers (``SpinePrediction.dicom_ids``);
            by default no output holds any.

    Raises:
        ValueError: nothing to predict, bad pixel spacing or ground truth.
    """
    if batch_size < 1:
        raise ValueError(f"--batch-size must be >= 1, got {batch_size}")
    paths, failures = expand_inputs(inputs)
    if not paths:
        raise ValueError("nothing to predict: " + "; ".join(f"{f['image']}: {f['error']}" for f in failures))
    try:
        spacing = load_pixel_spacing(pixel_spacing) if pixel_spacing is not None else None
        gt_images = load_ground_truth(gt).images if gt is not None else None
    except (InvalidInput, EvaluationInputError) as e:
        raise ValueError(str(e)) from None
    options, ids = _per_image_options(paths, view, gt_images, spacing, keep_dicom_ids)
    if gt_images is not None and not quiet:
        missing = [p for p, i in zip(paths, ids) if i is None]
        if missing:
            print(f"note: {len(missing)} input(s) are not images of {gt} and are left out of "
                  f"coco_results.json (first: {missing[0]})")
    out = Path(output)
    overlay_dir = out / "overlays"
    overlay_dir.mkdir(parents=True, exist_ok=True)
    overlay_file = dict(zip(paths, overlay_names(paths)))
    predictions = []
    bar = tqdm(total=len(paths), desc="predict", unit="image", disable=not progress or quiet)
    k = 0
    while k < len(paths):
        batch, images, opts, batch_ids = [], [], [], []
        while k < len(paths) and len(batch) < batch_size:
            try:
                images.append(predictor.load(paths[k])[0])
                batch.append(paths[k])
                opts.append(options[k])
                batch_ids.append(ids[k])
            except ImageReadError as e:
                failures.append({"image": paths[k], "error": str(e)})
                if not quiet:
                    tqdm.write(f"skipped: {e}")
                bar.update(1)
            k += 1
        if not batch:
            continue
        for path, image, res, iid in zip(batch, images, predictor.predict_decoded(images, batch, opts), batch_ids):
            res.image_id = iid
            predictions.append(res)
            if overlays:
                cv2.imwrite(str(overlay_dir / f"{overlay_file[path]}.png"), draw_overlay(predictor.gray(image), res))
        bar.update(len(batch))
    bar.close()
    summary = summarize(predictions, failures)
    write_json(out / "predictions.json", {"settings": settings or {}, "summary": summary,
                                          "images": [p.as_dict() for p in predictions], "failures": failures})
    write_report_csv(out / "report.csv", predictions)
    write_json(out / "coco_results.json", coco_results(predictions))
    if not quiet:
        print(format_summary(summary))
        for f in failures:
            print(f"failed: {f['image']}: {f['error']}")
        print(f"wrote predictions.json, report.csv, coco_results.json{'' if not overlays else ' and overlays/'} "
              f"to {out}")
    return summary


def main(argv=None) -> int:
    """Exit 0 all predicted, 1 some failed, 2 bad arguments."""
    parser = build_parser()
    args = parser.parse_args(argv)
    # torch/detectron2 deprecation notices say nothing to a user of this tool
    warnings.filterwarnings("ignore", message=r".*torch\.meshgrid.*")
    warnings.filterwarnings("ignore", message=r".*torch\.jit\.script.*")
    logging.getLogger("torch.fx._symbolic_trace").setLevel(logging.ERROR)
    try:
        if not os.path.isfile(args.config_file):
            raise FileNotFoundError(f"config file {args.config_file} does not exist")
        if not (os.path.isfile(args.weights) or "://" in args.weights):
            raise FileNotFoundError(f"weights {args.weights} do not exist (train first: vertkp train; the run's "
                                    "OUTPUT_DIR holds model_final.pth and model_best.pth)")
        if not HAS_DETECTRON2:
            print(f"{parser.prog}: error: detectron2 is not installed (predict needs it; see README, Install)",
                  file=sys.stderr)
            return 2
        predictor = VertebraPredictor(args.config_file, args.weights, device=args.device,
                                      score_threshold=args.score_threshold, view=args.view, facing=args.facing,
                                      bottom_level=args.bottom_level, no_slip_pct=args.no_slip_pct,
                                      gap_factor=args.gap_factor,
                                      keep_dicom_ids=args.keep_dicom_ids, tta=args.tta)
        predictor.set_thresholds(corner=args.corner_threshold, vertebra=args.vertebra_threshold,
                                 spread_pct=args.spread_threshold)
        settings = {k: v for k, v in vars(args).items() if k not in ("input", "no_progress", "quiet")}
        settings["inputs"] = list(args.input)
        summary = predict_files(predictor, args.input, args.output, view=args.view, pixel_spacing=args.pixel_spacing,
                                gt=args.gt, batch_size=args.batch_size, overlays=not args.no_overlays,
                                progress=not args.no_progress, quiet=args.quiet, settings=settings,
                                keep_dicom_ids=args.keep_dicom_ids)
    except (ValueError, FileNotFoundError, json.JSONDecodeError) as e:
        print(f"{parser.prog}: error: {e}", file=sys.stderr)
        return 2
    return 1 if summary["failed"] else 0
