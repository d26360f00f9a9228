"""Training hooks."""
from __future__ import annotations

import json
import math
from pathlib import Path

from detectron2.engine import hooks

from ..files import write_json

__all__ = ["BestCheckpointer"]


class BestCheckpointer(hooks.BestCheckpointer):
    """detectron2's ``BestCheckpointer`` (``model_best.pth`` whenever an evaluation
    improves the metric), which also

    * survives a resume: the best value and its iteration are kept beside the
      weights in ``model_best.json`` and read back by a resumed run, so an
      interruption never lets a worse model replace the best one;
    * finds the metric under a dataset prefix: with several test datasets
      detectron2 logs "<dataset>/vertkp/MRE_px" instead of "vertkp/MRE_px";
    * names the final evaluation by the last step (``max_iter - 1``, as
      ``model_final.pth``), not by ``max_iter``.

    It must run after detectron2's EvalHook (``Trainer.build_hooks`` puts it there).
    """

    def __init__(self, eval_period: int, checkpointer, val_metric: str, mode: str = "min",
                 file_prefix: str = "model_best", metric_prefixes=()):
        """
        Args:
            eval_period: iterations between evaluations (TEST.EVAL_PERIOD).
            checkpointer: the trainer's DetectionCheckpointer.
            val_metric: storage key of the tracked value, e.g. "vertkp/MRE_px".
            mode: "min" (lower is better) or "max".
            file_prefix: name of the weight file, without ".pth".
            metric_prefixes: prefixes tried after ``val_metric`` when it is not
                logged as is (the test dataset names).
        """
        if mode not in ("min", "max"):
            raise ValueError(f"VERTKP.BEST_MODE must be 'min' or 'max', got {mode!r}")
        super().__init__(eval_period, checkpointer, val_metric, mode, file_prefix)
        self._mode = mode
        self._keys = [val_metric] + [f"{p}/{val_metric}" for p in metric_prefixes]

    @property
    def record(self) -> Path:
        """``<OUTPUT_DIR>/<file_prefix>.json``: metric, mode, value, iteration of the best."""
        return Path(self._checkpointer.save_dir) / f"{self._file_prefix}.json"

    def before_train(self):
        if self.trainer.start_iter > 0 and self.record.is_file():  # resumed: keep the earlier best
            rec = json.loads(self.record.read_text(encoding="utf-8"))
            if rec.get("metric") == self._val_metric and rec.get("mode") == self._mode:
                self.best_metric, self.best_iter = rec["value"], rec["iteration"]

    def _best_checking(self):
        latest = self.trainer.storage.latest()
        key = next((k for k in self._keys if k in latest), None)
        if key is None:
            self._logger.warning(f"best checkpoint: metric {self._val_metric!r} was not found in the evaluation "
                                 "results; set VERTKP.BEST_METRIC to one of the logged keys")
            return
        value, it = latest[key]
        it = min(int(it), self.trainer.max_iter - 1)
        if not math.isfinite(value):
            return
        if self.best_metric is not None and not self._compare(value, self.best_metric):
            self._logger.info(f"best checkpoint: {key} = {value:.4g} at iteration {it}, not better than "
                              f"{self.best_metric:.4g} at iteration {self.best_iter}")
            return
        self._update_best(float(value), it)
        self._checkpointer.save(self._file_prefix, iteration=it)
        write_json(self.record, {"metric": self._val_metric, "mode": self._mode, "value": self.best_metric,
                                 "iteration": self.best_iter}, nan="error")
        self._logger.info(f"best checkpoint: {key} = {value:.4g} at iteration {it} -> {self._file_prefix}.pth")
