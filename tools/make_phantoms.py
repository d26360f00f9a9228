#!/usr/bin/env python
"""Write a synthetic spine X-ray dataset in a real dataset's raw layout: ``vertkp phantoms`` (see vertkp/phantoms/cli.py)."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's vertkp, installed or not

from vertkp.phantoms.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
