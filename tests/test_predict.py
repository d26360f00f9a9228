"""VertebraPredictor and tools/predict.py with a real (randomly initialised) Keypoint R-CNN:
input kinds, broken files, overlays, report rows, and the COCO results round trip through
tools/evaluate.py."""
import csv
import json
import re
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from tests.helpers import DETECTRON2_SKIP_REASON, INSTANT_CONFIG, random_weights

pytest.importorskip("detectron2", reason=DETECTRON2_SKIP_REASON)

CONFIG = INSTANT_CONFIG
# Random weights score every box near 0.5: keep them all, so that there are corners to grade.
SCORE = "0.0"

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    """A checkpoint of the instant config with random weights (speed and plumbing, not accuracy)."""
    return random_weights(tmp_path_factory.mktemp("weights"), CONFIG)


@pytest.fixture(scope="module")
def predictor(weights):
    from vertkp.inference import VertebraPredictor

    return VertebraPredictor(str(CONFIG), str(weights), device="cpu", score_threshold=0.0, facing="left")


@pytest.fixture(scope="module")
def val_images(phantom_root):
    """(phantom folder, val.json, val image paths) of the session's phantom set."""
    root = phantom_root / "phantoms"
    gt = json.loads((root / "coco" / "val.json").read_text())
    return root, gt, [root / im["file_name"] for im in gt["images"]]


def test_grey_colour_and_16bit_inputs_give_the_same_prediction(predictor, tmp_path, val_images):
    _, _, images = val_images
    grey = cv2.imread(str(images[0]), cv2.IMREAD_GRAYSCALE)
    grey[:4], grey[-4:] = 0, 255  # >0.5% black and white pixels: the 16-bit window maps back exactly
    cv2.imwrite(str(tmp_path / "grey.png"), grey)
    cv2.imwrite(str(tmp_path / "colour.png"), cv2.cvtColor(grey, cv2.COLOR_GRAY2BGR))
    cv2.imwrite(str(tmp_path / "deep.png"), grey.astype(np.uint16) * 257)
    ref = predictor(grey)
    assert (ref.height, ref.width) == grey.shape
    assert len(ref.vertebrae) > 0
    for src in (tmp_path / "grey.png", tmp_path / "colour.png", tmp_path / "deep.png",
                cv2.cvtColor(grey, cv2.COLOR_GRAY2BGR), grey.astype(np.uint16) * 257):
        res = predictor(src)
        assert np.array_equal(res.corners, ref.corners), src if isinstance(src, Path) else src.shape
        assert np.array_equal(res.scores, ref.scores)
    named = predictor(str(tmp_path / "deep.png"))
    assert named.image == str(tmp_path / "deep.png")
    batch = predictor.predict_batch([grey, tmp_path / "colour.png", grey], batch_size=2)
    assert [b.image for b in batch] == ["<array 0>", str(tmp_path / "colour.png"), "<array 2>"]
    assert all(np.allclose(b.corners, ref.corners, atol=1e-3) for b in batch)


def test_result_is_graded_with_scores_in_range_and_file_coordinates(predictor, val_images):
    from vertkp.inference import VertebraPredictor

    _, _, images = val_images
    # one pass: its corners lie in their box (fused passes average boxes and corners apart)
    single = VertebraPredictor.from_cfg(predictor.cfg, score_threshold=0.0, facing="left", tta="none")
    single.model.load_state_dict(predictor.model.state_dict())
    res = single(images[0])
    assert res.view == "lateral" and res.facing == "left" and res.facing_source == "given"
    for v in res.vertebrae:
        assert 0.0 <= v.score <= 1.0 and v.corners.shape == (4, 2)
        assert np.all((v.corner_scores > 0) & (v.corner_scores <= 1))
        x0, y0, x1, y1 = v.box
        # corners lie in their box (file coordinates: detectron2's +0.5 removed)
        assert np.all(v.corners[:, 0] >= x0 - 0.5) and np.all(v.corners[:, 0] <= x1)
        assert np.all(v.corners[:, 1] >= y0 - 0.5) and np.all(v.corners[:, 1] <= y1)
    assert [v.position_from_bottom for v in res.vertebrae] == list(range(len(res.vertebrae), 0, -1))
    assert all(p.lower == p.upper + 1 for p in res.pairs)  # pairs are neighbours in the cranial-caudal list


@pytest.mark.slow
def test_predict_tool_skips_broken_files_and_writes_everything(weights, tmp_path, run_tool, val_images):
    from vertkp.inference import VertebraPredictor

    _, _, images = val_images
    src = tmp_path / "xrays"
    (src / "sub").mkdir(parents=True)
    shutil.copy(images[0], src / "a.jpg")
    shutil.copy(images[1 % len(images)], src / "sub" / "b.jpg")
    (src / "empty.png").write_bytes(b"")
    data = Path(images[0]).read_bytes()
    (src / "sub" / "truncated.jpg").write_bytes(data[: len(data) // 3])
    (tmp_path / "notes.txt").write_text("not an image")
    out = tmp_path / "out"
    r = run_tool("predict", "--config-file", CONFIG, "--weights", weights, "--input", src, tmp_path / "notes.txt",
                 "--output", out, "--score-threshold", SCORE, "--facing", "left", "--device", "cpu",
                 "--pixel-spacing", "0.25", env={"OMP_NUM_THREADS": "1"})
    assert r.returncode == 1, r.stdout + r.stderr  # some inputs failed, the rest were written
    pred = json.loads((out / "predictions.json").read_text())
    assert [Path(p["image"]).name for p in pred["images"]] == ["a.jpg", "b.jpg"]
    failed = {Path(f["image"]).name: f["error"] for f in pred["failures"]}
    assert set(failed) == {"empty.png", "truncated.jpg", "notes.txt"}
    assert "empty" in failed["empty.png"] and "not a readable image" in failed["truncated.jpg"]
    assert pred["summary"]["images"] == 5 and pred["summary"]["failed"] == 3
    assert "images: 5 (2 predicted, 3 failed)" in r.stdout and "failed: " in r.stdout
    for name in ("a", "b"):
        overlay = cv2.imread(str(out / "overlays" / f"{name}.png"))
        original = cv2.imread(str(src / ("a.jpg" if name == "a" else "sub/b.jpg")))
        assert overlay.shape == original.shape and not np.array_equal(overlay, original)
    assert sorted(p.name for p in (out / "overlays").iterdir()) == ["a.png", "b.png"]
    # review.html: both images with their overlay embedded, the failures listed last
    review = (out / "review.html").read_text(encoding="utf-8")
    assert "review.html" in r.stdout and review.count('src="data:image/jpeg;base64,') == 2
    assert str(src / "a.jpg") in review and str(src / "sub" / "b.jpg") in review
    assert review.index("<h2>Failed</h2>") < review.index("truncated.jpg") and "notes.txt" in review

    # report.csv rows are the API's pairs, in order
    api = VertebraPredictor(str(CONFIG), str(weights), device="cpu", score_threshold=0.0, facing="left",
                            pixel_spacing=0.25)
    with open(out / "report.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    expected = []
    for img in (src / "a.jpg", src / "sub" / "b.jpg"):
        res = api(img)
        expected += [(str(img), p.name, p.grade_name or "", p.slip_pct, p.disc_height_anterior_mm, ";".join(p.flags))
                     for p in res.pairs] or [(str(img), "", "", None, None, "")]
    assert len(rows) == len(expected) and any(e[1] for e in expected)  # some pairs were graded
    for row, (image, name, grade, slip, disc_mm, flags) in zip(rows, expected):
        assert (row["image"], row["pair"], row["grade"], row["flags"]) == (image, name, grade, flags)
        assert (row["slip_pct"] == "") == (slip is None)
        if slip is not None:
            assert float(row["slip_pct"]) == pytest.approx(slip, rel=1e-3, abs=1e-3)
        if disc_mm is not None:
            assert float(row["disc_height_anterior_mm"]) == pytest.approx(disc_mm, rel=1e-3)


@pytest.mark.slow
def test_coco_results_round_trip_through_evaluate(weights, tmp_path, run_tool, val_images):
    root, gt, images = val_images
    out = tmp_path / "pred"
    r = run_tool("predict", "--config-file", CONFIG, "--weights", weights, "--input", *images,
                 "--output", out, "--score-threshold", SCORE, "--gt", root / "coco" / "val.json", "--device", "cpu",
                 "--no-overlays", env={"OMP_NUM_THREADS": "1"})
    assert r.returncode == 0, r.stdout + r.stderr
    pred = json.loads((out / "predictions.json").read_text())
    ids = {im["id"] for im in gt["images"]}
    assert {p["image_id"] for p in pred["images"]} == ids
    results = json.loads((out / "coco_results.json").read_text())
    assert len(results) == sum(len(p["vertebrae"]) for p in pred["images"])
    ev = tmp_path / "eval"
    r = run_tool("evaluate", "--gt", root / "coco" / "val.json", "--predictions", out / "coco_results.json",
                 "--output", ev, "--score-threshold", "0.0", "--no-plots")
    assert r.returncode == 0, r.stdout + r.stderr
    metrics = json.loads((ev / "metrics.json").read_text())
    assert metrics["n_images"] == len(ids)
    assert metrics["n_predictions"] == len(results)  # score threshold 0: every result is read back
    # review.html's errors are the evaluator's: per image, its matched vertebrae, which add up to the evaluation's
    review = (out / "review.html").read_text(encoding="utf-8")
    matched = re.findall(r"(\d+) of (\d+) true vertebrae matched", review)
    assert len(matched) == len(ids) and review.count("no overlay (--no-overlays)") == len(ids)
    assert sum(int(m) for m, _ in matched) == metrics["n_matched"]
    # every matched corner the evaluator scored is a corner predict.py wrote for that image
    corners = {p["image_id"]: {tuple(xy) for v in p["vertebrae"] for xy in v["corners"].values()}
               for p in pred["images"]}
    with open(ev / "per_landmark.csv", newline="") as f:
        scored = [row for row in csv.DictReader(f) if row["pred_x"]]
    assert scored  # random boxes still match some vertebrae of 128 px phantoms
    for row in scored:
        xy = (float(row["pred_x"]), float(row["pred_y"]))
        assert any(abs(xy[0] - a) < 1e-3 and abs(xy[1] - b) < 1e-3 for a, b in corners[int(row["image_id"])])


@pytest.mark.slow
def test_bad_arguments_exit_2_with_the_reason(weights, tmp_path, run_tool):
    r = run_tool("predict", "--config-file", CONFIG, "--weights", tmp_path / "none.pth", "--input", tmp_path,
                 "--output", tmp_path / "o")
    assert r.returncode == 2 and "none.pth do not exist" in r.stderr
    r = run_tool("predict", "--config-file", CONFIG, "--weights", weights, "--input", tmp_path / "nothing*.png",
                 "--output", tmp_path / "o")
    assert r.returncode == 2 and "nothing to predict" in r.stderr and "matches no file" in r.stderr
