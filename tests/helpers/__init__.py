"""Test helpers, imported as a package: ``from tests.helpers import ...``.

* ``tests.helpers.raw``: hand-built raw datasets in the real layouts (exact expected results).
* this module: the paths, the detectron2 skip reason, running the tools.
"""
import importlib.util
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DETECTRON2_SKIP_REASON = "detectron2 is not installed (README, Install: it is built from its upstream source)"
# The tiny phantom set of the session fixture ``phantom_root`` (tests/conftest.py): 8 labelled
# images of 128 px (about 6 train, 2 val) in the Mendeley layout, converted.
PHANTOM_IMAGES, PHANTOM_SIZE, PHANTOM_SEED = 8, 128, 0

# A sitecustomize.py that makes `import detectron2` fail as it does where detectron2 is not installed.
NO_DETECTRON2 = '''
import sys
class _NoDetectron2:
    def find_spec(self, name, path=None, target=None):
        if name == "detectron2" or name.startswith("detectron2."):
            raise ModuleNotFoundError("No module named 'detectron2'", name=name)
sys.meta_path.insert(0, _NoDetectron2())
'''

__all__ = ["REPO", "DETECTRON2_SKIP_REASON", "NO_DETECTRON2", "run_main", "PHANTOM_IMAGES", "PHANTOM_SIZE", "PHANTOM_SEED", "run_tool",
           "load_tool", "keypoint_ap_against_itself", "make_phantom_set", "INSTANT_CONFIG", "random_weights"]

# The smallest real config (a few seconds per test on a CPU): the tests' Keypoint R-CNN.
INSTANT_CONFIG = REPO / "configs" / "quick_schedules" / "kprcnn_r50_instant_test.yaml"


def random_weights(folder, config=INSTANT_CONFIG) -> Path:
    """A checkpoint of ``config``'s model with random weights (seed 0; speed and plumbing, not
    accuracy), saved as folder/model_random.pth by detectron2's checkpointer. Needs detectron2."""
    import torch
    from detectron2.checkpoint import DetectionCheckpointer
    from detectron2.modeling import build_model

    from vertkp.config import build_cfg

    torch.manual_seed(0)
    model = build_model(build_cfg(str(config), ["MODEL.DEVICE", "cpu"]))
    DetectionCheckpointer(model, save_dir=str(folder)).save("model_random")
    return Path(folder) / "model_random.pth"


def run_tool(name, *args, cwd=None, env=None, timeout=600):
    """Run ``tools/<name>.py`` with arguments in a subprocess; returns the CompletedProcess."""
    e = dict(os.environ, **(env or {}))
    return subprocess.run([sys.executable, str(REPO / "tools" / f"{name}.py"), *map(str, args)],
                          capture_output=True, text=True, cwd=cwd, env=e, timeout=timeout)


def run_main(main, *args, prog: str = "vertkp"):
    """Call a command's ``main(argv)`` in this process, as ``run_tool`` runs it in another:
    returns a CompletedProcess with its exit status, stdout and stderr (``prog`` is what
    ``sys.argv[0]`` says while it runs, so its messages name it)."""
    import contextlib
    import io

    out, err = io.StringIO(), io.StringIO()
    argv0, sys.argv[0] = sys.argv[0], prog
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = main([str(a) for a in args])
            except SystemExit as e:
                code = e.code
    finally:
        sys.argv[0] = argv0
    return subprocess.CompletedProcess([prog, *map(str, args)], int(code or 0), out.getvalue(), err.getvalue())


def load_tool(name: str, module_name: str = ""):
    """Import ``tools/<name>.py`` as a module (to call its ``main`` in-process)."""
    spec = importlib.util.spec_from_file_location(module_name or f"vertkp_tool_{name}", REPO / "tools" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


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


def make_phantom_set(root: Path) -> Path:
    """The tiny phantom set under ``root`` laid out as ``$VERTKP_DATASETS``
    (``root/phantoms/coco/{train,val}.json``), made with the library's one phantom
    maker (``ensure_phantoms``) and converter; returns ``root``."""
    from vertkp.data.datasets.spondylolisthesis import convert_spondylolisthesis
    from vertkp.phantoms.make import ensure_phantoms

    folder = Path(root) / "phantoms"
    ensure_phantoms("spondylolisthesis", folder, PHANTOM_IMAGES, PHANTOM_SEED, image_size=PHANTOM_SIZE,
                    progress=False)
    convert_spondylolisthesis(folder, progress=False)
    return Path(root)
