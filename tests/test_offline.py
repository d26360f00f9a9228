"""A machine without network: every shipped config builds, loads a trained model's weights and
predicts; HRNet's ImageNet weights are one MODEL.WEIGHTS file converted from timm's checkpoint; a
missing file or an unreachable weights URL says how to get it; a removed key says what replaces it."""
from pathlib import Path

import numpy as np
import pytest

from tests.helpers import DETECTRON2_SKIP_REASON, REPO, run_main

pytest.importorskip("detectron2", reason=DETECTRON2_SKIP_REASON)
import timm  # noqa: E402
import torch  # noqa: E402
from detectron2.checkpoint import DetectionCheckpointer  # noqa: E402
from detectron2.modeling import build_model  # noqa: E402

from vertkp.config import ConfigError, build_cfg  # noqa: E402
from vertkp.modeling.published import PUBLISHED_WEIGHTS  # noqa: E402
from vertkp.inference import VertebraPredictor  # noqa: E402
from vertkp.modeling.cli import main as convert_weights  # noqa: E402
from vertkp.modeling.weights import (D2_TIMM_PREFIX, WeightsError, check_weights, fetching,  # noqa: E402
                                     read_state_dict)

CONFIGS = sorted(p.relative_to(REPO).as_posix() for p in (REPO / "configs").rglob("*.yaml"))
HRNET = str(REPO / "configs" / "kprcnn_hrnet_w32.yaml")
MOBILENETV4 = str(REPO / "configs" / "kprcnn_mobilenetv4.yaml")
R50_INSTANT = str(REPO / "configs" / "quick_schedules" / "kprcnn_r50_instant_test.yaml")
R50_COCO_URL = "detectron2://COCO-Keypoints/keypoint_rcnn_R_50_FPN_3x/137849621/model_final_a6e10b.pkl"

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def timm_hrnet_w32():
    """A classification state dict of timm's hrnet_w32, as its hub checkpoint holds (random values)."""
    torch.manual_seed(0)
    return timm.create_model("hrnet_w32").state_dict()


@pytest.mark.slow
@pytest.mark.parametrize("config", CONFIGS)
def test_every_shipped_config_builds_loads_trained_weights_and_predicts_without_network(config, tmp_path, no_network):
    # a trained model of this config (random values), saved as training saves it
    torch.manual_seed(0)
    cfg = build_cfg(str(REPO / config), ["MODEL.DEVICE", "cpu"])
    DetectionCheckpointer(build_model(cfg), save_dir=str(tmp_path)).save("trained")
    # the shipped config as is, but for a small test size (what is tested is the network, not the size)
    predictor = VertebraPredictor(str(REPO / config), str(tmp_path / "trained.pth"), device="cpu",
                                  opts=["INPUT.MIN_SIZE_TEST", "160", "INPUT.MAX_SIZE_TEST", "256"])
    result = predictor((np.random.RandomState(0).rand(200, 160) * 255).astype(np.uint8))
    assert isinstance(result.vertebrae, list) and result.facing in ("left", "right")
    assert no_network == []  # nothing even tried to connect


def test_hrnet_imagenet_weights_are_one_converted_file_that_loads_exactly(timm_hrnet_w32, tmp_path, no_network):
    safetensors = pytest.importorskip("safetensors.torch")
    source = tmp_path / "model.safetensors"
    safetensors.save_file(timm_hrnet_w32, str(source))
    # a DataParallel-style torch checkpoint of the same weights converts to the same file
    wrapped = tmp_path / "wrapped.pth"
    torch.save({"state_dict": {f"module.{k}": v for k, v in timm_hrnet_w32.items()}}, wrapped)
    out, out2 = tmp_path / "w" / "hrnet_w32_imagenet.pth", tmp_path / "w2.pth"
    r = run_main(convert_weights, source, "--output", out)
    assert r.returncode == 0, r.stderr
    assert f"MODEL.WEIGHTS {out}" in r.stdout
    assert run_main(convert_weights, wrapped, "--output", out2).returncode == 0
    a, b = read_state_dict(out), read_state_dict(out2)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert all(k.startswith(D2_TIMM_PREFIX) for k in a) and not any("classifier" in k for k in a)

    cfg = build_cfg(HRNET, ["MODEL.DEVICE", "cpu", "MODEL.WEIGHTS", str(out)])
    assert cfg.MODEL.WEIGHTS == str(out)
    model = build_model(cfg).eval()
    DetectionCheckpointer(model).load(cfg.MODEL.WEIGHTS)
    features = timm.create_model("hrnet_w32", features_only=True, feature_location="", out_indices=(1, 2, 3, 4)).eval()
    features.load_state_dict({k: v for k, v in timm_hrnet_w32.items() if k in features.state_dict()})
    x = torch.randn(1, 3, 64, 96)
    with torch.no_grad():
        got, want = model.backbone.bottom_up(x), features(x)
    assert list(got) == ["c2", "c3", "c4", "c5"]
    for g, w in zip(got.values(), want):
        torch.testing.assert_close(g, w, rtol=1e-5, atol=1e-5)  # FrozenBN folds the same statistics
    assert no_network == []


def test_the_light_configs_imagenet_weights_convert_and_load_exactly(tmp_path, monkeypatch, no_network):
    """The MobileNetV4 config's weights: timm's classification checkpoint (random values here, with
    batch-norm statistics that are not the identity) -> `vertkp convert-weights --model` -> the file its
    MODEL.WEIGHTS names, which gives the same maps as timm's own features model."""
    safetensors = pytest.importorskip("safetensors.torch")
    torch.manual_seed(0)
    timm_model = timm.create_model("mobilenetv4_conv_small")
    sd = timm_model.state_dict()
    for k, v in sd.items():  # statistics of a trained model, which FrozenBN must carry over
        if k.endswith("running_mean"):
            v.uniform_(-0.5, 0.5)
        elif k.endswith("running_var"):
            v.uniform_(0.5, 2.0)
    safetensors.save_file(sd, str(tmp_path / "model.safetensors"))
    w = PUBLISHED_WEIGHTS["mobilenetv4-conv-small-imagenet"]
    assert w.timm_model == "mobilenetv4_conv_small"
    assert Path(MOBILENETV4).read_text().count(f'WEIGHTS: "weights/{w.output}"') == 1
    monkeypatch.chdir(tmp_path)  # --output left out: weights/<model>_imagenet.pth, the file the config names
    with pytest.raises(WeightsError, match=rf"vertkp download mobilenetv4-conv-small-imagenet.*"
                                           rf"convert-weights FILE --model mobilenetv4_conv_small"):
        check_weights(f"weights/{w.output}")  # not made yet: the message says how
    r = run_main(convert_weights, tmp_path / "model.safetensors", "--model", w.timm_model)
    assert r.returncode == 0, r.stderr
    out = tmp_path / "weights" / w.output
    assert out.is_file() and f"MODEL.WEIGHTS weights/{w.output}" in r.stdout

    cfg = build_cfg(MOBILENETV4, ["MODEL.DEVICE", "cpu", "MODEL.WEIGHTS", str(out)])
    model = build_model(cfg).eval()
    DetectionCheckpointer(model).load(cfg.MODEL.WEIGHTS)
    features = timm.create_model(w.timm_model, features_only=True, out_indices=(1, 2, 3, 4)).eval()
    features.load_state_dict({k: v for k, v in sd.items() if k in features.state_dict()})
    x = torch.randn(1, 3, 64, 96)
    with torch.no_grad():
        got, want = model.backbone.bottom_up(x), features(x)
    assert [tuple(g.shape[1:2]) for g in got.values()] == [(32,), (64,), (96,), (960,)]
    for g, v in zip(got.values(), want):
        torch.testing.assert_close(g, v, rtol=1e-4, atol=1e-4)
    assert no_network == []


def test_convert_weights_refuses_what_is_not_the_models_checkpoint(timm_hrnet_w32, tmp_path):
    out = tmp_path / "out.pth"
    torch.save(timm.create_model("hrnet_w18").state_dict(), tmp_path / "w18.pth")  # narrower: same keys
    torch.save({k: v for k, v in timm_hrnet_w32.items() if not k.startswith("stage4")}, tmp_path / "part.pth")
    (tmp_path / "notes.pth").write_text("not a checkpoint")
    cases = {"w18.pth": "other shapes than the model's", "part.pth": "lacks",
             "notes.pth": "not a readable checkpoint", "missing.pth": "no such file"}
    for name, problem in cases.items():
        r = run_main(convert_weights, tmp_path / name, "--output", out)
        assert r.returncode == 2 and problem in r.stderr and name in r.stderr, (name, r.stderr)
    r = run_main(convert_weights, tmp_path / "w18.pth", "--model", "hrnet_w99", "--output", out)
    assert r.returncode == 2 and "--model hrnet_w99" in r.stderr
    assert not out.exists() and not list(tmp_path.glob(".*tmp"))  # nothing written, nothing half-written


def test_a_removed_key_says_what_replaces_it(tmp_path):
    with pytest.raises(ConfigError, match=r"MODEL.TIMM.PRETRAINED is no longer .* MODEL.WEIGHTS.*"
                                          r"vertkp download hrnet-w32-imagenet"):
        build_cfg(HRNET, ["MODEL.TIMM.PRETRAINED", "imagenet"])
    old = tmp_path / "old.yaml"
    old.write_text(f'_BASE_: "{HRNET}"\nMODEL:\n  TIMM:\n    PRETRAINED: "imagenet"\n')
    with pytest.raises(ConfigError, match="no longer a vertkp config key"):
        build_cfg(str(old))
    old.write_text(f'_BASE_: "{HRNET}"\nMODEL:\n  TIMM_HRNET:\n    NAME: "hrnet_w18"\n')
    with pytest.raises(ConfigError, match=r"MODEL.TIMM_HRNET is no longer .* MODEL.TIMM now.*c2..c5"):
        build_cfg(str(old))
    with pytest.raises((KeyError, AssertionError), match="MODEL.NOT_A_KEY"):  # other unknown keys: yacs' own error
        build_cfg(HRNET, ["MODEL.NOT_A_KEY", "1"])


def test_missing_weights_name_the_command_that_makes_them(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no weights/ here
    hrnet = build_cfg(HRNET).MODEL.WEIGHTS
    assert hrnet == "weights/" + PUBLISHED_WEIGHTS["hrnet-w32-imagenet"].output
    with pytest.raises(WeightsError, match=r"MODEL.WEIGHTS weights/hrnet_w32_imagenet.pth does not exist: .*"
                                           r"vertkp download hrnet-w32-imagenet.*vertkp convert-weights"):
        check_weights(hrnet)
    with pytest.raises(WeightsError, match="vertkp download kprcnn-r50-coco"):
        check_weights("weights/model_final_a6e10b.pkl")
    with pytest.raises(WeightsError, match="is a folder"):
        check_weights(str(tmp_path))
    with pytest.raises(WeightsError, match="copy the file onto this machine"):
        check_weights("output/run/model_best.pth")
    for fine in ("", R50_COCO_URL, "https://example.org/w.pth"):
        check_weights(fine)


def test_an_unreachable_weights_url_says_how_to_get_the_file(tmp_path, monkeypatch, no_network):
    monkeypatch.setenv("FVCORE_CACHE", str(tmp_path / "cache"))  # not a cached copy of a developer's
    with pytest.raises(WeightsError, match=r"could not fetch MODEL.WEIGHTS detectron2://.*"
                                           r"vertkp download kprcnn-r50-coco"):
        VertebraPredictor(R50_INSTANT, R50_COCO_URL, device="cpu")
    assert no_network  # it tried, and was told


@pytest.mark.slow
def test_train_and_eval_only_with_the_hrnet_config_offline(tmp_path, monkeypatch, registered_phantoms, no_network):
    from vertkp.engine.cli import main as train_main

    monkeypatch.chdir(tmp_path)
    small = ["DATASETS.TRAIN", "('phantoms_train',)", "DATASETS.TEST", "('phantoms_val',)", "INPUT.MIN_SIZE_TEST",
             "128", "INPUT.MAX_SIZE_TEST", "256", "VERTKP.COCO_EVAL", "False", "VERTKP.EVAL_PLOTS", "False"]
    # training from ImageNet before `vertkp download hrnet-w32-imagenet`: refused, with the command
    r = run_main(train_main, "--config-file", HRNET, *small, "OUTPUT_DIR", tmp_path / "train")
    assert r.returncode == 2 and "vertkp download hrnet-w32-imagenet" in r.stderr
    # evaluating a trained model: nothing fetched
    torch.manual_seed(0)
    DetectionCheckpointer(build_model(build_cfg(HRNET, ["MODEL.DEVICE", "cpu"])), save_dir=str(tmp_path)).save("trained")
    r = run_main(train_main, "--config-file", HRNET, "--eval-only", *small, "MODEL.WEIGHTS", tmp_path / "trained.pth",
                 "OUTPUT_DIR", tmp_path / "eval")
    assert r.returncode == 0, r.stderr[-3000:]
    assert (tmp_path / "eval" / "eval_results.json").is_file()
    assert no_network == []
    assert not Path("weights").exists()  # nothing was made behind the user's back


def test_fetching_leaves_local_errors_alone(tmp_path):
    with pytest.raises(FileNotFoundError, match="x.pth"):
        with fetching(str(tmp_path / "x.pth")):
            raise FileNotFoundError(str(tmp_path / "x.pth"))
