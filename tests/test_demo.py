"""tools/demo.py (what `make demo` runs): the whole story end to end on a tiny schedule, and a
clear stop when detectron2 is missing."""
import csv
import json
import os
import subprocess
import sys

import cv2
import pytest

from tests.helpers import DETECTRON2_SKIP_REASON, NO_DETECTRON2, REPO

INSTANT = "configs/quick_schedules/kprcnn_r50_instant_test.yaml"


def test_demo_without_detectron2_stops_at_once_with_the_install_command(tmp_path):
    (tmp_path / "sitecustomize.py").write_text(NO_DETECTRON2)
    env = dict(os.environ, PYTHONPATH=str(tmp_path), PYTHONWARNINGS="ignore")
    r = subprocess.run([sys.executable, str(REPO / "tools" / "demo.py"), "--output", str(tmp_path / "demo")],
                       env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 2
    assert "pip install --no-build-isolation 'git+https://github.com/facebookresearch/detectron2.git'" in r.stderr
    assert not (tmp_path / "demo").exists()  # nothing was started


def test_makefile_demo_runs_the_demo_tool_after_installing():
    r = subprocess.run(["make", "-n", "demo"], cwd=REPO, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert "tools/demo.py" in r.stdout and "--no-build-isolation" in r.stdout


@pytest.mark.slow
def test_demo_runs_the_whole_story_and_reports_where_everything_is(tmp_path, run_tool):
    pytest.importorskip("detectron2", reason=DETECTRON2_SKIP_REASON)
    out = tmp_path / "demo"
    r = run_tool("demo", "--output", out, "--num-images", "10", "--config-file", INSTANT, "--no-progress",
                 cwd=REPO, env={"OMP_NUM_THREADS": "1"})
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    for k in range(1, 6):
        assert f"[{k}/5]" in r.stdout
    for line in ("detection F1", "corner error MRE", "slip MAE", "overlays:", "slip report:", "metrics:"):
        assert line in r.stdout
    summary = json.loads((out / "demo_summary.json").read_text())
    val = json.loads((out / "data" / "phantoms" / "coco" / "val.json").read_text())
    assert summary["headline"]["n_images"] == len(val["images"]) > 0
    assert summary["prediction_summary"]["predicted"] == len(val["images"])
    assert (out / "train" / "model_final.pth").is_file()
    metrics = json.loads((out / "evaluation" / "metrics.json").read_text())
    assert metrics["n_images"] == len(val["images"])
    for plot in ("sdr_curve.png", "per_corner_error.png", "error_histogram.png", "grade_confusion.png"):
        assert (out / "evaluation" / plot).is_file()
    overlays = sorted((out / "predictions" / "overlays").glob("*.png"))
    assert len(overlays) == len(val["images"])
    assert cv2.imread(str(overlays[0])).shape[:2] == (val["images"][0]["height"], val["images"][0]["width"])
    with open(out / "predictions" / "report.csv", newline="") as f:
        assert {row["image"] for row in csv.DictReader(f)} == {
            str(out / "data" / "phantoms" / im["file_name"]) for im in val["images"]}
