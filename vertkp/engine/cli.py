"""Train or evaluate vertkp's Keypoint R-CNN (detectron2 conventions).

    python tools/train_net.py --config-file configs/kprcnn_r50.yaml
    python tools/train_net.py --config-file configs/kprcnn_r50.yaml --num-gpus 4
    python tools/train_net.py --config-file configs/kprcnn_r50.yaml --resume         # continue a run
    python tools/train_net.py --config-file configs/kprcnn_r50.yaml --eval-only MODEL.WEIGHTS out/model_best.pth
    python tools/train_net.py --config-file configs/kprcnn_r50_phantoms.yaml SOLVER.MAX_ITER 100 OUTPUT_DIR out

Trailing KEY VALUE pairs override the config. Without CUDA it runs on the CPU.
Everything else lives in ``vertkp.engine``. --eval-only writes the results to
OUTPUT_DIR/eval_results.json too.
"""
import json
import os
import sys

import torch
from detectron2.checkpoint import DetectionCheckpointer
from detectron2.engine import default_argument_parser, launch
from detectron2.utils import comm

import vertkp  # noqa: F401  (registers the datasets)

from ..data.registration import DatasetNotConverted
from . import ConfigError, Trainer, setup


def train_main(args):
    """Train, or evaluate with --eval-only, in one process of a ``launch``."""
    cfg = setup(args)
    if args.eval_only:
        model = Trainer.build_model(cfg)
        DetectionCheckpointer(model, save_dir=cfg.OUTPUT_DIR).resume_or_load(cfg.MODEL.WEIGHTS, resume=args.resume)
        results = Trainer.test(cfg, model)
        if comm.is_main_process():
            with open(os.path.join(cfg.OUTPUT_DIR, "eval_results.json"), "w", encoding="utf-8") as f:
                json.dump(results, f, indent=1)
        return results
    trainer = Trainer(cfg)
    trainer.resume_or_load(resume=args.resume)
    return trainer.train()


def main(argv=None) -> int:
    """``tools/train_net.py`` / ``vertkp train``: exit 0 done, 2 bad config or data."""
    args = default_argument_parser().parse_args(argv)
    if args.num_gpus > 1 and args.num_gpus > torch.cuda.device_count():
        print(f"error: --num-gpus {args.num_gpus} but {torch.cuda.device_count()} CUDA device(s) are visible; "
              "use --num-gpus 1 (the CPU is used when there is no CUDA)", file=sys.stderr)
        return 2
    try:
        launch(train_main, args.num_gpus, num_machines=args.num_machines, machine_rank=args.machine_rank,
               dist_url=args.dist_url, args=(args,))
    except (ConfigError, DatasetNotConverted, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0

