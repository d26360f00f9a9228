"""Scale benchmark: ``vertkp benchmark scale``: does ``vertkp predict``'s memory grow with the
number of images?

    vertkp benchmark scale --counts 50 200 800 --num-images 10 --output output/benchmark/scale

For each count N of --counts, in a fresh spawned process: N images, the phantom set's
repeated under distinct names (symlinks in OUT/inputs), are predicted by the command's own
``vertkp.inference.run.predict_files`` into OUT/runs/n<N>, with the instant config unless
--config-file (and its test-time augmentation), and random weights unless --weights (every
image then keeps exactly the phantom set's mean vertebrae per image, score threshold 0, as
in the speed benchmark). Recorded per N: the process's peak resident set size
(``ru_maxrss``, MiB; after building the predictor, and at the end), the seconds and
images/s of ``predict_files``, and the size of predictions.jsonl; and the least-squares
slope of the peak over N, MiB per 1000 images: what a run holds per image (0 when memory is
bounded). Writes OUT/benchmark.json and prints a Markdown table. Exit status: 0 done, 1 a
count failed.
"""
from __future__ import annotations

import time
import traceback
from pathlib import Path
from typing import List, Mapping, Sequence

import numpy as np

from ..files import write_json
from .data import mean_vertebrae, phantom_truths
from .device import in_fresh_process, peak_rss_mib, set_threads, torch_machine_info
from .report import machine_line

__all__ = ["check", "link_inputs", "measure_count", "mib_per_1000", "format_scale", "run"]

def check(args) -> None:
    """What ``vertkp.benchmark.cli`` leaves to this module: the counts, one config.

    Raises:
        ValueError: fewer than 2 distinct counts, a count under 1, several configs.
    """
    if min(args.counts) < 1 or len(set(args.counts)) < 2:
        raise ValueError(f"--counts needs at least 2 different counts >= 1 (to fit a slope), got {args.counts}")
    if len(args.config_file) != 1:
        raise ValueError(f"scale measures one config, got {args.config_file}")


def link_inputs(images: Sequence[str], folder: Path, n: int) -> List[str]:
    """``n`` distinct file names in ``folder``, symlinks to ``images`` repeated in turn."""
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for k in range(n):
        src = Path(images[k % len(images)]).resolve()
        link = folder / f"x{k:06d}{src.suffix}"
        if not (link.is_symlink() and link.resolve() == src):
            link.unlink(missing_ok=True)
            link.symlink_to(src)
        out.append(str(link))
    return out


def measure_count(spec: Mapping) -> dict:
    """Predict ``spec["inputs"]`` with ``predict_files`` in this process (call it in a fresh one:
    the peak RSS is the process's).

    Args:
        spec: config, weights ("" or None: random), opts, threads (0: torch's default), inputs,
            detections (with random weights), overlays, output (the run's folder).
    """
    set_threads(int(spec["threads"]))
    import torch

    from ..inference import VertebraPredictor
    from ..inference.run import predict_files
    from ..inference.stream import LINES_FILE

    opts = list(spec["opts"])
    threshold = {}
    if not spec["weights"]:
        opts += ["TEST.DETECTIONS_PER_IMAGE", str(spec["detections"])]
        threshold = {"score_threshold": 0.0}
    torch.manual_seed(0)
    predictor = VertebraPredictor(spec["config"], spec["weights"] or "", opts=opts, **threshold)
    before = peak_rss_mib()
    t0 = time.perf_counter()
    summary = predict_files(predictor, spec["inputs"], spec["output"], overlays=spec["overlays"], progress=False,
                            quiet=True, settings={"config_file": spec["config"], "weights": spec["weights"]})
    seconds = time.perf_counter() - t0
    n = len(spec["inputs"])
    return {"images": n, "predicted": summary["predicted"], "failed": summary["failed"],
            "vertebrae_per_image": summary["vertebrae"] / max(1, summary["predicted"]),
            "device": predictor.cfg.MODEL.DEVICE, "threads": torch.get_num_threads(),
            "rss_before_MiB": before, "peak_rss_MiB": peak_rss_mib(), "seconds": seconds,
            "images_per_s": n / seconds, "jsonl_MiB": (Path(spec["output"]) / LINES_FILE).stat().st_size / 2**20}


def mib_per_1000(rows: Sequence[Mapping]) -> float:
    """Least-squares slope of the peak RSS over the image count, MiB per 1000 images."""
    n = np.array([r["images"] for r in rows], dtype=float)
    mib = np.array([r["peak_rss_MiB"] for r in rows], dtype=float)
    return float(np.polyfit(n, mib, 1)[0] * 1000)


def format_scale(report: Mapping) -> str:
    """The scale report (benchmark.json) as Markdown: one row per count, the slope, the machine."""
    lines = ["| images | peak RSS (MiB) | after building the predictor (MiB) | seconds | images/s "
             "| predictions.jsonl (MiB) |", "|---|---|---|---|---|---|"]
    for r in report["counts"]:
        if "error" in r:
            lines.append(f"| {r['images']} | failed: {r['error']} | | | | |")
            continue
        lines.append(f"| {r['images']} | {r['peak_rss_MiB']:.0f} | {r['rss_before_MiB']:.0f} | {r['seconds']:.1f} "
                     f"| {r['images_per_s']:.2f} | {r['jsonl_MiB']:.2f} |")
    if report.get("MiB_per_1000_images") is not None:
        lines.append(f"\npeak RSS grows by {report['MiB_per_1000_images']:.1f} MiB per 1000 images "
                     "(least-squares slope)")
    lines.append(f"machine: {machine_line(report['machine'])}")
    return "\n".join(lines)


def run(args, folder: Path) -> int:
    """``vertkp benchmark scale`` on arguments checked by ``vertkp.benchmark.cli`` and :func:`check`,
    with the phantom set it made (``folder``): exit 0 done, 1 a count failed."""
    set_threads(args.threads)
    out = Path(args.output).resolve()
    truths = phantom_truths(folder / "coco")
    images = [str(folder / t.file_name) for t in truths]
    detections = mean_vertebrae(truths)
    weights = args.weights[0] if args.weights else ""
    report = {"machine": torch_machine_info(args.threads),
              "settings": {"config": args.config_file[0], "weights": weights or "random", "opts": list(args.opts),
                           "num_images": args.num_images, "image_size": args.image_size, "seed": args.seed,
                           "difficulty": args.difficulty, "overlays": not args.no_overlays,
                           "detections_with_random_weights": None if weights else detections,
                           "peak_rss": "resource.getrusage(RUSAGE_SELF).ru_maxrss of each count's fresh process"},
              "counts": [], "MiB_per_1000_images": None}
    print(f"machine: {machine_line(report['machine'])}", flush=True)
    inputs = link_inputs(images, out / "inputs", max(args.counts))
    failed = False
    for n in sorted(args.counts):
        spec = {"config": args.config_file[0], "weights": weights, "opts": list(args.opts), "threads": args.threads,
                "inputs": inputs[:n], "detections": detections, "overlays": not args.no_overlays,
                "output": str(out / "runs" / f"n{n}")}
        print(f"{n} images -> {spec['output']}", flush=True)
        try:
            r = in_fresh_process(measure_count, spec)
            print(f"   peak RSS {r['peak_rss_MiB']:.0f} MiB, {r['seconds']:.1f} s, {r['images_per_s']:.2f} img/s",
                  flush=True)
        except Exception as e:  # the process died, or the predictor could not be built
            traceback.print_exc()
            r = {"images": n, "error": f"{type(e).__name__}: {e}"}
            failed = True
        report["counts"].append(r)
        write_json(out / "benchmark.json", report)
    measured = [r for r in report["counts"] if "error" not in r]
    if len({r["images"] for r in measured}) >= 2:
        report["MiB_per_1000_images"] = mib_per_1000(measured)
    write_json(out / "benchmark.json", report)
    print(f"\n{format_scale(report)}\n\nwrote {out / 'benchmark.json'}")
    return 1 if failed else 0
