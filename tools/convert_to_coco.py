#!/usr/bin/env python
"""Convert a raw dataset (Mendeley spondylolisthesis or BUU-LSPINE) to vertkp COCO keypoint files.

    python tools/convert_to_coco.py --dataset spondylolisthesis --root ROOT [--output OUT] [--skip-invalid]
    python tools/convert_to_coco.py --dataset buu-lspine --root ROOT [--view lateral|ap] [--output OUT]
            [--val-fraction 0.2] [--seed 0] [--pixel-spacing FILE] [--skip-invalid]

Exit status: 0 converted (skips, if any, are listed), 2 bad input or arguments.
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from vertkp.convert import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
