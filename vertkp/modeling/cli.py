"""``vertkp convert-weights`` / ``tools/convert_weights.py``: a timm checkpoint -> a detectron2 weights file.

    vertkp convert-weights model.safetensors --output weights/hrnet_w32_imagenet.pth
    vertkp convert-weights model.safetensors --model mobilenetv4_conv_small   (weights/mobilenetv4_conv_small_imagenet.pth)
    vertkp convert-weights hrnet_w18.pth --model hrnet_w18 --output weights/hrnet_w18_imagenet.pth

The output is what ``MODEL.WEIGHTS`` names (by default ``weights/<model>_imagenet.pth``:
``configs/kprcnn_hrnet_w32.yaml`` names ``weights/hrnet_w32_imagenet.pth``,
``configs/kprcnn_mobilenetv4.yaml`` ``weights/mobilenetv4_conv_small_imagenet.pth``); nothing
touches the network. ``vertkp download hrnet-w32-imagenet`` (or ``mobilenetv4-conv-small-imagenet``)
fetches timm's checkpoint and runs this conversion in one step.

Exit status: 0 written, 2 bad arguments or a checkpoint that is not the model's.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .published import PUBLISHED_WEIGHTS, WEIGHTS_FOLDER, timm_weights_name
from .weights import WeightsError, convert_timm_checkpoint

__all__ = ["build_parser", "main"]

_DEFAULT = PUBLISHED_WEIGHTS["hrnet-w32-imagenet"]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description="Convert a timm checkpoint (.safetensors, .pth, .bin) into a detectron2 weights file for "
                    "MODEL.WEIGHTS (keys of vertkp's timm-FPN model; nothing is downloaded).")
    p.add_argument("checkpoint", type=Path, help="the timm checkpoint, e.g. model.safetensors of timm/hrnet_w32.ms_in1k")
    p.add_argument("--output", type=Path, default=None,
                   help=f"the detectron2 weights file to write (default {WEIGHTS_FOLDER}/<model>_imagenet.pth, the "
                        f"file the configs name: {WEIGHTS_FOLDER}/{_DEFAULT.output} for {_DEFAULT.timm_model})")
    p.add_argument("--model", default=_DEFAULT.timm_model,
                   help=f"timm model the checkpoint is of (MODEL.TIMM.NAME; default {_DEFAULT.timm_model})")
    p.add_argument("--feature-location", default="", choices=["", "incre"],
                   help="MODEL.TIMM.FEATURE_LOCATION of the configs that will load it (default '', as shipped)")
    return p


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.output is None:
        args.output = Path(WEIGHTS_FOLDER) / timm_weights_name(args.model)
    if args.output.is_dir():
        parser.error(f"--output {args.output} is a folder: name the weights file to write")
    try:
        counts = convert_timm_checkpoint(args.checkpoint, args.output, args.model, args.feature_location)
    except WeightsError as e:
        print(f"{parser.prog}: error: {e}", file=sys.stderr)
        return 2
    except RuntimeError as e:  # timm: an unknown model name
        print(f"{parser.prog}: error: --model {args.model}: {e}", file=sys.stderr)
        return 2
    print(f"wrote {args.output}: {counts['tensors']} tensors of timm's {args.model} backbone "
          f"({counts['left_out']} of the checkpoint's left out: its classification head); use it with "
          f"MODEL.WEIGHTS {args.output}")
    return 0
