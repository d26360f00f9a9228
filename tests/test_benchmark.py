"""vertkp benchmark (tools/benchmark.py): the command line, the arithmetic and the tables on
hand-built values (no detectron2), the FrozenBN calibration, then end-to-end runs of the speed,
learning and data benchmarks on the instant config and tiny phantom sets (slow)."""
import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest

from tests.helpers import DETECTRON2_SKIP_REASON, NO_DETECTRON2, REPO
from vertkp.benchmark.cli import build_parser, main, split_trailing_opts
from vertkp.benchmark.data import format_audit, measure_audit
from vertkp.benchmark.schedule import schedule_for_minutes
from vertkp.benchmark.report import (REFERENCES, cpu_model, evaluations,
                                     format_learning, format_profile, format_speedups, format_table,
                                     latency_stats, machine_line, speedups)
from vertkp.evaluation.metrics import mean_vertebra_width
from vertkp import DETECTRON2_INSTALL

INSTANT = REPO / "configs" / "quick_schedules" / "kprcnn_r50_instant_test.yaml"


# ---- the command line -----------------------------------------------------------------------
def test_build_parser_accepts_every_subcommand_and_defaults_to_speed():
    p = build_parser()
    assert p.parse_args([]).command == "speed"
    a = p.parse_args(["--config-file", "configs/kprcnn_r50.yaml"])
    assert (a.command, a.config_file, a.timed_images, a.num_images) == ("speed", ["configs/kprcnn_r50.yaml"], 20, 40)
    assert p.parse_args(["SOLVER.IMS_PER_BATCH", "2"]).opts == ["SOLVER.IMS_PER_BATCH", "2"]
    a = p.parse_args(["speed", "--timed-images", "3", "--image-size", "256", "SOLVER.IMS_PER_BATCH", "2"])
    assert (a.command, a.timed_images, a.image_size, a.opts) == ("speed", 3, 256, ["SOLVER.IMS_PER_BATCH", "2"])
    a = p.parse_args(["learning", "--models", "r50"])
    assert (a.command, a.models, a.config_file, a.num_images, a.image_size) == ("learning", ["r50"], None, 100, 640)
    a = p.parse_args(["data", "--num-images", "5", "--output", "out"])
    assert (a.command, a.num_images, a.output) == ("data", 5, "out")
    outputs = {p.parse_args([c]).output for c in ("speed", "learning", "data")}
    assert outputs == {"output/benchmark/speed", "output/benchmark/learning", "output/benchmark/data"}
    with pytest.raises(SystemExit):  # a speed flag is not a learning flag
        p.parse_args(["learning", "--timed-images", "3"])


def test_trailing_overrides_are_split_from_the_config_files():
    assert split_trailing_opts(["a.yaml", "b.yaml", "SOLVER.IMS_PER_BATCH", "2", "MODEL.DEVICE", "cpu"]) == (
        ["a.yaml", "b.yaml"], ["SOLVER.IMS_PER_BATCH", "2", "MODEL.DEVICE", "cpu"])
    assert split_trailing_opts(["configs/kprcnn_r50.yaml"]) == (["configs/kprcnn_r50.yaml"], [])
    assert split_trailing_opts(["W.pth", "MODEL.TIMM.NORM", "GN"]) == (["W.pth"], ["MODEL.TIMM.NORM", "GN"])


@pytest.mark.parametrize("argv, reason", [
    (["--skip", "inference,nothing"], "speed: error: --skip: unknown phase(s) ['nothing']; choose from inference"),
    (["--config-file", "missing.yaml"], "speed: error: config file(s) ['missing.yaml'] do not exist"),
    (["--config-file", str(INSTANT), "--weights", "a.pth", "b.pth"],
     "speed: error: --weights needs one file per config: 1 config(s), 2 weights"),
    (["speed", "--config-file", str(INSTANT), "SOLVER.IMS_PER_BATCH"],
     "speed: error: the config overrides must be KEY VALUE pairs, got ['SOLVER.IMS_PER_BATCH']"),
    (["--timed-images", "0"], "speed: error: --timed-images and --train-iters must be >= 1"),
    (["learning", "--models", "r50", "vgg", "SOLVER.MAX_ITER", "3"],
     "learning: error: --models: unknown model(s) ['vgg']; choose from r50, hrnet_w32"),
    (["data", "--num-images", "2"], "data: error: --num-images must be at least 3 (train and val images), got 2"),
    (["data", "--image-size", "100"], "data: error: image_size must be >= 128 px, got 100"),  # vertkp.phantoms' rule
])
def test_bad_arguments_exit_2_with_the_reason(argv, reason, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", ["vertkp benchmark"])  # as vertkp.cli runs it
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"vertkp benchmark {reason}"), err
    assert not list(tmp_path.iterdir())  # nothing made (the default --output is under the working folder)


def test_learning_takes_models_or_config_files_not_both(capsys):
    with pytest.raises(SystemExit) as e:
        build_parser().parse_args(["learning", "--models", "r50", "--config-file", str(INSTANT)])
    assert e.value.code == 2 and "not allowed with argument" in capsys.readouterr().err


# The modules behind `vertkp benchmark` up to the subcommand, and `vertkp benchmark data`: torch-free.
TORCH_FREE = ("vertkp.benchmark.cli", "vertkp.benchmark.data", "vertkp.benchmark.report")
# Python that prints which of torch and detectron2 its process has loaded.
_LOADED = "sorted({m.split('.')[0] for m in sys.modules} & {'torch', 'detectron2'})"


def _python(code: str, cwd=REPO, without_detectron2=None):
    """Run Python ``code`` in a subprocess; with ``without_detectron2`` (a folder for its
    sitecustomize.py), ``import detectron2`` fails there as where it is not installed."""
    env = dict(os.environ)
    if without_detectron2 is not None:
        (without_detectron2 / "sitecustomize.py").write_text(NO_DETECTRON2)
        env["PYTHONPATH"] = os.pathsep.join([str(without_detectron2), str(REPO)])
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=cwd, env=env, timeout=300)


def test_importing_the_torch_free_modules_loads_neither_torch_nor_detectron2():
    r = _python(f"import importlib, sys\nfor m in {TORCH_FREE!r}: importlib.import_module(m)\n"
                "import vertkp.benchmark.cli as cli, vertkp.benchmark.report as report\n"
                f"cli.build_parser(), report.machine_info()\nprint({_LOADED})")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "[]"


@pytest.mark.parametrize("argv, needs", [
    (["learning"], "learning needs it"),
    (["speed", "--skip", "train"], "speed needs it (--skip inference,train, or `data`, measures only the data tools)"),
])
def test_without_detectron2_the_model_benchmarks_exit_2_with_the_install_command(argv, needs, tmp_path):
    site, work = tmp_path / "site", tmp_path / "work"
    site.mkdir(), work.mkdir()
    r = _python(f"import sys\nfrom vertkp.cli import main\nsys.exit(main(['benchmark', *{argv!r}]))",
                cwd=work, without_detectron2=site)
    assert r.returncode == 2, r.stdout + r.stderr
    assert r.stderr == (f"vertkp benchmark {argv[0]}: error: detectron2 is not installed: {needs}. Install it:\n"
                        f"    {DETECTRON2_INSTALL}\n")
    assert not list(work.iterdir())  # nothing made


# ---- arithmetic -----------------------------------------------------------------------------
def test_latency_stats_exact():
    s = latency_stats([0.5, 0.1, 0.3, 0.2, 0.4])
    assert s["n"] == 5
    assert s["median_s"] == pytest.approx(0.3)
    assert s["p90_s"] == pytest.approx(0.46)  # position 3.6: 0.4 + 0.6 * (0.5 - 0.4)
    assert s["mean_s"] == pytest.approx(0.3)
    assert (s["min_s"], s["max_s"]) == (0.1, 0.5)
    with pytest.raises(ValueError, match="at least one"):
        latency_stats([])


def test_mean_vertebra_width_over_the_labelled_endplates():
    nan = float("nan")
    image1 = np.array([[[0, 0], [10, 0], [0, 5], [12, 5]],  # endplates 10 and 12: width 11
                       [[0, 0], [nan, nan], [0, 5], [99, 5]],  # superior endplate unlabelled: width 99
                       [[nan, nan], [nan, nan], [nan, nan], [1, 1]]])  # no endplate: left out
    image2 = np.array([[[0, 0], [3, 4], [0, 10], [6, 18]]])  # endplates 5 and 10: width 7.5
    assert mean_vertebra_width([image1, image2]) == pytest.approx((11 + 99 + 7.5) / 3)
    assert mean_vertebra_width([np.zeros((0, 4, 2))]) != mean_vertebra_width([np.zeros((0, 4, 2))])  # NaN


class _History:
    """A detectron2 HistoryBuffer's values(): (value, iteration) pairs."""

    def __init__(self, *pairs):
        self.pairs = list(pairs)

    def values(self):
        return self.pairs


def test_evaluations_are_keyed_by_the_steps_done_before_them():
    histories = {"vertkp/MRE_px": _History((5.0, 99), (2.0, 300)), "keypoints/AP": _History((10.0, 99), (20.0, 300)),
                 "total_loss": _History(*[(1.0, i) for i in range(300)]), "time": _History((0.5, 3))}
    # periodic: logged at the last step's iteration (99: after 100 steps); final: at max_iter
    assert evaluations(histories, 300) == {100: {"vertkp/MRE_px": 5.0, "keypoints/AP": 10.0},
                                           300: {"vertkp/MRE_px": 2.0, "keypoints/AP": 20.0}}


def test_cpu_model_from_proc_cpuinfo_text():
    text = "processor\t: 0\nvendor_id\t: AuthenticAMD\nmodel name\t: AMD EPYC 7B13\nflags\t\t: fpu\n"
    assert cpu_model(text) == "AMD EPYC 7B13"
    assert cpu_model("processor\t: 0\nHardware\t: BCM2835\n") == "BCM2835"


# ---- the tables -----------------------------------------------------------------------------
_MACHINE = {"cpu": "AMD EPYC", "cpu_cores": 2, "cpu_cores_usable": 2, "torch_threads": 2, "gpu": None,
            "torch": "2.15.0", "detectron2": "0.6", "python": "3.11.7"}


def _speed_report():
    cfg = {
        "name": "kprcnn_r50", "config": "configs/kprcnn_r50.yaml", "device": "cpu", "threads": 2,
        "test_size": {"min": 640, "max": 1333, "input_hw": [640, 640]},
        "model_alone": {"median_s": 1.2345, "p90_s": 1.5, "n": 10},
        "end_to_end": {"median_s": 1.3, "p90_s": 1.75, "n": 10, "tta": "flip"},
        "end_to_end_one_pass": {"median_s": 1.0, "p90_s": 1.25, "n": 10, "tta": "none"},
        "train": {"median_s": 20.0, "ims_per_batch": 8, "images_per_s": 0.4,
                  "note": "kprcnn_r50: training measured at BASE_LR 0.0001"},
        "memory": {"kind": "process_peak_rss", "inference_MiB": 1500.4, "train_MiB": 6000.0},
    }
    hr = {"name": "kprcnn_hrnet_w32", "config": "configs/kprcnn_hrnet_w32.yaml", "device": "cuda", "threads": 2,
          "test_size": {"min": 640, "max": 1333}, "model_alone": {"error": "RuntimeError: x"},
          "memory": {"kind": "cuda_max_memory_allocated", "inference_MiB": 300.0}}
    return {"configs": [cfg, hr], "references": list(REFERENCES), "machine": _MACHINE,
            "converter": {"images": 44, "images_per_s": 123.45}, "evaluator": {"images": 40, "images_per_s": 67.8}}


def test_profile_table_exact():
    prof = {"stages": {"backbone": 0.3, "grading": 0.1}, "share": {"backbone": 0.75, "grading": 0.25},
            "total_median_s": 0.41}
    versus = {"ratio": 1.25, "vertkp_median_s": 0.5, "detectron2_median_s": 0.4}
    text = format_profile({"configs": [{"name": "m", "profile": prof, "vs_detectron2": versus},
                                       {"name": "h", "profile": prof}]})
    assert text.splitlines()[:3] == ["| stage | m | h |", "|---|---|---|",
                                     "| backbone | 300.0 ms (75%) | 300.0 ms (75%) |"]
    assert "| total (timed around the call) | 410 ms | 410 ms |" in text
    assert "m: vertkp one pass 0.500 s, detectron2 DefaultPredictor 0.400 s (1.25x)" in text
    assert format_profile({"configs": [{"name": "m"}]}) == ""


def test_speed_table_exact():
    assert format_table(_speed_report()) == (
        "| model | device | test size (input) | model alone median / p90 (s) | end to end, one pass: median / p90 (s) "
        "| end to end, config's TTA: median / p90 (s) | train s/iter (batch) | train img/s "
        "| peak memory inference / train |\n"
        "|---|---|---|---|---|---|---|---|---|\n"
        "| kprcnn_r50 | cpu, 2 threads | 640/1333 (640x640) | 1.234 / 1.500 | 1.000 / 1.250 | 1.300 / 1.750 (flip) "
        "| 20.000 (8) * | 0.40 | 1500 / 6000 MiB RSS |\n"
        "| kprcnn_hrnet_w32 | cuda | 640/1333 | failed | skipped | skipped | skipped | - | 300 / - MiB GPU alloc |\n"
        "| *detectron2 Keypoint R-CNN R50-FPN 3x: published, not measured here* "
        "| V100 GPUs (training: 8 of them, 2 images each) | 800/1333 (COCO) | 0.066 | - | - | 0.316 (16) | 50.6 "
        "| - / 5.0 GB per GPU |\n"
        "| *YOLOspine: published, not measured here* | its own | - | - | 0.480 | - | - | - | - |\n"
        "| *YOLO11n-pose: published, not measured here* | 2 CPU cores (AMD EPYC, AVX2) | 256 | - | 0.025 | - | - "
        "| - | - |\n"
        "| *YOLO11n-pose: published, not measured here* | 2 CPU cores (AMD EPYC, AVX2) | 640 | - | 0.083 | - | - "
        "| - | - |\n"
        "\n\\* kprcnn_r50: training measured at BASE_LR 0.0001\n"
        "\ndata tools (no model): converter 123.5 img/s (44 images), evaluator 67.8 img/s (40 images)\n"
        "\nmachine: AMD EPYC, 2 cores (2 usable), torch 2.15.0 (2 threads), detectron2 0.6, no GPU, Python 3.11.7")


def test_speedups_against_the_first_config_and_the_references_at_its_size():
    def timed(name, size, median):
        return {"name": name, "test_size": {"min": size, "max": 2 * size}, "end_to_end_one_pass": {"median_s": median}}

    refs = [{"name": "Y", "test_size": "640", "end_to_end_s": 0.08}, {"name": "Y", "test_size": "256",
                                                                        "end_to_end_s": 0.025}]
    report = {"configs": [timed("r50", 640, 1.0), {"name": "hr", "error": "x"}, timed("light", 640, 0.16),
                          timed("mid", 640, 0.4), timed("small", 256, 0.1)], "references": refs}
    rows = speedups(report)
    assert [r["name"] for r in rows] == ["light", "mid", "small"]
    light, mid, small = rows
    assert light["speedup"] == pytest.approx(6.25) and light["speedup_goal_met"]
    assert light["vs_references"] == [{"name": "Y", "ratio": pytest.approx(2.0), "goal_met": True}]
    assert mid["speedup"] == pytest.approx(2.5) and not mid["speedup_goal_met"]
    assert mid["vs_references"][0]["ratio"] == pytest.approx(5.0) and not mid["vs_references"][0]["goal_met"]
    assert "speedup" not in small and small["vs_references"][0]["ratio"] == pytest.approx(4.0)  # other size than r50
    text = format_speedups(report).splitlines()
    assert text[0] == ("light at 640 px, one pass end to end 0.160 s: 6.2x faster than r50 (goal >= 5x faster: met); "
                       "2.0x Y's time (goal <= 3x: met)")
    slow = format_speedups({"configs": [timed("r50", 640, 1.0), timed("hr", 640, 1.25)], "references": []})
    assert slow == "hr at 640 px, one pass end to end 1.250 s: 1.2x slower than r50 (goal >= 5x faster: NOT met)"
    assert text[2] == "small at 256 px, one pass end to end 0.100 s: 4.0x Y's time (goal <= 3x: NOT met)"
    assert format_speedups({"configs": [timed("r50", 640, 1.0)]}) == ""


def test_schedule_for_minutes_scales_every_count_of_the_config():
    # 9 minutes at 0.45 s/iter: 1200 iterations, the R50 phantom schedule (420; 330, 390; warm-up 50) scaled by 1200/420
    s = schedule_for_minutes(9, 0.45, 420, (330, 390), 50, 140, 140)
    assert s == {"SOLVER.MAX_ITER": 1200, "SOLVER.STEPS": (943, 1114), "SOLVER.WARMUP_ITERS": 143,
                 "TEST.EVAL_PERIOD": 400, "SOLVER.CHECKPOINT_PERIOD": 400}
    short = schedule_for_minutes(0.01, 1.0, 420, (330, 390, 500), 50, 0, 140)  # 0.6 s: one iteration
    assert short == {"SOLVER.MAX_ITER": 1, "SOLVER.STEPS": (1, 1), "SOLVER.WARMUP_ITERS": 1, "TEST.EVAL_PERIOD": 0,
                     "SOLVER.CHECKPOINT_PERIOD": 1}  # a step past MAX_ITER is dropped, a period of 0 stays off
    with pytest.raises(ValueError, match="minutes > 0"):
        schedule_for_minutes(0, 1.0, 420, (), 0, 0, 0)
    # 250 iterations in 7.5 min: evaluations every 84 (83.3 up), not at 83, 166, 249 and again at 250
    assert schedule_for_minutes(7.5, 1.8, 420, (330, 390), 50, 140, 140)["TEST.EVAL_PERIOD"] == 84


def test_the_audit_line_of_the_data_benchmark():
    assert format_audit({"audit": {"images": 44, "images_per_s": 312.345}}) == (
        "audit (overlays off): 312.3 img/s (44 images)")
    assert format_audit({"audit": {"error": "ValueError: x"}}) == "audit (overlays off): failed"
    assert format_audit({}) == ""


def test_measure_audit_on_the_session_phantoms(phantom_root):
    coco = phantom_root / "phantoms" / "coco"
    n = sum(len(json.loads((coco / f"{s}.json").read_text())["images"]) for s in ("train", "val"))
    r = measure_audit(coco, repeats=2)
    assert r["images"] == n and r["repeats"] == 2 and len(r["seconds"]) == 2
    assert r["images_per_s"] == pytest.approx(float(np.median(n / np.array(r["seconds"]))))


def test_machine_line_without_the_torch_part():
    torch_free = {k: v for k, v in _MACHINE.items() if k not in ("torch_threads", "gpu")}
    assert machine_line(torch_free) == "AMD EPYC, 2 cores (2 usable), torch 2.15.0, detectron2 0.6, Python 3.11.7"
    assert machine_line({**torch_free, "torch": None, "detectron2": None}) == (
        "AMD EPYC, 2 cores (2 usable), torch not installed, detectron2 not installed, Python 3.11.7")


def _learning_result():
    early = {"vertkp/det_F1": 99.2, "vertkp/MRE_px": 4.04, "vertkp/grade_acc": 90.0}
    final = {"vertkp/n_images": 30.0, "vertkp/n_gt_vertebrae": 198.0, "vertkp/det_F1": 100.0,
             "vertkp/det_precision": 100.0, "vertkp/det_recall": 100.0, "vertkp/MRE_px": 1.61,
             "vertkp/MRE_px_median": 1.4, "vertkp/SDR_px@6": 99.4, "vertkp/SDR_px@12": 100.0,
             "vertkp/slip_MAE_pp": 1.63, "vertkp/grade_acc": 98.8, "vertkp/kappa": 0.9512, "keypoints/AP": 80.0}
    return {"name": "kprcnn_r50_phantoms", "device": "cpu", "threads": 2, "iterations": 300, "ims_per_batch": 2,
            "s_per_iter": 1.97, "s_per_iter_median": 1.951, "train_minutes": 9.86, "mean_width_px": 138.44,
            "curve": [{"iterations": 100, "train_minutes": 3.3, "MRE_pct_width": 2.918, "metrics": early},
                      {"iterations": 300, "train_minutes": 9.86, "MRE_pct_width": 1.163, "metrics": final}],
            "best": {"metric": "vertkp/MRE_px", "value": 1.61, "iteration": 299},
            "target": {"det_F1": 95.0, "MRE_pct_width": 3.0, "met": True,
                       "met_after": {"iterations": 100, "train_minutes": 3.3}}}


def test_learning_report_exact():
    assert format_learning(_learning_result()) == (
        "== kprcnn_r50_phantoms (cpu, 2 threads): 300 iterations of 2 images, 1.97 s/iter (median 1.95), "
        "9.9 min of training\n"
        "   phantom val (30 images, 198 vertebrae, mean width 138.4 px), after 300 iterations:\n"
        "   detection F1 100.0% (P 100.0%, R 100.0%)   MRE 1.61 px = 1.16% of width (median 1.40 px)\n"
        "   SDR px@6 99.4%  px@12 100.0%   slip MAE 1.63 pp   grade accuracy 98.8%   grade kappa 0.951\n"
        "   after   100 iterations (  3.3 min): F1 99.2%  MRE 4.04 px = 2.92% of width  grade accuracy 90.0%\n"
        "   after   300 iterations (  9.9 min): F1 100.0%  MRE 1.61 px = 1.16% of width  grade accuracy 98.8%\n"
        "   best checkpoint: vertkp/MRE_px 1.61 at iteration 299\n"
        "   target (F1 >= 95%, MRE <= 3% of width): MET (first met after 100 iterations, 3.3 min of training)")
    r = _learning_result()
    r["best"], r["target"] = None, {"det_F1": 95.0, "MRE_pct_width": 3.0, "met": False, "met_after": None}
    assert format_learning(r).splitlines()[-1] == "   target (F1 >= 95%, MRE <= 3% of width): NOT MET"
    assert format_learning({"name": "x", "error": "RuntimeError: boom"}) == "== x: FAILED: RuntimeError: boom"
    r["budget"] = {"minutes": 9.0, "calibration_s_per_iter": 0.4512, "calibration_steps": 10,
                   "schedule": {"SOLVER.MAX_ITER": 1197}}
    assert format_learning(r).splitlines()[1] == (
        "   budget: 9 min of training: 1197 iterations at the 0.45 s/iter timed over 10 steps")


# ---- detectron2 ------------------------------------------------------------------------------
def test_calibrate_frozen_bn_normalises_what_each_layer_sees():
    pytest.importorskip("detectron2", reason=DETECTRON2_SKIP_REASON)
    import torch
    from detectron2.layers import FrozenBatchNorm2d

    from vertkp.benchmark.runs import calibrate_frozen_bn

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.bn1, self.bn2 = FrozenBatchNorm2d(3), FrozenBatchNorm2d(3)

        def forward(self, inputs):
            x = torch.stack([d["image"] for d in inputs])
            self.seen = self.bn2(10.0 * self.bn1(x) + 5.0)  # what bn2 gets depends on bn1's new statistics
            return self.seen

    torch.manual_seed(0)
    image = torch.rand(3, 8, 8) * 200.0 + 50.0
    net = Net().train()
    assert calibrate_frozen_bn(net, [{"image": image}]) == 2
    assert net.training  # the mode is put back
    assert torch.allclose(net.bn1.running_mean, image.mean(dim=(1, 2)))
    assert torch.allclose(net.bn1.running_var, image.var(dim=(1, 2), unbiased=False))
    assert torch.allclose(net.bn2.running_mean, torch.full((3,), 5.0), atol=1e-4)  # bn1's output: mean 0
    assert torch.allclose(net.bn2.running_var, torch.full((3,), 100.0), rtol=1e-3)  # 10 x unit variance
    out = net([{"image": image}])
    assert torch.allclose(out.mean(dim=(0, 2, 3)), torch.zeros(3), atol=1e-4)
    assert torch.allclose(out.var(dim=(0, 2, 3), unbiased=False), torch.ones(3), atol=1e-3)


# ---- end to end -------------------------------------------------------------------------------
def _numbers(tree, path=""):
    """(path, value) of every number in a JSON tree."""
    if isinstance(tree, dict):
        for k, v in tree.items():
            yield from _numbers(v, f"{path}.{k}")
    elif isinstance(tree, list):
        for k, v in enumerate(tree):
            yield from _numbers(v, f"{path}[{k}]")
    elif isinstance(tree, (int, float)) and not isinstance(tree, bool):
        yield path, tree


@pytest.mark.slow
def test_speed_end_to_end_on_the_instant_config(tmp_path, run_tool):
    pytest.importorskip("detectron2", reason=DETECTRON2_SKIP_REASON)
    out = tmp_path / "bench"
    r = run_tool("benchmark", "--timed-images", 2, "--warmup", 1, "--train-iters", 2, "--num-images", 10,
                 "--image-size", 256, "--device", "cpu", "--threads", 1, "--output", out,
                 "--config-file", INSTANT, "SOLVER.BASE_LR", "0.0005", "TEST.AUG.ENABLED", "False",
                 env={"OMP_NUM_THREADS": "1"})
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    report = json.loads((out / "benchmark.json").read_text())

    assert {"machine", "settings", "configs", "converter", "evaluator", "references"} <= set(report)
    m = report["machine"]
    assert m["cpu"] and m["cpu_cores"] >= 1 and m["torch_threads"] == 1 and m["torch"] and m["detectron2"]
    (c,) = report["configs"]
    assert c["name"] == "kprcnn_r50_instant_test" and c["device"] == "cpu" and not c["failed"]
    assert c["test_size"] == {"min": 128, "max": 256, "input_hw": [128, 128]}
    for phase in ("model_alone", "end_to_end", "train"):  # train: 3 steps, the IterationTimer skipped 1
        s = c[phase]
        assert s["n"] == 2 and 0 < s["median_s"] <= s["p90_s"] <= s["max_s"], (phase, s)
    # one pass (TEST.AUG.ENABLED False): exactly the detections asked for
    assert c["model_alone"]["detections_per_image"] == report["settings"]["detections_with_random_weights"] > 0
    assert c["model_alone"]["tta"] == "none"
    t = c["train"]
    assert t["ims_per_batch"] == 2 and t["images_per_s"] == pytest.approx(2 / t["median_s"])
    assert t["base_lr"] == 0.0005
    assert report["settings"]["opts"] == ["SOLVER.BASE_LR", "0.0005", "TEST.AUG.ENABLED", "False"]
    assert c["memory"]["kind"] == "process_peak_rss" and 0 < c["memory"]["inference_MiB"] <= c["memory"]["train_MiB"]
    v = c["vs_detectron2"]  # vertkp's inference against detectron2's stock one, on the same images
    assert v["ratio"] == pytest.approx(v["vertkp_median_s"] / v["detectron2_median_s"])
    assert v["vertkp"]["n"] == v["detectron2"]["n"] == 2
    assert c["profile"]["stages"]["backbone"] > 0 and c["profile"]["images"] == 2
    assert "| stage | kprcnn_r50_instant_test |" in r.stdout and "detectron2 DefaultPredictor" in r.stdout
    for key in ("converter", "evaluator"):
        assert report[key]["images"] >= 10 and report[key]["images_per_s"] > 0
    numbers = dict(_numbers({k: report[k] for k in ("configs", "converter", "evaluator")}))
    assert all(math.isfinite(v) for v in numbers.values()), numbers
    timings = {p: v for p, v in numbers.items() if p.endswith(("_s", "_per_s", "_MiB"))}
    assert timings and all(v > 0 for v in timings.values()), timings

    assert "| kprcnn_r50_instant_test | cpu, 1 thread | 128/256 (128x128) |" in r.stdout
    assert "published, not measured here" in r.stdout and "machine: " in r.stdout
    assert "data tools (no model): converter " in r.stdout and ", evaluator " in r.stdout
    assert not (out / "kprcnn_r50_instant_test" / "model_final.pth").exists()  # no checkpoint, no evaluation
    assert "Start inference" not in (out / "kprcnn_r50_instant_test" / "log.txt").read_text()


@pytest.mark.slow
def test_learning_end_to_end_on_the_instant_config(tmp_path, run_tool):
    pytest.importorskip("detectron2", reason=DETECTRON2_SKIP_REASON)
    out = tmp_path / "learn"
    r = run_tool("benchmark", "learning", "--config-file", INSTANT, "--num-images", 10, "--image-size", 256,
                 "--threads", 1, "--output", out, "TEST.EVAL_PERIOD", 2, "SOLVER.MAX_ITER", 4,
                 env={"OMP_NUM_THREADS": "1"})
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    report = json.loads((out / "benchmark.json").read_text())
    assert report["machine"]["torch_threads"] == 1 and report["settings"]["num_images"] == 10
    (c,) = report["configs"]
    assert c["name"] == "kprcnn_r50_instant_test" and c["config"] == str(INSTANT)
    assert c["iterations"] == 4 and c["ims_per_batch"] == 2 and c["mean_width_px"] > 0
    assert 0 < c["s_per_iter_median"] and 0 < c["s_per_iter"] < c["train_minutes"] * 60
    # one periodic evaluation after 2 steps, the final one after 4, with the minutes of training before each
    assert [e["iterations"] for e in c["curve"]] == [2, 4]
    assert 0 < c["curve"][0]["train_minutes"] < c["curve"][1]["train_minutes"] == pytest.approx(c["train_minutes"])
    final = c["curve"][-1]["metrics"]
    assert final["vertkp/n_images"] == 3 and final["vertkp/n_gt_vertebrae"] > 0 and "keypoints/AP" in final
    assert c["target"]["det_F1"] == 95.0 and c["target"]["met"] is False  # 4 steps learn nothing

    assert "== kprcnn_r50_instant_test (cpu, 1 thread): 4 iterations of 2 images, " in r.stdout
    assert "   phantom val (3 images, " in r.stdout and "   after     2 iterations (" in r.stdout
    assert "target (F1 >= 95%, MRE <= 3% of width): NOT MET" in r.stdout
    assert "Average Precision" not in r.stdout  # pycocotools' prints go to the run's log
    assert "Average Precision" in (out / "kprcnn_r50_instant_test" / "log.txt").read_text()


@pytest.mark.slow
def test_data_end_to_end(tmp_path, capsys):
    assert main(["data", "--num-images", "4", "--image-size", "128", "--output", str(tmp_path)]) == 0
    report = json.loads((tmp_path / "benchmark.json").read_text())
    assert report["settings"] == {"num_images": 4, "image_size": 128, "seed": 0, "difficulty": "realistic"}
    coco = tmp_path / "data" / "phantoms" / "coco"
    unlabelled = len(json.loads((coco / "test.json").read_text())["images"]) if (coco / "test.json").is_file() else 0
    assert report["converter"]["images"] == 4 + unlabelled and report["converter"]["repeats"] == 3  # every split
    assert report["evaluator"]["images"] == 4 and report["evaluator"]["images_per_s"] > 0  # train + val
    assert 0 < report["evaluator"]["MRE_px"] < 5  # GT moved by 2 px Gaussian noise
    assert report["audit"]["images"] == 4 and report["audit"]["repeats"] == 3  # train + val, overlays off
    assert report["audit"]["images_per_s"] > 0 and isinstance(report["audit"]["findings"], dict)
    out = capsys.readouterr().out
    assert "data tools (no model): converter " in out
    assert f"audit (overlays off): {report['audit']['images_per_s']:.1f} img/s (4 images)" in out
    assert not list(tmp_path.glob("**/audit.json"))  # the audit's own files went to a temporary folder


@pytest.mark.slow
@pytest.mark.parametrize("argv, loaded", [
    (["data"], []),  # neither torch nor detectron2
    (["speed", "--skip", "inference,train"], ["torch"]),  # the data phases of speed: torch, not detectron2
])
def test_the_data_tools_benchmarks_run_without_detectron2(argv, loaded, tmp_path):
    out = tmp_path / "out"
    argv = ["benchmark", *argv, "--num-images", "4", "--image-size", "128", "--output", str(out)]
    r = _python(f"import json, sys\nfrom vertkp.cli import main\nstatus = main({argv!r})\n"
                f"print(json.dumps([status, {_LOADED}]))", without_detectron2=tmp_path)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert json.loads(r.stdout.splitlines()[-1]) == [0, loaded]
    report = json.loads((out / "benchmark.json").read_text())
    assert report["evaluator"]["images"] == 4 and report["converter"]["images_per_s"] > 0
    assert ("audit" in report) == (argv[1] == "data")  # the audit is measured by `data` only
    assert ("torch_threads" in report["machine"]) == bool(loaded)  # filled in by the torch side
    assert "data tools (no model): converter " in r.stdout


def test_the_review_benchmark_parses_and_its_arithmetic_is_exact():
    a = build_parser().parse_args(["review", "--weights", "w.pth"])
    assert (a.command, a.weights, a.held_out_images, a.output) == ("review", ["w.pth"], 80, "output/benchmark/review")
    from vertkp.benchmark.review import grade_flags, risk_ranking
    rows = [{"risk": 0.9, "wrong_grade": True, "off20": True, "flags": ["borderline_grade"]},
            {"risk": 0.2, "wrong_grade": False, "off20": False, "flags": []},
            {"risk": 0.5, "wrong_grade": False, "off20": True, "flags": ["borderline_grade", "implausible_chain"]},
            {"risk": 0.1, "wrong_grade": False, "off20": False, "flags": []}]
    r = risk_ranking(rows)
    assert r["auroc_wrong_grade"] == 1.0 and r["ranks_of_off20_images"] == [1, 2] and r["n_wrong_grade_images"] == 1
    assert r["image_flag_pct"] == {"borderline_grade": 50.0, "implausible_chain": 25.0}
    doubts = {"grade_doubt": np.array([0.5, 0.1, 0.3, 0.05]), "wrong_grade": np.array([True, True, False, False]),
              "covered": np.array([True, True, True, False])}
    g = grade_flags(doubts, 0.3)
    assert (g["flagged_pct"], g["wrong_caught_pct"], g["coverage_pct"], g["n_wrong_grade"]) == (50.0, 50.0, 75.0, 2)


@pytest.mark.slow
def test_review_end_to_end_with_random_weights(tmp_path, run_tool):
    pytest.importorskip("detectron2", reason=DETECTRON2_SKIP_REASON)
    from tests.helpers import random_weights
    (tmp_path / "w").mkdir()
    weights = random_weights(tmp_path / "w")
    out = tmp_path / "review"
    r = run_tool("benchmark", "review", "--config-file", INSTANT, "--weights", weights, "--held-out-images", 3,
                 "--image-size", 256, "--threads", 1, "--output", out, "MODEL.DEVICE", "cpu",
                 env={"OMP_NUM_THREADS": "1"})
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    report = json.loads((out / "benchmark.json").read_text())
    assert set(report["sets"]) == {"tuning", "held_out", "held_out_buu"}
    for name, s in report["sets"].items():
        assert s["n_images"] > 0 and set(s["before"]) == set(s["after"]), name
        assert {"grade_flags_shipped", "corner_flags", "risk"} <= set(s)
    assert "| set | repair | pairs |" in r.stdout and "wrote " in r.stdout
