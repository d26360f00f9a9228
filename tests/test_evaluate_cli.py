"""tools/evaluate.py end to end on hand-made COCO files (no detectron2)."""
import csv
import json
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.helpers import load_tool, run_main
from tests.helpers.raw import quad
from vertkp.convert import main as convert_main
from vertkp.phantoms.make import make_phantoms

REPO = Path(__file__).resolve().parents[1]
W, H, PITCH = 40.0, 25.0, 35.0


cli = load_tool("evaluate")


def box(cx, cy, theta_deg=0.0):
    """Canonical corners of a W x H vertebra centred at (cx, cy), tilted by theta_deg."""
    return quad(cx, cy, W, H, theta_deg)


def lateral_buu():
    """L1..S1 upright, L5 15 px forward over S1 (37.5 %, grade II); S1 with 2 corners."""
    c = [box(100.0 - (15.0 if k == 4 else 0.0), 100.0 + PITCH * k) for k in range(6)]
    return c, ["L1", "L2", "L3", "L4", "L5", "S1"], [4, 4, 4, 4, 4, 2]


def lateral_lordotic():
    """Six bodies, no levels, on a lordotic arc facing left (tilts +5 .. -40 deg)."""
    xs = 100.0 - 20.0 * (1.0 - ((np.arange(6) - 2.5) / 2.5) ** 2)
    return [box(x, 100.0 + PITCH * k, th) for k, (x, th) in enumerate(zip(xs, np.linspace(5, -40, 6)))], \
        [None] * 6, [4] * 6


def ap_column():
    """Five AP bodies, L3 and above 4 px to the image-right of L4 (10 %)."""
    return [box(100.0 + (4.0 if k < 3 else 0.0), 100.0 + PITCH * k) for k in range(5)], \
        ["L1", "L2", "L3", "L4", "L5"], [4] * 5


def make_gt(images):
    """images: list of (bodies, levels, n_corners, image extras)."""
    cats = [{"id": 1, "name": "vertebra", "supercategory": "spine", "keypoints": ["TL", "TR", "BL", "BR"],
             "skeleton": [[1, 2], [2, 4], [4, 3], [3, 1]]}]
    ims, anns = [], []
    for i, (bodies, levels, ncs, extra) in enumerate(images):
        ims.append(dict({"id": 10 + i, "file_name": f"images/im{i}.jpg", "width": 400, "height": 400,
                         "source_stem": f"im{i}", "view": "lateral", "pixel_spacing": None}, **extra))
        for q, lv, nc in zip(bodies, levels, ncs):
            kp = []
            for k, (x, y) in enumerate(q):
                kp += [round(float(x), 6), round(float(y), 6), 2] if k < nc else [0, 0, 0]
            anns.append({"id": len(anns) + 1, "image_id": 10 + i, "category_id": 1, "keypoints": kp,
                         "num_keypoints": nc, "bbox": [0, 0, 1, 1], "area": 1.0, "iscrowd": 0,
                         "vertebra_level": lv, "source_label": None})
    return {"info": {}, "licenses": [], "categories": cats, "images": ims, "annotations": anns}


def as_results(gt, offsets=None):
    """GT annotations as COCO results; offsets: ann id -> [4, 2] px added to the corners."""
    out = []
    for a in gt["annotations"]:
        kp = np.array(a["keypoints"], dtype=float).reshape(4, 3)
        kp[:, 2] = 1.0
        if offsets and a["id"] in offsets:
            kp[:, :2] += offsets[a["id"]]
        out.append({"image_id": a["image_id"], "category_id": 1, "keypoints": kp.ravel().tolist(), "score": 0.95})
    return out


@pytest.fixture
def dataset(tmp_path):
    gt = make_gt([
        (*lateral_buu(), {"pixel_spacing": 0.2, "facing": "left"}),
        (*lateral_lordotic(), {}),
        (*ap_column(), {"view": "ap", "pixel_spacing": 0.25}),
    ])
    gt_path = tmp_path / "gt.json"
    gt_path.write_text(json.dumps(gt))
    pred_path = tmp_path / "pred.json"
    pred_path.write_text(json.dumps(as_results(gt)))
    return gt, gt_path, pred_path


def read_csv(path):
    with open(path, newline="") as f:
        return list(csv.reader(f))


def test_ground_truth_against_itself(dataset, tmp_path, run_tool):
    gt, gt_path, pred_path = dataset
    out = tmp_path / "out"
    r = run_tool("evaluate", "--gt", gt_path, "--predictions", pred_path, "--output", out)
    assert r.returncode == 0, r.stderr
    assert "MRE       0.00 px" in r.stdout and "grade accuracy 100.0%" in r.stdout
    m = json.loads((out / "metrics.json").read_text())
    assert m["MRE_px"] == 0.0 and m["MRE_mm"] == 0.0
    assert [m[f"SDR_px@{t}"] for t in (6, 12, 18, 24)] == [100.0] * 4
    assert [m[f"SDR_mm@{t}"] for t in ("2", "2.5", "3", "4")] == [100.0] * 4
    assert [m[f"MRE_px_{k}"] for k in ("TL", "TR", "BL", "BR")] == [0.0] * 4
    assert m["det_precision"] == m["det_recall"] == m["det_F1"] == 100.0
    assert m["slip_MAE_pp"] == 0.0 and m["grade_acc"] == 100.0 and m["kappa"] == 1.0
    assert (m["n_pairs"], m["n_unscored_pairs"]) == (10, 0)
    assert (m["n_images"], m["n_gt_vertebrae"], m["n_matched"]) == (3, 17, 17)
    assert m["n_ap_pairs"] == 4 and m["lateral_displacement_MAE_pp"] == 0.0
    for name in ("per_landmark.csv", "per_pair.csv", "per_pair_ap.csv", "sdr_curve.png", "per_corner_error.png",
                 "error_histogram.png", "grade_confusion.png"):
        assert (out / name).stat().st_size > 0, name
    assert (out / "grade_confusion.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    lm = read_csv(out / "per_landmark.csv")
    assert lm[0] == ["image_id", "file_name", "vertebra", "corner", "gt_x", "gt_y", "pred_x", "pred_y",
                     "error_px", "error_mm"]
    assert len(lm) - 1 == 6 * 4 - 2 + 6 * 4 + 5 * 4  # S1 of image 10 has 2 corners
    assert lm[1][:4] == ["10", "images/im0.jpg", "L1", "TL"] and lm[1][8:] == ["0.0", "0.0"]
    pairs = read_csv(out / "per_pair.csv")
    assert pairs[0] == ["image_id", "file_name", "upper", "lower", "gt_slip_pct", "pred_slip_pct", "gt_grade",
                        "pred_grade", "level"]
    assert ["10", "images/im0.jpg", "L5", "S1", "37.5", "37.5", "II", "II", "L5/S1"] in pairs
    assert ["10", "images/im0.jpg", "L4", "L5", "-37.5", "-37.5", "retrolisthesis", "retrolisthesis", "L4/L5"] in pairs
    # no levels in image 11: named by position, no level
    assert any(r[2:4] == ["#2 from bottom", "#1 from bottom"] and r[8] == "" for r in pairs if r[0] == "11")


def test_perturbed_predictions_by_hand(tmp_path, capsys):
    # image: L1..L3 upright; L1 corner errors 5, 0, 10, 13 px; L2 0, 20, 0, 0; L3 missed; one extra box
    bodies = [box(100.0, 100.0 + PITCH * k) for k in range(3)]
    gt = make_gt([(bodies, ["L1", "L2", "L3"], [4, 4, 4], {"facing": "left"})])
    res = as_results(gt, {1: [[3, 4], [0, 0], [6, 8], [0, -13]], 2: [[0, 0], [0, 20], [0, 0], [0, 0]]})
    res = res[:2] + [{"image_id": 10, "category_id": 1, "keypoints": [300, 300, 1] * 4, "score": 0.9},
                     {**res[2], "score": 0.1}]  # a false positive; L3 found but under the threshold
    (tmp_path / "gt.json").write_text(json.dumps(gt))
    (tmp_path / "pred.json").write_text(json.dumps(res))
    sp = tmp_path / "spacing.csv"
    sp.write_text("stem,mm_per_pixel\nim0,0.5\n")
    out = tmp_path / "out"
    rc = cli.main(["--gt", str(tmp_path / "gt.json"), "--predictions", str(tmp_path / "pred.json"),
                   "--output", str(out), "--pixel-spacing", str(sp), "--no-plots"])
    assert rc == 0
    printed = capsys.readouterr().out
    assert "pixel spacing from" in printed
    assert "corners off > 10% of width 50.0%; slip off > 10 pp 1 (100.0%), > 20 pp 1 (100.0%) of 1 pairs" in printed
    m = json.loads((out / "metrics.json").read_text())
    assert m["MRE_px"] == pytest.approx(6.0) and m["MRE_px_median"] == pytest.approx(2.5)
    assert m["MRE_mm"] == pytest.approx(3.0)
    assert [m[f"SDR_px@{t}"] for t in (6, 12, 18, 24)] == pytest.approx([100 * 5 / 12, 50.0, 100 * 7 / 12,
                                                                       100 * 8 / 12])
    assert (m["det_precision"], m["det_recall"], m["det_F1"]) == pytest.approx((200 / 3, 200 / 3, 200 / 3))
    assert (m["det_TP"], m["det_FP"], m["det_FN"]) == (2, 1, 1)
    assert (m["n_pairs"], m["n_unscored_pairs"]) == (1, 1)  # L2/L3: L3 missed
    # corners beyond 10% of the 40 px width: L1's 5, 10, 13 and L2's 20 of 8 matched
    assert m["corners_off10pct_width"] == 50.0 and (m["n_gt_S1"], m["n_missed_S1"]) == (0, 0)
    # L1/L2 reads 43 % against 0 (per_pair.csv): beyond both tails
    assert (m["n_slip_off10"], m["slip_off10_pct"], m["n_slip_off20"], m["slip_off20_pct"]) == (1, 100.0, 1, 100.0)
    assert m["by_level"]["pairs"]["L2/L3"]["n_unscored"] == 1 and m["by_level"]["vertebrae"]["L3"]["missed"] == 1
    # COCO results name no level: the evaluator names them as vertkp predict would, and this upright
    # chain's bottom is no S1 (flat discs): both matched vertebrae stay unnamed
    assert (m["level_acc"], m["level_named_pct"], m["n_level_scored"]) == (0.0, 0.0, 2)
    pairs = read_csv(out / "per_pair.csv")
    assert pairs[2] == ["10", "images/im0.jpg", "L2", "L3", "0.0", "", "none", "", "L2/L3"]
    lm = read_csv(out / "per_landmark.csv")
    assert lm[3][2:] == ["L1", "BL", "80.0", "112.5", "86.0", "120.5", "10.0", "5.0"]
    assert lm[-1][6:] == ["", "", "", ""]  # L3's corners: missed
    assert not (out / "sdr_curve.png").exists()
    # the lower threshold lets L3 in
    cli.main(["--gt", str(tmp_path / "gt.json"), "--predictions", str(tmp_path / "pred.json"), "--output",
              str(out), "--score-threshold", "0.05", "--no-plots", "--quiet"])
    assert json.loads((out / "metrics.json").read_text())["n_matched"] == 3


def test_pixel_spacing_number_and_extra_options(dataset, tmp_path):
    _, gt_path, pred_path = dataset
    out = tmp_path / "o"
    assert cli.main(["--gt", str(gt_path), "--predictions", str(pred_path), "--output", str(out), "--quiet",
                     "--no-plots", "--pixel-spacing", "0.1", "--sdr-px", "3", "--sdr-mm", "1", "--facing", "left",
                     "--no-slip-pct", "2"]) == 0
    m = json.loads((out / "metrics.json").read_text())
    assert m["n_images_with_spacing"] == 3 and m["SDR_px@3"] == 100.0 and m["SDR_mm@1"] == 100.0
    assert not [k for k in m if k.startswith("SDR_") and k not in ("SDR_px@3", "SDR_mm@1")]
    assert m["settings"]["facing"] == "left" and m["settings"]["no_slip_pct"] == 2.0


@pytest.mark.parametrize("case,match", [
    ("unknown_image", "image id(s) that are not in the ground truth"),
    ("short_keypoints", "'keypoints' has 9 numbers, expected 12"),
    ("nan", "NaN or infinite"),
    ("not_coco", "is not a COCO file"),
    ("not_keypoints", "not a COCO keypoint file"),
    ("swapped", "looks like a COCO ground-truth file"),
    ("bad_spacing", "neither a number nor an existing file"),
])
def test_bad_input_exits_non_zero_with_a_clear_error(dataset, tmp_path, capsys, monkeypatch, case, match):
    monkeypatch.setattr(sys, "argv", ["vertkp evaluate"])  # what vertkp.cli sets: errors name the command run
    gt, gt_path, pred_path = dataset
    preds = as_results(gt)
    args = {"gt": gt_path, "pred": pred_path, "extra": []}
    if case == "unknown_image":
        preds[0]["image_id"] = 999
    elif case == "short_keypoints":
        preds[3]["keypoints"] = preds[3]["keypoints"][:9]
    elif case == "nan":
        preds[1]["keypoints"][4] = float("nan")
    elif case == "not_coco":
        args["gt"] = tmp_path / "list.json"
        args["gt"].write_text("[]")
    elif case == "not_keypoints":
        bad = dict(gt, categories=[{"id": 1, "name": "vertebra"}])
        args["gt"] = tmp_path / "det.json"
        args["gt"].write_text(json.dumps(bad))
    elif case == "swapped":
        args["pred"] = gt_path
    elif case == "bad_spacing":
        args["extra"] = ["--pixel-spacing", str(tmp_path / "missing.csv")]
    if case in ("unknown_image", "short_keypoints", "nan"):
        args["pred"] = tmp_path / "bad_pred.json"
        args["pred"].write_text(json.dumps(preds))  # json writes NaN as NaN, which Python reads back
    rc = cli.main(["--gt", str(args["gt"]), "--predictions", str(args["pred"]), "--output", str(tmp_path / "o"),
                   *args["extra"]])
    err = capsys.readouterr().err
    assert rc == 2
    assert match in err and err.startswith("vertkp evaluate: error:")
    assert not (tmp_path / "o" / "metrics.json").exists()


def test_bad_input_exit_status_from_the_shell(dataset, tmp_path, run_tool):
    _, gt_path, _ = dataset
    missing = tmp_path / "nope.json"
    r = run_tool("evaluate", "--gt", gt_path, "--predictions", missing, "--output", tmp_path / "o")
    assert r.returncode == 2
    assert f"predictions file {missing} does not exist" in r.stderr


# --- a phantom set: planted slips recovered, GT against itself --------------------------------------------------


@pytest.fixture(scope="module")
def phantom_sets(tmp_path_factory):
    """Small phantom sets in both raw layouts, converted to COCO by vertkp convert (no audit)."""
    root = tmp_path_factory.mktemp("phantoms")
    out = {}
    for layout, n, size, convs in (
        ("spondylolisthesis", 12, None, [[]]),
        ("buu-lspine", 8, 512, [["--view", "lateral"], ["--view", "ap"]]),
    ):
        d = root / layout
        make_phantoms(layout, d, n, 0, size, progress=False)
        for extra in convs:
            if layout == "buu-lspine":
                extra = extra + ["--pixel-spacing", str(d / "pixel_spacing.csv")]
            r = run_main(convert_main, "--dataset", layout, "--root", d, "--no-progress", "--no-audit", *extra)
            assert r.returncode == 0, r.stderr
        out[layout] = d
    return out


def _coco_files(d: Path):
    return sorted(p for p in (d / "coco").rglob("*.json") if p.name in ("train.json", "val.json"))


def test_phantom_slips_and_grades_are_recovered_exactly(phantom_sets):
    from vertkp.evaluation import load_ground_truth
    from vertkp.grading import grade_spine

    n_pairs = n_auto_right = n_lateral = 0
    grades = set()
    for d in phantom_sets.values():
        truth = {im["file_name"]: im for im in json.loads((d / "phantom_truth.json").read_text())["images"]}
        for f in _coco_files(d):
            for im in load_ground_truth(f).images:
                t = truth[im.file_name]
                lateral = im.view == "lateral"
                g = grade_spine(im.corners, im.visible, im.levels, view=im.view, facing=t["facing"] or "auto",
                                pixel_spacing=im.pixel_spacing)
                got = [(p.slip_pct, p.grade) if lateral else (p.lateral_displacement_pct, None) for p in g.pairs]
                # the COCO file holds the labelled corners
                want = [(p["label_slip_pct"], p["label_grade"]) if lateral else (p["label_lateral_displacement_pct"], None)
                        for p in t["pairs"]]
                assert len(got) == len(want), im.file_name
                for (gs, gg), (ws, wg) in zip(got, want):
                    assert gs == pytest.approx(ws, abs=1e-6), im.file_name
                    assert gg == wg, im.file_name
                    grades.add(gg)
                n_pairs += len(got)
                if lateral:  # the facing estimated from the geometry alone
                    n_lateral += 1
                    auto = grade_spine(im.corners, im.visible, im.levels, facing="auto").facing
                    n_auto_right += auto.facing == t["facing"]
    assert n_pairs > 50 and len(grades - {None}) >= 3
    assert n_auto_right >= 0.9 * n_lateral


def test_phantom_ground_truth_against_itself(phantom_sets, tmp_path):
    for layout, d in phantom_sets.items():
        for f in _coco_files(d):
            gt = json.loads(f.read_text())
            if not gt["annotations"]:
                continue
            pred = tmp_path / "pred.json"
            pred.write_text(json.dumps(as_results(gt)))
            out = tmp_path / f"{layout}_{f.parent.name}_{f.stem}"
            assert cli.main(["--gt", str(f), "--predictions", str(pred), "--output", str(out), "--quiet",
                             "--no-plots"]) == 0
            m = json.loads((out / "metrics.json").read_text())
            assert m["MRE_px"] == 0.0 and {v for k, v in m.items() if k.startswith("SDR_px@")} == {100.0}, f
            assert m["det_F1"] == 100.0 and m["n_matched"] == m["n_gt_vertebrae"] > 0
            if m["n_pairs"]:
                assert m["grade_acc"] == 100.0 and m["slip_MAE_pp"] == 0.0
            if layout == "buu-lspine":
                assert m["MRE_mm"] == 0.0 and {v for k, v in m.items() if k.startswith("SDR_mm@")} == {100.0}
