#!/usr/bin/env python
"""Convert a timm HRNet checkpoint into a detectron2 weights file (MODEL.WEIGHTS); no network.

    python tools/convert_weights.py model.safetensors --output weights/hrnet_w32_imagenet.pth
            [--model hrnet_w32] [--feature-location ""]

Exit status: 0 written, 2 bad arguments or a checkpoint that is not the model's.
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from vertkp.modeling.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
