"""The detectron2 side of the speed and learning benchmarks: a config on the benchmark's
phantom datasets, its logs, the trainer whose IterationTimer times the steps, and the
FrozenBN calibration that makes random weights behave.

Imported only by the benchmarks that need detectron2 (``vertkp.benchmark.cli`` does not).
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import List, Optional, Sequence

import torch
from detectron2.engine import hooks
from detectron2.layers import FrozenBatchNorm2d

from ..config import build_cfg
from ..data.loading.registration import register_dataset
from ..engine import Trainer

__all__ = ["TRAIN_DATASET", "TEST_DATASET", "benchmark_cfg", "log_to", "BenchmarkTrainer", "step_seconds",
           "timed_steps", "calibrate_frozen_bn"]

# The phantom set is registered under these names, so that a user's phantoms_{train,val} are left alone.
TRAIN_DATASET, TEST_DATASET = "vertkp_benchmark_train", "vertkp_benchmark_val"


def benchmark_cfg(config_file: str, coco, output, opts: Sequence[str] = ()):
    """The unfrozen config of ``config_file`` (``vertkp.config.build_cfg``) on the phantom
    set of the COCO folder ``coco``: DATASETS.TRAIN and DATASETS.TEST are its train and
    val files, OUTPUT_DIR is ``output``; ``opts`` (KEY VALUE pairs) come after."""
    coco = Path(coco)
    register_dataset(TRAIN_DATASET, coco / "train.json", coco.parent)
    register_dataset(TEST_DATASET, coco / "val.json", coco.parent)
    base = ["DATASETS.TRAIN", f"('{TRAIN_DATASET}',)", "DATASETS.TEST", f"('{TEST_DATASET}',)",
            "OUTPUT_DIR", str(output)]
    return build_cfg(config_file, base + list(opts), freeze=False)


def log_to(folder: Path) -> Path:
    """detectron2's, fvcore's, timm's and vertkp's logs go to folder/log.txt, not the terminal.
    Returns the log file."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(folder / "log.txt", mode="w")
    handler.setFormatter(logging.Formatter("[%(asctime)s %(name)s %(levelname)s] %(message)s"))
    for name in ("detectron2", "fvcore", "vertkp", "d2", "timm"):
        log = logging.getLogger(name)
        log.handlers[:] = [handler]
        log.setLevel(logging.INFO)
        log.propagate = False
    return folder / "log.txt"


class _SyncedIterationTimer(hooks.IterationTimer):
    """IterationTimer that waits for the GPU before reading the time of a step."""

    def after_step(self):
        torch.cuda.synchronize()
        super().after_step()


class BenchmarkTrainer(Trainer):
    """vertkp's :class:`~vertkp.engine.Trainer` whose detectron2 IterationTimer records the
    seconds of every step after the first ``warmup`` ones in the storage's "time"
    history (:func:`step_seconds`): data, forward, backward, optimizer, not the hooks'
    evaluation or checkpoints. With ``evaluate=False``, no evaluation and no checkpoint.

    Args:
        cfg: frozen config.
        warmup: steps not timed (detectron2's IterationTimer skips its ``warmup_iter - 1``).
        evaluate: keep the evaluation and checkpoint hooks.
    """

    def __init__(self, cfg, *, warmup: int = 0, evaluate: bool = True):
        self._warmup, self._evaluate = int(warmup), evaluate
        super().__init__(cfg)

    def build_hooks(self):
        drop = () if self._evaluate else (hooks.EvalHook, hooks.PeriodicCheckpointer, hooks.BestCheckpointer)
        timer = _SyncedIterationTimer if self.cfg.MODEL.DEVICE.startswith("cuda") else hooks.IterationTimer
        return [timer(warmup_iter=self._warmup + 1) if isinstance(h, hooks.IterationTimer) else h
                for h in super().build_hooks() if not isinstance(h, drop)]


def step_seconds(trainer) -> List[float]:
    """The step times the IterationTimer put into the trainer's storage, in step order, s."""
    histories = trainer.storage.histories()
    return [v for v, _ in histories["time"].values()] if "time" in histories else []


def timed_steps(cfg, iters: int, warmup: int, calibration: Optional[List[dict]] = None):
    """Train ``cfg`` (unfrozen; a copy is changed) for ``warmup`` untimed then ``iters`` timed steps,
    no evaluation nor checkpoint, LR steps past the end dropped; with ``calibration`` (model inputs),
    random FrozenBN statistics are set from them first (:func:`calibrate_frozen_bn`).

    Returns:
        (the trainer, after its last step: :func:`step_seconds` reads its times; how many FrozenBN
        layers were calibrated).
    """
    cfg = cfg.clone()
    cfg.SOLVER.MAX_ITER = warmup + iters
    cfg.SOLVER.STEPS = tuple(s for s in cfg.SOLVER.STEPS if s < cfg.SOLVER.MAX_ITER)
    cfg.freeze()
    trainer = BenchmarkTrainer(cfg, warmup=warmup, evaluate=False)
    trainer.resume_or_load(resume=False)
    calibrated = calibrate_frozen_bn(trainer.model, calibration) if calibration else 0
    trainer.train()
    return trainer, calibrated


def calibrate_frozen_bn(model, inputs: List[dict]) -> int:
    """Random weights only: give every FrozenBatchNorm2d the mean and variance of its
    own input on ``inputs`` (model inputs, one forward pass, layer after layer), so that
    activations stay finite and a randomly initialised FrozenBN network outputs boxes as a
    trained one does. The operations, hence the speed, are unchanged. Returns how many
    layers.

    Without it, the real configs' FrozenBN (identity statistics) lets activations grow
    through the backbone until boxes are not finite and every detection is dropped,
    which would time a model that never runs its keypoint head.
    """
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
