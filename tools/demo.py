#!/usr/bin/env python
"""The whole story on phantoms (what `make demo` runs): ``vertkp demo`` (see vertkp/demo.py)."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's vertkp, installed or not

from vertkp.demo import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
