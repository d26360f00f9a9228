"""Mendeley spondylolisthesis converter on hand-built raw trees."""
import json
from pathlib import Path

import numpy as np
import pytest

from tests.helpers import keypoint_ap_against_itself, run_main
from tests.helpers.raw import KP_DIR, mendeley_tree, quad, roboflow_name, write_image
from vertkp.anatomy import LEVELS
from vertkp.convert import main as convert_main
from vertkp.data.conversion.coco import BOX_PAD_FRACTION
from vertkp.data.datasets.spondylolisthesis import convert_spondylolisthesis, format_json_labels, source_stem

SPINE = [quad(320, 120 + 70 * k, 90, 55, t) for k, t in enumerate((0, 5, -8, 12))] + [quad(340, 430, 90, 55, 45)]


def good_tree(root):
    items = [
        ("train", roboflow_name("0001-F-037Y1", 0), "json", SPINE),
        ("train", roboflow_name("0001-F-037Y1", 3), "txt", SPINE[1:]),  # an augmented copy
        ("train", roboflow_name("hond_0007", 5), "txt", SPINE[:3]),
        ("val", roboflow_name("0002-M-051Y1", 1), "json", SPINE[2:]),
    ]
    return mendeley_tree(root, items, test=["0003-F-060Y1.jpg"])


def load(path):
    return json.loads(Path(path).read_text())


def corners_of(ann):
    return np.array(ann["keypoints"], float).reshape(4, 3)[:, :2]


def test_round_trip_both_label_formats(tmp_path):
    truth = good_tree(tmp_path)
    report = convert_spondylolisthesis(tmp_path, progress=False)
    out = tmp_path / "coco"
    assert sorted(p.name for p in out.iterdir()) == ["conversion_report.json", "test.json", "train.json", "val.json"]
    n_checked = 0
    for split in ("train", "val"):
        coco = load(out / f"{split}.json")
        assert coco["categories"][0]["keypoints"] == ["TL", "TR", "BL", "BR"]
        anns = {}
        for a in coco["annotations"]:
            anns.setdefault(a["image_id"], []).append(a)
        for im in coco["images"]:
            stem = Path(im["file_name"]).stem
            assert im["file_name"] == f"{KP_DIR.as_posix()}/images/{split}/{stem}.jpg"
            assert (im["width"], im["height"]) == (640, 640)
            assert im["source_stem"] == source_stem(stem)
            assert im["view"] == "lateral" and im["pixel_spacing"] is None
            exp_split, verts = truth[stem]
            assert exp_split == split and len(anns[im["id"]]) == len(verts)
            # no level in the labels: named upward from S1 (every hand-built spine here runs down the list)
            assert im["level_source"] == "anchored_bottom_S1"
            assert [a["vertebra_level"] for a in anns[im["id"]]] == list(LEVELS[-len(verts):])
            for a, c in zip(anns[im["id"]], verts):
                # JSON keeps the source floats; TXT goes through /640 then *640
                np.testing.assert_allclose(corners_of(a), c, rtol=0, atol=1e-9)
                assert a["keypoints"][2::3] == [2, 2, 2, 2] and a["num_keypoints"] == 4
                assert a["source_label"] == [0]
                x, y, w, h = a["bbox"]
                lo, hi = c.min(0), c.max(0)
                pad = BOX_PAD_FRACTION * max(hi - lo)
                np.testing.assert_allclose([x, y, x + w, y + h], [*(lo - pad), *(hi + pad)])
                assert a["area"] == pytest.approx(90 * 55)
                n_checked += 1
    assert n_checked == 5 + 4 + 3 + 3
    test = load(out / "test.json")
    assert [im["file_name"] for im in test["images"]] == ["Test/0003-F-060Y1.jpg"]
    assert (test["images"][0]["width"], test["images"][0]["height"]) == (900, 1400)
    assert test["annotations"] == [] and "level_source" not in test["images"][0]
    rep = load(out / "conversion_report.json")
    assert rep["per_split"]["train"] == {"label_files_read": 3, "images_written": 3, "vertebrae_written": 12,
                                         "skipped": 0, "left_out": 0}
    assert rep["n_skipped"] == 0 and rep["n_warnings"] == 0
    assert report.images["test"] == 1
    ids = [im["id"] for s in ("train", "val", "test") for im in load(out / f"{s}.json")["images"]]
    assert len(ids) == len(set(ids))


def test_pycocotools_scores_ground_truth_against_itself_ap_1(tmp_path):
    good_tree(tmp_path)
    convert_spondylolisthesis(tmp_path, progress=False)
    assert keypoint_ap_against_itself(tmp_path / "coco" / "train.json") == pytest.approx(1.0)


def test_json_and_txt_twins_json_used_txt_compared_disagreements_listed(tmp_path):
    a, b, c, d = (roboflow_name(f"000{k}-F-037Y1", k) for k in range(4))
    mendeley_tree(tmp_path, [("train", a, "json", SPINE), ("train", a, "txt", SPINE),  # twins that agree
                             ("train", b, "json", SPINE), ("train", b, "txt", SPINE),  # twins 2.5 px apart
                             ("train", c, "json", SPINE), ("train", c, "txt", SPINE),  # a broken TXT twin
                             ("val", d, "txt", SPINE)])  # a TXT alone: used
    lbl = tmp_path / KP_DIR / "labels" / "train"
    off = [q.copy() for q in SPINE]
    off[2][3] += [1.5, 2.0]  # BR of the third vertebra: 2.5 px
    (lbl / f"{b}.json").write_text(format_json_labels(off))
    (lbl / f"{c}.txt").write_text("0 0.5 0.5\n")
    report = convert_spondylolisthesis(tmp_path, progress=False)
    train = load(tmp_path / "coco" / "train.json")
    by_stem = {Path(im["file_name"]).stem: im["id"] for im in train["images"]}
    b_corners = [corners_of(x) for x in train["annotations"] if x["image_id"] == by_stem[b]]
    np.testing.assert_allclose(b_corners[2], off[2])  # the JSON is what is converted
    t = report.twins
    assert (t["compared"], t["agree"]) == (3, 1)
    bad = {Path(x["image"]).stem: x for x in t["disagree"]}
    assert set(bad) == {b, c}
    assert bad[b]["largest_px"] == pytest.approx(2.5) and bad[b]["used"].endswith(f"{b}.json")
    assert bad[b]["other"].endswith(f"{b}.txt") and bad[b]["detail"] == "largest corner difference 2.50 px"
    assert bad[c]["largest_px"] is None and "the TXT twin cannot be read (line 1: expected 17 numbers" in bad[c]["detail"]
    assert len(load(tmp_path / "coco" / "val.json")["annotations"]) == len(SPINE)  # TXT alone used
    assert report.read["train"] == 3 and report.skipped == []
    assert "2 disagree" in report.summary() and f"{b}.jpg: largest corner difference 2.50 px" in report.summary()


def test_unlabelled_images_and_junk_are_left_out_and_listed_not_fatal(tmp_path):
    a, b = roboflow_name("0001-F-037Y1", 0), roboflow_name("0002-F-037Y1", 1)
    mendeley_tree(tmp_path, [("train", a, "json", SPINE), ("train", b, "json", SPINE)])
    images = tmp_path / KP_DIR / "images" / "train"
    (tmp_path / KP_DIR / "labels" / "train" / f"{b}.json").unlink()  # an unlabelled image in a labelled folder
    (images / f"{a} (copy).jpg").write_bytes((images / f"{a}.jpg").read_bytes())  # a byte-identical copy
    for junk in (images / ".DS_Store", images / "._x.jpg", tmp_path / KP_DIR / "labels" / "train" / "Thumbs.db"):
        junk.write_bytes(b"junk")
    report = convert_spondylolisthesis(tmp_path, progress=False)
    assert [Path(im["file_name"]).stem for im in load(tmp_path / "coco" / "train.json")["images"]] == [a]
    left = {Path(x["file"]).name: x["reason"] for x in report.left_out}
    assert set(left) == {f"{a} (copy).jpg", f"{b}.jpg"}
    assert left[f"{a} (copy).jpg"].endswith(f"; it has the same bytes as {KP_DIR}/images/train/{a}.jpg")
    assert left[f"{b}.jpg"].startswith(f"no label file ({b}.json or {b}.txt)") and "same bytes" not in left[f"{b}.jpg"]
    assert sorted(Path(j).name for j in report.junk) == [".DS_Store", "._x.jpg", "Thumbs.db"]
    rep = load(tmp_path / "coco" / "conversion_report.json")
    assert rep["n_left_out"] == 2 and rep["n_junk"] == 3 and rep["per_split"]["train"]["left_out"] == 2


def test_order_that_disagrees_with_geometry_is_fixed_and_reported(tmp_path):
    stem = roboflow_name("0004-F-037Y1", 0)
    mendeley_tree(tmp_path, [("train", stem, "json", SPINE[:2])])
    lbl = tmp_path / KP_DIR / "labels" / "train" / f"{stem}.json"
    data = json.loads(lbl.read_text())
    data["keypoints"][1] = [data["keypoints"][1][i] for i in (3, 2, 1, 0)]  # reversed order
    lbl.write_text(json.dumps(data))
    report = convert_spondylolisthesis(tmp_path, progress=False)
    anns = load(tmp_path / "coco" / "train.json")["annotations"]
    np.testing.assert_allclose(corners_of(anns[1]), SPINE[1])
    assert [(w["where"], w["message"]) for w in report.warnings] == [
        ("vertebra 2", "corners re-ordered by geometry: source superior endplate lies below its inferior endplate")]


# (what to break, expected message fragment); each applied to the train image "B"
BAD_CASES = {
    "truncated_json": ("json", lambda p: p.write_text(p.read_text()[:40]), "malformed JSON"),
    "three_corners": ("json", lambda p: p.write_text(json.dumps(
        {"boxes": [[0, 0, 1, 1]], "keypoints": [[[10, 10, 1], [20, 10, 1], [10, 20, 1]]], "labels": [0]})),
        "vertebra 1: expected 4 corners, got 3"),
    "nan_json": ("json", lambda p: p.write_text(json.dumps(
        {"boxes": [[0, 0, 1, 1]], "keypoints": [[[float("nan"), 10, 1], [20, 10, 1], [10, 20, 1], [20, 20, 1]]],
         "labels": [0]})), "vertebra 1: corner coordinates are not finite"),
    "txt_16_numbers": ("txt", lambda p: p.write_text(p.read_text().replace(" 1.0\n", "\n", 1)),
                       "line 1: expected 17 numbers"),
    "txt_not_a_number": ("txt", lambda p: p.write_text("0 0.5 0.5 0.1 0.1 x " + "0.5 " * 11 + "\n"),
                         "line 1: not a number: 'x'"),
    "txt_nan": ("txt", lambda p: p.write_text("0 0.5 0.5 0.1 0.1 nan " + "0.5 " * 11 + "\n"),
                "line 1: corner coordinates are not finite"),
    "out_of_image": ("json", lambda p: p.write_text(json.dumps(
        {"boxes": [[0, 0, 1, 1]], "keypoints": [[[10, 10, 1], [700, 10, 1], [10, 20, 1], [20, 20, 1]]],
         "labels": [0]})), "corner 2 at (700.00, 10.00) lies outside the 640x640 image"),
    "absent_corner": ("json", lambda p: p.write_text(json.dumps(
        {"boxes": [[0, 0, 1, 1]], "keypoints": [[[10, 10, 1], [0, 0, 0], [10, 20, 1], [20, 20, 1]]],
         "labels": [0]})), "corner 2 is absent"),
    "label_without_image": ("json", lambda p: (p.parents[2] / "images" / "train" / (p.stem + ".jpg")).unlink(),
                            "label file without its image"),
    "unreadable_image": ("json", lambda p: (p.parents[2] / "images" / "train" / (p.stem + ".jpg")).write_bytes(
        (p.parents[2] / "images" / "train" / (p.stem + ".jpg")).read_bytes()[:300]), "not a readable image"),
}


def broken_tree(tmp_path, case):
    fmt, breaker, _ = BAD_CASES[case]
    bad = roboflow_name("0005-F-037Y1", 0)
    mendeley_tree(tmp_path, [("train", roboflow_name("0006-F-037Y1", 0), "json", SPINE),
                             ("train", bad, fmt, SPINE[:2]),
                             ("val", roboflow_name("0007-F-037Y1", 0), "txt", SPINE)])
    breaker(tmp_path / KP_DIR / "labels" / "train" / f"{bad}.{fmt}")


@pytest.mark.parametrize("case", sorted(BAD_CASES))
def test_bad_input_stops_with_message_and_writes_nothing(tmp_path, case):
    broken_tree(tmp_path, case)
    r = run_main(convert_main, "--dataset", "spondylolisthesis", "--root", tmp_path, "--no-progress")
    assert r.returncode == 2, r.stdout + r.stderr
    assert BAD_CASES[case][2] in r.stderr
    assert str(tmp_path / KP_DIR) in r.stderr  # names the file
    assert not (tmp_path / "coco").exists()


@pytest.mark.parametrize("case", sorted(BAD_CASES))
def test_skip_invalid_skips_only_the_broken_image_and_lists_it(tmp_path, case):
    broken_tree(tmp_path, case)
    r = run_main(convert_main, "--dataset", "spondylolisthesis", "--root", tmp_path, "--no-progress",
                 "--skip-invalid")
    assert r.returncode == 0, r.stderr
    rep = load(tmp_path / "coco" / "conversion_report.json")
    assert rep["n_skipped"] == 1
    assert BAD_CASES[case][2] in rep["skipped"][0]["problem"] + ": " + rep["skipped"][0]["where"] or \
        BAD_CASES[case][2] in rep["skipped"][0]["where"] + ": " + rep["skipped"][0]["problem"]
    assert "skipped 1:" in r.stdout
    train = load(tmp_path / "coco" / "train.json")
    val = load(tmp_path / "coco" / "val.json")
    kept = [Path(im["file_name"]).stem for im in train["images"]]
    assert roboflow_name("0006-F-037Y1", 0) in kept and roboflow_name("0005-F-037Y1", 0) not in kept
    assert len(train["annotations"]) == len(SPINE) and len(val["annotations"]) == len(SPINE)


def test_no_half_written_file_when_writing_fails(tmp_path, monkeypatch):
    from vertkp import files

    good_tree(tmp_path)
    calls = []
    real_fsync = files.os.fsync

    def failing_fsync(fd):  # the second file fails to reach the disk, after the first was staged
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("disk full")
        return real_fsync(fd)

    monkeypatch.setattr(files.os, "fsync", failing_fsync)
    with pytest.raises(RuntimeError, match="disk full"):
        convert_spondylolisthesis(tmp_path, progress=False)
    assert list((tmp_path / "coco").iterdir()) == []


def test_cli_summary_and_default_output(tmp_path, run_tool):
    good_tree(tmp_path)
    r = run_tool("convert_to_coco", "--dataset", "spondylolisthesis", "--root", tmp_path)  # the script, from a shell
    assert r.returncode == 0, r.stderr
    assert "train  label files read     3  images     3  vertebrae     12  skipped    0" in r.stdout
    assert "test images taken from: Test" in r.stdout
    assert (tmp_path / "coco" / "val.json").is_file()
    r = run_main(convert_main, "--dataset", "spondylolisthesis", "--root", tmp_path, "--view", "ap")
    assert r.returncode == 2 and "--view applies to buu-lspine only" in r.stderr


def test_grayscale_and_colour_images_are_read(tmp_path):
    good_tree(tmp_path)
    write_image(tmp_path / KP_DIR / "images" / "train" / f"{roboflow_name('hond_0007', 5)}.jpg", 640, 640, color=True)
    convert_spondylolisthesis(tmp_path, progress=False)
    assert len(load(tmp_path / "coco" / "train.json")["images"]) == 3


def test_every_conversion_ends_with_an_audit_in_the_report(tmp_path):
    """One Roboflow source image with copies in train and val: the audit of the conversion
    counts the source overlap, writes its files, and the COCO files say where the images are."""
    mendeley_tree(tmp_path, [("train", roboflow_name("0009-F-037Y1", 0), "json", SPINE),
                             ("val", roboflow_name("0009-F-037Y1", 4), "json", SPINE)])
    r = run_main(convert_main, "--dataset", "spondylolisthesis", "--root", tmp_path, "--no-progress")
    assert r.returncode == 0, r.stderr
    rep = load(tmp_path / "coco" / "conversion_report.json")
    assert rep["audit"]["source_overlap"] >= 1 and rep["archive"] is None
    findings = load(tmp_path / "coco" / "audit" / "audit.json")["findings"]
    assert {f["kind"] for f in findings} >= {"source_overlap"} and "source_overlap" in r.stdout
    assert load(tmp_path / "coco" / "train.json")["info"]["image_root"] == ".."
    r = run_main(convert_main, "--dataset", "spondylolisthesis", "--root", tmp_path, "--no-progress",
                 "--no-audit", "--output", tmp_path / "plain")
    assert r.returncode == 0 and load(tmp_path / "plain" / "conversion_report.json")["audit"] is None
    assert not (tmp_path / "plain" / "audit").exists()


def test_levels_are_anchored_at_the_spec_bottom_level_in_spine_order_not_file_order(tmp_path):
    from vertkp.data.conversion.builder import anchored_levels
    from vertkp.data.datasets import SPECS
    from vertkp.keypoints import canonical_order

    assert SPECS["spondylolisthesis"].bottom_level == "S1" and SPECS["buu-lspine"].bottom_level is None
    spine = np.stack([canonical_order(np.asarray(q, float)).corners for q in SPINE])
    assert anchored_levels(spine, "S1") == ["L2", "L3", "L4", "L5", "S1"]
    shuffled = [3, 0, 4, 1, 2]
    assert anchored_levels(spine[shuffled], "S1") == ["L5", "L2", "S1", "L3", "L4"]
    assert anchored_levels(spine[:1], "S1") == ["S1"]  # one vertebra: still named
    assert anchored_levels(spine, "T3") == [None, None, "T1", "T2", "T3"]  # none above T1
    with pytest.raises(ValueError, match="bottom_level 'S2'"):
        anchored_levels(spine, "S2")
    # through the converter: a label file listing the spine bottom-up
    mendeley_tree(tmp_path, [("train", roboflow_name("hond_0001", 0), "json", SPINE[::-1]),
                             ("val", roboflow_name("hond_0002", 0), "json", SPINE[:2])])
    convert_spondylolisthesis(tmp_path, progress=False)
    for split, want in (("train", ["S1", "L5", "L4", "L3", "L2"]), ("val", ["L5", "S1"])):
        coco = load(tmp_path / "coco" / f"{split}.json")
        assert [a["vertebra_level"] for a in coco["annotations"]] == want
        assert coco["images"][0]["level_source"] == "anchored_bottom_S1"
