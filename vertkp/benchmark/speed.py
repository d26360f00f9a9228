"""Speed benchmark: ``vertkp benchmark [speed]`` / ``python tools/benchmark.py``.

    vertkp benchmark                                            # R50, HRNet-W32, MobileNetV4: real-size configs
    vertkp benchmark speed --config-file configs/kprcnn_r50.yaml --timed-images 10 --train-iters 10
    vertkp benchmark --device cpu --threads 1 --output output/benchmark/speed SOLVER.IMS_PER_BATCH 2

For each config, on the current device, with random weights unless --weights is given:

* inference latency per image, after --warmup untimed images, median and p90
  (numpy's linear percentile) over --timed-images phantom images at the config's
  test size: the model alone (``VertebraPredictor.run_model`` on inputs made by its
  ``load`` and ``prepare``) and end to end (``VertebraPredictor.__call__`` on a file:
  read, preprocess, model, grading), with the config's test-time augmentation
  (``end_to_end``; the shipped configs: flip) and in one pass (``end_to_end_one_pass``,
  timed alternately with detectron2's predictor, below);
* training seconds per iteration (median over --train-iters steps after --warmup
  untimed ones, as detectron2's IterationTimer records them: data, forward, backward,
  optimizer) and images per second, with the config's ``vertkp.engine.Trainer`` on the
  phantom training split, evaluation and checkpoints off;
* peak memory: CUDA ``torch.cuda.max_memory_allocated`` (reset between phases), or
  on the CPU the process's peak resident set size (``ru_maxrss``; it cannot be
  reset, so the training figure includes inference). Each config runs in a fresh
  process;
* vertkp's inference path against detectron2's stock one on the same weights
  (``vs_detectron2``): ``VertebraPredictor`` with one pass (``tta="none"``) end to end, and
  detectron2's ``DefaultPredictor`` (image read with OpenCV, its resize, the model; no grading),
  alternately on the same images.

Random weights are made to do a trained model's work: every FrozenBN layer gets the
mean and variance of its own input on one phantom image (with identity statistics
the activations overflow and no box survives), then they are saved (OUT/<config>/
random_calibrated.pth) and loaded as trained weights are; every image keeps exactly
--detections detections (score threshold 0) for the keypoint head and the grading.

Once, independent of the model, on the same phantom set: the converter's and the
evaluator's throughput (``vertkp.benchmark.data``, what ``vertkp benchmark data``
measures).

The phantom set (--num-images images of --image-size px, ``vertkp.phantoms.make.ensure_phantoms``)
is made in OUT/data and replaces the configs' datasets (DATASETS.TRAIN/TEST);
MODEL.WEIGHTS is emptied (random weights, no download). Trailing KEY
VALUE pairs override every config, after that. Prints a Markdown table (with others'
published figures as reference rows) and writes OUT/benchmark.json with the machine.
Exit status: 0 done, 1 a phase failed (the rest is reported), 2 bad arguments or
detectron2 missing. The convert and evaluate phases need torch, not detectron2: this
module imports detectron2 (and ``runs``) only where it is installed.
"""
from __future__ import annotations

import gc
import logging
import time
import traceback
from pathlib import Path
from typing import List, Mapping, Optional, Sequence

import cv2
import numpy as np
import torch

from .. import HAS_DETECTRON2
from ..files import write_json
from .data import mean_vertebrae, measure_data_tools, phantom_truths
from .device import in_fresh_process, peak_rss_mib, set_threads, torch_machine_info
from .profile import profile_predictor
from .report import REFERENCES, format_profile, format_table, latency_stats, machine_line

if HAS_DETECTRON2:  # the inference and train phases; the convert and evaluate ones run without it
    from detectron2.utils.env import seed_all_rng

    from ..inference import VertebraPredictor
    from .runs import benchmark_cfg, calibrate_frozen_bn, log_to, step_seconds, timed_steps

__all__ = ["LR_RETRY_FACTOR", "check", "measure_config", "run"]

# Images of the per-stage profile (vertkp.benchmark.profile), after the timing.
PROFILE_IMAGES = 5
# When a randomly initialised model's loss is not finite (detectron2 stops with
# FloatingPointError), training is measured again with BASE_LR times this.
LR_RETRY_FACTOR = 0.01


def check(args) -> None:
    """What ``vertkp.benchmark.cli`` cannot check without torch: CUDA, with --device cuda.

    Raises:
        ValueError: --device cuda without CUDA.
    """
    if args.device == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda but CUDA is not available (leave --device out to use the CPU)")


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def _peak_mib(device: str) -> float:
    if device.startswith("cuda"):
        return torch.cuda.max_memory_allocated() / 2**20
    return peak_rss_mib()


def _reset_peak(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()


def _progress(spec: Mapping, text: str) -> None:
    print(f"   {spec['name']}: {text}", flush=True)


def _spec_cfg(spec: Mapping, weights: str):
    """The unfrozen config a run of ``spec`` measures (``runs.benchmark_cfg`` on its phantom set):
    ``weights`` ("" random), its device, no evaluation, then its opts."""
    return benchmark_cfg(spec["config"], spec["coco"], spec["output"],
                         ["MODEL.WEIGHTS", weights, "MODEL.DEVICE", spec["device"], "TEST.EVAL_PERIOD", "0",
                          *spec.get("opts", ())])


def _predictor(cfg, spec: Mapping, tta: Optional[str] = None):
    """A predictor the latency is measured with, with the config's test-time augmentation
    (``TEST.AUG``) unless ``tta`` names one; with random weights (``detections`` set) exactly
    ``detections`` per image and pass: TEST.DETECTIONS_PER_IMAGE, score threshold 0 (fused passes
    of random weights agree on few boxes, so TTA then gives up to twice as many vertebrae)."""
    cfg = cfg.clone()
    cfg.defrost()
    threshold = spec["score_threshold"]
    if spec.get("detections"):
        cfg.TEST.DETECTIONS_PER_IMAGE = int(spec["detections"])
        threshold = 0.0
    torch.manual_seed(0)
    return VertebraPredictor.from_cfg(cfg, score_threshold=threshold, tta=tta)


def _vs_detectron2(predictor, paths: List[str], spec: Mapping, out: dict) -> None:
    """vertkp's path (``predictor``'s weights file, one pass, end to end) against detectron2's
    ``DefaultPredictor`` of the same weights and config, alternately on the same images."""
    from detectron2.engine import DefaultPredictor  # detectron2's stock inference

    cfg = predictor.cfg.clone()
    cfg.defrost()
    vertkp = _predictor(cfg, spec, tta="none")
    cfg.MODEL.ROI_HEADS.SCORE_THRESH_TEST = vertkp.cfg.MODEL.ROI_HEADS.SCORE_THRESH_TEST
    cfg.TEST.DETECTIONS_PER_IMAGE = vertkp.cfg.TEST.DETECTIONS_PER_IMAGE
    stock = DefaultPredictor(cfg)
    read = lambda path: stock(cv2.imread(path, cv2.IMREAD_COLOR))  # noqa: E731  (detectron2's own input)
    device = cfg.MODEL.DEVICE
    for k in range(int(spec["warmup"])):
        vertkp(paths[k % len(paths)])
        read(paths[k % len(paths)])
    ours, theirs = [], []
    for path in paths:
        ours.append(_timed_calls(vertkp, [path], device)[0][0])
        theirs.append(_timed_calls(read, [path], device)[0][0])
    a, b = latency_stats(ours), latency_stats(theirs)
    out["end_to_end_one_pass"] = {**a, "warmup": int(spec["warmup"]), "tta": "none"}
    out["vs_detectron2"] = {"ratio": a["median_s"] / b["median_s"], "vertkp_median_s": a["median_s"],
                            "detectron2_median_s": b["median_s"], "vertkp": a, "detectron2": b,
                            "what": "end to end, one pass: vertkp's VertebraPredictor (its image reader, test "
                                    "mapper, model, corner decoding, grading) against detectron2's "
                                    "DefaultPredictor (cv2.imread, its resize, the model)"}
    out["profile"] = profile_predictor(predictor, paths[:PROFILE_IMAGES], warmup=0)
    _progress(spec, f"vertkp one pass {a['median_s']:.3f} s, detectron2 DefaultPredictor {b['median_s']:.3f} s "
                    f"({out['vs_detectron2']['ratio']:.2f}x)")


def _timed_calls(fn, items: Sequence, device: str) -> tuple:
    """(seconds of ``fn(item)`` for each item, the results)."""
    seconds, results = [], []
    for item in items:
        _sync(device)
        t0 = time.perf_counter()
        results.append(fn(item))
        _sync(device)
        seconds.append(time.perf_counter() - t0)
    return seconds, results


def _inference(predictor, inputs: List[dict], paths: List[str], spec: Mapping, out: dict) -> None:
    device = predictor.cfg.MODEL.DEVICE
    warmup = int(spec["warmup"])
    if not spec.get("weights"):  # calibrated, saved and loaded as trained weights are (batch norms folded)
        out["frozen_bn_calibrated"] = calibrate_frozen_bn(predictor.model, inputs[:1])
        path = Path(spec["output"]) / "random_calibrated.pth"
        torch.save({"model": predictor.model.state_dict()}, path)
        cfg = predictor.cfg.clone()
        cfg.defrost()
        cfg.MODEL.WEIGHTS = str(path)
        predictor = _predictor(cfg, spec)
    out["test_size"]["input_hw"] = list(inputs[0]["image"].shape[1:])
    for k in range(warmup):
        predictor.run_model([inputs[k % len(inputs)]])
    seconds, instances = _timed_calls(lambda inp: predictor.run_model([inp])[0], inputs, device)
    out["model_alone"] = {**latency_stats(seconds), "warmup": warmup, "score_threshold": predictor.score_threshold,
                          "detections_per_image": float(np.mean([len(i) for i in instances])),
                          "tta": predictor.tta}
    _progress(spec, f"model alone: median {out['model_alone']['median_s']:.3f} s")

    for k in range(warmup):
        predictor(paths[k % len(paths)])
    seconds, results = _timed_calls(predictor, paths, device)
    out["end_to_end"] = {**latency_stats(seconds), "warmup": warmup, "tta": predictor.tta,
                         "graded_vertebrae_per_image": float(np.mean([len(r.vertebrae) for r in results]))}
    out["memory"]["inference_MiB"] = _peak_mib(device)
    _progress(spec, f"end to end: median {out['end_to_end']['median_s']:.3f} s")
    _vs_detectron2(predictor, paths, spec, out)


def _train_once(cfg, iters: int, warmup: int, calibration: Optional[List[dict]]) -> dict:
    seed_all_rng(0)
    trainer, calibrated = timed_steps(cfg, iters, warmup, calibration)
    losses = [v for v, _ in trainer.storage.history("total_loss").values()]
    stats = latency_stats(step_seconds(trainer))
    return {**stats, "warmup": warmup, "timer": "detectron2 IterationTimer (the storage's 'time' history)",
            "ims_per_batch": cfg.SOLVER.IMS_PER_BATCH, "images_per_s": cfg.SOLVER.IMS_PER_BATCH / stats["median_s"],
            "base_lr": cfg.SOLVER.BASE_LR, "num_workers": cfg.DATALOADER.NUM_WORKERS,
            "frozen_bn_calibrated": calibrated,
            "first_total_loss": float(losses[0]), "last_total_loss": float(losses[-1])}


def _train(cfg, spec: Mapping, out: dict, calibration: Optional[List[dict]]) -> None:
    device = cfg.MODEL.DEVICE
    _reset_peak(device)
    iters, warmup = int(spec["train_iters"]), int(spec["warmup"])
    try:
        train = _train_once(cfg, iters, warmup, calibration)
    except FloatingPointError as e:
        lr = cfg.SOLVER.BASE_LR * LR_RETRY_FACTOR
        _progress(spec, f"training: loss not finite at BASE_LR {cfg.SOLVER.BASE_LR:g} with random weights "
                        f"({str(e).splitlines()[0][:80]}); measuring again at {lr:g}")
        cfg = cfg.clone()
        cfg.SOLVER.BASE_LR = lr
        train = _train_once(cfg, iters, warmup, calibration)
        train["note"] = (f"{out['name']}: training measured at BASE_LR {lr:g}: at the config's "
                         f"{lr / LR_RETRY_FACTOR:g} the randomly initialised model's loss was not finite")
    out["train"] = train
    out["memory"]["train_MiB"] = _peak_mib(device)
    _progress(spec, f"training: median {train['median_s']:.3f} s/iter, {train['images_per_s']:.2f} img/s")


def _guarded(spec: Mapping, out: dict, key: str, log: Path, fn, *args) -> bool:
    """Run a phase; when it fails, record the error under ``out[key]`` and return True."""
    try:
        fn(*args)
        return False
    except Exception as e:  # report the phase as failed, measure the rest
        logging.getLogger("vertkp").error(traceback.format_exc())
        out.setdefault(key, {})["error"] = f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
        _progress(spec, f"{key} FAILED: {out[key]['error']} (see {log})")
        return True


def measure_config(spec: Mapping) -> dict:
    """Latency, training speed and peak memory of one config (call it in a fresh
    process: on the CPU, peak memory is the process's).

    Args:
        spec: name, config, weights ("" or None: random), opts, device, threads
            (0: torch's default), coco (folder of the phantom set's train/val.json),
            images (paths for the latency phases), timed_images, warmup,
            train_iters, score_threshold, detections (None: the model's own;
            N: exactly N per image, score threshold 0, for random weights),
            phases, output (folder).

    Returns:
        dict as in benchmark.json's "configs" (a phase that fails holds "error").
    """
    set_threads(int(spec["threads"]))
    output = Path(spec["output"])
    log = log_to(output)
    cfg = _spec_cfg(spec, spec.get("weights") or "")
    device = cfg.MODEL.DEVICE
    cuda = device.startswith("cuda")
    out = {"name": spec["name"], "config": spec["config"], "weights": spec.get("weights") or "random",
           "device": device, "threads": torch.get_num_threads(),
           "test_size": {"min": cfg.INPUT.MIN_SIZE_TEST, "max": cfg.INPUT.MAX_SIZE_TEST},
           "memory": {"kind": "cuda_max_memory_allocated" if cuda else "process_peak_rss",
                      "how": ("torch.cuda.max_memory_allocated, reset before each phase" if cuda
                              else "resource.getrusage(RUSAGE_SELF).ru_maxrss (KiB on Linux) of this config's "
                                   "process at the end of the phase; it cannot be reset, so training includes "
                                   "inference"),
                      "unit": "MiB"}}
    phases, random_weights = spec["phases"], not spec.get("weights")
    images = list(spec["images"])
    paths = [images[k % len(images)] for k in range(int(spec["timed_images"]))]
    _reset_peak(device)
    failed, predictor, inputs = False, None, []
    if "inference" in phases or random_weights:  # the model inputs, and those FrozenBN is calibrated on
        predictor = _predictor(cfg, spec)
        inputs = [predictor.prepare(predictor.load(p)[0]) for p in (paths if "inference" in phases else paths[:1])]
    calibration = inputs[:1] if random_weights else None
    if "inference" in phases:
        failed |= _guarded(spec, out, "model_alone", log, _inference, predictor, inputs, paths, spec, out)
    del predictor, inputs
    gc.collect()
    if "train" in phases:
        failed |= _guarded(spec, out, "train", log, _train, cfg, spec, out, calibration)
    out["failed"] = failed
    return out


def run(args, folder: Path) -> int:
    """``vertkp benchmark speed`` on arguments checked by ``vertkp.benchmark.cli`` (configs
    resolved, opts merged, ``args.phases``) and the phantom set it made (``folder``,
    ``vertkp.benchmark.data.phantom_set``): exit 0 done, 1 a phase failed."""
    set_threads(args.threads)
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    out = Path(args.output).resolve()
    report = {"machine": torch_machine_info(args.threads), "device": device,
              "settings": {"timed_images": args.timed_images, "warmup": args.warmup, "train_iters": args.train_iters,
                           "num_images": args.num_images, "image_size": args.image_size, "seed": args.seed,
                           "difficulty": args.difficulty,
                           "score_threshold": args.score_threshold, "phases": args.phases, "opts": list(args.opts),
                           "percentile": "numpy linear interpolation (np.percentile default)"},
              "configs": [], "references": list(REFERENCES)}
    print(f"machine: {machine_line(report['machine'])}; device {device}", flush=True)
    failed = measure_data_tools(folder, report, "convert" in args.phases, "evaluate" in args.phases)

    truths = phantom_truths(folder / "coco")
    labelled = [str(folder / t.file_name) for t in truths]
    detections = args.detections or mean_vertebrae(truths)
    report["settings"]["detections_with_random_weights"] = detections
    measured = args.config_file if {"inference", "train"} & set(args.phases) else []
    for k, (config, name) in enumerate(zip(measured, args.names)):
        spec = {"name": name, "config": config, "weights": args.weights[k] if args.weights else None,
                "opts": list(args.opts), "device": device, "threads": args.threads, "coco": str(folder / "coco"),
                "images": labelled, "timed_images": args.timed_images, "warmup": args.warmup,
                "train_iters": args.train_iters, "score_threshold": args.score_threshold, "phases": args.phases,
                "detections": None if args.weights else detections, "output": str(out / name)}
        print(f"{name}: {config} (log: {out / name / 'log.txt'})", flush=True)
        try:
            r = in_fresh_process(measure_config, spec)
        except Exception as e:  # the process died, or the config could not be built
            r = {"name": name, "config": config, "device": device, "error": f"{type(e).__name__}: {e}"}
            print(f"   {name}: FAILED: {r['error']}", flush=True)
        failed |= bool(r.get("failed", "error" in r))
        report["configs"].append(r)
        write_json(out / "benchmark.json", report)
    write_json(out / "benchmark.json", report)
    profile = format_profile(report)
    print(f"\n{format_table(report)}\n" + (f"\n{profile}\n" if profile else "") + f"\nwrote {out / 'benchmark.json'}")
    return 1 if failed else 0
