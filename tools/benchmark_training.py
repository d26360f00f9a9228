#!/usr/bin/env python
"""Training benchmark: train the phantom configs on this machine and report speed and accuracy.

    python tools/benchmark_training.py                                # R50 and HRNet-W32
    python tools/benchmark_training.py --models r50 --num-images 100
    python tools/benchmark_training.py --models hrnet_w32 SOLVER.MAX_ITER 300

Makes a phantom set (tools/make_phantoms.py --layout spondylolisthesis, 640 px) in
OUT/data unless it is there, trains configs/kprcnn_<model>_phantoms.yaml from scratch
(trailing KEY VALUE pairs override it), evaluates the final weights on phantoms_val and
prints, per model: seconds per training iteration (steps only, evaluation excluded),
training minutes, detection F1 (%), MRE (px and % of the mean vertebra width), SDR, slip
MAE and grade accuracy, with the issue's target (F1 >= 95%, MRE <= 3% of the width).
Results also go to OUT/benchmark.json. This is a benchmark, not a test: it takes
~15 minutes per model on 2 CPU cores.
"""
import argparse
import json
import logging
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # this checkout's vertkp, installed or not
TARGET_F1, TARGET_MRE_PCT = 95.0, 3.0  # detection F1 in percent (as the evaluator reports it), MRE in % of width


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", nargs="+", default=["r50", "hrnet_w32"], choices=["r50", "hrnet_w32"],
                   help="which configs/kprcnn_<model>_phantoms.yaml to train")
    p.add_argument("--out", default="output/benchmark_training", help="work folder (data, runs, benchmark.json)")
    p.add_argument("--num-images", type=int, default=100, help="labelled phantom images (~70%% train, ~30%% val)")
    p.add_argument("--seed", type=int, default=0, help="phantom seed")
    p.add_argument("--threads", type=int, default=0,
                   help="torch CPU threads (0: torch's default, one per core); 1 is far faster when other "
                        "processes load the cores (OpenMP threads then wait on each other)")
    p.add_argument("opts", nargs=argparse.REMAINDER, help="KEY VALUE config overrides for every model")
    return p.parse_args(argv)


def make_data(root: Path, num_images: int, seed: int) -> None:
    from vertkp.data import convert_spondylolisthesis
    from vertkp.phantoms import make_phantoms

    folder = root / "phantoms"
    if not (folder / "coco" / "val.json").is_file():
        make_phantoms("spondylolisthesis", folder, num_images, seed, progress=False)
        convert_spondylolisthesis(folder, progress=False)


def main(argv=None) -> int:
    args = parse_args(argv)
    import torch
    from detectron2.utils.logger import setup_logger

    if args.threads > 0:
        torch.set_num_threads(args.threads)

    from vertkp.data.registration import register_all
    from vertkp.engine import build_cfg
    from vertkp.engine.benchmark import run_benchmark

    out = Path(args.out).resolve()
    make_data(out / "data", args.num_images, args.seed)
    register_all(out / "data")
    setup_logger(name="detectron2", output=str(out / "log.txt"))
    logging.getLogger("detectron2").setLevel(logging.INFO)
    report = {}
    for model in args.models:
        cfg = build_cfg(str(REPO / "configs" / f"kprcnn_{model}_phantoms.yaml"),
                        list(args.opts) + ["OUTPUT_DIR", str(out / model)])
        r = run_benchmark(cfg)
        report[model] = r
        (out / "benchmark.json").write_text(json.dumps(report, indent=1) + "\n")
        vk = r["results"]["vertkp"]
        ok = vk["det_F1"] >= TARGET_F1 and r["MRE_pct_width"] <= TARGET_MRE_PCT
        print(f"\n== {model} ({torch.get_num_threads()} CPU threads): {r['iterations']} iterations, "
              f"{r['s_per_iter']:.2f} s/iter "
              f"(median {r['s_per_iter_median']:.2f}), {r['train_minutes']:.1f} min of training")
        print(f"   phantom val ({int(vk['n_images'])} images, {int(vk['n_gt_vertebrae'])} vertebrae, "
              f"mean width {r['mean_width_px']:.1f} px):")
        print(f"   detection F1 {vk['det_F1']:.1f}% (P {vk['det_precision']:.1f}%, R {vk['det_recall']:.1f}%)   "
              f"MRE {vk['MRE_px']:.2f} px = {r['MRE_pct_width']:.2f}% of width (median {vk['MRE_px_median']:.2f} px)")
        sdr = "  ".join(f"{k[4:]} {v:.1f}%" for k, v in vk.items() if k.startswith("SDR_px@"))
        print(f"   SDR {sdr}   slip MAE {vk['slip_MAE_pp']:.2f} pp   grade accuracy {vk['grade_acc']:.1f}%")
        for c in r["curve"]:
            print(f"   after {c['iteration'] + 1:5d} iterations ({c['train_minutes']:5.1f} min): "
                  f"F1 {c['det_F1']:.1f}%  MRE {c['MRE_px']:.2f} px = {c['MRE_pct_width']:.2f}% of width  "
                  f"grade accuracy {c['grade_acc']:.1f}%")
        if r["best"]:
            b = r["best"]
            print(f"   best checkpoint: {b['metric']} {b['value']:.2f} at iteration {b['iteration']}")
        print(f"   target (F1 >= {TARGET_F1:g}%, MRE <= {TARGET_MRE_PCT:g}% of width): {'MET' if ok else 'NOT MET'}")
        sys.stdout.flush()
    print(f"\nwrote {out / 'benchmark.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
