"""TTA benchmark: ``vertkp benchmark tta``: what test-time augmentation and sub-pixel decoding
bring, and how well the review flags catch the wrong corners.

    vertkp benchmark tta --config-file configs/kprcnn_r50_phantoms.yaml --weights output/demo/train/model_final.pth

The weights are a model trained on the train split of a phantom set of seed --seed (``make
demo``'s: 100 realistic phantoms of seed 0). Two fresh phantom sets of
--held-out-images each, neither seen in training:

* tuning (seed --seed + 2, every split): the operating point of each CALIBRATED variant's TTA
  mode is fitted on it (``vertkp.review.fit_operating_point``: flag thresholds, error risk
  model, corner uncertainty): the thresholds that flag the fewest corners while every flag
  together catches ``vertkp.review.TARGET_RECALL`` % of the corners off by more than 5% of the
  vertebra width. ``vertkp.review.OPERATING_POINTS`` holds the numbers fitted last.
* held-out (seed --seed + 1, every split): each variant
  of VARIANTS is evaluated on it (MRE against the labels and the exact corners, SDR, detection
  F1, grade accuracy, model latency per image at batch 1), and so are the fitted flags
  (recall, flag rate, AUROC of each signal, reliability of the risk, slip interval coverage)
  and the flags at the operating points the code ships with.

Writes OUT/benchmark.json and prints the tables the README shows. A benchmark, not a test:
~10 minutes on 2 CPU cores at the defaults.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import numpy as np

from ..evaluation import EvaluationSettings, ImagePredictions, evaluate_dataset, load_ground_truth
from ..evaluation.exact_truth import add_truth_scores
from ..evaluation.plots import reliability_plot
from ..files import write_json
from ..modeling.fusion import DEFAULT_UNMATCHED
from ..modeling.outputs import predictions_from_instances
from ..phantoms.truth import TRUTH_FILE
from ..review import (OPERATING_POINTS, TARGET_FLAG_RATE, CornerUncertainty, calibration_at, corner_table,
                      evaluate_calibration, fit_operating_point, fitted_point, slip_interval_stats)
from .data import phantom_set
from .device import set_threads
from .report import machine_info, machine_line

__all__ = ["VARIANTS", "CALIBRATED", "predict_raw", "run"]

# name -> (TTA mode, MODEL.ROI_KEYPOINT_HEAD.SUBPIXEL[, what fusion does with a vertebra one pass
# missed: vertkp.modeling.fusion.UNMATCHED_RULES, default DEFAULT_UNMATCHED])
VARIANTS = {
    "base": ("none", "none"),
    "+ flip": ("flip", "none"),
    "+ sub-pixel (dark)": ("none", "dark"),
    "+ sub-pixel (soft-argmax)": ("none", "soft_argmax"),
    "+ flip + sub-pixel": ("flip", "dark"),
    "+ flip + sub-pixel, one-pass vertebrae kept": ("flip", "dark", "keep"),
    "+ flip + sub-pixel, one-pass vertebrae dropped": ("flip", "dark", "drop"),
    "+ flip, scales + sub-pixel": ("flip,scale", "dark"),
}
# The variants whose TTA mode's operating point is fitted: the defaults without and with TTA
# (TTA mode "none" or "flip", MODEL.ROI_KEYPOINT_HEAD.SUBPIXEL "dark").
CALIBRATED = ("+ sub-pixel (dark)", "+ flip + sub-pixel")
HEADLINE = ("MRE_px", "truth_MRE_px", "MRE_pct_width", "SDR_px@6", "det_F1", "grade_acc", "truth_grade_acc",
            "slip_MAE_pp")


def predict_raw(predictor, truths, root: Path, warmup: int = 2):
    """The model's raw output with corner signals for every GT image (``ImagePredictions`` by image
    id), the model's seconds per image (the first ``warmup`` left out) and each image's (height,
    width) by image id."""
    preds: Dict[int, ImagePredictions] = {}
    seconds: List[float] = []
    sizes: Dict[int, Tuple[int, int]] = {}
    for k, t in enumerate(truths):
        image, _ = predictor.load(str(root / t.file_name))
        start = time.perf_counter()
        inst = predictor.run_model([predictor.prepare(image)])[0]
        if k >= warmup or len(truths) <= warmup:
            seconds.append(time.perf_counter() - start)
        preds[t.image_id] = predictions_from_instances(inst)
        sizes[t.image_id] = image.shape[:2]
    return preds, seconds, sizes


def _evaluate(truths, preds, truth_file: Path):
    settings = EvaluationSettings()
    result = evaluate_dataset(truths, preds, settings)
    if truth_file.is_file():
        add_truth_scores(result.metrics, truth_file, truths, preds, settings)
    return result


def _truths(coco: Path, splits) -> list:
    return [t for s in splits if (coco / f"{s}.json").is_file() for t in load_ground_truth(coco / f"{s}.json").images]


def _apply(table: dict, fit: dict, tta: bool, which: str = "thresholds") -> dict:
    """The fitted operating point (thresholds ``fit[which]``) on another set's corners."""
    point = fitted_point(fit, which)
    if point is None:
        return {"reached": False}
    report = calibration_at(table, point.thresholds, tta, point.risk_model)
    return {k: report[k] for k in ("flags", "auroc", "large_share_pct")}


def _fmt(v, spec=".2f"):
    return "-" if v is None or (isinstance(v, float) and not np.isfinite(v)) else format(v, spec)


def format_ablation(rows: Dict[str, dict]) -> str:
    lines = ["| variant | MRE labels / truth (px) | MRE % width | SDR@6px | det F1 | grade acc (truth) | "
             "slip MAE | model s/image |", "|---|---|---|---|---|---|---|---|"]
    for name, r in rows.items():
        m = r["metrics"]
        lines.append(f"| {name} | {_fmt(m.get('MRE_px'))} / {_fmt(m.get('truth_MRE_px'))} | "
                     f"{_fmt(m.get('MRE_pct_width'))} | {_fmt(m.get('SDR_px@6'), '.1f')}% | "
                     f"{_fmt(m.get('det_F1'), '.1f')}% | {_fmt(m.get('grade_acc'), '.1f')}% "
                     f"({_fmt(m.get('truth_grade_acc'), '.1f')}%) | {_fmt(m.get('slip_MAE_pp'))} pp | "
                     f"{_fmt(r['seconds_per_image'], '.3f')} |")
    return "\n".join(lines)


def format_flags(name: str, applied: dict) -> str:
    if not applied.get("flags"):
        return f"{name}: the target recall was not reached on the tuning set"
    lines = [f"{name}: large errors are {_fmt(applied['large_share_pct'], '.1f')}% of the corners",
             "| flag | recall of large errors | corners flagged | precision |", "|---|---|---|---|"]
    for flag, st in applied["flags"].items():
        lines.append(f"| {flag} | {_fmt(st['recall'], '.1f')}% | {_fmt(st['flag_rate'], '.1f')}% | "
                     f"{_fmt(st['precision'], '.1f')}% |")
    lines.append("AUROC: " + ", ".join(f"{k} {_fmt(v, '.3f')}" for k, v in applied["auroc"].items()))
    return "\n".join(lines)


def run(args, folder: Optional[Path] = None) -> int:
    """The benchmark (module docstring); ``folder`` is None: tta makes its own two sets."""
    from ..inference import VertebraPredictor  # detectron2

    set_threads(args.threads)
    out = Path(args.output).resolve()
    held = phantom_set(out / "data_held_out", args.held_out_images, args.image_size, args.seed + 1, args.difficulty)
    tune = phantom_set(out / "data_tuning", args.held_out_images, args.image_size, args.seed + 2, args.difficulty)
    tuning_truths = _truths(tune / "coco", ("train", "val"))
    held_truths = _truths(held / "coco", ("train", "val"))
    print(f"tuning: {len(tuning_truths)} images (seed {args.seed + 2}); held-out: {len(held_truths)} images "
          f"(seed {args.seed + 1}); the model was trained on the train split of seed {args.seed}", flush=True)
    variants = {k: v for k, v in VARIANTS.items() if k in args.variants} if args.variants else VARIANTS
    report = {"machine": machine_info(), "settings": {"config": args.config_file[0], "weights": args.weights[0],
                                                      "seed": args.seed,
                                                      "held_out_images": args.held_out_images,
                                                      "difficulty": args.difficulty},
              "variants": {}, "calibration": {}}
    print(machine_line(report["machine"]), flush=True)
    predictors, held_out = {}, {}
    for name, (tta, subpixel, *unmatched) in variants.items():
        predictor = VertebraPredictor(args.config_file[0], args.weights[0], tta=tta, score_threshold=0.5,
                                      opts=["MODEL.ROI_KEYPOINT_HEAD.SUBPIXEL", subpixel, *args.opts])
        if unmatched:
            predictor.network.fusion["unmatched"] = unmatched[0]
        predictors[name] = predictor
        preds, seconds, _ = predict_raw(predictor, held_truths, held)
        result = _evaluate(held_truths, preds, held / TRUTH_FILE)
        held_out[name] = result
        report["variants"][name] = {"tta": tta, "subpixel": subpixel,
                                    "unmatched": unmatched[0] if unmatched else DEFAULT_UNMATCHED,
                                    "seconds_per_image": float(np.median(seconds)),
                                    "metrics": {k: result.metrics.get(k) for k in HEADLINE},
                                    "calibration_at_defaults": result.metrics.get("calibration")}
        print(f"   {name}: " + ", ".join(f"{k} {_fmt(result.metrics.get(k))}" for k in HEADLINE)
              + f", {np.median(seconds):.3f} s/image", flush=True)
    for name in CALIBRATED:
        if name not in predictors:
            continue
        mode = variants[name][0]
        tta = mode != "none"
        preds, _, _ = predict_raw(predictors[name], tuning_truths, tune)
        fit = fit_operating_point(corner_table(_evaluate(tuning_truths, preds, tune / TRUTH_FILE).images), tta)
        held_result = held_out[name]
        held_table = corner_table(held_result.images)
        applied = _apply(held_table, fit, tta)
        applied["at_target_flag_rate"] = _apply(held_table, fit, tta, "thresholds_at_target_flag_rate")
        for key, model in (("slip_interval", CornerUncertainty(**fit["uncertainty"])),
                           ("slip_interval_at_defaults", OPERATING_POINTS[mode].uncertainty)):
            applied[key] = slip_interval_stats(held_result.images, model)
        report["calibration"][name] = {"fit_on_tuning": fit, "held_out": applied}
        print(format_flags(f"{name}, fitted on tuning: {fit}", applied), flush=True)
        print(format_flags(f"{name}, at most {TARGET_FLAG_RATE}% flagged on tuning", applied["at_target_flag_rate"]))
        print(f"   slip intervals (fitted): {applied['slip_interval']}", flush=True)
        cal = evaluate_calibration(held_result.images)
        if cal is not None and "reliability" in cal:
            reliability_plot(cal, out / f"reliability_{'tta' if tta else 'single'}.png")
    write_json(out / "benchmark.json", report)
    print("\n" + format_ablation(report["variants"]))
    print(f"\nwrote {out / 'benchmark.json'}")
    return 0
