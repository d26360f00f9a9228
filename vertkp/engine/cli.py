"""``vertkp train`` / ``tools/train_net.py``: train or evaluate vertkp's Keypoint R-CNN
(detectron2 conventions).

    vertkp train --config-file configs/kprcnn_r50.yaml
    vertkp train --config-file configs/kprcnn_r50.yaml --num-gpus 4
    vertkp train --config-file configs/kprcnn_r50.yaml --resume         # continue a run
    vertkp train --config-file configs/kprcnn_r50.yaml --eval-only MODEL.WEIGHTS out/model_best.pth
    vertkp train --config-file configs/kprcnn_r50_phantoms.yaml SOLVER.MAX_ITER 100 OUTPUT_DIR out

Trailing KEY VALUE pairs override the config. Without CUDA it runs on the CPU.
--eval-only writes the results to OUTPUT_DIR/eval_results.json too.
"""
import os
import sys

import torch
from detectron2.engine import default_argument_parser, launch

from ..data.loading.registration import DatasetNotConverted
from .checks import ConfigError
from .defaults import evaluate, setup, train

__all__ = ["build_parser", "main"]


def build_parser():
    """detectron2's ``default_argument_parser``, named after the command that was run."""
    parser = default_argument_parser()
    parser.prog = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else "vertkp train"
    return parser


def _run(args):
    """Train, or evaluate with --eval-only, in one process of a ``launch``."""
    cfg = setup(args)
    if args.eval_only:
        return evaluate(cfg, resume=args.resume)
    return train(cfg, resume=args.resume)


def main(argv=None) -> int:
    """Exit 0 done, 2 bad config or data."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.num_gpus > 1 and args.num_gpus > torch.cuda.device_count():
        print(f"{parser.prog}: error: --num-gpus {args.num_gpus} but {torch.cuda.device_count()} CUDA device(s) "
              "are visible; use --num-gpus 1 (the CPU is used when there is no CUDA)", file=sys.stderr)
        return 2
    try:
        launch(_run, args.num_gpus, num_machines=args.num_machines, machine_rank=args.machine_rank,
               dist_url=args.dist_url, args=(args,))
    except (ConfigError, DatasetNotConverted, FileNotFoundError) as e:
        print(f"{parser.prog}: error: {e}", file=sys.stderr)
        return 2
    return 0
