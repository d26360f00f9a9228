#!/usr/bin/env python
"""Predict corners, slip % and Meyerding grades with overlays and a report: ``vertkp predict``
(see vertkp/inference/cli.py)."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's vertkp, installed or not

from vertkp.inference.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
