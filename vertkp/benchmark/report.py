"""What the benchmarks print and record: the tables, the machine, the summary statistics.

numpy only, no torch: the formatting and the arithmetic are tested on hand-built values
with the exact expected results. ``machine_info`` is the torch-free part of the machine;
``vertkp.benchmark.device.torch_machine_info`` adds torch's threads and the GPU.
"""
from __future__ import annotations

import importlib.metadata
import os
import platform
from pathlib import Path
from typing import Dict, List, Mapping, Optional, Sequence

import numpy as np


__all__ = ["REFERENCES", "TARGET_F1", "TARGET_MRE_PCT", "EVAL_PREFIXES", "latency_stats",
           "format_profile", "evaluations", "target_mre", "format_table", "format_data",
           "format_learning", "machine_info", "machine_line", "cpu_model", "SPEEDUP_GOAL", "YOLO_RATIO_GOAL",
           "speedups", "format_speedups"]

# Others' published figures, on their hardware (not measured here): printed as reference rows.
REFERENCES = (
    {"name": "detectron2 Keypoint R-CNN R50-FPN 3x", "source": "detectron2 MODEL_ZOO.md (COCO person keypoints)",
     "hardware": "V100 GPUs (training: 8 of them, 2 images each)", "test_size": "800/1333 (COCO)",
     "model_alone_s": 0.066, "train_s_per_iter": 0.316, "train_images_per_iter": 16,
     "train_memory_GB": 5.0},
    {"name": "YOLOspine", "source": "as reported by YOLOspine (cited in the issue)", "hardware": "its own",
     "end_to_end_s": 0.48},
    # Ultralytics YOLO11n-pose (2.7 M parameters), trained on the realistic phantoms for make demo's CPU time and
    # timed end to end on the 2-core AMD EPYC (AVX2) the light config is held to: the one-stage model a CPU
    # user would otherwise pick (vertkp issue 22).
    {"name": "YOLO11n-pose", "source": "vertkp issue 22, measured on the same phantoms", "hardware": "2 CPU cores "
     "(AMD EPYC, AVX2)", "test_size": "256", "end_to_end_s": 0.025},
    {"name": "YOLO11n-pose", "source": "vertkp issue 22, measured on the same phantoms", "hardware": "2 CPU cores "
     "(AMD EPYC, AVX2)", "test_size": "640", "end_to_end_s": 0.083},
)
# The light config's goals against the first config measured (R50-FPN) and YOLO11n-pose, one pass end to end at
# the same test size: at least SPEEDUP_GOAL times faster than the first, at most YOLO_RATIO_GOAL times YOLO's time.
SPEEDUP_GOAL, YOLO_RATIO_GOAL = 5.0, 3.0
# The learning target on phantoms: detection F1 in percent (as the evaluator reports it) at least
# TARGET_F1, and the MRE at most TARGET_MRE_PCT percent of the mean vertebra width.
TARGET_F1, TARGET_MRE_PCT = 95.0, 3.0
# Storage keys of the evaluators' results (VertebraKeypointEvaluator, COCOEvaluator), as the EvalHook logs them.
EVAL_PREFIXES = ("vertkp/", "bbox/", "keypoints/")


def latency_stats(seconds: Sequence[float]) -> Dict[str, float]:
    """Summary of per-image (or per-step) times in seconds: n, median, p90 (numpy's
    linear percentile), mean, min, max.

    Raises:
        ValueError: no times.
    """
    s = np.asarray(seconds, dtype=np.float64)
    if s.size == 0:
        raise ValueError("no timings: measure at least one image or step")
    return {"n": int(s.size), "median_s": float(np.median(s)), "p90_s": float(np.percentile(s, 90)),
            "mean_s": float(s.mean()), "min_s": float(s.min()), "max_s": float(s.max())}


def evaluations(histories: Dict, max_iter: int) -> Dict[int, dict]:
    """Every evaluation the EvalHook put into the trainer's storage, by the number of
    training steps before it: {steps: {storage key ("vertkp/MRE_px", "keypoints/AP"): value}}.

    Args:
        histories: ``trainer.storage.histories()`` (name -> HistoryBuffer of (value, iteration)).
        max_iter: the run's SOLVER.MAX_ITER (the evaluation after training is logged at it).
    """
    evals: Dict[int, dict] = {}
    for key, history in histories.items():
        if key.startswith(EVAL_PREFIXES):
            for value, it in history.values():
                evals.setdefault(min(int(it) + 1, max_iter), {})[key] = float(value)
    return dict(sorted(evals.items()))


# ---- speed ------------------------------------------------------------------------------------
def _num(v, spec: str = ".3f") -> str:
    return "-" if v is None else format(v, spec)


def _pair(stats: Optional[Mapping], spec: str = ".3f") -> str:
    if not stats:
        return "skipped"
    if "error" in stats:
        return "failed"
    return f"{_num(stats['median_s'], spec)} / {_num(stats['p90_s'], spec)}"


def _memory(mem: Optional[Mapping]) -> str:
    if not mem:
        return "-"
    kind = "GPU alloc" if mem["kind"] == "cuda_max_memory_allocated" else "RSS"
    return f"{_num(mem.get('inference_MiB'), '.0f')} / {_num(mem.get('train_MiB'), '.0f')} MiB {kind}"


def _threads(n: int) -> str:
    return f"{n} thread" + ("" if n == 1 else "s")


def _device(r: Mapping) -> str:
    return r["device"] + (f", {_threads(r['threads'])}" if r["device"] == "cpu" else "")


def format_table(report: Mapping) -> str:
    """The speed report (what its benchmark.json holds) as Markdown: one row per config,
    the reference rows (others' published figures), the data tools' throughput and the
    machine line."""
    header = ("| model | device | test size (input) | model alone median / p90 (s) "
              "| end to end, one pass: median / p90 (s) | end to end, config's TTA: median / p90 (s) "
              "| train s/iter (batch) | train img/s | peak memory inference / train |")
    lines = [header, "|" + "---|" * header.count(" | ") + "---|"]
    for r in report.get("configs", []):
        if "error" in r:
            lines.append(f"| {r['name']} | {r.get('device', '-')} | failed: {r['error']} | | | | | | |")
            continue
        size = r["test_size"]
        inp = f" ({size['input_hw'][0]}x{size['input_hw'][1]})" if size.get("input_hw") else ""
        train = r.get("train")
        if not train:
            t_iter, t_ips = "skipped", "-"
        elif "error" in train:
            t_iter, t_ips = "failed", "-"
        else:
            t_iter = f"{train['median_s']:.3f} ({train['ims_per_batch']})" + (" *" if train.get("note") else "")
            t_ips = f"{train['images_per_s']:.2f}"
        e2e = r.get("end_to_end")
        tta = f" ({e2e['tta']})" if e2e and e2e.get("tta") else ""
        lines.append(f"| {r['name']} | {_device(r)} | {size['min']}/{size['max']}{inp} | {_pair(r.get('model_alone'))} "
                     f"| {_pair(r.get('end_to_end_one_pass'))} | {_pair(e2e)}{tta} | {t_iter} | {t_ips} "
                     f"| {_memory(r.get('memory'))} |")
    for ref in report.get("references", REFERENCES):
        t_iter = (f"{ref['train_s_per_iter']:.3f} ({ref['train_images_per_iter']})"
                  if ref.get("train_s_per_iter") else "-")
        t_ips = (f"{ref['train_images_per_iter'] / ref['train_s_per_iter']:.1f}"
                 if ref.get("train_s_per_iter") else "-")
        mem = f"- / {ref['train_memory_GB']:.1f} GB per GPU" if ref.get("train_memory_GB") else "-"
        lines.append(f"| *{ref['name']}: published, not measured here* | {ref['hardware']} "
                     f"| {ref.get('test_size', '-')} | {_num(ref.get('model_alone_s'))} "
                     f"| {_num(ref.get('end_to_end_s'))} | - | {t_iter} | {t_ips} | {mem} |")
    notes = [r["train"]["note"] for r in report.get("configs", []) if r.get("train") and r["train"].get("note")]
    out = ["\n".join(lines)]
    out += [f"\n\\* {n}" for n in notes]
    speedups = format_speedups(report)
    if speedups:
        out.append("\n" + speedups)
    data = format_data(report)
    if data:
        out.append("\n" + data)
    if report.get("machine"):
        out.append("\nmachine: " + machine_line(report["machine"]))
    return "\n".join(out)


def speedups(report: Mapping) -> List[dict]:
    """Each config after the first against the first (at the same test size) and against the
    references timed at its test size: one-pass end-to-end medians, and the goals
    (SPEEDUP_GOAL, YOLO_RATIO_GOAL). Configs without a one-pass time are left out."""
    timed = [r for r in report.get("configs", []) if (r.get("end_to_end_one_pass") or {}).get("median_s")]
    if not timed:
        return []
    first, rows = timed[0], []
    for r in timed[1:]:
        t = r["end_to_end_one_pass"]["median_s"]
        row = {"name": r["name"], "median_s": t, "test_size": r["test_size"]["min"]}
        if r["test_size"]["min"] == first["test_size"]["min"]:
            row["vs"] = first["name"]
            row["speedup"] = first["end_to_end_one_pass"]["median_s"] / t
            row["speedup_goal_met"] = row["speedup"] >= SPEEDUP_GOAL
        refs = [ref for ref in report.get("references", REFERENCES)
                if ref.get("end_to_end_s") and ref.get("test_size") == str(r["test_size"]["min"])]
        row["vs_references"] = [{"name": ref["name"], "ratio": t / ref["end_to_end_s"],
                                 "goal_met": t / ref["end_to_end_s"] <= YOLO_RATIO_GOAL} for ref in refs]
        rows.append(row)
    return rows


def format_speedups(report: Mapping) -> str:
    """:func:`speedups` as lines ("" when there is nothing to compare)."""
    lines = []
    for row in speedups(report):
        parts = []
        if "speedup" in row:
            x = row["speedup"]
            than = f"{x:.1f}x faster than" if x >= 1 else f"{1 / x:.1f}x slower than"
            parts.append(f"{than} {row['vs']} (goal >= {SPEEDUP_GOAL:g}x faster: "
                         f"{'met' if row['speedup_goal_met'] else 'NOT met'})")
        parts += [f"{ref['ratio']:.1f}x {ref['name']}'s time (goal <= {YOLO_RATIO_GOAL:g}x: "
                  f"{'met' if ref['goal_met'] else 'NOT met'})" for ref in row["vs_references"]]
        if parts:
            lines.append(f"{row['name']} at {row['test_size']} px, one pass end to end {row['median_s']:.3f} s: "
                         + "; ".join(parts))
    return "\n".join(lines)


def format_profile(report: Mapping) -> str:
    """Where the time goes: one row per stage (``vertkp.benchmark.profile.STAGES``), one column
    per config, milliseconds per image (median) and share; then each config's end-to-end time
    against detectron2's stock inference; "" when nothing was profiled."""
    columns = [(r["name"], r["profile"]) for r in report.get("configs", []) if r.get("profile")]
    if not columns:
        return ""
    stages = list(columns[0][1]["stages"])
    lines = ["| stage | " + " | ".join(name for name, _ in columns) + " |", "|---|" + "---|" * len(columns)]
    for stage in stages:
        cells = [f"{prof['stages'][stage] * 1000:.1f} ms ({prof['share'][stage]:.0%})" for _, prof in columns]
        lines.append(f"| {stage} | " + " | ".join(cells) + " |")
    lines.append("| total (timed around the call) | "
                 + " | ".join(f"{prof['total_median_s'] * 1000:.0f} ms" for _, prof in columns) + " |")
    versus = [f"{r['name']}: vertkp one pass {r['vs_detectron2']['vertkp_median_s']:.3f} s, detectron2 "
              f"DefaultPredictor {r['vs_detectron2']['detectron2_median_s']:.3f} s "
              f"({r['vs_detectron2']['ratio']:.2f}x)" for r in report.get("configs", []) if r.get("vs_detectron2")]
    return "\n".join(lines + [""] + versus)


def format_data(report: Mapping) -> str:
    """One line with the converter's and the evaluator's throughput ("" when neither ran)."""
    parts = []
    for key in ("converter", "evaluator"):
        d = report.get(key)
        if d and "error" not in d:
            parts.append(f"{key} {d['images_per_s']:.1f} img/s ({d['images']} images)")
        elif d:
            parts.append(f"{key} failed")
    return "data tools (no model): " + ", ".join(parts) if parts else ""


# ---- learning ---------------------------------------------------------------------------------
def target_mre(e: Mapping) -> float:
    """The MRE (% of the vertebra width) an evaluation of the learning curve is held to: against
    the exact truth on a phantom set that has one, else against the labels."""
    t = e.get("truth_MRE_pct_width")
    return float(t) if t is not None and np.isfinite(t) else float(e["MRE_pct_width"])


def _truth_text(e: Mapping) -> str:
    t = e.get("truth_MRE_pct_width")
    return f" (exact truth {t:.2f}%)" if t is not None and np.isfinite(t) else ""


def _evaluation_line(e: Mapping) -> str:
    m = e["metrics"]
    return (f"   after {e['iterations']:5d} iterations ({e['train_minutes']:5.1f} min): F1 {m['vertkp/det_F1']:.1f}%  "
            f"MRE {m['vertkp/MRE_px']:.2f} px = {e['MRE_pct_width']:.2f}% of width{_truth_text(e)}  "
            f"grade accuracy {m['vertkp/grade_acc']:.1f}%")


def format_learning(r: Mapping) -> str:
    """One learning run (an entry of its benchmark.json's "configs"): speed, the final
    evaluation in full, the curve (every evaluation), the best checkpoint and the target."""
    if "error" in r:
        return f"== {r['name']}: FAILED: {r['error']}"
    final = r["curve"][-1]
    m = final["metrics"]
    sdr = "  ".join(f"{k[len('vertkp/SDR_'):]} {v:.1f}%" for k, v in m.items() if k.startswith("vertkp/SDR_px@"))
    lines = [
        f"== {r['name']} ({_device(r)}): {r['iterations']} iterations of {r['ims_per_batch']} images, "
        f"{r['s_per_iter']:.2f} s/iter (median {r['s_per_iter_median']:.2f}), "
        f"{r['train_minutes']:.1f} min of training",
        f"   phantom val ({int(m['vertkp/n_images'])} images, {int(m['vertkp/n_gt_vertebrae'])} vertebrae, "
        f"mean width {r['mean_width_px']:.1f} px), after {final['iterations']} iterations:",
        f"   detection F1 {m['vertkp/det_F1']:.1f}% (P {m['vertkp/det_precision']:.1f}%, "
        f"R {m['vertkp/det_recall']:.1f}%)   MRE {m['vertkp/MRE_px']:.2f} px = {final['MRE_pct_width']:.2f}% of "
        f"width (median {m['vertkp/MRE_px_median']:.2f} px)",
        f"   SDR {sdr}   slip MAE {m['vertkp/slip_MAE_pp']:.2f} pp   grade accuracy {m['vertkp/grade_acc']:.1f}%"
        f"   grade kappa {_num(m.get('vertkp/kappa'), '.3f')}",
    ]
    if r.get("budget"):
        b = r["budget"]
        lines.insert(1, f"   budget: {b['minutes']:g} min of training: {b['schedule']['SOLVER.MAX_ITER']} iterations "
                        f"at the {b['calibration_s_per_iter']:.2f} s/iter timed over {b['calibration_steps']} steps")
    if _truth_text(final):
        lines.append(f"   against the exact truth: MRE {m['vertkp/truth_MRE_px']:.2f} px = "
                     f"{final['truth_MRE_pct_width']:.2f}% of width (the labels' own error "
                     f"{m['vertkp/label_MRE_px']:.2f} px), slip MAE {m['vertkp/truth_slip_MAE_pp']:.2f} pp, "
                     f"pairs off by > 20 pp {_num(m.get('vertkp/truth_slip_off20_pct'), '.1f')}%, "
                     f"grade accuracy {m['vertkp/truth_grade_acc']:.1f}%")
    lines += [_evaluation_line(e) for e in r["curve"]]
    if r.get("best"):
        b = r["best"]
        lines.append(f"   best checkpoint: {b['metric']} {b['value']:.2f} at iteration {b['iteration']}")
    t, first = r["target"], r["target"]["met_after"]
    lines.append(f"   target (F1 >= {t['det_F1']:g}%, MRE{' against the truth' if _truth_text(final) else ''} "
                 f"<= {t['MRE_pct_width']:g}% of width): "
                 + ("MET" if t["met"] else "NOT MET")
                 + (f" (first met after {first['iterations']} iterations, {first['train_minutes']:.1f} min of training)"
                    if first else ""))
    return "\n".join(lines)


# ---- the machine ------------------------------------------------------------------------------
def machine_line(m: Mapping) -> str:
    """One line: CPU, cores, torch (and its threads), detectron2, GPU, Python. The torch
    threads and the GPU are there when the torch side filled them in
    (``vertkp.benchmark.device.torch_machine_info``)."""
    threads = f" ({_threads(m['torch_threads'])})" if m.get("torch_threads") else ""
    gpu = f"{m['gpu'] or 'no GPU'}, " if "gpu" in m else ""
    return (f"{m['cpu']}, {m['cpu_cores']} cores ({m['cpu_cores_usable']} usable), "
            f"torch {m['torch'] or 'not installed'}{threads}, detectron2 {m['detectron2'] or 'not installed'}, "
            f"{gpu}Python {m['python']}")


def cpu_model(cpuinfo: str) -> str:
    """The CPU name of a /proc/cpuinfo text ("model name", or "Hardware"/"Processor" on ARM)."""
    for key in ("model name", "Hardware", "Processor", "cpu model"):
        for line in cpuinfo.splitlines():
            name, _, value = line.partition(":")
            if name.strip() == key and value.strip():
                return value.strip()
    return platform.processor() or platform.machine() or "unknown CPU"


def _version(package: str) -> Optional[str]:
    """The installed version of a distribution, read from its metadata (the package is not imported)."""
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def machine_info() -> dict:
    """What the figures were measured on, without importing torch or detectron2: the CPU,
    its cores, OMP_NUM_THREADS, the installed torch and detectron2 versions (None: not
    installed), Python and the platform. The torch side adds torch's threads, the GPU and
    CUDA (``vertkp.benchmark.device.torch_machine_info``)."""
    try:
        cpuinfo = Path("/proc/cpuinfo").read_text()
    except OSError:
        cpuinfo = ""
    return {
        "cpu": cpu_model(cpuinfo),
        "cpu_cores": os.cpu_count(),
        "cpu_cores_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS"),
        "torch": _version("torch"),
        "detectron2": _version("detectron2"),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }
