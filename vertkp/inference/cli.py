"""``vertkp predict`` / ``tools/predict.py``: corners, slips and Meyerding grades for X-ray
images, with overlays and a report.

    vertkp predict --config-file CFG --weights W --input PATH [PATH ...] --output OUT
            [--facing left|right|auto] [--pixel-spacing MM_OR_FILE] [--score-threshold 0.5]
            [--device cpu|cuda] [--gt GT.json] [--view lateral|ap] [--bottom-level S1] [--keep-dicom-ids]
            [--backend fast|eager] [--tta none|flip|flip,scale] [--resume] [--no-json] [--num-workers N [--threads T] | --num-gpus N]
            [--num-machines M --machine-rank R --dist-url tcp://HOST:PORT]

PATH: image files, folders (searched recursively for .png .jpg .jpeg .bmp .tif
.tiff .dcm .dicom, and DICOM files of any name) or glob patterns. As each image is
predicted, its line goes into OUT/predictions.jsonl (``vertkp.inference.stream``) and its
overlay into OUT/overlays/<stem>.png; at the end, from the lines and in input order:
OUT/predictions.json (not with --no-json), OUT/report.csv (one row per adjacent pair) and
OUT/coco_results.json (COCO keypoint results for ``vertkp evaluate``; image ids from --gt
when given, else numbered from 1 in input order). No step holds every prediction in memory,
and a background thread reads the next images while the model runs.

--resume keeps what OUT/predictions.jsonl already holds predicted (failures are tried again)
when OUT/predict_run.json records the same model and grading settings (else exit 2); without
it, an earlier predictions.jsonl is replaced. --num-workers N (CPU processes) or --num-gpus N
(one process per GPU) shards the inputs over processes started by detectron2's ``launch``
(input k goes to rank k % world size), each writing OUT/shards/rank<r>.jsonl, which rank 0
merges by index: the files are those of one process. Over several machines (--num-machines,
--machine-rank, --dist-url) OUT must be a folder they share.

--backend fast (the default, ``vertkp.inference.fast``) gives the eager model's corners and
detections for less work.

An image's pixel spacing is --pixel-spacing's, else its DICOM header's, else --gt's
(predictions.json: pixel_spacing_source). No DICOM patient or study identifier is written
unless --keep-dicom-ids. A file that cannot be read is reported and skipped. Exit status:
0 all images predicted, 1 some failed (the rest are written), 2 bad arguments or nothing to
predict.
"""
from __future__ import annotations

import argparse
import glob
import itertools
import json
import logging
import os
import shutil
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple, Union

import cv2
import numpy as np
from tqdm import tqdm

from .. import HAS_DETECTRON2
from ..data.dicom import has_dicom_preamble
from ..data.images import IMAGE_SUFFIXES, ImageReadError
from ..data.report import InvalidInput
from ..data.spacing import find_pixel_spacing, load_pixel_spacing, spacing_lookup
from ..evaluation.ground_truth import EvaluationInputError, load_ground_truth
from ..evaluation.matching import DEFAULT_SCORE_THRESHOLD
from ..drawing import overlay_names
from ..files import read_json, write_json
from ..grading import DEFAULT_GAP_FACTOR, DEFAULT_NO_SLIP_PCT
from .outputs import format_summary, match_image_ids
from .overlay import draw_overlay
from .backends import BACKENDS, DEFAULT_BACKEND
from .fusion import TTA_MODES
from ..flags import SINGLE_PASS_THRESHOLDS
from .result import FlagThresholds, file_options, merge_options
from .stream import (LINES_FILE, RUN_FILE, SHARDS_DIR, done_indices, failure_line, finalize, keep_predicted,
                     merge_lines, prediction_line, read_ahead, read_lines, resume_conflicts, shard_file, start_fresh,
                     summarize_lines)

if HAS_DETECTRON2:
    import torch
    from detectron2.engine import launch
    from detectron2.utils import comm

    from .predictor import VertebraPredictor

__all__ = ["RUN_FLAGS", "PredictPlan", "build_parser", "expand_inputs", "plan_inputs", "prepare_output", "predict_plan",
           "predict_files", "main"]

# Flags of how a run is executed, not of what it predicts: left out of predictions.json's "settings"
# (so that one process and N give the same file) and of predict_run.json. --input is there as "inputs".
RUN_FLAGS = ("input", "no_progress", "quiet", "resume", "no_json", "num_gpus", "num_workers", "num_machines",
             "machine_rank", "dist_url", "threads")


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
    p.add_argument("--backend", choices=BACKENDS, default=DEFAULT_BACKEND,
                   help="fast: the same corners and detections for less work (folded batch norms, channels-last "
                        "backbone, 100 proposals, the keypoint head only on vertebrae that can pass "
                        "--score-threshold); eager: the model as detectron2 runs it")
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
    p.add_argument("--no-json", action="store_true",
                   help="skip predictions.json (predictions.jsonl holds the same; report.csv and coco_results.json "
                        "are written); an earlier one in OUT is removed")
    p.add_argument("--resume", action="store_true",
                   help="keep the images OUT/predictions.jsonl (and OUT/shards) already hold predicted, of an "
                        "interrupted run with the same model and grading settings (OUT/predict_run.json), and "
                        "predict the rest; without it, an earlier predictions.jsonl in OUT is replaced")
    p.add_argument("--num-workers", type=int, default=1,
                   help="CPU processes to shard the inputs over (input k to process k %% N); the files are those "
                        "of one process")
    p.add_argument("--threads", type=int, default=None,
                   help="torch CPU threads per process (0: torch's default; default: torch's with one process, "
                        "CPU cores // N with --num-workers N)")
    p.add_argument("--num-gpus", type=int, default=0,
                   help="processes to shard the inputs over, one per GPU (0: no GPU sharding)")
    p.add_argument("--num-machines", type=int, default=1,
                   help="machines sharing the inputs, each with --num-gpus or --num-workers processes; OUT must "
                        "be on a file system all of them share")
    p.add_argument("--machine-rank", type=int, default=0, help="this machine's rank, 0 to --num-machines - 1")
    p.add_argument("--dist-url", default="auto",
                   help="the process group's URL (tcp://HOST:PORT of machine 0 with --num-machines > 1; auto: a "
                        "free local port)")
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
        keep_dicom_ids: record DICOM identifiers.
    """

    paths: List[str]
    failures: List[dict]
    ids: List[Optional[int]]
    overlays: List[str]
    view: str = "lateral"
    spacing: Union[None, float, Dict[str, float]] = None
    gt: Optional[dict] = None
    keep_dicom_ids: bool = False


def plan_inputs(inputs: Sequence[str], *, view: str = "lateral", pixel_spacing=None, gt=None,
                keep_dicom_ids: bool = False) -> PredictPlan:
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
                       {im.image_id: im for im in gt_images} if gt_images is not None else None, keep_dicom_ids)


def _image_options(plan: PredictPlan, k: int) -> dict:
    """Grading overrides of input ``k``. Pixel spacing: --pixel-spacing's, else the file's own
    (a DICOM header's), else the ground truth's; with its source."""
    path = plan.paths[k]
    im = (plan.gt or {}).get(plan.ids[k])
    o = {"view": im.view if im is not None else plan.view}
    if isinstance(plan.spacing, float):
        o["pixel_spacing"] = plan.spacing
    elif plan.spacing is not None:
        o["pixel_spacing"] = find_pixel_spacing(plan.spacing, path, [im.source_stem if im is not None else None])
    if o.get("pixel_spacing") is not None:
        o["pixel_spacing_source"] = "--pixel-spacing"
    o = merge_options(file_options(path, plan.keep_dicom_ids), o)
    if o.get("pixel_spacing") is None and im is not None and im.pixel_spacing:
        o.update(pixel_spacing=float(im.pixel_spacing), pixel_spacing_source="--gt")
        o.pop("notes", None)
    if im is not None and im.facing:
        o["data_facing"] = im.facing
    return o


def prepare_output(plan: PredictPlan, output, settings: Optional[dict] = None, *, resume: bool = False,
                   quiet: bool = False) -> None:
    """Make OUT ready before any process predicts: start afresh, or with ``resume`` keep an
    interrupted run's predicted lines (``vertkp.inference.stream.keep_predicted``); then record
    the run's settings (``settings`` but its "inputs") in OUT/predict_run.json.

    Raises:
        ValueError: ``resume`` with settings other than those predict_run.json records.
    """
    out = Path(output)
    (out / "overlays").mkdir(parents=True, exist_ok=True)
    run = {k: v for k, v in (settings or {}).items() if k != "inputs"}
    say = (lambda text: None) if quiet else print
    if plan.gt is not None:
        missing = [p for p, i in zip(plan.paths, plan.ids) if i is None]
        if missing:
            say(f"note: {len(missing)} input(s) are not images of the --gt file and are left out of "
                f"coco_results.json (first: {missing[0]})")
    if resume:
        lines = [f for f in [out / LINES_FILE, *(out / SHARDS_DIR).glob("*.jsonl")] if f.is_file()]
        if lines and not (out / RUN_FILE).is_file():
            raise ValueError(f"--resume: {out / RUN_FILE} is missing, so the settings of {lines[0]} are unknown; "
                             "rerun without --resume")
        recorded = read_json(out / RUN_FILE) if lines else run
        differ = resume_conflicts(recorded, run)
        if differ:
            raise ValueError(f"--resume: {out} was predicted with other settings: " + ", ".join(
                f"{k} {recorded.get(k)!r} (now {run.get(k)!r})" for k in differ)
                + "; give the same ones, or leave out --resume to start afresh")
        kept = keep_predicted(out, plan.paths, plan.ids, say)
        say(f"resume: {kept} of {len(plan.paths)} input(s) already predicted in {out / LINES_FILE}; "
            f"predicting the other {len(plan.paths) - kept}")
    else:
        start_fresh(out)
    write_json(out / RUN_FILE, run)


def _read_input(predictor, plan: PredictPlan, k: int) -> Tuple[Optional[np.ndarray], Optional[dict], Optional[str]]:
    """(decoded image, grading options, None) of input ``k``, or (None, None, why) when it cannot be read."""
    try:
        image = predictor.load(plan.paths[k])[0]
    except ImageReadError as e:
        return None, None, str(e)
    return image, _image_options(plan, k), None


def _predict_share(predictor, plan: PredictPlan, indices: Sequence[int], lines: Path, overlay_dir: Optional[Path], *,
                   batch_size: int, progress: bool, quiet: bool) -> None:
    """Predict inputs ``indices`` (in order), appending each one's line to ``lines`` (flushed) and
    writing its overlay into ``overlay_dir`` (None: none) as it is made; a background thread reads
    up to 2 batches ahead."""
    bar = tqdm(total=len(indices), desc="predict", unit="image", disable=not progress or quiet)
    read = read_ahead(lambda k: _read_input(predictor, plan, k), indices, batch_size)
    with open(lines, "a", encoding="utf-8") as f:
        for batch in read:
            ok = [(k, image, opts) for k, (image, opts, error) in batch if error is None]
            results = iter(predictor.predict_decoded([im for _, im, _ in ok], [plan.paths[k] for k, _, _ in ok],
                                                     [o for _, _, o in ok]) if ok else ())
            images = {k: image for k, image, _ in ok}
            for k, (_, _, error) in batch:
                path = plan.paths[k]
                if error is not None:
                    f.write(failure_line(k, path, error))
                    if not quiet:
                        tqdm.write(f"skipped: {error}")
                else:
                    res = next(results)
                    res.image_id = plan.ids[k]
                    f.write(prediction_line(k, path, res))
                    if overlay_dir is not None:
                        cv2.imwrite(str(overlay_dir / f"{plan.overlays[k]}.png"),
                                    draw_overlay(predictor.gray(images[k]), res))
                f.flush()
            bar.update(len(batch))
    bar.close()


def predict_plan(predictor, plan: PredictPlan, output, *, batch_size: int = 1, overlays: bool = True,
                 progress: bool = True, quiet: bool = False, settings: Optional[dict] = None,
                 predictions_json: bool = True) -> Optional[dict]:
    """This process's part of a run into OUT made ready by :func:`prepare_output`: predict the
    inputs of its rank (k % world size == rank) that OUT/predictions.jsonl does not hold yet,
    into it (one process) or into OUT/shards/rank<r>.jsonl; once every process is done
    (``comm.synchronize``), rank 0 merges the lines in input order and writes the files
    (``vertkp.inference.stream.finalize``). Returns the summary on rank 0, None elsewhere."""
    out = Path(output)
    rank, world = comm.get_rank(), comm.get_world_size()
    lines = out / LINES_FILE
    done = done_indices(lines)
    kept_end = lines.stat().st_size if lines.is_file() else 0
    share = [k for k in range(rank, len(plan.paths), world) if k not in done]
    target = lines if world == 1 else shard_file(out, rank)
    target.parent.mkdir(parents=True, exist_ok=True)
    if world > 1:
        target.write_bytes(b"")
    _predict_share(predictor, plan, share, target, out / "overlays" if overlays else None, batch_size=batch_size,
                   progress=progress and rank == 0, quiet=quiet)
    comm.synchronize()
    if rank != 0:
        return None
    if world > 1:
        merge_lines([(lines, 0, None)] + [(shard_file(out, r), 0, None) for r in range(world)], lines)
        shutil.rmtree(out / SHARDS_DIR)
    elif kept_end and share:  # the kept lines, then those appended: two runs in input order
        merge_lines([(lines, 0, kept_end), (lines, kept_end, None)], lines)
    summary = finalize(out, plan.failures, settings, predictions_json=predictions_json)
    if not quiet:
        print(format_summary(summary))
        if summary["failed"]:
            read = (line["failure"] for line in read_lines(lines) if "failure" in line)
            for f in itertools.chain(plan.failures, read):
                print(f"failed: {f['image']}: {f['error']}")
        print(f"wrote {LINES_FILE}, {'predictions.json, ' if predictions_json else ''}report.csv, coco_results.json"
              f"{' and overlays/' if overlays else ''} to {out}")
    return summary


def predict_files(predictor, inputs: Sequence[str], output, *, view: str = "lateral", pixel_spacing=None,
                  gt=None, batch_size: int = 1, overlays: bool = True, progress: bool = True, quiet: bool = False,
                  settings: Optional[dict] = None, keep_dicom_ids: bool = False, resume: bool = False,
                  predictions_json: bool = True) -> Optional[dict]:
    """Predict image files and write predictions.jsonl, predictions.json, report.csv,
    coco_results.json and overlays/ into ``output``; returns
    :func:`vertkp.inference.outputs.summarize` (None on a process of rank > 0).

    Args:
        predictor: a :class:`vertkp.inference.VertebraPredictor`.
        inputs: files, folders (searched recursively) and glob patterns.
        view: what the images are, unless ``gt`` says.
        pixel_spacing: mm per pixel for every image, or a table file (``vertkp.data.spacing``);
            over a DICOM file's own.
        gt: a vertkp COCO file of these images: its image ids go into coco_results.json,
            and its view, pixel spacing and facing are used per image.
        settings: recorded as predictions.json's "settings" (and, but its "inputs", in predict_run.json).
        keep_dicom_ids: record DICOM files' identifiers (``SpinePrediction.dicom_ids``);
            by default no output holds any.
        resume: keep what an interrupted run with the same ``settings`` predicted (:func:`prepare_output`).
        predictions_json: write predictions.json (else predictions.jsonl alone holds the predictions).

    Raises:
        ValueError: nothing to predict, bad pixel spacing or ground truth, ``resume`` with other settings.
    """
    if batch_size < 1:
        raise ValueError(f"--batch-size must be >= 1, got {batch_size}")
    plan = plan_inputs(inputs, view=view, pixel_spacing=pixel_spacing, gt=gt, keep_dicom_ids=keep_dicom_ids)
    if comm.get_rank() == 0:
        prepare_output(plan, output, settings, resume=resume, quiet=quiet)
    comm.synchronize()
    return predict_plan(predictor, plan, output, batch_size=batch_size, overlays=overlays, progress=progress,
                        quiet=quiet, settings=settings, predictions_json=predictions_json)


def _quiet_warnings() -> None:
    """torch/detectron2 deprecation notices say nothing to a user of this tool."""
    warnings.filterwarnings("ignore", message=r".*torch\.meshgrid.*")
    warnings.filterwarnings("ignore", message=r".*torch\.jit\.script.*")
    logging.getLogger("torch.fx._symbolic_trace").setLevel(logging.ERROR)


def _processes(args) -> int:
    """Processes per machine (--num-gpus or --num-workers), the run's flags checked.

    Raises:
        ValueError: what is wrong with them.
    """
    if args.batch_size < 1:
        raise ValueError(f"--batch-size must be >= 1, got {args.batch_size}")
    if args.num_gpus < 0 or args.num_workers < 1 or args.num_machines < 1:
        raise ValueError("--num-gpus must be >= 0, --num-workers and --num-machines >= 1")
    if not 0 <= args.machine_rank < args.num_machines:
        raise ValueError(f"--machine-rank must be in [0, --num-machines), got {args.machine_rank}")
    if args.threads is not None and args.threads < 0:
        raise ValueError(f"--threads must be >= 0 (0: torch's default), got {args.threads}")
    if args.num_gpus and args.num_workers > 1:
        raise ValueError("give --num-gpus (one process per GPU) or --num-workers (CPU processes), not both")
    gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if args.num_gpus > gpus:
        raise ValueError(f"--num-gpus {args.num_gpus}, but " + ("CUDA is not available" if not gpus else
                                                                 f"only {gpus} GPU(s) are visible")
                         + "; to shard over CPU processes, give --num-workers N instead")
    if args.num_gpus and args.device is not None and not args.device.startswith("cuda"):
        raise ValueError(f"--num-gpus puts one process on each GPU: leave out --device {args.device}")
    if args.num_workers > 1 and gpus:
        raise ValueError("--num-workers shards over CPU processes, but CUDA is available (detectron2's launch then "
                         "puts each process on a GPU): give --num-gpus N")
    if args.num_machines > 1 and args.dist_url == "auto":
        raise ValueError("--num-machines > 1 needs --dist-url tcp://HOST:PORT, HOST being machine 0")
    return args.num_gpus or args.num_workers


def _predictor_options(args) -> dict:
    """``VertebraPredictor`` arguments and flag ``thresholds`` of the command line."""
    return dict(config_file=args.config_file, weights=args.weights, device=args.device,
                score_threshold=args.score_threshold, view=args.view, facing=args.facing,
                bottom_level=args.bottom_level, no_slip_pct=args.no_slip_pct, gap_factor=args.gap_factor,
                keep_dicom_ids=args.keep_dicom_ids, tta=args.tta, backend=args.backend,
                thresholds=dict(corner=args.corner_threshold, vertebra=args.vertebra_threshold,
                                spread_pct=args.spread_threshold))


def _build_predictor(options: dict):
    """The ``VertebraPredictor`` of :func:`_predictor_options`."""
    options = dict(options)
    thresholds = options.pop("thresholds")
    predictor = VertebraPredictor(options.pop("config_file"), options.pop("weights"), **options)
    predictor.set_thresholds(**thresholds)
    return predictor


def _worker(job: dict) -> None:
    """One process of a sharded run (started by detectron2's ``launch``): its own predictor, its share."""
    _quiet_warnings()
    if job["threads"] > 0:
        torch.set_num_threads(job["threads"])
    options = dict(job["predictor"])
    if job["gpus"]:
        options["device"] = f"cuda:{comm.get_local_rank()}"
    predict_plan(_build_predictor(options), job["plan"], job["output"], **job["run"])


def main(argv=None) -> int:
    """Exit 0 all predicted, 1 some failed, 2 bad arguments."""
    parser = build_parser()
    args = parser.parse_args(argv)
    _quiet_warnings()
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
        processes = _processes(args)
        settings = {k: v for k, v in vars(args).items() if k not in RUN_FLAGS}
        settings["inputs"] = list(args.input)
        run = dict(batch_size=args.batch_size, overlays=not args.no_overlays, progress=not args.no_progress,
                   quiet=args.quiet, settings=settings, predictions_json=not args.no_json)
        plan = plan_inputs(args.input, view=args.view, pixel_spacing=args.pixel_spacing, gt=args.gt,
                           keep_dicom_ids=args.keep_dicom_ids)
        if args.machine_rank == 0:
            prepare_output(plan, args.output, settings, resume=args.resume, quiet=args.quiet)
        if processes * args.num_machines == 1:  # in this process, no process group
            if args.threads:
                torch.set_num_threads(args.threads)
            summary = predict_plan(_build_predictor(_predictor_options(args)), plan, args.output, **run)
            return 1 if summary["failed"] else 0
    except (ValueError, FileNotFoundError, json.JSONDecodeError) as e:
        print(f"{parser.prog}: error: {e}", file=sys.stderr)
        return 2
    threads = args.threads if args.threads is not None else max(1, (os.cpu_count() or 1) // processes)
    job = dict(predictor=_predictor_options(args), threads=threads, gpus=args.num_gpus > 0, plan=plan,
               output=args.output, run=run)
    launch(_worker, processes, num_machines=args.num_machines, machine_rank=args.machine_rank,
           dist_url=args.dist_url, args=(job,))
    if args.machine_rank != 0:  # machine 0 wrote the files
        return 0
    return 1 if summarize_lines(Path(args.output) / LINES_FILE, plan.failures)["failed"] else 0
