"""Training and evaluation with detectron2: the trainer, its hooks, a run's setup and checks.

``vertkp train`` (``vertkp.engine.cli``, ``tools/train_net.py``) is a thin command
line over ``setup``, ``train`` and ``evaluate``.
"""
from .checks import ConfigError, check_config
from .defaults import evaluate, setup, setup_run, train
from .hooks import BestCheckpointer
from .trainer import Trainer

__all__ = ["Trainer", "BestCheckpointer", "ConfigError", "check_config", "setup", "setup_run", "train", "evaluate"]
