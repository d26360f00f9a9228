"""tools/train_net.py end to end on phantoms: train, checkpoint, --eval-only, resume; the best-checkpoint hook."""
import json
from pathlib import Path

import pytest

from tests.helpers import DETECTRON2_SKIP_REASON, load_tool

pytest.importorskip("detectron2", reason=DETECTRON2_SKIP_REASON)
import torch  # noqa: E402


REPO = Path(__file__).resolve().parents[1]
INSTANT = {m: REPO / "configs" / "quick_schedules" / f"kprcnn_{m}_instant_test.yaml" for m in ("r50", "hrnet_w32")}
METRICS = ("MRE_px", "SDR_px@12", "det_F1", "slip_MAE_pp", "grade_acc")


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.mark.slow
@pytest.mark.parametrize("model", sorted(INSTANT))
def test_instant_config_trains_checkpoints_and_evaluates(model, tmp_path, run_tool, phantom_root):
    env = {"VERTKP_DATASETS": str(phantom_root), "OMP_NUM_THREADS": "1"}
    out = tmp_path / "train"
    r = run_tool("train_net", "--config-file", INSTANT[model], "OUTPUT_DIR", out, env=env)
    assert r.returncode == 0, r.stderr[-3000:]
    assert (out / "model_final.pth").is_file()
    assert (out / "last_checkpoint").read_text().strip() == "model_final.pth"
    ckpt = torch.load(out / "model_final.pth", map_location="cpu", weights_only=False)
    assert ckpt["iteration"] == 2  # MAX_ITER 3: iterations 0, 1, 2
    assert any(k.startswith("roi_heads.keypoint_head") for k in ckpt["model"])

    ev = tmp_path / "eval"
    r = run_tool("train_net", "--config-file", INSTANT[model], "--eval-only", "MODEL.WEIGHTS", out / "model_final.pth",
                 "OUTPUT_DIR", ev, env=env)
    assert r.returncode == 0, r.stderr[-3000:]
    results = json.loads((ev / "eval_results.json").read_text())
    assert set(METRICS) <= set(results["vertkp"])
    assert results["vertkp"]["n_images"] >= 1 and results["vertkp"]["n_gt_vertebrae"] >= 1
    assert "AP" in results["keypoints"] and "AP" in results["bbox"]  # COCO AP with the 4 vertkp sigmas
    metrics = json.loads((ev / "inference" / "phantoms_val" / "metrics.json").read_text())
    # the evaluation predicts with flip TTA (the configs' TEST.AUG): the flags' calibration is measured
    assert metrics["calibration"]["tta"] is True and set(metrics["calibration"]["flags"]) >= {"unstable_corner", "any"}


@pytest.mark.slow
def test_dataset_not_converted_is_a_clear_error(tmp_path, run_tool):
    r = run_tool("train_net", "--config-file", INSTANT["r50"], "OUTPUT_DIR", tmp_path / "o",
                 env={"VERTKP_DATASETS": str(tmp_path / "empty"), "OMP_NUM_THREADS": "1"})
    assert r.returncode == 2
    assert "error: dataset 'phantoms_train' needs" in r.stderr and "vertkp phantoms" in r.stderr


class _Interrupt(Exception):
    pass


@pytest.mark.slow
def test_resume_continues_from_the_last_checkpoint_with_nothing_lost(tmp_path, registered_phantoms):
    """Train 4 iterations with a checkpoint every 2, stop after the 3rd, resume, finish."""
    from detectron2.engine import HookBase

    from vertkp.config import build_cfg
    from vertkp.engine import Trainer

    class StopAfter(HookBase):
        def __init__(self, it):
            self.it = it

        def after_step(self):
            if self.trainer.iter == self.it:
                raise _Interrupt()

    cfg = build_cfg(str(INSTANT["r50"]), ["OUTPUT_DIR", str(tmp_path), "SOLVER.MAX_ITER", "4",
                                           "SOLVER.CHECKPOINT_PERIOD", "2", "SOLVER.STEPS", "(3,)",
                                           "SOLVER.WARMUP_ITERS", "0", "DATASETS.TEST", "()"])
    first = Trainer(cfg)
    first.register_hooks([StopAfter(2)])
    first.resume_or_load(resume=True)
    with pytest.raises(_Interrupt):
        first.train()
    assert (tmp_path / "last_checkpoint").read_text().strip() == "model_0000001.pth"
    saved = torch.load(tmp_path / "model_0000001.pth", map_location="cpu", weights_only=False)
    del first

    second = Trainer(cfg)
    second.resume_or_load(resume=True)
    assert second.start_iter == 2 and saved["iteration"] == 1
    saved_optimizer = saved["trainer"]["_trainer"]["optimizer"]["state"]
    state = second.optimizer.state_dict()["state"]
    assert state and state.keys() == saved_optimizer.keys()
    for k, v in saved_optimizer.items():  # SGD momentum buffers restored
        torch.testing.assert_close(state[k]["momentum_buffer"], v["momentum_buffer"])
    assert second.scheduler.last_epoch == 2 == saved["trainer"]["hooks"]["LRScheduler"]["last_epoch"]
    for name, w in second.model.state_dict().items():
        torch.testing.assert_close(w, saved["model"][name])
    second.train()
    final = torch.load(tmp_path / "model_final.pth", map_location="cpu", weights_only=False)
    assert final["iteration"] == 3 and final["trainer"]["hooks"]["LRScheduler"]["last_epoch"] == 4
    lrs = [json.loads(line).get("lr") for line in (tmp_path / "metrics.json").read_text().splitlines()]
    assert lrs[-1] == pytest.approx(cfg.SOLVER.BASE_LR * cfg.SOLVER.GAMMA)  # the step at 3 happened


class _Storage:
    def __init__(self):
        self.values = {}

    def latest(self):
        return self.values


class _Checkpointer:
    def __init__(self, d):
        self.save_dir, self.saved = str(d), []

    def save(self, name, **extra):
        self.saved.append((name, extra["iteration"]))


class _FakeTrainer:
    def __init__(self, start_iter=0, max_iter=10):
        self.storage, self.iter, self.start_iter, self.max_iter = _Storage(), 0, start_iter, max_iter


def test_best_checkpointer_keeps_the_lowest_mre_across_a_resume(tmp_path):
    from vertkp.engine import BestCheckpointer

    ck = _Checkpointer(tmp_path)
    hook = BestCheckpointer(2, ck, "vertkp/MRE_px", "min", metric_prefixes=["phantoms_val"])
    hook.trainer = _FakeTrainer()
    hook.before_train()
    for it, mre in [(1, 5.0), (3, 3.0), (5, 4.0), (7, float("nan"))]:
        hook.trainer.iter = it
        hook.trainer.storage.values = {"phantoms_val/vertkp/MRE_px": (mre, it)}
        hook.after_step()
    assert ck.saved == [("model_best", 1), ("model_best", 3)]
    assert json.loads((tmp_path / "model_best.json").read_text()) == {
        "metric": "vertkp/MRE_px", "mode": "min", "value": 3.0, "iteration": 3}

    resumed = BestCheckpointer(2, ck, "vertkp/MRE_px", "min")
    resumed.trainer = _FakeTrainer(start_iter=6)
    resumed.before_train()
    assert resumed.best_metric == 3.0
    resumed.trainer.iter = 9  # the last iteration: after_train evaluates
    resumed.trainer.storage.values = {"vertkp/MRE_px": (3.5, 9)}
    resumed.after_train()
    assert ck.saved[-1] == ("model_best", 3)  # 3.5 is worse than the 3.0 from before the interruption
    with pytest.raises(ValueError, match="BEST_MODE"):
        BestCheckpointer(2, ck, "vertkp/MRE_px", "lowest")


def test_train_net_refuses_more_gpus_than_visible(tmp_path, capsys):
    if torch.cuda.device_count() >= 2:
        pytest.skip("two GPUs are visible")
    train_net = load_tool("train_net")
    assert train_net.main(["--config-file", str(INSTANT["r50"]), "--num-gpus", "2", "OUTPUT_DIR", str(tmp_path)]) == 2
    assert "--num-gpus 2" in capsys.readouterr().err
