"""Building the config of a run: project keys, file, overrides, device, checks."""
from __future__ import annotations

import logging

__all__ = ["build_cfg", "resolve_device", "setup"]


def resolve_device(cfg) -> None:
    """Run on the CPU when ``MODEL.DEVICE`` asks for CUDA and there is none,
    and turn off AMP there (detectron2's AMP trainer is CUDA-only). ``cfg`` must be unfrozen."""
    import torch

    logger = logging.getLogger(__name__)
    if cfg.MODEL.DEVICE.startswith("cuda") and not torch.cuda.is_available():
        logger.warning("CUDA is not available: running on the CPU (MODEL.DEVICE cpu)")
        cfg.MODEL.DEVICE = "cpu"
    if cfg.MODEL.DEVICE == "cpu" and cfg.SOLVER.AMP.ENABLED:
        logger.warning("SOLVER.AMP.ENABLED is ignored on the CPU: training in float32")
        cfg.SOLVER.AMP.ENABLED = False


def build_cfg(config_file: str, opts=(), *, freeze: bool = True):
    """detectron2 defaults + vertkp keys + ``config_file`` (with its ``_BASE_``
    chain) + ``opts`` (KEY VALUE pairs), with the device resolved.

    Raises:
        FileNotFoundError: ``config_file`` does not exist.
    """
    import os

    from detectron2.config import get_cfg

    import vertkp.modeling  # noqa: F401  (registers the HRNet backbone)
    from ..config import add_vertkp_config

    if not os.path.isfile(config_file):
        raise FileNotFoundError(f"config file {config_file} does not exist (configs/ holds vertkp's)")
    cfg = get_cfg()
    add_vertkp_config(cfg)
    cfg.merge_from_file(config_file)
    cfg.merge_from_list(list(opts))
    resolve_device(cfg)
    if freeze:
        cfg.freeze()
    return cfg


def setup(args):
    """Config for ``tools/train_net.py`` arguments, checked, and detectron2's
    ``default_setup`` (logging, OUTPUT_DIR/config.yaml, seeds)."""
    from detectron2.engine import default_setup
    from detectron2.utils import comm
    from detectron2.utils.logger import setup_logger

    from .checks import check_config

    cfg = build_cfg(args.config_file, args.opts)
    default_setup(cfg, args)
    setup_logger(cfg.OUTPUT_DIR, distributed_rank=comm.get_rank(), name="vertkp", abbrev_name="vertkp")
    check_config(cfg, training=not args.eval_only)
    return cfg
