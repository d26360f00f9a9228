"""Training and evaluation with detectron2: the trainer, its hooks, config setup and checks.

``tools/train_net.py`` is a thin command line over this package. Importing it
also registers vertkp's backbones (``vertkp.modeling``).
"""
from .. import modeling  # noqa: F401  (BACKBONE_REGISTRY entries)
from .checks import ConfigError, check_config
from .defaults import build_cfg, resolve_device, setup
from .hooks import BestCheckpointer
from .trainer import Trainer

__all__ = ["Trainer", "BestCheckpointer", "ConfigError", "check_config", "build_cfg", "resolve_device", "setup"]
