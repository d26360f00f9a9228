"""``vertkp predict`` / ``tools/predict.py``: corners, slips and Meyerding grades for X-ray
images, with overlays and a report.

    vertkp predict --config-file CFG --weights W --input PATH [PATH ...] --output OUT
            [--facing left|right|auto] [--pixel-spacing MM_OR_FILE] [--score-threshold 0.5]
            [--device cpu|cuda] [--gt GT.json] [--view lateral|ap] [--bottom-level auto|S1|none] [--keep-dicom-ids]
            [--tta none|flip|flip,scale] [--resume] [--no-json] [--num-workers N [--threads T] | --num-gpus N]
            [--num-machines M --machine-rank R --dist-url tcp://HOST:PORT]

PATH: image files, folders (searched recursively for .png .jpg .jpeg .bmp .tif
.tiff .dcm .dicom, and DICOM files of any name) or glob patterns (``vertkp.inference.inputs``). As each image is
predicted, its line goes into OUT/predictions.jsonl (``vertkp.inference.stream``) and its
overlay into OUT/overlays/<stem>.png; at the end, from the lines and in input order:
OUT/predictions.json (not with --no-json), OUT/report.csv (one row per adjacent pair),
OUT/review.html (one self-contained page, images worst first with their flags, overlay and
pairs; with --gt, their errors: ``vertkp.inference.review_page``) and OUT/coco_results.json
(COCO keypoint results for ``vertkp evaluate``; image ids from --gt when given, else
numbered from 1 in input order). No step holds every prediction in memory,
and a background thread reads the next images while the model runs.

--resume keeps what OUT/predictions.jsonl already holds predicted (failures are tried again)
when OUT/predict_run.json records the same model and grading settings (else exit 2); without
it, an earlier predictions.jsonl is replaced. --num-workers N (CPU processes) or --num-gpus N
(one process per GPU) shards the inputs over processes started by detectron2's ``launch``
(input k goes to rank k % world size), each writing OUT/shards/rank<r>.jsonl, which rank 0
merges by index: the files are those of one process. Over several machines (--num-machines,
--machine-rank, --dist-url) OUT must be a folder they share.

An image's pixel spacing is --pixel-spacing's, else its DICOM header's, else --gt's
(predictions.json: pixel_spacing_source). No DICOM patient or study identifier is written
unless --keep-dicom-ids. A file that cannot be read is reported and skipped. Exit status:
0 all images predicted, 1 some failed (the rest are written), 2 bad arguments or nothing to
predict.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import warnings
from pathlib import Path

from .. import HAS_DETECTRON2
from ..evaluation.matching import DEFAULT_SCORE_THRESHOLD
from ..files import output_folder
from ..grading import DEFAULT_GAP_FACTOR, DEFAULT_NO_SLIP_PCT
from ..modeling.fusion import TTA_MODES
from ..review import OPERATING_POINTS
from .inputs import plan_inputs
from .run import predict_plan, prepare_output
from .stream import LINES_FILE, summarize_lines

if HAS_DETECTRON2:
    import torch
    from detectron2.engine import launch
    from detectron2.utils import comm

    from .predictor import VertebraPredictor

__all__ = ["RUN_FLAGS", "build_parser", "main"]

# Flags of how a run is executed, not of what it predicts: left out of predictions.json's "settings"
# (so that one process and N give the same file) and of predict_run.json. --input is there as "inputs".
RUN_FLAGS = ("input", "no_progress", "quiet", "resume", "no_json", "num_gpus", "num_workers", "num_machines",
             "machine_rank", "dist_url", "threads")


def build_parser() -> argparse.ArgumentParser:
    tta, one = OPERATING_POINTS["flip"].thresholds, OPERATING_POINTS["none"].thresholds
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
    p.add_argument("--bottom-level", default="auto", metavar="LEVEL",
                   help="auto (default): name levels L1..S1 where the bottom vertebra is recognised as S1 "
                        "(with its confidence; else names stay by position); a level (e.g. S1): the most caudal "
                        "vertebra in view is that level; none: name by position")
    p.add_argument("--batch-size", type=int, default=1, help="images per forward pass")
    p.add_argument("--tta", choices=TTA_MODES, default=None,
                   help="test-time augmentation: flip (the image and its mirror, fused: better corners, the "
                        "passes' disagreement per corner, the unstable_corner flag; 2x the model's time), "
                        "flip,scale (also at 0.8 and 1.2 times the test size: 6x) or none; default: the "
                        "config's TEST.AUG keys (flip in vertkp's configs)")
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
                bottom_level=None if args.bottom_level.lower() == "none" else args.bottom_level,
                no_slip_pct=args.no_slip_pct, gap_factor=args.gap_factor,
                keep_dicom_ids=args.keep_dicom_ids, tta=args.tta,
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
        output_folder(args.output)
        settings = {k: v for k, v in vars(args).items() if k not in RUN_FLAGS}
        settings["inputs"] = list(args.input)
        run = dict(batch_size=args.batch_size, overlays=not args.no_overlays, progress=not args.no_progress,
                   quiet=args.quiet, settings=settings, predictions_json=not args.no_json)
        plan = plan_inputs(args.input, view=args.view, pixel_spacing=args.pixel_spacing, gt=args.gt)
        single = processes * args.num_machines == 1  # in this process, no process group
        if single and args.threads:
            torch.set_num_threads(args.threads)
        # the model first: weights that cannot be used leave OUT as it was (an earlier run's lines kept);
        # a sharded run only checks them here, on the CPU, and each of its processes builds its own
        options = _predictor_options(args)
        predictor = _build_predictor(options if single else dict(options, device="cpu"))
        if not single:
            predictor = None
        if args.machine_rank == 0:
            prepare_output(plan, args.output, settings, resume=args.resume, quiet=args.quiet)
        if predictor is not None:
            summary = predict_plan(predictor, plan, args.output, **run)
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
