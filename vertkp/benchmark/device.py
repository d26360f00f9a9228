"""The torch and process side that the speed, learning and scale benchmarks share, without
detectron2 (``vertkp benchmark speed --skip inference,train`` runs without it): the CPU threads
torch uses, the torch part of the machine (its threads, the GPU, CUDA), a process's peak
memory and a measurement in a fresh process (where that peak is its own).

Imported only by the benchmarks that run torch (``vertkp.benchmark.cli`` does not).
"""
from __future__ import annotations

import multiprocessing
import resource
from concurrent.futures import ProcessPoolExecutor
from typing import Callable, Mapping

import torch

from .report import machine_info

__all__ = ["set_threads", "torch_machine_info", "peak_rss_mib", "in_fresh_process"]


def peak_rss_mib() -> float:
    """This process's peak resident set size so far, MiB (``ru_maxrss``; it cannot be reset)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def in_fresh_process(fn: Callable, spec: Mapping):
    """``fn(dict(spec))`` in a fresh spawned process (its imports, memory and threads its own)."""
    with ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn")) as pool:
        return pool.submit(fn, dict(spec)).result()


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
