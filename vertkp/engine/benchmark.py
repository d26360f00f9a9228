"""Training benchmark on phantoms: how fast a config trains and what it reaches.

Used by ``tools/benchmark_training.py``. ``run_benchmark`` trains one config
in this process on already registered phantom datasets, then evaluates the
final weights on the test dataset of the config, and returns the seconds per
iteration (training steps only, evaluation excluded) with the ``vertkp``
metrics and the MRE as a percentage of the mean vertebra width.
"""
from __future__ import annotations

import time

import numpy as np
from detectron2.engine import HookBase

__all__ = ["StepTimer", "mean_vertebra_width", "run_benchmark"]


class StepTimer(HookBase):
    """Records the wall time of every training step (forward, backward,
    optimizer, data loading; not the hooks such as evaluation), seconds."""

    def __init__(self):
        self.seconds = []
        self._t0 = None

    def before_step(self):
        self._t0 = time.perf_counter()

    def after_step(self):
        self.seconds.append(time.perf_counter() - self._t0)


def mean_vertebra_width(dataset_dicts) -> float:
    """Mean endplate length over every vertebra with 4 labelled corners:
    mean of |TR - TL| and |BR - BL|, pixels of the original images."""
    widths = []
    for d in dataset_dicts:
        for a in d.get("annotations", []):
            k = np.asarray(a["keypoints"], dtype=np.float64).reshape(4, 3)
            if (k[:, 2] > 0).all():
                widths.append(0.5 * (np.linalg.norm(k[1, :2] - k[0, :2]) + np.linalg.norm(k[3, :2] - k[2, :2])))
    return float(np.mean(widths)) if widths else float("nan")


def run_benchmark(cfg) -> dict:
    """Train ``cfg`` (frozen, datasets registered) from scratch, then evaluate.

    Returns:
        dict: iterations, s_per_iter (mean), s_per_iter_median, train_minutes
        (sum of step times), results (final weights: ``vertkp`` and, when on,
        ``bbox``/``keypoints``), curve (one entry per periodic evaluation:
        iteration, train_minutes so far, MRE_px, MRE_pct_width, det_F1,
        grade_acc), best (value and iteration of the best checkpoint, if
        any), mean_width_px and MRE_pct_width (of the final weights).
    """
    import json
    from pathlib import Path

    from detectron2.data import DatasetCatalog

    from .trainer import Trainer

    trainer = Trainer(cfg)
    timer = StepTimer()
    trainer.register_hooks([timer])
    trainer._hooks.insert(0, trainer._hooks.pop())  # time the step alone: before the evaluation hook
    trainer.resume_or_load(resume=False)
    trainer.train()
    results = Trainer.test(cfg, trainer.model)
    vk = results["vertkp"]
    width = mean_vertebra_width(DatasetCatalog.get(cfg.DATASETS.TEST[0]))
    steps = np.array(timer.seconds[1:] or timer.seconds)  # the first step pays one-off set-up
    elapsed = np.cumsum(timer.seconds) / 60
    curve = []
    metrics_file = Path(cfg.OUTPUT_DIR) / "metrics.json"
    for line in metrics_file.read_text().splitlines() if metrics_file.is_file() else []:
        rec = json.loads(line)
        if "vertkp/MRE_px" in rec and rec["iteration"] < len(elapsed):
            curve.append({"iteration": rec["iteration"], "train_minutes": float(elapsed[rec["iteration"]]),
                          "MRE_px": rec["vertkp/MRE_px"], "MRE_pct_width": 100.0 * rec["vertkp/MRE_px"] / width,
                          "det_F1": rec["vertkp/det_F1"], "grade_acc": rec["vertkp/grade_acc"]})
    best_file = Path(cfg.OUTPUT_DIR) / "model_best.json"
    return {
        "iterations": len(timer.seconds),
        "s_per_iter": float(steps.mean()),
        "s_per_iter_median": float(np.median(steps)),
        "train_minutes": float(np.sum(timer.seconds) / 60),
        "results": results,
        "curve": curve,
        "best": json.loads(best_file.read_text()) if best_file.is_file() else None,
        "mean_width_px": width,
        "MRE_pct_width": 100.0 * vk["MRE_px"] / width,
    }
