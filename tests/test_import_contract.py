"""The import contract: the torch-free part never imports torch or detectron2; the
detectron2-facing part registers vertkp's datasets and backbone whatever the import order;
without detectron2 the torch-free part still works and the rest says what is missing."""
import json
import os
import subprocess
import sys

import pytest

from tests.helpers import DETECTRON2_SKIP_REASON, NO_DETECTRON2, REPO

# The modules behind vertkp convert, phantoms and evaluate, and the rest of the numpy side
# (vertkp.inference imports its predictor when detectron2 is installed, so it is not here).
TORCH_FREE = ("vertkp", "vertkp.cli", "vertkp.data", "vertkp.convert", "vertkp.data.imaging.images", "vertkp.phantoms",
              "vertkp.phantoms.cli", "vertkp.grading", "vertkp.evaluation", "vertkp.evaluation.cli", "vertkp.files",
              "vertkp.anatomy", "vertkp.keypoints", "vertkp.keypoint_decoding", "vertkp.review", "vertkp.phantoms.make",
              "vertkp.data.raw.download", "vertkp.modeling", "vertkp.modeling.outputs", "vertkp.modeling.fusion",
              "vertkp.modeling.published", "vertkp.benchmark.cli")
REGISTERED = '''
import json
from detectron2.data import DatasetCatalog
from detectron2.modeling import BACKBONE_REGISTRY
print(json.dumps({"datasets": sorted(DatasetCatalog.list()),
                  "hrnet": "build_timm_fpn_backbone" in BACKBONE_REGISTRY}))
'''


def _python(code: str, env=None):
    r = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=300,
                       env=dict(os.environ, PYTHONWARNINGS="ignore", **(env or {})))
    assert r.returncode == 0, r.stderr[-3000:]
    return r.stdout


def test_the_torch_free_part_imports_neither_torch_nor_detectron2():
    out = _python("import importlib, json, sys\n"
                  f"for m in {TORCH_FREE!r}: importlib.import_module(m)\n"
                  "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'detectron2'))))\n"
                  "print(type(sys.meta_path[0]).__module__)")
    heavy, first_finder = out.splitlines()
    assert json.loads(heavy) == []
    assert not first_finder.startswith("vertkp")  # no import hook of vertkp's


@pytest.mark.slow
@pytest.mark.parametrize("first", ["vertkp.config", "detectron2.data"])
def test_vertkp_config_registers_datasets_and_backbone_in_either_order(first):
    pytest.importorskip("detectron2", reason=DETECTRON2_SKIP_REASON)
    second = "detectron2.data" if first == "vertkp.config" else "vertkp.config"
    got = json.loads(_python(f"import {first}\nimport {second}\n{REGISTERED}"))
    assert got["hrnet"] is True
    assert {"phantoms_train", "spondylolisthesis_val", "buu_lspine_lateral_train"} <= set(got["datasets"])


@pytest.mark.slow
def test_add_vertkp_config_is_all_build_model_needs_for_the_hrnet_config():
    pytest.importorskip("detectron2", reason=DETECTRON2_SKIP_REASON)
    out = _python(
        "from detectron2.config import get_cfg\n"
        "from detectron2.modeling import build_model\n"
        "from vertkp.config import add_vertkp_config\n"
        "cfg = get_cfg()\n"
        "add_vertkp_config(cfg)\n"
        "cfg.merge_from_file('configs/kprcnn_hrnet_w32.yaml')\n"
        "cfg.merge_from_list(['MODEL.DEVICE', 'cpu'])\n"
        "print(type(build_model(cfg).backbone.bottom_up).__name__)")
    assert out.strip() == "TimmBackbone"


@pytest.mark.slow
def test_without_detectron2_the_torch_free_part_works_and_the_rest_says_why(tmp_path):
    (tmp_path / "sitecustomize.py").write_text(NO_DETECTRON2)
    env = {"PYTHONPATH": str(tmp_path)}
    out = _python("import importlib, vertkp\n"
                  f"for m in {TORCH_FREE!r}: importlib.import_module(m)\n"
                  "import vertkp.inference, vertkp.inference.cli\n"
                  "print(vertkp.HAS_DETECTRON2, hasattr(vertkp.inference, 'VertebraPredictor'))\n"
                  "try:\n    import vertkp.config\nexcept ImportError as e:\n    print(e)", env=env)
    assert out.splitlines() == ["False False", "No module named 'detectron2'"]
