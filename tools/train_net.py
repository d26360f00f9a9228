#!/usr/bin/env python
"""Train or evaluate vertkp's Keypoint R-CNN: ``vertkp train`` (see vertkp/engine/cli.py)."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's vertkp, installed or not

from vertkp.engine.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
