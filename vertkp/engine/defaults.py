"""Running training and evaluation: a run's setup, ``train`` and ``evaluate``.

``vertkp train`` (``vertkp.engine.cli``) and the demo call these; so can a notebook.
"""
from __future__ import annotations

import os
from types import SimpleNamespace
from typing import Optional

from detectron2.checkpoint import DetectionCheckpointer
from detectron2.engine import default_setup
from detectron2.utils import comm
from detectron2.utils.logger import setup_logger

from ..config import build_cfg
from ..files import write_json
from ..modeling.weights import check_weights, fetching
from .checks import check_config
from .trainer import Trainer

__all__ = ["setup", "setup_run", "train", "evaluate"]


def setup_run(cfg, *, config_file: str = "", eval_only: bool = False) -> None:
    """detectron2's ``default_setup`` for a built ``cfg`` (logging to OUTPUT_DIR/log.txt,
    OUTPUT_DIR/config.yaml, seeds) plus vertkp's logger, then :func:`check_config`.

    Raises:
        ConfigError: the config cannot train or evaluate (the message says what to change).
    """
    default_setup(cfg, SimpleNamespace(config_file=config_file, eval_only=eval_only, opts=[]))
    setup_logger(cfg.OUTPUT_DIR, distributed_rank=comm.get_rank(), name="vertkp", abbrev_name="vertkp")
    check_config(cfg, training=not eval_only)


def setup(args):
    """The checked config of ``vertkp train`` arguments (detectron2's
    ``default_argument_parser``), with the run set up (:func:`setup_run`)."""
    cfg = build_cfg(args.config_file, args.opts)
    setup_run(cfg, config_file=args.config_file, eval_only=args.eval_only)
    return cfg


def train(cfg, *, resume: bool = False) -> dict:
    """Train ``cfg`` (set up with :func:`setup_run`) in this process; returns the
    results of the last evaluation ({} when there was none).

    Args:
        resume: continue from OUTPUT_DIR/last_checkpoint instead of MODEL.WEIGHTS.

    Raises:
        WeightsError: MODEL.WEIGHTS is a missing file or a URL that cannot be fetched (the
            message says how to get it).
    """
    if not (resume and os.path.isfile(os.path.join(cfg.OUTPUT_DIR, "last_checkpoint"))):
        check_weights(cfg.MODEL.WEIGHTS)  # before building: a missing file says how to get it
    trainer = Trainer(cfg)
    with fetching(cfg.MODEL.WEIGHTS):
        trainer.resume_or_load(resume=resume)
    return trainer.train() or {}


def evaluate(cfg, *, weights: Optional[str] = None, resume: bool = False) -> dict:
    """Evaluate weights (default ``cfg.MODEL.WEIGHTS``; with ``resume``, the last
    checkpoint of OUTPUT_DIR) on ``cfg.DATASETS.TEST``; the results also go to
    OUTPUT_DIR/eval_results.json."""
    weights = weights or cfg.MODEL.WEIGHTS
    checkpointer = DetectionCheckpointer(Trainer.build_model(cfg), save_dir=cfg.OUTPUT_DIR)
    if not (resume and checkpointer.has_checkpoint()):
        check_weights(weights)
    with fetching(weights):
        checkpointer.resume_or_load(weights, resume=resume)
    model = checkpointer.model
    results = Trainer.test(cfg, model)
    if comm.is_main_process():
        write_json(os.path.join(cfg.OUTPUT_DIR, "eval_results.json"), results)
    return results
