"""tools/benchmark.py: the arithmetic and the table on hand-built values (no detectron2), then one
end-to-end run of the tool on the instant config (needs detectron2)."""
import json
import math
import subprocess
import sys

import pytest

from conftest import DETECTRON2_SKIP_REASON, REPO
from vertkp.benchmark import (
    REFERENCES,
    cpu_model,
    format_table,
    latency_stats,
    percentile,
    split_trailing_opts,
    throughput,
)

INSTANT = REPO / "configs" / "quick_schedules" / "kprcnn_r50_instant_test.yaml"


# ---- arithmetic ---------------------------------------------------------------------------
def test_percentile_is_numpy_linear_interpolation():
    ten = [10.0, 1.0, 9.0, 2.0, 8.0, 3.0, 7.0, 4.0, 6.0, 5.0]  # 1..10, shuffled
    assert percentile(ten, 90) == pytest.approx(9.1)  # position 0.9 * 9 = 8.1 -> 9 + 0.1 * (10 - 9)
    assert percentile(ten, 50) == pytest.approx(5.5)
    assert percentile(ten, 0) == 1.0 and percentile(ten, 100) == 10.0
    assert percentile([0.2, 0.4], 90) == pytest.approx(0.38)  # 0.2 + 0.9 * 0.2
    assert percentile([3.0], 90) == 3.0


def test_percentile_refuses_no_values_and_bad_q():
    with pytest.raises(ValueError, match="no values"):
        percentile([], 50)
    with pytest.raises(ValueError, match=r"\[0, 100\]"):
        percentile([1.0], 101)


def test_latency_stats_exact():
    s = latency_stats([0.5, 0.1, 0.3, 0.2, 0.4])
    assert s["n"] == 5
    assert s["median_s"] == pytest.approx(0.3)
    assert s["p90_s"] == pytest.approx(0.46)  # position 3.6: 0.4 + 0.6 * (0.5 - 0.4)
    assert s["mean_s"] == pytest.approx(0.3)
    assert (s["min_s"], s["max_s"]) == (0.1, 0.5)
    with pytest.raises(ValueError, match="at least one"):
        latency_stats([])


def test_throughput_exact_and_checked():
    assert throughput(8, 2.0) == 4.0
    assert throughput(3, 0.25) == 12.0
    assert throughput(0, 1.0) == 0.0
    with pytest.raises(ValueError, match="seconds must be > 0"):
        throughput(1, 0.0)
    with pytest.raises(ValueError, match="items must be >= 0"):
        throughput(-1, 1.0)


def test_trailing_overrides_are_split_from_the_config_files():
    assert split_trailing_opts(["a.yaml", "b.yaml", "SOLVER.IMS_PER_BATCH", "2", "MODEL.DEVICE", "cpu"]) == (
        ["a.yaml", "b.yaml"], ["SOLVER.IMS_PER_BATCH", "2", "MODEL.DEVICE", "cpu"])
    assert split_trailing_opts(["configs/kprcnn_r50.yaml"]) == (["configs/kprcnn_r50.yaml"], [])
    assert split_trailing_opts(["W.pth", "MODEL.HRNET.NORM", "GN"]) == (["W.pth"], ["MODEL.HRNET.NORM", "GN"])


def test_cpu_model_from_proc_cpuinfo_text():
    text = "processor\t: 0\nvendor_id\t: AuthenticAMD\nmodel name\t: AMD EPYC 7B13\nflags\t\t: fpu\n"
    assert cpu_model(text) == "AMD EPYC 7B13"
    assert cpu_model("processor\t: 0\nHardware\t: BCM2835\n") == "BCM2835"


def _report():
    cfg = {
        "name": "kprcnn_r50", "config": "configs/kprcnn_r50.yaml", "device": "cpu", "threads": 2,
        "test_size": {"min": 640, "max": 1333, "input_hw": [640, 640]},
        "model_alone": {"median_s": 1.2345, "p90_s": 1.5, "n": 10},
        "end_to_end": {"median_s": 1.3, "p90_s": 1.75, "n": 10},
        "train": {"median_s": 20.0, "ims_per_batch": 8, "images_per_s": 0.4,
                  "note": "kprcnn_r50: training measured at BASE_LR 0.0001"},
        "memory": {"kind": "process_peak_rss", "inference_MiB": 1500.4, "train_MiB": 6000.0},
    }
    hr = {"name": "kprcnn_hrnet_w32", "config": "configs/kprcnn_hrnet_w32.yaml", "device": "cuda", "threads": 2,
          "test_size": {"min": 640, "max": 1333}, "model_alone": {"error": "RuntimeError: x"},
          "memory": {"kind": "cuda_max_memory_allocated", "inference_MiB": 300.0}}
    machine = {"cpu": "AMD EPYC", "cpu_cores": 2, "cpu_cores_usable": 2, "torch_threads": 2, "gpu": None,
               "torch": "2.15.0", "detectron2": "0.6", "python": "3.11.7"}
    return {"configs": [cfg, hr], "references": list(REFERENCES), "machine": machine,
            "converter": {"images": 44, "images_per_s": 123.45}, "evaluator": {"images": 40, "images_per_s": 67.8}}


def test_table_has_every_measure_and_the_published_references():
    table = format_table(_report())
    lines = table.splitlines()
    assert lines[0].startswith("| model | device | test size (input) | model alone median / p90 (s) |")
    assert set(lines[1]) == {"|", "-"} and lines[1].count("|") == lines[0].count("|")
    r50 = next(line for line in lines if line.startswith("| kprcnn_r50 |"))
    assert r50 == ("| kprcnn_r50 | cpu, 2 threads | 640/1333 (640x640) | 1.234 / 1.500 | 1.300 / 1.750 "
                   "| 20.000 (8) * | 0.40 | 1500 / 6000 MiB RSS |")
    hr = next(line for line in lines if line.startswith("| kprcnn_hrnet_w32 |"))
    assert "| failed |" in hr and "| skipped |" in hr and "300 / - MiB GPU alloc" in hr
    assert "* kprcnn_r50: training measured at BASE_LR 0.0001" in table
    d2 = next(line for line in lines if "detectron2 Keypoint R-CNN R50-FPN 3x" in line)
    assert "published, not measured here" in d2 and "| 0.066 |" in d2 and "0.316 (16)" in d2 and "V100" in d2
    yolo = next(line for line in lines if "YOLOspine" in line)
    assert "published, not measured here" in yolo and "| 0.480 |" in yolo
    assert "converter 123.5 img/s (44 images)" in table and "evaluator 67.8 img/s (40 images)" in table
    assert "machine: AMD EPYC, 2 cores (2 usable), torch 2.15.0 (2 threads), detectron2 0.6, no GPU" in table
    assert "| 800/1333 (COCO) | 0.066 |" in table


def test_importing_the_module_loads_neither_torch_nor_detectron2():
    code = ("import sys, vertkp.benchmark; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'detectron2')))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "[]"


def test_bad_arguments_exit_2(tmp_path, run_tool):
    r = run_tool("benchmark", "--skip", "inference,nothing", "--output", tmp_path)
    assert r.returncode == 2 and "unknown phase(s) ['nothing']" in r.stderr
    r = run_tool("benchmark", "--config-file", tmp_path / "missing.yaml", "--output", tmp_path)
    assert r.returncode == 2 and "do not exist" in r.stderr
    r = run_tool("benchmark", "--config-file", INSTANT, "--weights", "a.pth", "b.pth", "--output", tmp_path)
    assert r.returncode == 2 and "one file per config" in r.stderr


# ---- detectron2 ------------------------------------------------------------------------------
def test_calibrate_frozen_bn_normalises_what_each_layer_sees():
    pytest.importorskip("detectron2", reason=DETECTRON2_SKIP_REASON)
    import torch
    from detectron2.layers import FrozenBatchNorm2d

    from vertkp.benchmark import calibrate_frozen_bn

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


# ---- end to end (detectron2) ----------------------------------------------------------------
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


def test_benchmark_tool_end_to_end_on_the_instant_config(tmp_path, run_tool):
    pytest.importorskip("detectron2", reason=DETECTRON2_SKIP_REASON)
    out = tmp_path / "bench"
    r = run_tool("benchmark", "--num-images", 2, "--warmup", 1, "--train-iters", 2, "--phantoms", 10,
                 "--phantom-size", 256, "--device", "cpu", "--threads", 1, "--output", out,
                 "--config-file", INSTANT, "SOLVER.BASE_LR", "0.0005", env={"OMP_NUM_THREADS": "1"})
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    report = json.loads((out / "benchmark.json").read_text())

    assert {"machine", "settings", "configs", "converter", "evaluator", "references"} <= set(report)
    m = report["machine"]
    assert m["cpu"] and m["cpu_cores"] >= 1 and m["torch_threads"] == 1 and m["torch"] and m["detectron2"]
    (c,) = report["configs"]
    assert c["name"] == "kprcnn_r50_instant_test" and c["device"] == "cpu" and not c["failed"]
    assert c["test_size"] == {"min": 128, "max": 256, "input_hw": [128, 128]}
    for phase in ("model_alone", "end_to_end", "train"):
        s = c[phase]
        assert s["n"] == 2 and 0 < s["median_s"] <= s["p90_s"] <= s["max_s"], (phase, s)
    assert c["model_alone"]["detections_per_image"] == report["settings"]["detections_with_random_weights"] > 0
    t = c["train"]
    assert t["ims_per_batch"] == 2 and t["images_per_s"] == pytest.approx(2 / t["median_s"])
    assert t["base_lr"] == 0.0005 and report["settings"]["opts"] == ["SOLVER.BASE_LR", "0.0005"]
    assert c["memory"]["kind"] == "process_peak_rss" and 0 < c["memory"]["inference_MiB"] <= c["memory"]["train_MiB"]
    for key in ("converter", "evaluator"):
        assert report[key]["images"] >= 10 and report[key]["images_per_s"] > 0
    numbers = dict(_numbers({k: report[k] for k in ("configs", "converter", "evaluator")}))
    assert all(math.isfinite(v) for v in numbers.values()), numbers
    timings = {p: v for p, v in numbers.items() if p.endswith(("_s", "_per_s", "_MiB"))}
    assert timings and all(v > 0 for v in timings.values()), timings

    assert "| kprcnn_r50_instant_test | cpu, 1 thread | 128/256 (128x128) |" in r.stdout
    assert "published, not measured here" in r.stdout and "machine: " in r.stdout
    assert "converter " in r.stdout and "evaluator " in r.stdout
    assert not (out / "kprcnn_r50_instant_test" / "model_final.pth").exists()  # no checkpoint, no evaluation
    assert "Start inference" not in (out / "kprcnn_r50_instant_test" / "log.txt").read_text()
