"""``vertkp audit`` / ``tools/audit.py``: what is in a dataset.

    vertkp audit --gt FILE.json [FILE.json ...] --output DIR [--image-root DIR]
            [--no-overlays] [--no-progress]

Audits vertkp COCO keypoint files (``vertkp convert``), each on its own and against
each other: tiny, duplicate, overlapping, malformed or misordered vertebrae,
implausible slips, corners outside the image, unreadable, duplicate and near-duplicate
images, and sources or patients in more than one file. Writes DIR/audit.json,
DIR/audit.csv and DIR/overlays/<stem>.png (every image with a finding), and prints a
summary. Images are found under --image-root, else each file's info.image_root
(relative to the file), else <root> of <root>/coco/<split>.json or
<root>/coco/<view>/<split>.json, else the file's folder. Exit status: 0 when the
audit ran (whatever it found), 2 for bad arguments or unreadable GT files.
"""
from __future__ import annotations

import argparse
import sys

from ..evaluation.ground_truth import EvaluationInputError
from .dataset import audit_files

__all__ = ["build_parser", "main"]


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose error message starts with its prog (then the usage)."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message}\n{self.format_usage()}")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(description="What is in a dataset: audit vertkp COCO files, each on its own and against each "
                            "other, and write audit.json, audit.csv and overlays/ (findings are not errors).")
    p.add_argument("--gt", required=True, nargs="+", metavar="FILE.json",
                   help="vertkp COCO keypoint files (vertkp convert); findings name each by its path as given")
    p.add_argument("--output", required=True, metavar="DIR", help="folder for audit.json, audit.csv and overlays/")
    p.add_argument("--image-root", metavar="DIR",
                   help="folder the images' file_name are relative to, for every GT file (default: the file's "
                        "info.image_root, else <root> of <root>/coco/[<view>/]<split>.json, else its folder)")
    p.add_argument("--no-overlays", action="store_true", help="skip overlays/<stem>.png")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bars")
    return p


def main(argv=None) -> int:
    """Exit 0 when the audit ran (whatever it found), 2 for bad arguments or GT files."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # argparse: --help (0) or a bad argument (2, message printed)
        return int(e.code or 0)
    try:
        run = audit_files(args.gt, args.output, args.image_root, overlays=not args.no_overlays,
                          progress=not args.no_progress)
    except (EvaluationInputError, ValueError) as e:
        print(f"{parser.prog}: error: {e}", file=sys.stderr)
        return 2
    for label, d in run.audit.datasets.items():
        print(f"{label}: {d.images} images, {d.vertebrae} vertebrae; images under {d.image_root} "
              f"({d.image_root_from})")
        for note in d.notes:
            print(f"   note: {note}")
    print(run.audit.format_summary())
    written = [run.files["audit"], run.files["csv"]] + ([run.files["overlays"]] if run.files["overlays"] else [])
    print("wrote " + ", ".join(str(p) for p in written))
    return 0
