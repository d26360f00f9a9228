#!/usr/bin/env python
"""Speed benchmark: inference latency, training s/iter, peak memory, converter and evaluator
throughput: ``vertkp benchmark`` (see vertkp/benchmark.py)."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's vertkp, installed or not

from vertkp.benchmark import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
