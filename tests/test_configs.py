"""Every config file loads, passes the checks and builds its model; config keys; pitfall errors."""
import ast
from pathlib import Path

import pytest

from tests.helpers import DETECTRON2_SKIP_REASON

pytest.importorskip("detectron2", reason=DETECTRON2_SKIP_REASON)
import torch  # noqa: E402
from detectron2.data import DatasetCatalog, MetadataCatalog  # noqa: E402
from detectron2.modeling import build_model  # noqa: E402

from vertkp.config import build_cfg  # noqa: E402
from vertkp.data.loading.registration import DATASETS  # noqa: E402
from vertkp.engine import ConfigError, check_config  # noqa: E402
from vertkp.keypoints import OKS_SIGMAS  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
CONFIGS = sorted(p.relative_to(REPO / "configs").as_posix() for p in (REPO / "configs").rglob("*.yaml"))
R50_INSTANT = str(REPO / "configs" / "quick_schedules" / "kprcnn_r50_instant_test.yaml")


def test_the_expected_configs_exist():
    assert {"Base-KPRCNN.yaml", "kprcnn_r50.yaml", "kprcnn_hrnet_w32.yaml", "kprcnn_r50_buu_lateral.yaml",
            "kprcnn_hrnet_w32_buu_lateral.yaml", "kprcnn_r50_phantoms.yaml", "kprcnn_hrnet_w32_phantoms.yaml",
            "quick_schedules/kprcnn_r50_instant_test.yaml",
            "quick_schedules/kprcnn_hrnet_w32_instant_test.yaml", "kprcnn_mobilenetv4.yaml",
            "kprcnn_mobilenetv4_phantoms.yaml", "quick_schedules/kprcnn_mobilenetv4_instant_test.yaml"} <= set(CONFIGS)


@pytest.mark.parametrize("name", CONFIGS)
def test_config_loads_and_builds_its_model(name):
    cfg = build_cfg(str(REPO / "configs" / name))  # building reads no weights (tests/test_offline.py)
    assert cfg.MODEL.KEYPOINT_ON and cfg.MODEL.ROI_KEYPOINT_HEAD.NUM_KEYPOINTS == 4
    assert cfg.MODEL.ROI_HEADS.NUM_CLASSES == 1
    assert list(cfg.TEST.KEYPOINT_OKS_SIGMAS) == list(OKS_SIGMAS)
    assert set(cfg.DATASETS.TRAIN) | set(cfg.DATASETS.TEST) <= set(DATASETS)
    assert cfg.MODEL.DEVICE == ("cuda" if torch.cuda.is_available() else "cpu")
    check_config(cfg, load_datasets=False)
    timm = cfg.MODEL.BACKBONE.NAME == "build_timm_fpn_backbone"
    assert ("hrnet" in name or "mobilenetv4" in name) == timm
    if "r50" in name or "Base" in name:
        assert cfg.MODEL.RESNETS.DEPTH == 50
    if name.startswith("kprcnn_") and "phantoms" not in name:  # user configs start from pretrained weights
        assert cfg.MODEL.WEIGHTS.startswith("detectron2://") if "r50" in name else \
            cfg.MODEL.WEIGHTS == f"weights/{cfg.MODEL.TIMM.NAME}_imagenet.pth"
    else:
        assert cfg.MODEL.WEIGHTS == ""
    model = build_model(cfg)
    assert model.roi_heads.keypoint_head.score_lowres.out_channels == 4
    assert sorted(model.backbone.output_shape()) == ["p2", "p3", "p4", "p5", "p6"]
    assert model.backbone.size_divisibility == 32


def test_every_project_key_has_a_one_line_comment():
    src = (REPO / "vertkp" / "config.py").read_text().splitlines()
    tree = next(n for n in ast.walk(ast.parse("\n".join(src)))
                if isinstance(n, ast.FunctionDef) and n.name == "add_vertkp_config")
    assigns = [n for n in ast.walk(tree) if isinstance(n, ast.Assign)
               and ast.unparse(n.targets[0]).startswith("cfg.") and not ast.unparse(n.value).startswith("CN(")]
    assert len(assigns) > 20
    for n in assigns:
        above, line = src[n.lineno - 2].strip(), src[n.lineno - 1].strip()
        assert above.startswith("#") and len(above) > 10, f"config.py line {n.lineno}: {line} needs a comment"


def _cfg(*opts):
    return build_cfg(R50_INSTANT, list(opts), freeze=False)


def test_wrong_number_of_oks_sigmas_says_what_to_set():
    with pytest.raises(ConfigError, match=r"TEST.KEYPOINT_OKS_SIGMAS .* 4 positive numbers"):
        check_config(_cfg("TEST.KEYPOINT_OKS_SIGMAS", "[0.05, 0.05]"), load_datasets=False)
    with pytest.raises(ConfigError, match="NUM_KEYPOINTS is 17"):
        check_config(_cfg("MODEL.ROI_KEYPOINT_HEAD.NUM_KEYPOINTS", "17"), load_datasets=False)
    with pytest.raises(ConfigError, match="INPUT.RANDOM_FLIP is .vertical.: set it to .horizontal. or .none."):
        check_config(_cfg("INPUT.RANDOM_FLIP", "vertical"), load_datasets=False)


def test_missing_flip_map_says_what_to_set(tmp_path):
    name, other = "vertkp_test_no_flip_map", "vertkp_test_other_names"
    for n, names in ((name, ["TL", "TR", "BL", "BR"]), (other, ["a", "b", "c", "d"])):
        DatasetCatalog.register(n, lambda: [])
        MetadataCatalog.get(n).set(keypoint_names=names, thing_classes=["vertebra"])
    try:
        with pytest.raises(ConfigError, match="keypoint_flip_map missing.*even with flipping off"):
            check_config(_cfg("DATASETS.TRAIN", f"('{name}',)"), load_datasets=False)
        check_config(_cfg("DATASETS.TEST", f"('{name}',)"), training=False, load_datasets=False)  # eval needs none
        with pytest.raises(ConfigError, match="keypoint_names"):
            check_config(_cfg("DATASETS.TEST", f"('{other}',)"), training=False, load_datasets=False)
    finally:
        for n in (name, other):
            DatasetCatalog.remove(n)
            MetadataCatalog.remove(n)
    with pytest.raises(ConfigError, match="not registered"):
        check_config(_cfg("DATASETS.TRAIN", "('nowhere',)"), load_datasets=False)


def test_dataset_not_converted_gives_the_command(tmp_path, monkeypatch):
    from vertkp.data.loading.registration import register_all

    monkeypatch.setenv("VERTKP_DATASETS", str(tmp_path))
    register_all()
    try:
        with pytest.raises(ConfigError, match="vertkp convert --dataset spondylolisthesis"):
            check_config(_cfg("DATASETS.TRAIN", "('spondylolisthesis_train',)"))
    finally:
        monkeypatch.delenv("VERTKP_DATASETS")
        register_all()


def test_cpu_fallback_and_amp_off_without_cuda():
    cfg = _cfg("MODEL.DEVICE", "cuda", "SOLVER.AMP.ENABLED", "True")
    if torch.cuda.is_available():
        pytest.skip("CUDA is available here")
    assert cfg.MODEL.DEVICE == "cpu" and not cfg.SOLVER.AMP.ENABLED


def test_missing_config_file():
    with pytest.raises(FileNotFoundError, match="does not exist"):
        build_cfg(str(REPO / "configs" / "nope.yaml"))
