"""Learning benchmark: ``vertkp benchmark learning``: what the phantom configs reach, and how fast.

    vertkp benchmark learning                                    # R50, HRNet-W32 and MobileNetV4 phantom configs
    vertkp benchmark learning --models r50 --threads 1
    vertkp benchmark learning --models hrnet_w32 --num-images 100 SOLVER.MAX_ITER 300
    vertkp benchmark learning --config-file configs/quick_schedules/kprcnn_r50_instant_test.yaml --num-images 10
    vertkp benchmark learning --minutes 9 --threads 2           # every model for the same 9 minutes of training

Makes a phantom set (--num-images images of --image-size px, ``vertkp.phantoms.make.ensure_phantoms``)
in OUT/data unless it is there, then trains each config (``--models r50`` is
configs/kprcnn_r50_phantoms.yaml; or any --config-file) on its train split from the
config's MODEL.WEIGHTS (the phantom configs: from scratch) with the config's schedule and
periodic evaluation (TEST.EVAL_PERIOD), and evaluates on its val split after the last step.
With --minutes M every config trains for the same CPU time instead: its seconds per step are
measured first (CALIBRATION_STEPS steps after CALIBRATION_WARMUP, no evaluation), and its
schedule is stretched or shrunk to M minutes of steps (:func:`schedule_for_minutes`: the
iterations, and the warm-up, LR steps, evaluation and checkpoint periods in proportion).
Prints, per config: seconds per training iteration (detectron2's IterationTimer: the
steps alone, evaluation excluded; mean and median leave out the first step, which pays
one-off set-up), minutes of training, the final evaluation (detection F1 in %, MRE in px and
in % of the mean vertebra width, SDR, slip MAE, grade accuracy), every evaluation with the
minutes of training before it, the best checkpoint and the target (F1 >= 95%, MRE <= 3% of
the width) with the first evaluation that met it. Trailing KEY VALUE pairs override every
config. Writes OUT/benchmark.json; each run's folder is OUT/<config name> (log.txt,
checkpoints). A benchmark, not a test: ~15 minutes per phantom config on 2 CPU cores.
Exit status: 0 done, 1 a run failed (the others are reported), 2 bad arguments or
detectron2 missing.
"""
from __future__ import annotations

import contextlib
import logging
import shutil
import traceback
from pathlib import Path

import numpy as np
import torch

from ..evaluation.evaluator import dataset_ground_truth
from ..files import read_json, write_json
from .device import set_threads, torch_machine_info
from ..evaluation.metrics import mean_vertebra_width
from .report import TARGET_F1, TARGET_MRE_PCT, evaluations, format_learning, machine_line, target_mre
from .runs import BenchmarkTrainer, benchmark_cfg, log_to, step_seconds, timed_steps
from .schedule import schedule_for_minutes

__all__ = ["CALIBRATION_STEPS", "CALIBRATION_WARMUP", "calibrate_step_seconds",
           "learn_config", "run"]

# --minutes: the steps timed (after the untimed warm-up ones) to size a config's schedule.
CALIBRATION_STEPS, CALIBRATION_WARMUP = 10, 3


def calibrate_step_seconds(cfg) -> float:
    """Median seconds of one training step of ``cfg`` (unfrozen), CALIBRATION_STEPS steps after
    CALIBRATION_WARMUP untimed ones, no evaluation nor checkpoint, in OUTPUT_DIR/calibration."""
    cfg = cfg.clone()
    cfg.OUTPUT_DIR = str(Path(cfg.OUTPUT_DIR) / "calibration")
    trainer, _ = timed_steps(cfg, CALIBRATION_STEPS, CALIBRATION_WARMUP)
    return float(np.median(step_seconds(trainer)))


def _fit_to_minutes(cfg, minutes: float) -> dict:
    """Set ``cfg``'s schedule (unfrozen, in place) to ``minutes`` of training; the record for benchmark.json."""
    s = calibrate_step_seconds(cfg)
    schedule = schedule_for_minutes(minutes, s, cfg.SOLVER.MAX_ITER, cfg.SOLVER.STEPS, cfg.SOLVER.WARMUP_ITERS,
                                    cfg.TEST.EVAL_PERIOD, cfg.SOLVER.CHECKPOINT_PERIOD)
    cfg.merge_from_list([x for k, v in schedule.items() for x in (k, v)])
    return {"minutes": minutes, "calibration_s_per_iter": s, "calibration_steps": CALIBRATION_STEPS,
            "schedule": {k: list(v) if isinstance(v, tuple) else v for k, v in schedule.items()}}


def learn_config(cfg, name: str, minutes: float = 0.0) -> dict:
    """Train ``cfg`` (unfrozen; datasets registered, one test dataset) in this process,
    evaluating as the config says and after the last step; ``minutes`` > 0: with its
    schedule fitted to that much training first (:func:`schedule_for_minutes`).

    Returns:
        dict as in benchmark.json's "configs": iterations, s_per_iter (mean),
        s_per_iter_median, train_minutes (sum of the step times), mean_width_px (test
        set), curve (per evaluation: iterations, train_minutes before it, MRE_pct_width,
        truth_MRE_pct_width (phantom sets with their truth: against the exact corners,
        else None), metrics under their storage keys; the last is the final weights'),
        best (the best checkpoint's record, if any), target (on the MRE against the exact
        truth where there is one).
    """
    if len(cfg.DATASETS.TEST) != 1:
        raise ValueError(f"the learning benchmark evaluates on one dataset; DATASETS.TEST is {cfg.DATASETS.TEST}: "
                         "leave it to the benchmark's phantom val set, or give one")
    budget = _fit_to_minutes(cfg, minutes) if minutes > 0 else None
    cfg.freeze()
    trainer = BenchmarkTrainer(cfg, warmup=0)
    trainer.resume_or_load(resume=False)
    trainer.train()
    seconds = np.array(step_seconds(trainer))
    elapsed = np.cumsum(seconds) / 60
    width = mean_vertebra_width([t.corners for t in dataset_ground_truth(cfg.DATASETS.TEST[0]).images])
    curve = [{"iterations": n, "train_minutes": float(elapsed[min(n, len(elapsed)) - 1]),
              "MRE_pct_width": 100.0 * m.get("vertkp/MRE_px", float("nan")) / width,
              "truth_MRE_pct_width": m.get("vertkp/truth_MRE_pct_width"), "metrics": m}
             for n, m in evaluations(trainer.storage.histories(), cfg.SOLVER.MAX_ITER).items()]
    if not curve or "vertkp/MRE_px" not in curve[-1]["metrics"]:
        raise RuntimeError(f"no vertkp evaluation was logged (see {Path(cfg.OUTPUT_DIR) / 'log.txt'})")
    meets = [e["metrics"]["vertkp/det_F1"] >= TARGET_F1 and target_mre(e) <= TARGET_MRE_PCT for e in curve]
    first = curve[meets.index(True)] if any(meets) else None
    steps = seconds[1:] if len(seconds) > 1 else seconds
    best = Path(cfg.OUTPUT_DIR) / "model_best.json"  # vertkp.engine.BestCheckpointer's record
    return {
        "name": name, "device": cfg.MODEL.DEVICE, "threads": torch.get_num_threads(),
        "iterations": len(seconds), "ims_per_batch": cfg.SOLVER.IMS_PER_BATCH,
        "s_per_iter": float(steps.mean()), "s_per_iter_median": float(np.median(steps)),
        "train_minutes": float(seconds.sum() / 60),
        "timer": "detectron2 IterationTimer (the storage's 'time' history); mean and median without the first step",
        "mean_width_px": width, "curve": curve, "best": read_json(best) if best.is_file() else None,
        "target": {"det_F1": TARGET_F1, "MRE_pct_width": TARGET_MRE_PCT, "met": meets[-1],
                   "met_after": {k: first[k] for k in ("iterations", "train_minutes")} if first else None},
        "budget": budget,
    }


def run(args, folder: Path) -> int:
    """``vertkp benchmark learning`` on arguments checked by ``vertkp.benchmark.cli``
    (configs resolved, opts merged) and the phantom set it made (``folder``,
    ``vertkp.benchmark.data.phantom_set``): exit 0 done, 1 a run failed."""
    set_threads(args.threads)
    out = Path(args.output).resolve()
    report = {"machine": torch_machine_info(args.threads),
              "settings": {"num_images": args.num_images, "image_size": args.image_size, "seed": args.seed,
                           "difficulty": args.difficulty, "minutes": args.minutes,
                           "opts": list(args.opts)},
              "configs": []}
    print(f"machine: {machine_line(report['machine'])}", flush=True)
    failed = False
    for config, name in zip(args.config_file, args.names):
        shutil.rmtree(out / name, ignore_errors=True)  # no checkpoint or best record of an earlier run
        log = log_to(out / name)
        print(f"{name}: training {config} (log: {log})", flush=True)
        try:
            with open(log, "a", encoding="utf-8") as f, contextlib.redirect_stdout(f):  # pycocotools prints
                r = {"config": config,
                     **learn_config(benchmark_cfg(config, folder / "coco", out / name, args.opts), name,
                                   args.minutes)}
        except Exception as e:  # report it, train the others
            logging.getLogger("vertkp").error(traceback.format_exc())
            r = {"name": name, "config": config, "error": f"{type(e).__name__}: {e}"}
            failed = True
        report["configs"].append(r)
        write_json(out / "benchmark.json", report)
        print(f"\n{format_learning(r)}\n", flush=True)
    print(f"wrote {out / 'benchmark.json'}")
    return 1 if failed else 0
