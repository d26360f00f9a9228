"""BUU-LSPINE converter on hand-built raw trees."""
import json
from pathlib import Path

import numpy as np
import pytest

from tests.helpers import run_main
from tests.helpers.raw import buu_tree, lateral_spine, write_csv
from vertkp.convert import main as convert_main
from vertkp.data.conversion.coco import S1_DEPTH_FRACTION
from vertkp.data.datasets.buu_lspine import convert_buu_lspine, split_patients
from vertkp.data.imaging.spacing import read_pixel_spacing

PATIENTS = [f"{k:04d}" for k in range(1, 11)]


def load(path):
    return json.loads(Path(path).read_text())


def both(out):
    return [(s, im) for s in ("train", "val") for im in load(out / f"{s}.json")["images"]]


def test_lateral_round_trip_levels_s1_and_facing(tmp_path):
    rows = buu_tree(tmp_path, PATIENTS[:3])
    convert_buu_lspine(tmp_path, "lateral", progress=False, val_fraction=0.0)
    out = tmp_path / "coco" / "lateral"
    coco = load(out / "train.json")
    assert len(coco["images"]) == 3 and len(coco["annotations"]) == 18
    im = coco["images"][0]
    assert im["file_name"] == "LA/0001-F-040Y1.jpg" and (im["width"], im["height"]) == (700, 1000)
    assert im["view"] == "lateral" and im["facing"] == "left" and im["source_stem"] == "0001-F-040Y1"
    assert im["patient_id"] == "0001" and im["sex"] == "F" and im["age"] == 40
    anns = [a for a in coco["annotations"] if a["image_id"] == im["id"]]
    assert [a["vertebra_level"] for a in anns] == ["L1", "L2", "L3", "L4", "L5", "S1"]
    verts, s1 = lateral_spine(y0=150)
    for a, c in zip(anns[:5], verts):
        np.testing.assert_array_equal(np.array(a["keypoints"]).reshape(4, 3)[:, :2], c)
        assert a["source_label"] == [0, 0] and a["num_keypoints"] == 4
    s1_ann = anns[5]
    assert s1_ann["keypoints"] == [*s1[0], 2, *s1[1], 2, 0.0, 0.0, 0, 0.0, 0.0, 0]
    assert s1_ann["num_keypoints"] == 2 and s1_ann["source_label"] == [0]
    # the S1 box covers the endplate and a body of S1_DEPTH_FRACTION x its length below it
    w = np.linalg.norm(s1[1] - s1[0])
    assert s1_ann["area"] == pytest.approx(S1_DEPTH_FRACTION * w * w)
    assert rows  # CSVs were written


def test_ap_view_has_ten_rows_and_no_facing(tmp_path):
    buu_tree(tmp_path, PATIENTS[:2])
    convert_buu_lspine(tmp_path, "ap", progress=False, val_fraction=0.5)
    out = tmp_path / "coco" / "ap"
    imgs = both(out)
    assert len(imgs) == 2 and {s for s, _ in imgs} == {"train", "val"}
    coco = load(out / "train.json")
    assert [a["vertebra_level"] for a in coco["annotations"]] == ["L1", "L2", "L3", "L4", "L5"]
    assert coco["images"][0]["facing"] is None and coco["images"][0]["view"] == "ap"


def test_patient_split_is_deterministic_and_shared_by_views(tmp_path):
    buu_tree(tmp_path, PATIENTS)
    for view in ("lateral", "ap"):
        convert_buu_lspine(tmp_path, view, progress=False, seed=3)
    sides = {}
    for view in ("lateral", "ap"):
        for split, im in both(tmp_path / "coco" / view):
            sides.setdefault(im["patient_id"], set()).add(split)
    assert all(len(s) == 1 for s in sides.values())
    assert sum(s == {"val"} for s in sides.values()) == 2  # 0.2 of 10 patients
    assert split_patients(PATIENTS, 0.2, 3) == {p for p, s in sides.items() if s == {"val"}}
    assert split_patients(PATIENTS, 0.2, 3) == split_patients(list(reversed(PATIENTS)), 0.2, 3)
    assert len({frozenset(split_patients(PATIENTS, 0.3, seed)) for seed in range(6)}) > 1


@pytest.mark.parametrize("suffix", [".csv", ".xlsx", ".json"])
def test_pixel_spacing_files(tmp_path, suffix):
    buu_tree(tmp_path, PATIENTS[:2])
    table = {"0001-F-040Y1.jpg": 0.14, "0002-M-041Y1.jpg": 0.2}
    f = tmp_path / f"spacing{suffix}"
    if suffix == ".csv":
        f.write_text("File Name,Pixel Spacing (mm)\n" + "".join(f"{k},{v}\n" for k, v in table.items()))
    elif suffix == ".json":
        f.write_text(json.dumps(table))
    else:
        import openpyxl

        wb = openpyxl.Workbook()
        wb.active.title = "Other"
        ws = wb.create_sheet("Pixel Spacing")
        ws.append(["image", "spacing"])
        for k, v in table.items():
            ws.append([k, v])
        wb.save(f)
    keys = {"0001-F-040Y1.jpg": 0.14, "0002-M-041Y1.jpg": 0.2}
    assert read_pixel_spacing(f) == keys
    report = convert_buu_lspine(tmp_path, "lateral", progress=False, val_fraction=0.0, pixel_spacing=f)
    got = {im["source_stem"]: im["pixel_spacing"] for _, im in both(tmp_path / "coco" / "lateral")}
    assert got == {"0001-F-040Y1": 0.14, "0002-M-041Y1": 0.2}
    assert any("2 of 2 images" in n for n in report.notes)


def test_images_without_spacing_get_null(tmp_path):
    buu_tree(tmp_path, PATIENTS[:2])
    f = tmp_path / "s.csv"
    f.write_text("name,mm\n0001-F-040Y1.jpg,0.15\n")
    convert_buu_lspine(tmp_path, "lateral", progress=False, val_fraction=0.0, pixel_spacing=f)
    got = {im["source_stem"]: im["pixel_spacing"] for _, im in both(tmp_path / "coco" / "lateral")}
    assert got == {"0001-F-040Y1": 0.15, "0002-M-041Y1": None}


def _rewrite(path, fn):
    lines = Path(path).read_text().splitlines()
    Path(path).write_text("\n".join(fn(lines)) + "\n")


BAD = {
    "ten_rows_lateral": (lambda p: _rewrite(p, lambda ls: ls[:10]), "expected 11 rows (one per endplate), got 10"),
    "four_columns": (lambda p: _rewrite(p, lambda ls: [ls[0].rsplit(",", 1)[0]] + ls[1:]),
                     "line 1: expected 5 columns x1,y1,x2,y2,label, got 4"),
    "non_numeric": (lambda p: _rewrite(p, lambda ls: ls[:2] + ["12,abc,14,15,0"] + ls[3:]),
                    "line 3: column 2 is not a number: 'abc'"),
    "nan": (lambda p: _rewrite(p, lambda ls: ls[:4] + ["nan,300,380,300,0"] + ls[5:]),
            "L3 (lines 5-6): corner coordinates are not finite"),
    "outside": (lambda p: _rewrite(p, lambda ls: ls[:10] + ["300,2000,380,990,0"]),
                "S1 (line 11): corner 1 at (300.00, 2000.00) lies outside the 700x1000 image"),
    "no_image": (lambda p: p.with_suffix(".jpg").unlink(), "label file without its image"),
    "bad_name": (lambda p: [p.rename(p.with_name("patient2.csv")),
                            p.with_suffix(".jpg").rename(p.with_name("patient2.jpg"))],
                 "file name does not follow NNNN-S-AAAYv"),
    "wrong_view_digit": (lambda p: [p.rename(p.with_name("0002-M-041Y0.csv")),
                                    p.with_suffix(".jpg").rename(p.with_name("0002-M-041Y0.jpg"))],
                         "view digit 0 in the name, but the file is in LA/"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_input(tmp_path, case):
    buu_tree(tmp_path, PATIENTS[:3])
    BAD[case][0](tmp_path / "LA" / "0002-M-041Y1.csv")
    r = run_main(convert_main, "--dataset", "buu-lspine", "--root", tmp_path, "--no-progress")
    assert r.returncode == 2 and BAD[case][1] in r.stderr, r.stderr
    assert str(tmp_path / "LA") in r.stderr
    assert not (tmp_path / "coco").exists()
    r = run_main(convert_main, "--dataset", "buu-lspine", "--root", tmp_path, "--no-progress", "--skip-invalid",
                 "--val-fraction", "0")
    assert r.returncode == 0, r.stderr
    rep = load(tmp_path / "coco" / "lateral" / "conversion_report.json")
    assert rep["n_skipped"] == 1
    assert BAD[case][1] in f"{rep['skipped'][0]['where']}: {rep['skipped'][0]['problem']}"
    assert [im["source_stem"] for im in load(tmp_path / "coco" / "lateral" / "train.json")["images"]] == [
        "0001-F-040Y1", "0003-F-042Y1"]


def test_a_stray_copy_without_its_csv_is_left_out_and_named_a_copy(tmp_path):
    buu_tree(tmp_path, PATIENTS[:2])
    la = tmp_path / "LA"
    (la / "0001-F-040Y1(1).jpg").write_bytes((la / "0001-F-040Y1.jpg").read_bytes())  # a duplicate download
    (la / "0002-M-041Y1.csv").unlink()  # an image without its CSV
    (la / ".DS_Store").write_bytes(b"junk")
    report = convert_buu_lspine(tmp_path, "lateral", progress=False, val_fraction=0.0)
    assert [im["source_stem"] for im in load(tmp_path / "coco" / "lateral" / "train.json")["images"]] == [
        "0001-F-040Y1"]
    left = {x["file"]: x["reason"] for x in report.left_out}
    assert left == {
        "LA/0001-F-040Y1(1).jpg": f"no label file (0001-F-040Y1(1).csv) in {la}; its name does not follow "
                                  "NNNN-S-AAAYv either (a stray copy?); it has the same bytes as LA/0001-F-040Y1.jpg",
        "LA/0002-M-041Y1.jpg": f"no label file (0002-M-041Y1.csv) in {la}"}
    assert report.junk == ["LA/.DS_Store"] and report.skipped == []


def test_anterior_on_the_right_is_reported(tmp_path):
    buu_tree(tmp_path, PATIENTS[:1])
    csv_path = tmp_path / "LA" / "0001-F-040Y1.csv"
    rows = [[r[2], r[3], r[0], r[1], r[4]] for r in
            (list(map(float, line.split(","))) for line in csv_path.read_text().splitlines())]
    write_csv(csv_path, [[*r[:4], int(r[4])] for r in rows])
    report = convert_buu_lspine(tmp_path, "lateral", progress=False, val_fraction=0.0)
    msgs = [w["message"] for w in report.warnings]
    assert "anterior points are not on the image-left (facing right)" in msgs
    assert msgs.count("corners re-ordered by geometry: source left/right order is swapped") == 6
    im = load(tmp_path / "coco" / "lateral" / "train.json")["images"][0]
    assert im["facing"] == "right"


def test_spacing_table_writers_round_trip_through_the_reader(tmp_path):
    from vertkp.data.imaging.spacing import format_spacing_csv, format_spacing_xlsx

    rows = [("0001-F-037Y1.jpg", 0.1445), ("0001-F-037Y0.jpg", 0.125)]
    (tmp_path / "s.xlsx").write_bytes(format_spacing_xlsx(rows))
    (tmp_path / "s.csv").write_text(format_spacing_csv(rows))
    for name in ("s.xlsx", "s.csv"):
        assert read_pixel_spacing(tmp_path / name) == dict(rows)
    assert format_spacing_xlsx(rows) == format_spacing_xlsx(rows)  # same rows, same bytes
