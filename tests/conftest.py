"""Shared fixtures. Tests that need detectron2 skip with a reason when it is absent."""
import os
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("MPLBACKEND", "Agg")

from vertkp import HAS_DETECTRON2  # noqa: E402,F401  (re-exported for tests)
DETECTRON2_SKIP_REASON = "detectron2 is not installed (README, Install: it is built from its upstream source)"


def pytest_terminal_summary(terminalreporter):
    skipped = [r for r in terminalreporter.stats.get("skipped", []) if "detectron2" in str(r.longrepr)]
    if skipped:
        terminalreporter.write_line(
            f"vertkp: {len(skipped)} test(s) that need detectron2 were SKIPPED because detectron2 is not "
            "installed; install it (README, Install) to run them.",
            yellow=True,
        )


@pytest.fixture
def run_tool():
    """Run ``tools/<name>.py`` with arguments in a subprocess; returns CompletedProcess."""
    import subprocess

    def run(name, *args, cwd=None, env=None):
        e = dict(os.environ, **(env or {}))
        return subprocess.run(
            [sys.executable, str(REPO / "tools" / f"{name}.py"), *map(str, args)],
            capture_output=True, text=True, cwd=cwd, env=e, timeout=600,
        )

    return run


def keypoint_ap_against_itself(gt_file) -> float:
    """COCO keypoint AP of a ground-truth file scored against itself, with vertkp's OKS sigmas."""
    import numpy as np
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    from vertkp.keypoints import OKS_SIGMAS

    gt = COCO(str(gt_file))
    dets = [{"image_id": a["image_id"], "category_id": 1, "keypoints": a["keypoints"], "score": 1.0}
            for a in gt.dataset["annotations"]]
    ev = COCOeval(gt, gt.loadRes(dets), "keypoints")
    ev.params.kpt_oks_sigmas = np.array(OKS_SIGMAS)
    ev.evaluate(), ev.accumulate(), ev.summarize()
    return float(ev.stats[0])


@pytest.fixture(scope="module")
def one_torch_thread():
    """One torch thread for a test module: with other processes on the cores, OpenMP threads
    waiting on each other make 2 threads several times slower than 1."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def load_tool(name: str, module_name: str = ""):
    """Import ``tools/<name>.py`` as a module (to call its ``main`` in-process)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(module_name or f"vertkp_tool_{name}", REPO / "tools" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod
