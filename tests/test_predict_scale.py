"""vertkp predict at scale: predictions.jsonl streamed as images are predicted, read-ahead,
--resume, sharding over processes (--num-workers), --no-json; and, without detectron2, the
incremental summary, the streamed JSON writer and the merge and resume of jsonl lines. The
runs use the instant config with random weights, score threshold 0 (as tests/test_predict.py)."""
import json
import os
import shutil
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from tests.helpers import DETECTRON2_SKIP_REASON, INSTANT_CONFIG, random_weights, run_main
from tests.helpers.raw import quad
from vertkp import HAS_DETECTRON2
from vertkp.files import write_json, write_json_stream
from vertkp.inference import build_prediction
from vertkp.inference.outputs import RunSummary, summarize
from vertkp.inference.stream import (failure_line, keep_predicted, merge_lines, prediction_line, read_ahead,
                                     read_lines, resume_conflicts, shard_file)

CONFIG = INSTANT_CONFIG
FILES = ("predictions.json", "predictions.jsonl", "report.csv", "coco_results.json")
needs_detectron2 = pytest.mark.skipif(not HAS_DETECTRON2, reason=DETECTRON2_SKIP_REASON)


# ---- without a model ------------------------------------------------------------------------------
def _predictions():
    """Hand-built predictions: a graded spine with a missed vertebra, an unmeasurable straight one, none."""
    def boxes(c):
        return np.concatenate([c.min(axis=1), c.max(axis=1)], axis=1)

    spine = np.array([quad(300 + (37.5 if k < 2 else 0), 100 + 90 * k + (80 if k > 2 else 0), 100, 60)
                      for k in range(5)])
    straight = np.array([quad(300, 100 + 90 * k, 100, 60) for k in range(3)])
    out = [build_prediction(spine, np.full((5, 4), 0.9), np.linspace(0.3, 0.99, 5), boxes(spine), image="a.png",
                            height=900, width=600, facing="right"),
           build_prediction(straight, np.full((3, 4), 0.2), np.ones(3), boxes(straight), image="b.png", height=500,
                            width=600),
           build_prediction(np.zeros((0, 4, 2)), np.zeros((0, 4)), np.zeros(0), np.zeros((0, 4)), image="c.png",
                            height=10, width=10)]
    for k, p in enumerate(out):
        p.image_id = k + 1
    return out


def test_the_incremental_summary_is_summarize():
    preds = _predictions()
    failures = [{"image": "x.png", "error": "bad"}, {"image": "y", "error": "no such file or folder"}]
    expected = summarize(preds, failures)
    assert expected["pairs"] > 0 and expected["images_per_flag"] and expected["failed"] == 2
    acc = RunSummary()
    for p in preds:  # as predictions.jsonl holds them: as_dict(), NaN as null
        acc.add(json.loads(prediction_line(0, p.image, p))["prediction"])
    for _ in failures:
        acc.add_failure()
    assert acc.as_dict() == expected
    assert list(acc.as_dict()) == list(expected)  # the same order, for predictions.json
    assert summarize([p.as_dict() for p in preds], failures) == expected == summarize(preds[::-1], failures)


def test_streamed_json_is_write_json_byte_for_byte(tmp_path):
    preds = _predictions()
    for indent in (1, None):
        write_json(tmp_path / "a.json", {"settings": {"x": [1, 2]}, "images": [p.as_dict() for p in preds],
                                         "failures": [], "n": float("nan")}, indent=indent)
        write_json_stream(tmp_path / "b.json", {"settings": {"x": [1, 2]}, "images": (p.as_dict() for p in preds),
                                                "failures": iter(()), "n": float("nan")}, indent=indent)
        assert (tmp_path / "a.json").read_bytes() == (tmp_path / "b.json").read_bytes()
    write_json(tmp_path / "a.json", [])
    write_json_stream(tmp_path / "b.json", iter(()))
    assert (tmp_path / "a.json").read_text() == (tmp_path / "b.json").read_text() == "[]\n"


def test_shards_merge_in_input_order_and_resume_keeps_predicted_lines_reindexed(tmp_path):
    preds = _predictions()
    paths = [p.image for p in preds] + ["d.png"]
    lines = [prediction_line(k, p.image, p) for k, p in enumerate(preds)] + [failure_line(3, "d.png", "bad")]
    for rank in (0, 1):  # input k went to rank k % 2
        shard_file(tmp_path, rank).parent.mkdir(exist_ok=True)
        shard_file(tmp_path, rank).write_text("".join(lines[rank::2]))
    merged = merge_lines([(tmp_path / "predictions.jsonl", 0, None)]
                         + [(shard_file(tmp_path, r), 0, None) for r in (0, 1)], tmp_path / "predictions.jsonl")
    assert merged.read_text() == "".join(lines)
    # a sharded run stopped before the merge: --resume keeps the shards' predicted lines, in input order
    merged.unlink()
    for rank in (0, 1):
        shard_file(tmp_path, rank).write_text("".join(lines[rank::2]))
    assert keep_predicted(tmp_path, paths, [1, 2, 3, 4]) == 3  # d.png failed: tried again
    assert merged.read_text() == "".join(lines[:3]) and not (tmp_path / "shards").exists()
    # a run stopped while writing its 3rd line, resumed with b.png gone from the inputs
    merged.write_text(lines[0] + lines[1] + lines[2][:40])
    notes = []
    assert keep_predicted(tmp_path, [paths[0], paths[2], paths[3]], [1, 2, 3], notes.append) == 1
    assert "truncated last line" in notes[0]
    assert [(line["index"], line["input"]) for line in read_lines(merged)] == [(0, "a.png")]
    # the image id changed (a.png is now input 2, id 3): its COCO results would be wrong, it is predicted again
    merged.write_text(lines[0])
    assert keep_predicted(tmp_path, ["z.png", "y.png", "a.png"], [1, 2, 3], notes.append) == 0
    assert resume_conflicts({"weights": "w", "device": "cpu", "tta": None}, {"weights": "v", "device": "cuda"}) == [
        "weights"]


def test_reading_runs_at_most_two_batches_ahead_in_order():
    read = []

    def load(k):
        read.append(k)
        return k * 10

    batches = read_ahead(load, list(range(9)), batch_size=2)
    first = next(batches)
    deadline = time.time() + 5
    while len(read) < 6 and time.time() < deadline:  # batches 1 and 2 are read meanwhile, in the thread
        time.sleep(0.01)
    assert first == [(0, 0), (1, 10)] and sorted(read) == list(range(6))
    assert threading.active_count() >= 2
    assert [b for b in batches] == [[(2, 20), (3, 30)], [(4, 40), (5, 50)], [(6, 60), (7, 70)], [(8, 80)]]


# ---- with the model --------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def weights(tmp_path_factory, one_torch_thread):
    """A checkpoint of the instant config with random weights (and one torch thread for the module)."""
    return random_weights(tmp_path_factory.mktemp("weights"), CONFIG)


@pytest.fixture(scope="module")
def xrays(phantom_root, tmp_path_factory):
    """A folder of 4 phantom images a..d.jpg and z_broken.png, which is no image."""
    folder = tmp_path_factory.mktemp("xrays")
    images = sorted((phantom_root / "phantoms").rglob("*.jpg"))
    for name, src in zip("abcd", images):
        shutil.copy(src, folder / f"{name}.jpg")
    (folder / "z_broken.png").write_bytes(b"not a png")
    return folder


def _predict(weights, inputs, out, *flags):
    """``vertkp predict`` in this process (one torch thread: the same floats in every process)."""
    from vertkp.inference.cli import main

    return run_main(main, "--config-file", CONFIG, "--weights", weights, "--input", inputs, "--output", out,
                    "--score-threshold", "0", "--facing", "left", "--device", "cpu", "--no-progress", "--threads", "1",
                    *flags, prog="vertkp predict")


@pytest.fixture(scope="module")
def single(weights, xrays, tmp_path_factory):
    """(OUT, result) of one process predicting ``xrays``."""
    out = tmp_path_factory.mktemp("single") / "out"
    r = _predict(weights, xrays, out)
    assert r.returncode == 1, r.stdout + r.stderr  # z_broken.png failed
    return out, r


def _assert_same_files(a: Path, b: Path):
    """The files of two runs are the same bytes but predictions.json's settings.output."""
    for name in FILES:
        x, y = (a / name).read_bytes(), (b / name).read_bytes()
        if name == "predictions.json":
            x, y = json.loads(x), json.loads(y)
            assert (x["settings"].pop("output"), y["settings"].pop("output")) == (str(a), str(b))
        assert x == y, name
    overlays = sorted(p.name for p in (a / "overlays").iterdir())
    assert overlays and overlays == sorted(p.name for p in (b / "overlays").iterdir())
    for name in overlays:
        assert (a / "overlays" / name).read_bytes() == (b / "overlays" / name).read_bytes(), name


@needs_detectron2
def test_jsonl_lines_are_the_json_files_entries_and_a_broken_image_a_failure_line(single, xrays):
    out, r = single
    lines = [json.loads(t) for t in (out / "predictions.jsonl").read_text().splitlines()]
    paths = [str(xrays / n) for n in ("a.jpg", "b.jpg", "c.jpg", "d.jpg", "z_broken.png")]
    assert [(line["index"], line["input"]) for line in lines] == list(enumerate(paths))
    pred = json.loads((out / "predictions.json").read_text())
    assert [line["prediction"] for line in lines[:4]] == pred["images"]
    assert [p["image_id"] for p in pred["images"]] == [1, 2, 3, 4]
    assert lines[4] == {"index": 4, "input": paths[4], "failure": pred["failures"][0]}
    assert "not a readable image" in pred["failures"][0]["error"]
    results = json.loads((out / "coco_results.json").read_text())
    assert results and results == [c for line in lines[:4] for c in line["coco_results"]]
    assert pred["summary"] == summarize(pred["images"], pred["failures"])
    assert "images: 5 (4 predicted, 1 failed)" in r.stdout and "failed: " in r.stdout
    # streamed, predictions.json is the file write_json writes of the object in memory
    write_json(out.parent / "in_memory.json", pred)
    assert (out.parent / "in_memory.json").read_bytes() == (out / "predictions.json").read_bytes()
    assert sorted(p.name for p in (out / "overlays").iterdir()) == ["a.png", "b.png", "c.png", "d.png"]
    run = json.loads((out / "predict_run.json").read_text())
    assert run == {k: v for k, v in pred["settings"].items() if k != "inputs"}
    assert not {"num_workers", "threads", "resume", "no_json", "num_gpus"} & set(pred["settings"])


@needs_detectron2
@pytest.mark.slow
def test_two_worker_processes_write_the_files_of_one(single, weights, xrays, tmp_path):
    out = tmp_path / "out"
    r = _predict(weights, xrays, out, "--num-workers", "2")
    assert r.returncode == 1, r.stdout + r.stderr
    assert not (out / "shards").exists()
    _assert_same_files(single[0], out)


@needs_detectron2
def test_resume_predicts_only_what_an_interrupted_run_left_out(single, weights, xrays, tmp_path, monkeypatch):
    from vertkp.inference.predictor import VertebraPredictor

    out = tmp_path / "out"
    shutil.copytree(single[0], out)
    text = (out / "predictions.jsonl").read_text().splitlines(keepends=True)
    (out / "predictions.jsonl").write_text(text[0] + text[1] + text[2][: len(text[2]) // 2])
    for name in ("predictions.json", "report.csv", "coco_results.json"):
        (out / name).unlink()
    old = time.time() - 3600
    for p in (out / "overlays").iterdir():
        os.utime(p, (old, old))
    predicted = []
    decoded = VertebraPredictor.predict_decoded

    def counted(self, images, names, *args, **kwargs):
        predicted.extend(names)
        return decoded(self, images, names, *args, **kwargs)

    monkeypatch.setattr(VertebraPredictor, "predict_decoded", counted)
    r = _predict(weights, xrays, out, "--resume")
    assert r.returncode == 1, r.stdout + r.stderr
    assert [Path(p).name for p in predicted] == ["c.jpg", "d.jpg"]  # and z_broken.png was tried again
    assert "dropped the truncated last line" in r.stdout
    assert "resume: 2 of 5 input(s) already predicted" in r.stdout and "predicting the other 3" in r.stdout
    assert {p.name for p in (out / "overlays").iterdir() if p.stat().st_mtime > old + 1} == {"c.png", "d.png"}
    _assert_same_files(single[0], out)


@needs_detectron2
def test_resume_with_other_settings_exits_2_naming_them(single, weights, xrays, tmp_path):
    out = tmp_path / "out"
    shutil.copytree(single[0], out)
    before = (out / "predictions.jsonl").read_bytes()
    r = _predict(weights, xrays, out, "--resume", "--score-threshold", "0.3", "--gap-factor", "2.5")
    assert r.returncode == 2, r.stdout + r.stderr
    assert "vertkp predict: error: --resume:" in r.stderr
    assert "gap_factor" in r.stderr and "score_threshold 0.0 (now 0.3)" in r.stderr and "facing" not in r.stderr
    assert (out / "predictions.jsonl").read_bytes() == before  # nothing touched


@needs_detectron2
def test_no_json_writes_the_rest_and_removes_an_earlier_predictions_json(weights, xrays, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "predictions.json").write_text("{}")
    r = _predict(weights, xrays / "a.jpg", out, "--no-json", "--no-overlays")
    assert r.returncode == 0, r.stdout + r.stderr
    assert sorted(p.name for p in out.iterdir()) == ["coco_results.json", "overlays", "predict_run.json",
                                                     "predictions.jsonl", "report.csv", "review.html"]
    (line,) = read_lines(out / "predictions.jsonl")
    assert line["input"] == str(xrays / "a.jpg") and line["prediction"]["image_id"] == 1


@needs_detectron2
@pytest.mark.parametrize("flags, says", [
    (["--num-gpus", "1"], "--num-workers N instead"),
    (["--num-gpus", "1", "--num-workers", "2"], "not both"),
    (["--num-machines", "2", "--machine-rank", "1"], "--dist-url tcp://HOST:PORT"),
])
def test_sharding_flags_that_cannot_work_exit_2(weights, xrays, tmp_path, flags, says):
    import torch

    if "--num-gpus" in flags and len(flags) == 2 and torch.cuda.is_available():
        pytest.skip("CUDA is available here")
    r = _predict(weights, xrays, tmp_path / "out", *flags)
    assert r.returncode == 2 and says in r.stderr, r.stderr
    assert not (tmp_path / "out").exists()


# ---- vertkp benchmark scale ---------------------------------------------------------------------------
def test_the_scale_benchmark_fits_mib_per_1000_images_and_tabulates_it():
    pytest.importorskip("torch")
    from vertkp.benchmark.cli import build_parser
    from vertkp.benchmark.scale import format_scale, mib_per_1000

    a = build_parser().parse_args(["scale", "--counts", "10", "40", "--num-images", "4", "SOLVER.IMS_PER_BATCH", "1"])
    assert (a.command, a.counts, a.num_images, a.weights, a.opts) == ("scale", [10, 40], 4, None,
                                                                     ["SOLVER.IMS_PER_BATCH", "1"])
    rows = [{"images": n, "peak_rss_MiB": 900 + 0.05 * n, "rss_before_MiB": 880, "seconds": n / 5,
             "images_per_s": 5.0, "jsonl_MiB": n * 0.03} for n in (100, 400, 1600)]
    assert mib_per_1000(rows) == pytest.approx(50.0)
    table = format_scale({"counts": rows + [{"images": 3200, "error": "OSError: x"}], "MiB_per_1000_images": 50.0,
                          "machine": {"cpu": "c", "cpu_cores": 2, "cpu_cores_usable": 2, "torch": "t",
                                      "detectron2": "d", "python": "3"}})
    assert "| 400 | 920 | 880 | 80.0 | 5.00 | 12.00 |" in table and "| 3200 | failed: OSError: x |" in table
    assert "grows by 50.0 MiB per 1000 images" in table


@needs_detectron2
@pytest.mark.slow
def test_the_scale_benchmark_end_to_end(tmp_path):
    from vertkp.benchmark.cli import main

    assert main(["scale", "--counts", "1"]) == 2  # no slope from one count
    out = tmp_path / "bench"
    assert main(["scale", "--counts", "2", "4", "--num-images", "3", "--image-size", "128", "--threads", "1",
                 "--no-overlays", "--output", str(out)]) == 0
    report = json.loads((out / "benchmark.json").read_text())
    assert [r["images"] for r in report["counts"]] == [2, 4]
    for r in report["counts"]:
        assert r["predicted"] == r["images"] and r["threads"] == 1 and r["jsonl_MiB"] > 0
        assert 0 < r["rss_before_MiB"] <= r["peak_rss_MiB"] and r["images_per_s"] > 0
    assert isinstance(report["MiB_per_1000_images"], float)
    assert len(list((out / "inputs").iterdir())) == 4
    assert not list((out / "runs" / "n4" / "overlays").glob("*.png"))
