#!/usr/bin/env python
"""Score COCO keypoint predictions against vertkp ground truth: ``vertkp evaluate`` (see vertkp/evaluation/cli.py)."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's vertkp, installed or not

from vertkp.evaluation.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
