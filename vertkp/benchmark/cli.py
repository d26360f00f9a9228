"""``vertkp benchmark`` / ``python tools/benchmark.py``: the speed, learning and data benchmarks.

    vertkp benchmark [speed] [flags] [KEY VALUE ...]   inference latency, training s/iter, peak memory
    vertkp benchmark learning [flags] [KEY VALUE ...]  what the phantom configs reach when trained, how fast
    vertkp benchmark data [flags]                      the converter's and the evaluator's throughput
    vertkp benchmark tta --weights W [flags]           TTA and sub-pixel ablation, flag calibration
    vertkp benchmark review --weights W [flags]        chain repair, level naming, flags and image risk
    vertkp benchmark scale [flags] [KEY VALUE ...]     vertkp predict's peak memory and speed over image counts

Without a subcommand it is ``speed``. ``vertkp benchmark <subcommand> --help`` lists its flags;
``vertkp.benchmark.speed``, ``.learning`` and ``.data`` say what each measures. The flags
mean the same in every subcommand: --output is the folder of benchmark.json, the phantom
set (OUT/data) and the runs; --num-images, --image-size and --seed make the phantom set
(as ``vertkp phantoms``); --config-file takes configs, then optionally the KEY VALUE
overrides applied to every config.

This module imports neither torch nor detectron2: it parses and checks the arguments, then
runs the subcommand through :data:`SUBCOMMANDS`, whose runner imports what it runs.
"""
from __future__ import annotations

import argparse
import os
import re
import sys
from pathlib import Path
from typing import Callable, List, NamedTuple, Optional, Sequence

from .. import DETECTRON2_INSTALL, HAS_DETECTRON2
from ..cli import config_path, default_output
from ..data.datasets import SPECS
from ..phantoms.difficulty import DEFAULT_DIFFICULTY, DIFFICULTIES
from .data import phantom_set

__all__ = ["SUBCOMMANDS", "DEFAULT_SUBCOMMAND", "DEFAULT_CONFIGS", "PHASES", "SCALE_CONFIG", "MODELS", "model_config",
           "Subcommand", "build_parser", "split_trailing_opts", "main"]



def _speed(args, folder):
    from . import speed
    return speed.run(args, folder)


def _speed_check(args):
    from . import speed
    speed.check(args)


def _learning(args, folder):
    from . import learning
    return learning.run(args, folder)


def _data(args, folder):
    from . import data
    return data.run(args, folder)


def _tta(args, folder):
    from . import tta
    return tta.run(args)


def _review(args, folder):
    from . import review
    return review.run(args)


def _scale(args, folder):
    from . import scale
    return scale.run(args, folder)


def _scale_check(args):
    from . import scale
    scale.check(args)


class Subcommand(NamedTuple):
    """A subcommand: its one-line help; its runner (args, the phantom folder or None) -> exit
    status, which imports its module (after the detectron2 check); what only that module can
    check (raises ValueError for a bad argument), before anything is made; whether it runs on the
    --num-images phantom set (``tta`` makes its own sets)."""
    help: str
    run: Callable[..., int]
    check: Optional[Callable] = None
    phantoms: bool = True


SUBCOMMANDS = {
    "speed": Subcommand("inference latency (model alone, end to end), training s/iter, peak memory", _speed,
                        _speed_check),
    "learning": Subcommand("train the phantom configs, evaluate: the curve and the target", _learning),
    "data": Subcommand("converter and evaluator throughput on phantoms (no model)", _data),
    "tta": Subcommand("test-time augmentation and sub-pixel ablation of a trained model, and the review flags' "
                      "calibration", _tta, phantoms=False),
    "review": Subcommand("what the chain repair, the level naming and the flags make of a trained model's "
                         "predictions on held-out phantoms of both layouts", _review, phantoms=False),
    "scale": Subcommand("vertkp predict's peak memory, speed and predictions.jsonl size over image counts "
                        "(MiB per 1000 images)", _scale, _scale_check),
}
DEFAULT_SUBCOMMAND = "speed"
# speed: the configs measured when --config-file is not given, and its phases (--skip).
# The first is what the others' speed-ups are measured against (vertkp.benchmark.report.speedups).
DEFAULT_CONFIGS = ("configs/kprcnn_r50.yaml", "configs/kprcnn_hrnet_w32.yaml", "configs/kprcnn_mobilenetv4.yaml")
PHASES = ("inference", "train", "convert", "evaluate")
# scale: the config measured when --config-file is not given.
SCALE_CONFIG = "configs/quick_schedules/kprcnn_r50_instant_test.yaml"
# learning --models: the phantom configs, configs/kprcnn_<model>_phantoms.yaml.
MODELS = ("r50", "hrnet_w32", "mobilenetv4")


def model_config(model: str) -> str:
    """The phantom config of a --models name."""
    return f"configs/kprcnn_{model}_phantoms.yaml"


def split_trailing_opts(values: Sequence[str]):
    """(files, opts): an nargs="+" flag swallows the trailing KEY VALUE pairs after it
    (``--config-file a.yaml SOLVER.MAX_ITER 5``); the first config key (upper-case, dotted)
    and everything after it are the opts."""
    for k, v in enumerate(values):
        if re.fullmatch(r"[A-Z][A-Z0-9_]*(\.[A-Z0-9_]+)+", v):
            return list(values[:k]), list(values[k:])
    return list(values), []


class _DefaultSubcommandParser(argparse.ArgumentParser):
    """An ArgumentParser whose arguments are those of the default subcommand when the
    first one is not a subcommand's name (nor -h/--help)."""

    def parse_known_args(self, args=None, namespace=None):
        args = list(sys.argv[1:] if args is None else args)
        if not args or (args[0] not in SUBCOMMANDS and args[0] not in ("-h", "--help")):
            args.insert(0, DEFAULT_SUBCOMMAND)
        return super().parse_known_args(args, namespace)


def _phantom_flags(p: argparse.ArgumentParser, num_images: Optional[int]) -> None:
    """The phantom set's flags; ``num_images`` None: no --num-images (the subcommand makes its own sets)."""
    if num_images is not None:
        p.add_argument("--num-images", type=int, default=num_images,
                       help="labelled phantom images (~70%% train, ~30%% val)")
    p.add_argument("--image-size", type=int, default=SPECS["spondylolisthesis"].phantom_image_size,
                   help="side of the phantom images, px")
    p.add_argument("--seed", type=int, default=0, help="phantom seed")
    p.add_argument("--difficulty", choices=tuple(DIFFICULTIES), default=DEFAULT_DIFFICULTY,
                   help="phantom difficulty (vertkp phantoms --difficulty)")


def _run_flags(p: argparse.ArgumentParser, what: str) -> None:
    p.add_argument("--threads", type=int, default=0,
                   help="torch CPU threads (0: torch's default, one per core); 1 is far faster when other "
                        "processes load the cores (OpenMP threads then wait on each other)")
    p.add_argument("opts", nargs=argparse.REMAINDER, help=f"KEY VALUE overrides applied to every config {what}")


def _trained_model_flags(p: argparse.ArgumentParser) -> None:
    """--config-file and --weights of the subcommands that measure one trained model."""
    p.add_argument("--config-file", nargs="+", default=[model_config("r50")], metavar="CFG",
                   help="the trained model's config")
    p.add_argument("--weights", nargs="+", required=True, metavar="W",
                   help="its checkpoint, trained on the train split of the phantom set of --seed "
                        "(make demo: output/demo/train/model_final.pth)")


def build_parser() -> argparse.ArgumentParser:
    """The parser of every form: ``[speed|learning|data] [flags]`` (speed when the first
    argument is not a subcommand). The namespace's ``command`` is the subcommand."""
    p = _DefaultSubcommandParser(description="The speed, learning and data benchmarks; without a subcommand, "
                                             "speed. Add --help after a subcommand for its flags.")
    sub = p.add_subparsers(dest="command", metavar="{" + ",".join(SUBCOMMANDS) + "}",
                           parser_class=argparse.ArgumentParser)
    kw = dict(formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parsers = {name: sub.add_parser(name, help=c.help, description=c.help, **kw) for name, c in SUBCOMMANDS.items()}

    s = parsers["speed"]
    s.add_argument("--config-file", nargs="+", default=list(DEFAULT_CONFIGS), metavar="CFG",
                   help="configs to benchmark")
    s.add_argument("--weights", nargs="+", default=None, metavar="W",
                   help="one checkpoint per config (default: random weights, which is fine for speed)")
    s.add_argument("--timed-images", type=int, default=20, help="timed images per latency measurement")
    s.add_argument("--warmup", type=int, default=3, help="untimed images / training iterations first")
    s.add_argument("--train-iters", type=int, default=20, help="timed training iterations")
    s.add_argument("--device", choices=("cpu", "cuda"), default=None, help="default: cuda when available")
    s.add_argument("--output", default=default_output("benchmark/speed"), metavar="DIR",
                   help="folder for benchmark.json, the phantom set and the logs")
    s.add_argument("--skip", action="append", default=[], metavar="PHASE[,PHASE]",
                   help=f"phases to skip: {', '.join(PHASES)}")
    s.add_argument("--inference-only", action="store_true",
                   help="only the inference phase (--skip train,convert,evaluate): latency, and vertkp's "
                        "inference against detectron2's stock DefaultPredictor (vs_detectron2)")
    _phantom_flags(s, 40)
    s.add_argument("--score-threshold", type=float, default=0.5,
                   help="predictor's detection threshold, with --weights")
    s.add_argument("--detections", type=int, default=None,
                   help="with random weights (no --weights), keep exactly this many detections per image (score "
                        "threshold 0, TEST.DETECTIONS_PER_IMAGE), so that the keypoint head and the grading do a "
                        "trained model's work; default: the phantom set's mean vertebrae per image, rounded "
                        "(random weights score nearly every box under 0.5)")
    _run_flags(s, "(after the benchmark's own)")

    learn = parsers["learning"]
    which = learn.add_mutually_exclusive_group()
    which.add_argument("--models", nargs="+", default=None, metavar="MODEL",
                       help="phantom configs configs/kprcnn_<MODEL>_phantoms.yaml, MODEL in "
                            f"{', '.join(MODELS)} (none given: all of them)")
    which.add_argument("--config-file", nargs="+", default=None, metavar="CFG", help="configs to train instead")
    learn.add_argument("--minutes", type=float, default=0.0, metavar="M",
                       help="train every config for the same M minutes of steps, its schedule scaled to fit after "
                            "timing a few steps (0: the configs' own schedules)")
    learn.add_argument("--output", default=default_output("benchmark/learning"), metavar="DIR",
                       help="folder for benchmark.json, the phantom set and the runs")
    _phantom_flags(learn, 100)
    _run_flags(learn, "(after the benchmark's datasets and OUTPUT_DIR)")

    data = parsers["data"]
    data.add_argument("--output", default=default_output("benchmark/data"), metavar="DIR",
                      help="folder for benchmark.json and the phantom set")
    _phantom_flags(data, 40)

    tta = parsers["tta"]
    _trained_model_flags(tta)
    tta.add_argument("--held-out-images", type=int, default=60,
                     help="images of the held-out (seed --seed + 1) and of the tuning (seed --seed + 2) phantom "
                          "sets, every split used")
    tta.add_argument("--variants", nargs="+", default=None, metavar="NAME",
                     help="only these variants (names as in vertkp.benchmark.tta.VARIANTS)")
    tta.add_argument("--output", default=default_output("benchmark/tta"), metavar="DIR",
                     help="folder for benchmark.json, the phantom sets and the reliability plots")
    _phantom_flags(tta, None)
    _run_flags(tta, "(after the variant's)")

    review = parsers["review"]
    _trained_model_flags(review)
    review.add_argument("--held-out-images", type=int, default=80,
                        help="images of each of the three phantom sets (tuning: seed --seed + 2; held out: "
                             "--seed + 1; held out, BUU-LSPINE layout: --seed + 3)")
    review.add_argument("--output", default=default_output("benchmark/review"), metavar="DIR",
                        help="folder for benchmark.json and the phantom sets")
    _phantom_flags(review, None)
    _run_flags(review, "(the model's)")

    scale = parsers["scale"]
    scale.add_argument("--counts", type=int, nargs="+", default=[50, 200, 800], metavar="N",
                       help="image counts, each predicted in a fresh process")
    scale.add_argument("--config-file", nargs="+", default=[SCALE_CONFIG], metavar="CFG", help="the config to run")
    scale.add_argument("--weights", nargs="+", default=None, metavar="W",
                       help="its checkpoint (default: random weights, which is fine for memory and speed)")
    scale.add_argument("--no-overlays", action="store_true", help="skip the overlay PNGs")
    scale.add_argument("--output", default=default_output("benchmark/scale"), metavar="DIR",
                       help="folder for benchmark.json, the phantom set, the input links and the runs")
    _phantom_flags(scale, 10)
    _run_flags(scale, "(after the benchmark's own)")
    return p


def _configs(args) -> None:
    """Resolve --config-file (and --models, --weights) and merge the KEY VALUE overrides
    into ``args.opts``; ``args.names`` are the runs' names (the configs' stems, made unique).

    Raises:
        ValueError: what is wrong with them.
    """
    if args.opts and args.opts[0] == "--":
        args.opts = args.opts[1:]
    opts: List[str] = []
    if getattr(args, "models", None) is not None:
        models, opts = split_trailing_opts(args.models)
        unknown = [m for m in models if m not in MODELS]
        if unknown:
            raise ValueError(f"--models: unknown model(s) {unknown}; choose from {', '.join(MODELS)}")
        args.config_file = [model_config(m) for m in models]
    elif args.config_file is None:
        args.config_file = [model_config(m) for m in MODELS]
    else:
        args.config_file, opts = split_trailing_opts(args.config_file)
    if getattr(args, "weights", None) is not None:
        args.weights, more = split_trailing_opts(args.weights)
        opts += more
    args.opts = opts + list(args.opts)
    if len(args.opts) % 2:
        raise ValueError(f"the config overrides must be KEY VALUE pairs, got {args.opts}")
    if not args.config_file:
        raise ValueError("give at least one config (or model) before the KEY VALUE overrides")
    args.config_file = [config_path(c) for c in args.config_file]
    missing = [c for c in args.config_file if not os.path.isfile(c)]
    if missing:
        raise ValueError(f"config file(s) {missing} do not exist (configs/ holds vertkp's)")
    if getattr(args, "weights", None) is not None and len(args.weights) != len(args.config_file):
        raise ValueError(f"--weights needs one file per config: {len(args.config_file)} config(s), "
                         f"{len(args.weights)} weights")
    args.names = []
    for k, config in enumerate(args.config_file):
        name = Path(config).stem
        args.names.append(name if name not in args.names else f"{name}_{k}")


def _check(args) -> None:
    """Check and complete the parsed arguments of ``args.command``.

    Raises:
        ValueError: a bad argument (the message says which and why).
    """
    if getattr(args, "num_images", 3) < 3:
        raise ValueError(f"--num-images must be at least 3 (train and val images), got {args.num_images}")
    if args.command == "data":
        return
    if args.threads < 0:
        raise ValueError(f"--threads must be >= 0 (0: torch's default), got {args.threads}")
    if args.command == "speed":
        skipped = {p.strip() for s in args.skip for p in s.split(",") if p.strip()}
        if args.inference_only:
            skipped |= set(PHASES) - {"inference"}
        unknown = skipped - set(PHASES)
        if unknown:
            raise ValueError(f"--skip: unknown phase(s) {sorted(unknown)}; choose from {', '.join(PHASES)}")
        args.phases = [p for p in PHASES if p not in skipped]
        if min(args.timed_images, args.train_iters) < 1 or args.warmup < 0:
            raise ValueError("--timed-images and --train-iters must be >= 1, --warmup >= 0")
    if getattr(args, "minutes", 0.0) < 0:
        raise ValueError(f"--minutes must be >= 0 (0: the configs' own schedules), got {args.minutes}")
    _configs(args)
    if args.command in ("tta", "review") and len(args.config_file) != 1:
        raise ValueError(f"{args.command} measures one model: give one --config-file and one --weights, "
                         f"got {args.config_file}")
    needs_detectron2 = args.command != "speed" or {"inference", "train"} & set(args.phases)
    if needs_detectron2 and not HAS_DETECTRON2:
        skip = " (--skip inference,train, or `data`, measures only the data tools)" if args.command == "speed" else ""
        raise ValueError(f"detectron2 is not installed: {args.command} needs it{skip}. Install it:\n"
                         f"    {DETECTRON2_INSTALL}")


def main(argv=None) -> int:
    """Run a benchmark: exit 0 done, 1 a measurement failed (the rest is reported), 2 bad arguments."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        _check(args)
        command = SUBCOMMANDS[args.command]
        if command.check is not None:
            command.check(args)
        folder = None
        if command.phantoms:
            folder = phantom_set(Path(args.output).resolve() / "data", args.num_images, args.image_size, args.seed,
                                 args.difficulty)
    except ValueError as e:  # a bad argument, or phantom settings vertkp.phantoms refuses
        print(f"{parser.prog} {args.command}: error: {e}", file=sys.stderr)
        return 2
    return int(command.run(args, folder) or 0)
