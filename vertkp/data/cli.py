"""``vertkp convert`` / ``tools/convert_to_coco.py``: a raw dataset to vertkp COCO keypoint files."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..anatomy import VIEWS
from .buu_lspine import convert_buu_lspine
from .report import InvalidInput
from .spondylolisthesis import convert_spondylolisthesis

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description="Convert a raw vertebra dataset to COCO keypoint JSON (train/val[/test].json).",
    )
    p.add_argument("--dataset", required=True, choices=["spondylolisthesis", "buu-lspine"])
    p.add_argument("--root", required=True, type=Path, help="the unpacked dataset (see datasets/README.md)")
    p.add_argument("--output", type=Path, default=None,
                   help="output folder (default ROOT/coco, or ROOT/coco/<view> for buu-lspine)")
    p.add_argument("--view", choices=VIEWS, default="lateral", help="buu-lspine only (default lateral)")
    p.add_argument("--val-fraction", type=float, default=0.2, help="buu-lspine only: patients in val (default 0.2)")
    p.add_argument("--seed", type=int, default=0, help="buu-lspine only: seed of the patient split (default 0)")
    p.add_argument("--pixel-spacing", type=Path, default=None,
                   help="buu-lspine only: spreadsheet/CSV/JSON of mm per pixel by file name")
    p.add_argument("--skip-invalid", action="store_true",
                   help="skip broken images/labels (listed in OUT/conversion_report.json) instead of stopping")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    return p


def main(argv=None) -> int:
    """Exit 0 converted (skips, if any, are listed), 2 bad input or arguments."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not args.root.is_dir():
        parser.error(f"--root {args.root} is not a folder")
    if args.dataset == "spondylolisthesis":
        for flag, default in (("view", "lateral"), ("val_fraction", 0.2), ("seed", 0), ("pixel_spacing", None)):
            if getattr(args, flag) != default:
                parser.error(f"--{flag.replace('_', '-')} applies to buu-lspine only")
    try:
        if args.dataset == "spondylolisthesis":
            report = convert_spondylolisthesis(args.root, args.output, args.skip_invalid, progress=not args.no_progress)
            out = args.output or args.root / "coco"
        else:
            report = convert_buu_lspine(
                args.root, args.view, args.output, args.val_fraction, args.seed, args.pixel_spacing,
                args.skip_invalid, progress=not args.no_progress,
            )
            out = args.output or args.root / "coco" / args.view
    except InvalidInput as e:
        print(f"{parser.prog}: error: {e}", file=sys.stderr)
        print("nothing was written; fix the file, or pass --skip-invalid to skip what is broken", file=sys.stderr)
        return 2
    except ValueError as e:
        print(f"{parser.prog}: error: {e}", file=sys.stderr)
        return 2
    print(report.summary())
    print(f"wrote {out}/ (train.json, val.json{', test.json' if report.images['test'] else ''}, "
          "conversion_report.json)")
    return 0
