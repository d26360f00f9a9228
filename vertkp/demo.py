"""The whole story on phantoms, no download: ``make demo`` / ``vertkp demo`` / ``python tools/demo.py``.

    vertkp demo [--output output/demo] [--num-images 100] [--seed 0]
            [--config-file configs/kprcnn_mobilenetv4_phantoms.yaml] [KEY VALUE ...]

1. writes a synthetic phantom dataset packed as the Mendeley download is
   (OUT/data/phantoms_download.zip: an outer zip with a nested Dataset.zip),
2. converts it from the zip, as a user would (extracted to OUT/data/phantoms, COCO
   files and the audit in OUT/data/phantoms/coco),
3. trains the phantom config from scratch (OUT/train: checkpoints, log, metrics),
4. predicts the validation images (OUT/predictions: predictions.json, report.csv,
   review.html, coco_results.json, overlays/),
5. scores those predictions with the evaluator (OUT/evaluation: metrics.json, CSVs, plots),

then prints the headline numbers and where everything is (also in OUT/demo_summary.json).
Trailing KEY VALUE pairs override the training config (e.g. SOLVER.MAX_ITER 100).
Uses CUDA when there is one. Exit status: 0 done, 2 detectron2 missing or bad arguments.
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
from pathlib import Path

from . import DETECTRON2_INSTALL, HAS_DETECTRON2
from .cli import config_path, default_output
from .convert import convert_dataset
from .evaluation import flat_metrics
from .evaluation.cli import evaluate_files
from .files import read_json, write_json
from .phantoms import TRUTH_FILE
from .phantoms.make import ensure_phantoms
from .phantoms.difficulty import DEFAULT_DIFFICULTY, DIFFICULTIES

if HAS_DETECTRON2:
    import torch

    from .config import build_cfg
    from .data.loading.registration import register_all
    from .engine import ConfigError, setup_run, train
    from .inference import VertebraPredictor
    from .inference.run import predict_files

__all__ = ["build_parser", "main"]

DEFAULT_CONFIG = "configs/kprcnn_mobilenetv4_phantoms.yaml"
# The phantom set, packed as the Mendeley download is (vertkp phantoms --archive).
PHANTOM_ARCHIVE = "phantoms_download.zip"
# The metrics the demo prints and keeps in demo_summary.json (names of vertkp.evaluation.METRICS).
HEADLINE = ("n_images", "det_F1", "det_precision", "det_recall", "MRE_px", "MRE_px_median", "MRE_pct_width",
            "SDR_px@6", "SDR_px@12", "slip_MAE_pp", "grade_acc", "kappa", "truth_MRE_px", "truth_MRE_pct_width",
            "label_MRE_px", "truth_slip_MAE_pp", "truth_grade_acc")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--output", default=default_output("demo"), help="folder for everything the demo makes")
    p.add_argument("--num-images", type=int, default=100,
                   help="labelled phantom images (about 70%% train, 30%% val)")
    p.add_argument("--seed", type=int, default=0, help="phantom seed")
    p.add_argument("--difficulty", choices=tuple(DIFFICULTIES), default=DEFAULT_DIFFICULTY,
                   help="phantom difficulty (vertkp phantoms --difficulty)")
    p.add_argument("--config-file", default=DEFAULT_CONFIG, help="training config (phantom datasets)")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")
    p.add_argument("opts", nargs=argparse.REMAINDER, help="KEY VALUE overrides of the training config")
    return p


def _step(k: int, text: str) -> float:
    print(f"\n[{k}/5] {text}", flush=True)
    return time.perf_counter()


def _make_data(data: Path, num_images: int, seed: int, difficulty: str, progress: bool) -> Path:
    """Phantoms packed as the real download is, converted from the zip as a user would;
    reused when the same ones are already there. Returns the COCO folder."""
    archive, folder = data / PHANTOM_ARCHIVE, data / "phantoms"
    s = ensure_phantoms("spondylolisthesis", archive, num_images, seed, progress=progress, archive=True,
                        difficulty=difficulty)
    if s is None and (folder / "coco" / "val.json").is_file():
        print(f"   reusing {folder} ({num_images} {difficulty} phantoms, seed {seed})")
        return folder / "coco"
    if s is not None:
        print(f"   {s['images']} images: " + ", ".join(f"{k} {v}" for k, v in s["images_per_split"].items())
              + "; pairs per grade: " + ", ".join(f"{k} {v}" for k, v in s["pairs_per_grade"].items()))
    run = convert_dataset("spondylolisthesis", archive, extract_to=folder, progress=progress)
    text = run.report.summary() + ("\n" + run.audit.format_summary() if run.audit is not None else "")
    print("   " + text.replace("\n", "\n   "))
    return run.output


def main(argv=None) -> int:
    """Exit 0 done, 2 detectron2 missing or bad arguments."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not HAS_DETECTRON2:
        print(f"{parser.prog}: detectron2 is not installed. It is not on PyPI; install it from its upstream "
              f"source after torch:\n    {DETECTRON2_INSTALL}\n(or run `make install`, or use the Docker image: "
              "docker/README.md)", file=sys.stderr)
        return 2
    if args.num_images < 10:
        print(f"{parser.prog}: --num-images must be at least 10 (to have train and val images), got "
              f"{args.num_images}", file=sys.stderr)
        return 2
    config = config_path(args.config_file)
    if not os.path.isfile(config):
        print(f"{parser.prog}: config file {args.config_file} does not exist", file=sys.stderr)
        return 2
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    out = Path(args.output).resolve()
    out.mkdir(parents=True, exist_ok=True)
    progress = not args.no_progress
    times = {}
    t_all = time.perf_counter()

    t = _step(1, f"{args.difficulty} phantoms and conversion -> {out / 'data'}")
    coco = _make_data(out / "data", args.num_images, args.seed, args.difficulty, progress)
    times["data_s"] = time.perf_counter() - t

    register_all(out / "data")
    t = _step(2, f"training {config} -> {out / 'train'}"
                 + (f" with {' '.join(args.opts)}" if args.opts else ""))
    device = "cuda" if torch.cuda.is_available() else "cpu"
    print(f"   device: {device}" + ("" if device == "cuda" else f", {torch.get_num_threads()} CPU threads"),
          flush=True)
    if (out / "train").exists():
        shutil.rmtree(out / "train")
    try:
        # one evaluation, at the end (periodic ones would cost a minute on a CPU); opts can turn them back on
        cfg = build_cfg(config, ["OUTPUT_DIR", str(out / "train"), "MODEL.DEVICE", device, "TEST.EVAL_PERIOD", "0",
                                 *args.opts])
        setup_run(cfg, config_file=config)
        train(cfg)
    except (ConfigError, FileNotFoundError) as e:
        print(f"{parser.prog}: error: {e}", file=sys.stderr)
        return 2
    weights = out / "train" / "model_best.pth"
    if not weights.is_file():
        weights = out / "train" / "model_final.pth"
    times["train_s"] = time.perf_counter() - t

    t = _step(3, f"predicting the validation images with {weights.name} -> {out / 'predictions'}")
    gt = coco / "val.json"
    images = [str(coco.parent / im["file_name"]) for im in read_json(gt)["images"]]
    predictor = VertebraPredictor(config, str(weights), device=device)
    summary = predict_files(predictor, images, out / "predictions", gt=gt, progress=progress,
                            settings={"config_file": config, "weights": str(weights), "device": device})
    times["predict_s"] = time.perf_counter() - t

    t = _step(4, f"evaluating the predictions against {gt} and the exact truth -> {out / 'evaluation'}")
    run = evaluate_files(gt, out / "predictions" / "coco_results.json", out / "evaluation",
                         truth=coco.parent / TRUTH_FILE)
    metrics = flat_metrics(run.result.metrics)
    times["evaluate_s"] = time.perf_counter() - t

    _step(5, "results")
    times["total_s"] = time.perf_counter() - t_all
    headline = {k: metrics.get(k) for k in HEADLINE}
    record = {"config": config, "opts": list(args.opts), "weights": str(weights), "device": device,
              "num_images": args.num_images, "seed": args.seed, "difficulty": args.difficulty, "headline": headline,
              "prediction_summary": summary, "seconds": {k: round(v, 1) for k, v in times.items()}}
    write_json(out / "demo_summary.json", record)
    print(_headline_text(headline))
    print(f"\n   time: {times['total_s'] / 60:.1f} min (training {times['train_s'] / 60:.1f} min)")
    print(f"   overlays:     {out / 'predictions' / 'overlays'}/")
    print(f"   slip report:  {out / 'predictions' / 'report.csv'}")
    print(f"   review page:  {out / 'predictions' / 'review.html'}")
    print(f"   metrics:      {out / 'evaluation' / 'metrics.json'} (plots: {out / 'evaluation'}/*.png)")
    print(f"   weights:      {weights}")
    print(f"   summary:      {out / 'demo_summary.json'}")
    return 0


def _fmt(v, spec: str) -> str:
    return "n/a" if v is None else format(v, spec)


def _headline_text(h: dict) -> str:
    return "\n".join([
        f"   phantom validation images: {_fmt(h['n_images'], '.0f')}",
        f"   detection F1 {_fmt(h['det_F1'], '.1f')}% (precision {_fmt(h['det_precision'], '.1f')}%, "
        f"recall {_fmt(h['det_recall'], '.1f')}%)",
        f"   corner error MRE {_fmt(h['MRE_px'], '.2f')} px = {_fmt(h['MRE_pct_width'], '.2f')}% of the vertebra "
        f"width (median {_fmt(h['MRE_px_median'], '.2f')} px), SDR@6px {_fmt(h['SDR_px@6'], '.1f')}%, "
        f"SDR@12px {_fmt(h['SDR_px@12'], '.1f')}%",
        f"   against the exact truth: MRE {_fmt(h['truth_MRE_px'], '.2f')} px = "
        f"{_fmt(h['truth_MRE_pct_width'], '.2f')}% of the width (the labels' own error "
        f"{_fmt(h['label_MRE_px'], '.2f')} px), slip MAE {_fmt(h['truth_slip_MAE_pp'], '.2f')} pp, grade accuracy "
        f"{_fmt(h['truth_grade_acc'], '.1f')}%",
        f"   slip MAE {_fmt(h['slip_MAE_pp'], '.2f')} percentage points, Meyerding grade accuracy "
        f"{_fmt(h['grade_acc'], '.1f')}%, quadratic kappa {_fmt(h['kappa'], '.3f')}",
    ])
