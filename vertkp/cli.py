"""The ``vertkp`` command: one entry point for every tool.

    vertkp download  ...   = python tools/download.py ...
    vertkp convert-weights ... = python tools/convert_weights.py ...
    vertkp phantoms  ...   = python tools/make_phantoms.py ...
    vertkp convert   ...   = python tools/convert_to_coco.py ...
    vertkp audit     ...   = python tools/audit.py ...
    vertkp train     ...   = python tools/train_net.py ...
    vertkp evaluate  ...   = python tools/evaluate.py ...
    vertkp predict   ...   = python tools/predict.py ...
    vertkp demo      ...   = python tools/demo.py ...            (what `make demo` runs)
    vertkp benchmark ...   = python tools/benchmark.py ...       (speed, learning, data)

``vertkp <command> --help`` shows a command's flags. The Docker image's
entrypoint is this command. Modules are imported only for the command run,
so ``vertkp convert`` does not load torch.
"""
from __future__ import annotations

import importlib
import os
import sys
from pathlib import Path
from typing import Dict, Optional, Sequence, Tuple

__all__ = ["COMMANDS", "command_parser", "config_path", "main", "default_output"]

REPO = Path(__file__).resolve().parents[1]

# command -> (module with build_parser() and main(argv) -> exit status, tool script, one-line help)
COMMANDS: Dict[str, Tuple[str, str, str]] = {
    "download": ("vertkp.data.raw.download", "download.py",
                 "fetch a public dataset archive (checksum verified) or initial weights, resumably; "
                 "nothing else downloads unless you name a weights URL"),
    "convert-weights": ("vertkp.modeling.cli", "convert_weights.py",
                        "convert a timm HRNet checkpoint into a detectron2 weights file (MODEL.WEIGHTS)"),
    "phantoms": ("vertkp.phantoms.cli", "make_phantoms.py",
                 "write a synthetic phantom dataset in a real dataset's raw layout"),
    "convert": ("vertkp.convert", "convert_to_coco.py",
                "convert a raw dataset (Mendeley spondylolisthesis, BUU-LSPINE) to COCO keypoints"),
    "audit": ("vertkp.audit.cli", "audit.py",
              "what is in a dataset: tiny, duplicate, overlapping or misordered vertebrae, duplicate images, leaks"),
    "train": ("vertkp.engine.cli", "train_net.py", "train or evaluate a Keypoint R-CNN (detectron2)"),
    "evaluate": ("vertkp.evaluation.cli", "evaluate.py",
                 "score COCO keypoint predictions: MRE, SDR, detection, slip and grade agreement"),
    "predict": ("vertkp.inference.cli", "predict.py",
                "corners, slip %, Meyerding grades, overlays and a report for X-ray images"),
    "demo": ("vertkp.demo", "demo.py",
             "the whole story on phantoms: make, convert, train, predict, evaluate (make demo)"),
    "benchmark": ("vertkp.benchmark.cli", "benchmark.py",
                  "speed (latency, s/iter, memory), learning (what phantom training reaches), data throughput"),
}


def command_parser(name: str):
    """The argparse parser of a command (to check documented command lines without running them)."""
    return importlib.import_module(COMMANDS[name][0]).build_parser()


def default_output(name: str) -> str:
    """Default output folder of a command: ``$VERTKP_OUTPUT/<name>`` (the Docker image sets
    VERTKP_OUTPUT=/output), else ``output/<name>``."""
    return str(Path(os.environ.get("VERTKP_OUTPUT", "output")) / name)


def config_path(name: str) -> str:
    """A config file as given when it exists, else relative to this checkout (so that
    ``configs/...`` works from any folder); unchanged when neither exists."""
    if os.path.isfile(name):
        return name
    candidate = REPO / name
    return str(candidate) if candidate.is_file() else name


def _usage() -> str:
    lines = ["usage: vertkp <command> [args ...]   (vertkp <command> --help for its flags)", "", "commands:"]
    lines += [f"  {name:<15} {spec[2]}" for name, spec in COMMANDS.items()]
    return "\n".join(lines)


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run ``vertkp <command> [args]``; returns the command's exit status (2: unknown command)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(_usage())
        return 0 if argv else 2
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        print(f"vertkp: unknown command {name!r}\n\n{_usage()}", file=sys.stderr)
        return 2
    sys.argv = [f"vertkp {name}", *rest]  # argparse's prog in --help and errors: the command the user ran
    return int(importlib.import_module(COMMANDS[name][0]).main(rest) or 0)
