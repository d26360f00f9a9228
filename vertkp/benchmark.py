"""Speed benchmark: ``vertkp benchmark`` / ``python tools/benchmark.py``.

    python tools/benchmark.py                                   # R50 and HRNet-W32, real-size configs
    python tools/benchmark.py --config-file configs/kprcnn_r50.yaml --num-images 10 --train-iters 10
    python tools/benchmark.py --device cpu --threads 1 --output output/benchmark SOLVER.IMS_PER_BATCH 2

For each config, on the current device, with random weights unless --weights is given:

* inference latency per image, after --warmup untimed images, median and p90
  (numpy's linear percentile) over --num-images phantom images at the config's
  test size: the model alone (``VertebraPredictor.run_model`` on prepared inputs)
  and end to end (``VertebraPredictor.__call__`` on a file: read, preprocess,
  model, grading);
* training seconds per iteration (median over --train-iters steps after --warmup
  untimed ones; the trainer's step only: data, forward, backward, optimizer) and
  images per second, with the config's ``vertkp.engine.Trainer`` on the phantom
  training split, evaluation and checkpoints off;
* peak memory: CUDA ``torch.cuda.max_memory_allocated`` (reset between phases), or
  on the CPU the process's peak resident set size (``ru_maxrss``; it cannot be
  reset, so the training figure includes inference). Each config runs in a fresh
  process.

Random weights are made to do a trained model's work: every FrozenBN layer gets the
mean and variance of its own input on one phantom image (with identity statistics
the activations overflow and no box survives), and every image keeps exactly
--detections detections (score threshold 0) for the keypoint head and the grading.

Once, independent of the model: the converter's throughput (images/s of
``convert_spondylolisthesis`` on the phantom set in the raw Mendeley layout) and
the evaluator's (images/s of ``evaluate_dataset`` on that set's ground truth and
predictions made by moving every GT corner by 2 px Gaussian noise).

The configs' own datasets are replaced by a phantom set made in OUT/data
(DATASETS.TRAIN/TEST), MODEL.WEIGHTS and MODEL.HRNET.PRETRAINED are emptied (no
download). Trailing KEY VALUE pairs override every config, after that. Prints a
Markdown table (with others' published figures as reference rows) and writes
OUT/benchmark.json with the machine. Exit status: 0 done, 1 a phase failed (the
rest is reported), 2 bad arguments or detectron2 missing.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import re
import sys
import time
from pathlib import Path
from typing import Dict, List, Mapping, Optional, Sequence

import numpy as np

from .cli import config_path, output_folder

__all__ = ["DEFAULT_CONFIGS", "PHASES", "REFERENCES", "build_parser", "cpu_model", "format_table", "latency_stats",
           "machine_info", "machine_line", "main", "measure_config", "percentile", "split_trailing_opts", "throughput"]

DEFAULT_CONFIGS = ("configs/kprcnn_r50.yaml", "configs/kprcnn_hrnet_w32.yaml")
PHASES = ("inference", "train", "convert", "evaluate")
# Registered for the benchmark only, so that a user's phantoms_{train,val} are left alone.
TRAIN_DATASET, TEST_DATASET = "vertkp_benchmark_train", "vertkp_benchmark_val"
# The converter and the evaluator are timed this many times; their throughput is the median.
DATA_REPEATS = 3
# Standard deviation of the noise moving GT corners into the evaluator's predictions, px.
EVAL_NOISE_PX = 2.0
# When a randomly initialised model's loss is not finite (detectron2 stops with
# FloatingPointError), training is measured again with BASE_LR times this.
LR_RETRY_FACTOR = 0.01

# Others' published figures, on their hardware (not measured here): printed as reference rows.
REFERENCES = (
    {"name": "detectron2 Keypoint R-CNN R50-FPN 3x", "source": "detectron2 MODEL_ZOO.md (COCO person keypoints)",
     "hardware": "V100 GPUs (training: 8 of them, 2 images each)", "test_size": "800/1333 (COCO)",
     "model_alone_s": 0.066, "train_s_per_iter": 0.316, "train_images_per_iter": 16,
     "train_memory_GB": 5.0},
    {"name": "YOLOspine", "source": "as reported by YOLOspine (cited in the issue)", "hardware": "its own",
     "end_to_end_s": 0.48},
)


# ---- arithmetic ---------------------------------------------------------------------------
def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0..100) of ``values`` with numpy's default linear
    interpolation: sorted values v[0..n-1], position p = q/100 * (n - 1),
    result v[floor p] + (p - floor p) * (v[floor p + 1] - v[floor p]).

    Raises:
        ValueError: no values, or q outside [0, 100].
    """
    if len(values) == 0:
        raise ValueError("percentile of no values: measure at least one")
    if not 0.0 <= q <= 100.0:
        raise ValueError(f"q must be in [0, 100], got {q}")
    return float(np.percentile(np.asarray(values, dtype=np.float64), q, method="linear"))


def latency_stats(seconds: Sequence[float]) -> Dict[str, float]:
    """Summary of per-image (or per-step) times in seconds: n, median, p90
    (:func:`percentile`), mean, min, max."""
    s = np.asarray(seconds, dtype=np.float64)
    if s.size == 0:
        raise ValueError("no timings: measure at least one image or step")
    return {"n": int(s.size), "median_s": percentile(s, 50), "p90_s": percentile(s, 90), "mean_s": float(s.mean()),
            "min_s": float(s.min()), "max_s": float(s.max())}


def throughput(items: float, seconds: float) -> float:
    """Items per second.

    Raises:
        ValueError: seconds <= 0 or items < 0.
    """
    if seconds <= 0:
        raise ValueError(f"seconds must be > 0, got {seconds}")
    if items < 0:
        raise ValueError(f"items must be >= 0, got {items}")
    return float(items) / float(seconds)


# ---- the table ----------------------------------------------------------------------------
def _num(v, spec: str = ".3f") -> str:
    return "-" if v is None else format(v, spec)


def _pair(stats: Optional[Mapping], spec: str = ".3f") -> str:
    if not stats:
        return "skipped"
    if "error" in stats:
        return "failed"
    return f"{_num(stats['median_s'], spec)} / {_num(stats['p90_s'], spec)}"


def _memory(mem: Optional[Mapping]) -> str:
    if not mem:
        return "-"
    kind = "GPU alloc" if mem["kind"] == "cuda_max_memory_allocated" else "RSS"
    return f"{_num(mem.get('inference_MiB'), '.0f')} / {_num(mem.get('train_MiB'), '.0f')} MiB {kind}"


def format_table(report: Mapping) -> str:
    """The report (what benchmark.json holds) as Markdown: one row per config,
    the reference rows (others' published figures), the data tools' throughput
    and the machine line."""
    header = ("| model | device | test size (input) | model alone median / p90 (s) | end to end median / p90 (s) "
              "| train s/iter (batch) | train img/s | peak memory inference / train |")
    lines = [header, "|" + "---|" * header.count(" | ") + "---|"]
    for r in report.get("configs", []):
        if "error" in r:
            lines.append(f"| {r['name']} | {r.get('device', '-')} | failed: {r['error']} | | | | | |")
            continue
        size = r["test_size"]
        inp = f" ({size['input_hw'][0]}x{size['input_hw'][1]})" if size.get("input_hw") else ""
        device = r["device"] + (f", {_threads(r['threads'])}" if r["device"] == "cpu" else "")
        train = r.get("train")
        if not train:
            t_iter, t_ips = "skipped", "-"
        elif "error" in train:
            t_iter, t_ips = "failed", "-"
        else:
            t_iter = f"{train['median_s']:.3f} ({train['ims_per_batch']})" + (" *" if train.get("note") else "")
            t_ips = f"{train['images_per_s']:.2f}"
        lines.append(f"| {r['name']} | {device} | {size['min']}/{size['max']}{inp} | {_pair(r.get('model_alone'))} "
                     f"| {_pair(r.get('end_to_end'))} | {t_iter} | {t_ips} | {_memory(r.get('memory'))} |")
    for ref in report.get("references", REFERENCES):
        alone = _num(ref.get("model_alone_s"))
        e2e = _num(ref.get("end_to_end_s"))
        t_iter = (f"{ref['train_s_per_iter']:.3f} ({ref['train_images_per_iter']})"
                  if ref.get("train_s_per_iter") else "-")
        t_ips = (f"{ref['train_images_per_iter'] / ref['train_s_per_iter']:.1f}"
                 if ref.get("train_s_per_iter") else "-")
        mem = f"- / {ref['train_memory_GB']:.1f} GB per GPU" if ref.get("train_memory_GB") else "-"
        lines.append(f"| *{ref['name']}: published, not measured here* | {ref['hardware']} "
                     f"| {ref.get('test_size', '-')} | {alone} | {e2e} "
                     f"| {t_iter} | {t_ips} | {mem} |")
    notes = [r["train"]["note"] for r in report.get("configs", []) if r.get("train") and r["train"].get("note")]
    out = ["\n".join(lines)]
    out += [f"\n\\* {n}" for n in notes]
    data = []
    for key, what in (("converter", "converter"), ("evaluator", "evaluator")):
        d = report.get(key)
        if d and "error" not in d:
            data.append(f"{what} {d['images_per_s']:.1f} img/s ({d['images']} images)")
        elif d:
            data.append(f"{what} failed")
    if data:
        out.append("\ndata tools (no model): " + ", ".join(data))
    if report.get("machine"):
        out.append("\nmachine: " + machine_line(report["machine"]))
    return "\n".join(out)


def _threads(n: int) -> str:
    return f"{n} thread" + ("" if n == 1 else "s")


def machine_line(m: Mapping) -> str:
    """One line: CPU, cores, torch threads, GPU, versions."""
    gpu = m.get("gpu") or "no GPU"
    return (f"{m['cpu']}, {m['cpu_cores']} cores ({m['cpu_cores_usable']} usable), torch {m['torch']} "
            f"({_threads(m['torch_threads'])}), detectron2 {m['detectron2'] or 'not installed'}, {gpu}, "
            f"Python {m['python']}")


# ---- the machine ------------------------------------------------------------------------------
def cpu_model(cpuinfo: str) -> str:
    """The CPU name of a /proc/cpuinfo text ("model name", or "Hardware"/"Processor" on ARM)."""
    for key in ("model name", "Hardware", "Processor", "cpu model"):
        for line in cpuinfo.splitlines():
            name, _, value = line.partition(":")
            if name.strip() == key and value.strip():
                return value.strip()
    return platform.processor() or platform.machine() or "unknown CPU"


def machine_info(threads: int) -> dict:
    """What the figures were measured on (imports torch, and detectron2 when installed)."""
    import torch

    try:
        import detectron2

        d2_version = detectron2.__version__
    except ImportError:
        d2_version = None
    try:
        cpuinfo = Path("/proc/cpuinfo").read_text()
    except OSError:
        cpuinfo = ""
    cuda = torch.cuda.is_available()
    return {
        "cpu": cpu_model(cpuinfo),
        "cpu_cores": os.cpu_count(),
        "cpu_cores_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "torch_threads": threads or torch.get_num_threads(),
        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS"),
        "gpu": torch.cuda.get_device_name(0) if cuda else None,
        "cuda": torch.version.cuda if cuda else None,
        "torch": torch.__version__,
        "detectron2": d2_version,
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


# ---- per config (runs in a fresh process) ----------------------------------------------------
def _sync(device: str) -> None:
    if device.startswith("cuda"):
        import torch

        torch.cuda.synchronize()


def _peak_mib(device: str) -> float:
    if device.startswith("cuda"):
        import torch

        return torch.cuda.max_memory_allocated() / 2**20
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def _reset_peak(device: str) -> None:
    if device.startswith("cuda"):
        import torch

        torch.cuda.reset_peak_memory_stats()


def _log_to(folder: Path) -> None:
    """detectron2's, fvcore's and vertkp's logs go to folder/log.txt, not the terminal."""
    import logging

    folder.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(folder / "log.txt", mode="w")
    handler.setFormatter(logging.Formatter("[%(asctime)s %(name)s %(levelname)s] %(message)s"))
    for name in ("detectron2", "fvcore", "vertkp", "d2", "timm"):
        log = logging.getLogger(name)
        log.handlers[:] = [handler]
        log.setLevel(logging.INFO)
        log.propagate = False


def _build_cfg(spec: Mapping):
    from detectron2.data import DatasetCatalog  # noqa: F401  (vertkp's lazy registration runs first)

    from .data.registration import register_dataset
    from .engine import build_cfg

    coco = Path(spec["coco"])
    register_dataset(TRAIN_DATASET, coco / "train.json", coco.parent)
    register_dataset(TEST_DATASET, coco / "val.json", coco.parent)
    opts = ["DATASETS.TRAIN", f"('{TRAIN_DATASET}',)", "DATASETS.TEST", f"('{TEST_DATASET}',)",
            "MODEL.WEIGHTS", spec.get("weights") or "", "MODEL.HRNET.PRETRAINED", "",
            "MODEL.DEVICE", spec["device"], "TEST.EVAL_PERIOD", "0", "OUTPUT_DIR", spec["output"]]
    return build_cfg(spec["config"], opts + list(spec.get("opts", ())), freeze=False)


def _prepared_input(cfg, path: str) -> dict:
    """Model input of an image file as at test time (``vertkp.inference.predictor.model_input``)."""
    from .inference.images import load_image
    from .inference.predictor import model_input

    return model_input(load_image(path, cfg.INPUT.FORMAT)[0], cfg)


def calibrate_frozen_bn(model, inputs: List[dict]) -> int:
    """Random weights only: give every FrozenBatchNorm2d the mean and variance of its
    own input on ``inputs`` (one forward pass, layer after layer), so that activations
    stay finite and a randomly initialised FrozenBN network outputs boxes as a trained
    one does. The operations, hence the speed, are unchanged. Returns how many layers.

    Without it, the real configs' FrozenBN (identity statistics) lets activations grow
    through the backbone until boxes are not finite and every detection is dropped,
    which would time a model that never runs its keypoint head.
    """
    import torch
    from detectron2.layers import FrozenBatchNorm2d

    layers = [m for m in model.modules() if isinstance(m, FrozenBatchNorm2d)]

    def set_stats(module, args):
        x = args[0].detach().float()
        module.running_mean.copy_(x.mean(dim=(0, 2, 3)))
        module.running_var.copy_(x.var(dim=(0, 2, 3), unbiased=False))

    handles = [m.register_forward_pre_hook(set_stats) for m in layers]
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            model(inputs)
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    return len(layers)


def _inference(cfg, spec: Mapping, out: dict) -> None:
    import torch

    from .inference import VertebraPredictor
    from .inference.images import load_image

    device = cfg.MODEL.DEVICE
    images = list(spec["images"])
    n, warmup = int(spec["num_images"]), int(spec["warmup"])
    paths = [images[k % len(images)] for k in range(n)]
    _reset_peak(device)
    torch.manual_seed(0)
    cfg = cfg.clone()
    threshold = spec["score_threshold"]
    if spec.get("detections"):  # random weights: a trained model's workload for the keypoint head and grading
        cfg.TEST.DETECTIONS_PER_IMAGE = int(spec["detections"])
        threshold = 0.0
    predictor = VertebraPredictor.from_cfg(cfg, score_threshold=threshold)
    inputs = [predictor.prepare(load_image(p, predictor.input_format)[0]) for p in paths]
    if not spec.get("weights"):
        out["frozen_bn_calibrated"] = calibrate_frozen_bn(predictor.model, inputs[:1])
    out["test_size"]["input_hw"] = list(inputs[0]["image"].shape[1:])

    for k in range(warmup):
        predictor.run_model([inputs[k % n]])
    seconds, detections = [], []
    for inp in inputs:
        _sync(device)
        t0 = time.perf_counter()
        instances = predictor.run_model([inp])
        _sync(device)
        seconds.append(time.perf_counter() - t0)
        detections.append(len(instances[0]))
    out["model_alone"] = {**latency_stats(seconds), "warmup": warmup, "score_threshold": threshold,
                          "detections_per_image": float(np.mean(detections))}
    _progress(spec, f"model alone: median {out['model_alone']['median_s']:.3f} s")

    for k in range(warmup):
        predictor(paths[k % n])
    seconds, vertebrae = [], []
    for path in paths:
        _sync(device)
        t0 = time.perf_counter()
        result = predictor(path)
        seconds.append(time.perf_counter() - t0)
        vertebrae.append(len(result.vertebrae))
    out["end_to_end"] = {**latency_stats(seconds), "warmup": warmup,
                         "graded_vertebrae_per_image": float(np.mean(vertebrae))}
    out["memory"]["inference_MiB"] = _peak_mib(device)
    _progress(spec, f"end to end: median {out['end_to_end']['median_s']:.3f} s")


def _train_once(cfg, iters: int, warmup: int, calibrate_on: Optional[str]) -> dict:
    from detectron2.engine import hooks
    from detectron2.utils.env import seed_all_rng

    from .engine import BestCheckpointer, Trainer

    class TimedTrainer(Trainer):
        """The config's Trainer, timing each step; no evaluation, no checkpoint."""

        def build_hooks(self):
            drop = (hooks.EvalHook, hooks.PeriodicCheckpointer, BestCheckpointer)
            return [h for h in super().build_hooks() if not isinstance(h, drop)]

        def run_step(self):
            _sync(self.cfg.MODEL.DEVICE)
            t0 = time.perf_counter()
            super().run_step()
            _sync(self.cfg.MODEL.DEVICE)
            self.step_seconds.append(time.perf_counter() - t0)

    cfg = cfg.clone()
    cfg.SOLVER.MAX_ITER = warmup + iters
    cfg.SOLVER.STEPS = tuple(s for s in cfg.SOLVER.STEPS if s < cfg.SOLVER.MAX_ITER)
    cfg.freeze()
    seed_all_rng(0)
    trainer = TimedTrainer(cfg)
    trainer.step_seconds = []
    trainer.resume_or_load(resume=False)
    calibrated = calibrate_frozen_bn(trainer.model, [_prepared_input(cfg, calibrate_on)]) if calibrate_on else 0
    trainer.train()
    losses = [v for v, _ in trainer.storage.history("total_loss").values()]
    stats = latency_stats(trainer.step_seconds[warmup:])
    return {**stats, "warmup": warmup, "ims_per_batch": cfg.SOLVER.IMS_PER_BATCH,
            "images_per_s": throughput(cfg.SOLVER.IMS_PER_BATCH, stats["median_s"]),
            "base_lr": cfg.SOLVER.BASE_LR, "num_workers": cfg.DATALOADER.NUM_WORKERS,
            "frozen_bn_calibrated": calibrated,
            "first_total_loss": float(losses[0]), "last_total_loss": float(losses[-1])}


def _train(cfg, spec: Mapping, out: dict) -> None:
    import gc

    gc.collect()
    device = cfg.MODEL.DEVICE
    _reset_peak(device)
    iters, warmup = int(spec["train_iters"]), int(spec["warmup"])
    calibrate_on = None if spec.get("weights") else spec["images"][0]
    try:
        train = _train_once(cfg, iters, warmup, calibrate_on)
    except FloatingPointError as e:
        lr = cfg.SOLVER.BASE_LR * LR_RETRY_FACTOR
        _progress(spec, f"training: loss not finite at BASE_LR {cfg.SOLVER.BASE_LR:g} with random weights "
                        f"({str(e).splitlines()[0][:80]}); measuring again at {lr:g}")
        cfg = cfg.clone()
        cfg.SOLVER.BASE_LR = lr
        train = _train_once(cfg, iters, warmup, calibrate_on)
        train["note"] = (f"{out['name']}: training measured at BASE_LR {lr:g}: at the config's "
                         f"{lr / LR_RETRY_FACTOR:g} the randomly initialised model's loss was not finite")
    out["train"] = train
    out["memory"]["train_MiB"] = _peak_mib(device)
    _progress(spec, f"training: median {train['median_s']:.3f} s/iter, {train['images_per_s']:.2f} img/s")


def _progress(spec: Mapping, text: str) -> None:
    print(f"   {spec['name']}: {text}", flush=True)


def measure_config(spec: Mapping) -> dict:
    """Latency, training speed and peak memory of one config (call it in a fresh
    process: on the CPU, peak memory is the process's).

    Args:
        spec: name, config, weights ("" or None: random), opts, device, threads
            (0: torch's default), coco (folder of the phantom set's train/val.json),
            images (paths for the latency phases), num_images, warmup,
            train_iters, score_threshold, detections (None: the model's own;
            N: exactly N per image, score threshold 0, for random weights),
            phases, output (folder).

    Returns:
        dict as in benchmark.json's "configs" (a phase that fails holds "error").
    """
    import torch

    if spec["threads"]:
        torch.set_num_threads(int(spec["threads"]))
    output = Path(spec["output"])
    _log_to(output)
    cfg = _build_cfg(spec)
    device = cfg.MODEL.DEVICE
    out = {"name": spec["name"], "config": spec["config"], "weights": spec.get("weights") or "random",
           "device": device, "threads": torch.get_num_threads(),
           "test_size": {"min": cfg.INPUT.MIN_SIZE_TEST, "max": cfg.INPUT.MAX_SIZE_TEST},
           "memory": {"kind": "cuda_max_memory_allocated" if device.startswith("cuda") else "process_peak_rss",
                      "how": ("torch.cuda.max_memory_allocated, reset before each phase" if device.startswith("cuda")
                              else "resource.getrusage(RUSAGE_SELF).ru_maxrss (KiB on Linux) of this config's "
                                   "process at the end of the phase; it cannot be reset, so training includes "
                                   "inference"),
                      "unit": "MiB"}}
    failed = False
    for phase, run in (("inference", _inference), ("train", _train)):
        if phase not in spec["phases"]:
            continue
        try:
            run(cfg, spec, out)
        except Exception as e:  # report the phase as failed, measure the rest
            import logging
            import traceback

            logging.getLogger("vertkp").error(traceback.format_exc())
            key = "model_alone" if phase == "inference" else "train"
            out.setdefault(key, {})["error"] = f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
            _progress(spec, f"{phase} FAILED: {out[key]['error']} (see {output / 'log.txt'})")
            failed = True
    out["failed"] = failed
    return out


def _run_isolated(spec: Mapping) -> dict:
    """``measure_config`` in a fresh spawned process."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn")) as pool:
        return pool.submit(measure_config, dict(spec)).result()


# ---- data tools ---------------------------------------------------------------------------
def _make_phantoms(data: Path, num_images: int, size: int, seed: int) -> Path:
    """The phantom set in the raw Mendeley layout (reused when the same); returns its folder."""
    from .phantoms import ensure_phantoms

    folder = data / "phantoms"
    if ensure_phantoms("spondylolisthesis", folder, num_images, seed, image_size=size, progress=False) is None:
        print(f"   reusing {folder}", flush=True)
    return folder


def _convert(folder: Path, repeats: int) -> dict:
    from .data import convert_spondylolisthesis

    rates, seconds = [], []
    for _ in range(repeats):
        t0 = time.perf_counter()
        report = convert_spondylolisthesis(folder, progress=False)
        seconds.append(time.perf_counter() - t0)
        n = sum(report.images.values())
        rates.append(throughput(n, seconds[-1]))
    return {"images": n, "repeats": repeats, "seconds": seconds, "images_per_s": float(np.median(rates)),
            "what": "vertkp.data.convert_spondylolisthesis, raw Mendeley layout -> COCO (all splits)"}


def _noisy_predictions(truths, noise_px: float, seed: int = 0) -> dict:
    """Predictions for the evaluator: every GT vertebra with its corners moved by
    Gaussian noise (unlabelled corners filled with the vertebra's mean corner), score 0.9."""
    from .evaluation import ImagePredictions

    rng = np.random.default_rng(seed)
    preds = {}
    for t in truths:
        c = np.array(t.corners, dtype=np.float64)
        if len(c):
            mean = np.nanmean(np.where(t.visible[:, :, None], c, np.nan), axis=1, keepdims=True)
            c = np.where(np.isfinite(c), c, np.broadcast_to(mean, c.shape))
        preds[t.image_id] = ImagePredictions(c + rng.normal(0.0, noise_px, c.shape), np.full(len(c), 0.9))
    return preds


def _evaluate(coco: Path, repeats: int) -> dict:
    from .evaluation import evaluate_dataset, load_ground_truth

    truths = []
    for split in ("train", "val"):
        truths += load_ground_truth(coco / f"{split}.json").images
    preds = _noisy_predictions(truths, EVAL_NOISE_PX)
    rates, seconds = [], []
    for _ in range(repeats):
        t0 = time.perf_counter()
        result = evaluate_dataset(truths, preds)
        seconds.append(time.perf_counter() - t0)
        rates.append(throughput(len(truths), seconds[-1]))
    return {"images": len(truths), "repeats": repeats, "seconds": seconds, "images_per_s": float(np.median(rates)),
            "MRE_px": result.metrics["MRE_px"],
            "what": f"vertkp.evaluation.evaluate_dataset on train+val GT, predictions = GT + {EVAL_NOISE_PX:g} px "
                    "Gaussian noise (matching, MRE/SDR, detection, slip and grade agreement)"}


# ---- command line ---------------------------------------------------------------------------
def split_trailing_opts(values: Sequence[str]):
    """(files, opts): an nargs="+" flag swallows the trailing KEY VALUE pairs after it
    (``--config-file a.yaml SOLVER.MAX_ITER 5``); the first config key (upper-case, dotted)
    and everything after it are the opts."""
    for k, v in enumerate(values):
        if re.fullmatch(r"[A-Z][A-Z0-9_]*(\.[A-Z0-9_]+)+", v):
            return list(values[:k]), list(values[k:])
    return list(values), []


def _phases(skip: Sequence[str]) -> List[str]:
    skipped = {p.strip() for s in skip for p in s.split(",") if p.strip()}
    unknown = skipped - set(PHASES)
    if unknown:
        raise ValueError(f"--skip: unknown phase(s) {sorted(unknown)}; choose from {', '.join(PHASES)}")
    return [p for p in PHASES if p not in skipped]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--config-file", nargs="+", default=list(DEFAULT_CONFIGS), metavar="CFG",
                   help="configs to benchmark")
    p.add_argument("--weights", nargs="+", default=None, metavar="W",
                   help="one checkpoint per config (default: random weights, which is fine for speed)")
    p.add_argument("--num-images", type=int, default=20, help="timed images per latency measurement")
    p.add_argument("--warmup", type=int, default=3, help="untimed images / training iterations first")
    p.add_argument("--train-iters", type=int, default=20, help="timed training iterations")
    p.add_argument("--device", choices=("cpu", "cuda"), default=None, help="default: cuda when available")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    p.add_argument("--output", default=output_folder("benchmark"), metavar="DIR",
                   help="folder for benchmark.json, the phantom set and the logs")
    p.add_argument("--skip", action="append", default=[], metavar="PHASE[,PHASE]",
                   help=f"phases to skip: {', '.join(PHASES)}")
    p.add_argument("--phantoms", type=int, default=40, help="labelled images of the phantom set (~70%% train)")
    p.add_argument("--phantom-size", type=int, default=640, help="side of the phantom images, px")
    p.add_argument("--seed", type=int, default=0, help="phantom seed")
    p.add_argument("--score-threshold", type=float, default=0.5,
                   help="predictor's detection threshold, with --weights")
    p.add_argument("--detections", type=int, default=None,
                   help="with random weights (no --weights), keep exactly this many detections per image (score "
                        "threshold 0, TEST.DETECTIONS_PER_IMAGE), so that the keypoint head and the grading do a "
                        "trained model's work; default: the phantom set's mean vertebrae per image, rounded "
                        "(random weights score nearly every box under 0.5)")
    p.add_argument("opts", nargs=argparse.REMAINDER, help="KEY VALUE overrides applied to every config")
    return p


def _error(text: str) -> int:
    print(f"benchmark: error: {text}", file=sys.stderr)
    return 2


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        phases = _phases(args.skip)
    except ValueError as e:
        return _error(str(e))
    if args.opts and args.opts[0] == "--":
        args.opts = args.opts[1:]
    args.config_file, opts = split_trailing_opts(args.config_file)
    if args.weights is not None:
        args.weights, more = split_trailing_opts(args.weights)
        opts += more
    args.opts = opts + list(args.opts)
    if len(args.opts) % 2:
        return _error(f"the config overrides must be KEY VALUE pairs, got {args.opts}")
    if not args.config_file:
        return _error("--config-file needs at least one config before the KEY VALUE overrides")
    configs = [config_path(c) for c in args.config_file]
    missing = [c for c in configs if not os.path.isfile(c)]
    if missing:
        return _error(f"config file(s) {missing} do not exist (configs/ holds vertkp's)")
    if args.weights is not None and len(args.weights) != len(configs):
        return _error(f"--weights needs one file per config: {len(configs)} config(s), {len(args.weights)} weights")
    if min(args.num_images, args.train_iters) < 1 or args.warmup < 0:
        return _error("--num-images and --train-iters must be >= 1, --warmup >= 0")
    if args.phantoms < 3:
        return _error(f"--phantoms must be at least 3 (train and val images), got {args.phantoms}")
    if {"inference", "train"} & set(phases):
        try:
            import detectron2  # noqa: F401
        except ImportError:
            from .demo import DETECTRON2_INSTALL

            return _error(f"detectron2 is not installed (needed for inference and training; --skip inference,train "
                          f"to measure only the data tools). Install it:\n    {DETECTRON2_INSTALL}")
    import torch

    if args.threads > 0:
        torch.set_num_threads(args.threads)
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        return _error("--device cuda but CUDA is not available")
    out = Path(args.output).resolve()
    out.mkdir(parents=True, exist_ok=True)
    report = {"machine": machine_info(args.threads), "device": device,
              "settings": {"num_images": args.num_images, "warmup": args.warmup, "train_iters": args.train_iters,
                           "phantoms": args.phantoms, "phantom_size": args.phantom_size, "seed": args.seed,
                           "score_threshold": args.score_threshold, "phases": phases, "opts": list(args.opts),
                           "percentile": "numpy linear interpolation (np.percentile default)"},
              "configs": [], "references": list(REFERENCES)}
    print(f"machine: {machine_line(report['machine'])}; device {device}", flush=True)

    print(f"phantom set: {args.phantoms} images of {args.phantom_size} px -> {out / 'data'}", flush=True)
    folder = _make_phantoms(out / "data", args.phantoms, args.phantom_size, args.seed)
    coco = folder / "coco"
    failed = False
    try:
        report["converter"] = _convert(folder, DATA_REPEATS if "convert" in phases else 1)
        if "convert" in phases:
            print(f"   converter: {report['converter']['images_per_s']:.1f} img/s", flush=True)
        else:
            del report["converter"]
    except Exception as e:
        return _error(f"converting the phantom set failed: {type(e).__name__}: {e}")
    if "evaluate" in phases:
        try:
            report["evaluator"] = _evaluate(coco, DATA_REPEATS)
            print(f"   evaluator: {report['evaluator']['images_per_s']:.1f} img/s", flush=True)
        except Exception as e:
            report["evaluator"] = {"error": f"{type(e).__name__}: {e}"}
            failed = True

    labelled, n_vertebrae = [], 0
    for split in ("train", "val"):
        gt = json.loads((coco / f"{split}.json").read_text())
        labelled += [str(folder / im["file_name"]) for im in gt["images"]]
        n_vertebrae += len(gt["annotations"])
    detections = args.detections or max(1, round(n_vertebrae / len(labelled)))
    report["settings"]["detections_with_random_weights"] = detections
    names = []
    for k, config in enumerate(configs):
        name = Path(config).stem
        name = name if name not in names else f"{name}_{k}"
        names.append(name)
        if not {"inference", "train"} & set(phases):
            continue
        spec = {"name": name, "config": config, "weights": args.weights[k] if args.weights else None,
                "opts": list(args.opts), "device": device, "threads": args.threads, "coco": str(coco),
                "images": labelled, "num_images": args.num_images, "warmup": args.warmup,
                "train_iters": args.train_iters, "score_threshold": args.score_threshold, "phases": phases,
                "detections": None if args.weights else detections,
                "output": str(out / name)}
        print(f"{name}: {config} (log: {out / name / 'log.txt'})", flush=True)
        try:
            r = _run_isolated(spec)
        except Exception as e:  # the process died, or the config could not be built
            r = {"name": name, "config": config, "device": device, "error": f"{type(e).__name__}: {e}"}
            print(f"   {name}: FAILED: {r['error']}", flush=True)
        failed |= bool(r.get("failed", "error" in r))
        report["configs"].append(r)
        (out / "benchmark.json").write_text(json.dumps(report, indent=1) + "\n")

    (out / "benchmark.json").write_text(json.dumps(report, indent=1) + "\n")
    print()
    print(format_table(report))
    print(f"\nwrote {out / 'benchmark.json'}")
    return 1 if failed else 0
