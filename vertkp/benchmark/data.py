"""Data benchmark: ``vertkp benchmark data``: the data tools' throughput, no model.

    vertkp benchmark data --num-images 40 --image-size 640 --output output/benchmark/data

On a phantom set (``vertkp.phantoms.make.ensure_phantoms``, Mendeley layout) made in OUT/data:

* the converter: images/s of ``vertkp.data.datasets.spondylolisthesis.convert_spondylolisthesis`` (raw layout ->
  COCO, every split), median over DATA_REPEATS runs;
* the evaluator: images/s of ``vertkp.evaluation.evaluate_dataset`` on the set's train
  and val ground truth with predictions made by moving every GT corner by Gaussian
  noise (EVAL_NOISE_PX), median over DATA_REPEATS runs;
* the audit: images/s of ``vertkp.audit.audit_files`` (``vertkp audit --no-overlays``:
  every check, audit.json and audit.csv, no overlay) on the set's train and val COCO
  files, median over DATA_REPEATS runs.

``vertkp benchmark speed`` measures the same on its own phantom set. Needs neither
detectron2, torch nor a GPU. Writes OUT/benchmark.json.
"""
from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np

from ..audit import audit_files
from ..data.datasets.spondylolisthesis import convert_spondylolisthesis
from ..evaluation import ImagePredictions, evaluate_dataset, load_ground_truth
from ..files import write_json
from ..phantoms.make import ensure_phantoms
from ..phantoms.difficulty import DEFAULT_DIFFICULTY
from .report import format_data, machine_info, machine_line

__all__ = ["DATA_REPEATS", "EVAL_NOISE_PX", "phantom_set", "phantom_truths", "mean_vertebrae", "measure_converter",
           "measure_evaluator", "measure_audit", "measure_data_tools", "format_audit", "noisy_predictions", "run"]

# The converter and the evaluator are timed this many times; their throughput is the median.
DATA_REPEATS = 3
# Standard deviation of the noise moving GT corners into the evaluator's predictions, px.
EVAL_NOISE_PX = 2.0


def phantom_set(data: Path, num_images: int, image_size: int, seed: int, difficulty: str = DEFAULT_DIFFICULTY) -> Path:
    """The benchmarks' phantom set: ``data/phantoms`` in the raw Mendeley layout (kept when
    made with the same settings, ``ensure_phantoms``), converted to ``data/phantoms/coco``.
    Returns the phantom folder."""
    folder = Path(data) / "phantoms"
    print(f"phantom set: {num_images} {difficulty} images of {image_size} px -> {folder}", flush=True)
    if ensure_phantoms("spondylolisthesis", folder, num_images, seed, image_size=image_size, progress=False,
                       difficulty=difficulty) is None:
        print(f"   reusing {folder}", flush=True)
    convert_spondylolisthesis(folder, progress=False)
    return folder


def phantom_truths(coco: Path) -> list:
    """The ground truth (``ImageTruth``) of the train and val images of the phantom set's COCO folder."""
    return [t for split in ("train", "val") for t in load_ground_truth(Path(coco) / f"{split}.json").images]


def mean_vertebrae(truths) -> int:
    """The phantom set's vertebrae per image, rounded, at least 1: what every image keeps with
    random weights (score threshold 0), so that the keypoint head and the grading do a trained
    model's work."""
    return max(1, round(sum(len(t.corners) for t in truths) / len(truths)))


def _timed(repeats: int, fn) -> tuple:
    """(seconds of each of ``repeats`` calls of ``fn``, the last call's result)."""
    seconds, result = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        result = fn()
        seconds.append(time.perf_counter() - t0)
    return seconds, result


def measure_converter(folder: Path, repeats: int = DATA_REPEATS) -> dict:
    """Throughput of ``convert_spondylolisthesis`` on the phantom folder (all splits)."""
    seconds, report = _timed(repeats, lambda: convert_spondylolisthesis(folder, progress=False))
    n = sum(report.images.values())
    return {"images": n, "repeats": repeats, "seconds": seconds,
            "images_per_s": float(np.median(n / np.array(seconds))),
            "what": "vertkp.data.datasets.spondylolisthesis.convert_spondylolisthesis, raw Mendeley layout -> COCO (all splits)"}


def noisy_predictions(truths, noise_px: float, seed: int = 0) -> dict:
    """Predictions for the evaluator: every GT vertebra with its corners moved by
    Gaussian noise (unlabelled corners filled with the vertebra's mean corner), score 0.9."""
    rng = np.random.default_rng(seed)
    preds = {}
    for t in truths:
        c = np.array(t.corners, dtype=np.float64)
        if len(c):
            mean = np.nanmean(np.where(t.visible[:, :, None], c, np.nan), axis=1, keepdims=True)
            c = np.where(np.isfinite(c), c, np.broadcast_to(mean, c.shape))
        preds[t.image_id] = ImagePredictions(c + rng.normal(0.0, noise_px, c.shape), np.full(len(c), 0.9))
    return preds


def measure_evaluator(coco: Path, repeats: int = DATA_REPEATS) -> dict:
    """Throughput of ``evaluate_dataset`` on the train+val ground truth of ``coco`` and noisy predictions."""
    truths = phantom_truths(coco)
    preds = noisy_predictions(truths, EVAL_NOISE_PX)
    seconds, result = _timed(repeats, lambda: evaluate_dataset(truths, preds))
    return {"images": len(truths), "repeats": repeats, "seconds": seconds,
            "images_per_s": float(np.median(len(truths) / np.array(seconds))), "MRE_px": result.metrics["MRE_px"],
            "what": f"vertkp.evaluation.evaluate_dataset on train+val GT, predictions = GT + {EVAL_NOISE_PX:g} px "
                    "Gaussian noise (matching, MRE/SDR, detection, slip and grade agreement)"}


def measure_audit(coco: Path, repeats: int = DATA_REPEATS) -> dict:
    """Throughput of ``audit_files`` (overlays off) on the train and val COCO files of ``coco``
    (images found by the ``<root>/coco/<split>.json`` convention); its files go to a
    temporary folder."""
    files = [Path(coco) / f"{split}.json" for split in ("train", "val")]
    with tempfile.TemporaryDirectory(prefix="vertkp_audit_") as out:
        seconds, run = _timed(repeats, lambda: audit_files(files, out, overlays=False, progress=False))
    n = sum(d.images for d in run.audit.datasets.values())
    return {"images": n, "repeats": repeats, "seconds": seconds,
            "images_per_s": float(np.median(n / np.array(seconds))), "findings": run.audit.summary(),
            "what": "vertkp.audit.audit_files on train+val, overlays off (every check, audit.json and audit.csv)"}


def measure_data_tools(folder: Path, report: dict, converter: bool = True, evaluator: bool = True,
                       audit: bool = False) -> bool:
    """Measure the converter, the evaluator and/or the audit on a converted phantom folder
    into ``report["converter"]`` / ``report["evaluator"]`` / ``report["audit"]`` (a failure
    holds "error"); returns whether one failed."""
    failed = False
    for key, wanted, measure, source in (("converter", converter, measure_converter, folder),
                                         ("evaluator", evaluator, measure_evaluator, folder / "coco"),
                                         ("audit", audit, measure_audit, folder / "coco")):
        if not wanted:
            continue
        try:
            report[key] = measure(source)
            print(f"   {key}: {report[key]['images_per_s']:.1f} img/s", flush=True)
        except Exception as e:  # report it, measure the rest
            report[key] = {"error": f"{type(e).__name__}: {e}"}
            print(f"   {key}: FAILED: {report[key]['error']}", flush=True)
            failed = True
    return failed


def format_audit(report: dict) -> str:
    """The audit's line of the data benchmark ("" when it did not run)."""
    d = report.get("audit")
    if not d:
        return ""
    if "error" in d:
        return "audit (overlays off): failed"
    return f"audit (overlays off): {d['images_per_s']:.1f} img/s ({d['images']} images)"


def run(args, folder: Path) -> int:
    """``vertkp benchmark data`` on arguments checked by ``vertkp.benchmark.cli`` and the
    phantom set it made (``folder``, :func:`phantom_set`): exit 0 done, 1 a measurement failed."""
    out = Path(args.output).resolve()
    report = {"machine": machine_info(),
              "settings": {"num_images": args.num_images, "image_size": args.image_size, "seed": args.seed,
                           "difficulty": args.difficulty}}
    print(f"machine: {machine_line(report['machine'])}", flush=True)
    failed = measure_data_tools(folder, report, audit=True)
    write_json(out / "benchmark.json", report)
    print(f"\n{format_data(report)}\n{format_audit(report)}\n\nwrote {out / 'benchmark.json'}")
    return 1 if failed else 0
