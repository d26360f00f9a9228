"""Training hooks."""
from __future__ import annotations

import json
import logging
import math
from pathlib import Path

from detectron2.engine import HookBase

__all__ = ["BestCheckpointer"]


class BestCheckpointer(HookBase):
    """Saves ``model_best.pth`` whenever an evaluation improves ``metric``.

    Runs after detectron2's EvalHook (every ``eval_period`` iterations and at
    the end of training) and reads the metric from the event storage, e.g.
    "vertkp/MRE_px" (with several test datasets: "<dataset>/vertkp/MRE_px").
    The best value and its iteration are kept beside the weights in
    ``model_best.json``, which a resumed run reads back, so an interruption
    never lets a worse model replace the best one.
    """

    def __init__(self, eval_period: int, checkpointer, metric: str, mode: str = "min",
                 file_prefix: str = "model_best", fallback_prefixes=()):
        """
        Args:
            eval_period: iterations between evaluations (TEST.EVAL_PERIOD).
            checkpointer: the trainer's DetectionCheckpointer.
            metric: storage key of the tracked value.
            mode: "min" (lower is better) or "max".
            file_prefix: name of the weight file, without ".pth".
            fallback_prefixes: prefixes tried before ``metric`` when it is
                not found as is (the test dataset names).
        """
        if mode not in ("min", "max"):
            raise ValueError(f"VERTKP.BEST_MODE must be 'min' or 'max', got {mode!r}")
        self._period, self._checkpointer = eval_period, checkpointer
        self._metric, self._mode, self._prefix = metric, mode, file_prefix
        self._fallbacks = [f"{p}/{metric}" for p in fallback_prefixes]
        self.best_value, self.best_iter = None, None
        self._seen_iter = None
        self._logger = logging.getLogger(__name__)

    @property
    def _record(self) -> Path:
        return Path(self._checkpointer.save_dir) / f"{self._prefix}.json"

    def before_train(self):
        if self.trainer.start_iter > 0 and self._record.is_file():  # resumed: keep the earlier best
            rec = json.loads(self._record.read_text())
            if rec.get("metric") == self._metric and rec.get("mode") == self._mode:
                self.best_value, self.best_iter = rec["value"], rec["iteration"]

    def _better(self, value: float) -> bool:
        if self.best_value is None:
            return True
        return value < self.best_value if self._mode == "min" else value > self.best_value

    def _check(self):
        latest = self.trainer.storage.latest()
        for key in [self._metric] + self._fallbacks:
            if key in latest:
                value, it = latest[key]
                break
        else:
            self._logger.warning(f"best checkpoint: metric {self._metric!r} was not found in the evaluation "
                                 "results; set VERTKP.BEST_METRIC to one of the logged keys")
            return
        # the final evaluation is stored at iteration max_iter: name it by its last step, as model_final
        it = min(int(it), self.trainer.max_iter - 1)
        if it == self._seen_iter or not math.isfinite(value):
            return
        self._seen_iter = it
        if self._better(value):
            self.best_value, self.best_iter = float(value), int(it)
            self._checkpointer.save(self._prefix, iteration=int(it))
            self._record.write_text(json.dumps({"metric": self._metric, "mode": self._mode,
                                                "value": self.best_value, "iteration": self.best_iter}) + "\n")
            self._logger.info(f"best checkpoint: {self._metric} = {value:.4g} at iteration {it} "
                              f"-> {self._prefix}.pth")

    def after_step(self):
        next_iter = self.trainer.iter + 1
        if self._period > 0 and next_iter % self._period == 0 and next_iter != self.trainer.max_iter:
            self._check()

    def after_train(self):
        if self.trainer.iter + 1 >= self.trainer.max_iter:
            self._check()
