"""The torch side that the speed and learning benchmarks share, without detectron2 (``vertkp
benchmark speed --skip inference,train`` runs without it): the CPU threads torch uses and
the torch part of the machine (its threads, the GPU, CUDA).

Imported only by the benchmarks that run torch (``vertkp.benchmark.cli`` does not).
"""
from __future__ import annotations

import torch

from .report import machine_info

__all__ = ["set_threads", "torch_machine_info"]


def set_threads(threads: int) -> None:
    """torch uses ``threads`` CPU threads; 0 leaves torch's default (one per core)."""
    if threads > 0:
        torch.set_num_threads(threads)


def torch_machine_info(threads: int = 0) -> dict:
    """What the figures were measured on: ``vertkp.benchmark.report.machine_info`` with
    torch's part: its threads, the GPU (None: none), CUDA's version, and torch's version
    as torch gives it (with its build tag, e.g. +cu130).

    Args:
        threads: the torch CPU threads asked for (0: torch's current number).
    """
    cuda = torch.cuda.is_available()
    return {**machine_info(), "torch": torch.__version__, "torch_threads": threads or torch.get_num_threads(),
            "gpu": torch.cuda.get_device_name(0) if cuda else None, "cuda": torch.version.cuda if cuda else None}
