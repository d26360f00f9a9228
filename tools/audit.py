#!/usr/bin/env python
"""What is in a dataset: tiny, duplicate, overlapping or misordered vertebrae, duplicate images, leaks.

    python tools/audit.py --gt FILE.json [FILE.json ...] --output DIR [--image-root DIR] [--no-overlays]
            [--no-progress]

Exit status: 0 the audit ran (whatever it found), 2 bad arguments or unreadable GT files.
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from vertkp.audit.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
