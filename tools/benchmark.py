#!/usr/bin/env python
"""Benchmarks: speed (the default), learning, data: ``vertkp benchmark`` (see vertkp/benchmark/cli.py)."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's vertkp, installed or not

from vertkp.benchmark.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
