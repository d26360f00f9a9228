"""Scoring against a phantom set's exact truth (vertkp evaluate --truth, vertkp.evaluation.exact_truth):
exact values on a hand-built set, refusals, and a real phantom set whose labels carry noise."""
import json
from dataclasses import replace

import numpy as np
import pytest

from tests.helpers import run_main
from vertkp.convert import main as convert_main
from vertkp.evaluation import EvaluationInputError, load_ground_truth
from vertkp.evaluation.cli import evaluate_files
from vertkp.evaluation.cli import main as evaluate_main
from vertkp.evaluation.exact_truth import exact_truth
from vertkp.phantoms import TRUTH_FILE
from vertkp.phantoms.make import make_phantoms

W, H, PITCH = 40.0, 25.0, 35.0
LEVELS = ["L3", "L4", "L5", "S1"]


def box(cx, cy):
    return np.array([[cx - W / 2, cy - H / 2], [cx + W / 2, cy - H / 2],
                     [cx - W / 2, cy + H / 2], [cx + W / 2, cy + H / 2]])


EXACT = np.stack([box(100.0, 100.0 + PITCH * k) for k in range(4)])
LABELS = EXACT.copy()
LABELS[0, 0] += [3.0, 4.0]  # the annotator put L3's TL 5 px off


def _write(tmp_path, predictions):
    cats = [{"id": 1, "name": "vertebra", "supercategory": "spine", "keypoints": ["TL", "TR", "BL", "BR"],
             "skeleton": [[1, 2], [2, 4], [4, 3], [3, 1]]}]
    image = {"id": 1, "file_name": "images/train/a.jpg", "width": 400, "height": 400, "view": "lateral",
             "facing": "left"}
    # file order differs from the truth's: matched by corners, not by position
    anns = [{"id": k + 1, "image_id": 1, "category_id": 1, "iscrowd": 0, "vertebra_level": LEVELS[j],
             "keypoints": [v for x, y in LABELS[j] for v in (float(x), float(y), 2)]} for k, j in enumerate([2, 0, 3, 1])]
    gt = {"images": [image], "annotations": anns, "categories": cats}
    truth = {"images": [{"file_name": "Dataset/Train/images/train/a.jpg", "vertebrae": [
        {"level": lv, "corners": EXACT[k].tolist(), "label_corners": LABELS[k].tolist()} for k, lv in enumerate(LEVELS)]},
        {"file_name": "Dataset/Train/images/train/b.jpg", "vertebrae": []}]}
    results = [{"image_id": 1, "category_id": 1, "score": 0.9, "keypoints": [v for x, y in q for v in (x, y, 1)]}
               for q in predictions]
    for name, obj in (("gt.json", gt), ("truth.json", truth), ("pred.json", results)):
        (tmp_path / name).write_text(json.dumps(obj))
    return tmp_path


def test_a_perfect_model_scores_zero_against_the_truth_and_the_label_error_against_the_labels(tmp_path):
    d = _write(tmp_path, EXACT.tolist())
    assert evaluate_main(["--gt", str(d / "gt.json"), "--predictions", str(d / "pred.json"), "--output",
                          str(d / "out"), "--truth", str(d / "truth.json"), "--bootstrap", "0", "--no-plots", "--sdr-px", "2", "6"]) == 0
    m = json.loads((d / "out" / "metrics.json").read_text())
    assert m["MRE_px"] == pytest.approx(5.0 / 16)  # one corner of 16 is 5 px from its label
    assert m["truth_MRE_px"] == 0.0 and m["label_MRE_px"] == pytest.approx(5.0 / 16)
    assert m["truth_det_F1"] == 100.0 and m["truth_SDR_px@2"] == 100.0 and m["label_SDR_px@2"] == 100 * 15 / 16
    assert m["against_truth"]["MRE_px"] == 0.0 and m["labels_against_truth"]["det_F1"] == 100.0
    assert m["truth_slip_MAE_pp"] == 0.0 and m["truth_grade_acc"] == 100.0
    assert (m["truth_slip_off10_pct"], m["truth_slip_off20_pct"], m["truth_corners_off10pct_width"]) == (0.0, 0.0, 0.0)
    # against the labels, L3's TL is 5 px off: beyond 10% of L3's labelled width (mean of 37.22 and 40 px)
    assert m["corners_off10pct_width"] == 100 / 16
    assert m["by_level_against_truth"]["vertebrae"]["L3"]["MRE_px"] == 0.0
    assert m["by_level"]["vertebrae"]["L3"]["MRE_px"] == pytest.approx(5.0 / 4)


def test_a_model_that_learnt_the_label_noise(tmp_path):
    d = _write(tmp_path, LABELS.tolist())
    run = evaluate_files(d / "gt.json", d / "pred.json", d / "out", truth=d / "truth.json", plots=False)
    m = run.result.metrics
    assert m["MRE_px"] == 0.0 and m["truth_MRE_px"] == pytest.approx(5.0 / 16) == m["label_MRE_px"]


def test_the_exact_truth_names_the_truths_levels(tmp_path):
    d = _write(tmp_path, EXACT.tolist())
    gt = load_ground_truth(d / "gt.json").images
    unnamed = [replace(t, levels=[None] * t.n) for t in gt]
    exact, _ = exact_truth(d / "truth.json", unnamed)
    assert exact[0].levels == ["L5", "L3", "S1", "L4"]  # the file's order
    assert unnamed[0].levels == [None] * 4


def test_truth_refusals(tmp_path):
    d = _write(tmp_path, EXACT.tolist())
    gt = load_ground_truth(d / "gt.json").images
    with pytest.raises(EvaluationInputError, match="not a vertkp phantom truth"):
        exact_truth({"images": [{"file_name": "a.jpg", "vertebrae": [{"corners": []}]}]}, gt)
    with pytest.raises(EvaluationInputError, match="no truth record for image 'images/train/a.jpg'"):
        exact_truth({"images": [{"file_name": "other.jpg", "vertebrae": []}]}, gt)
    shifted = json.loads((d / "truth.json").read_text())
    shifted["images"][0]["vertebrae"][1]["label_corners"][0][0] += 0.01
    with pytest.raises(EvaluationInputError, match=r"vertebra 4 \(L4\) of 'images/train/a.jpg' is not one the truth labels"):
        exact_truth(shifted, gt)
    assert evaluate_main(["--gt", str(d / "gt.json"), "--predictions", str(d / "pred.json"), "--output",
                          str(d / "out"), "--truth", str(d / "gt.json")]) == 2


def test_noisy_phantom_labels_against_their_truth(tmp_path):
    """A realistic phantom set: its converted labels scored against its truth show the stated jitter."""
    root = tmp_path / "set"
    make_phantoms("spondylolisthesis", root, 10, seed=4, image_size=320, progress=False)
    assert run_main(convert_main, "--dataset", "spondylolisthesis", "--root", root, "--no-progress",
                    "--no-audit").returncode == 0
    gt = load_ground_truth(root / "coco" / "train.json").images
    exact, labels = exact_truth(root / TRUTH_FILE, gt)
    d = np.concatenate([np.linalg.norm(e.corners - t.corners, axis=-1).ravel() for e, t in zip(exact, gt)])
    widths = np.concatenate([np.repeat(np.ptp(e.corners[..., 0], axis=1), 4) for e in exact])
    assert 0.005 < np.mean(d / widths) < 0.03  # an SD of 1% of the width per coordinate, and beak tips
    assert all(np.array_equal(labels[t.image_id].corners, t.corners) for t in gt)
