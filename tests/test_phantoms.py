"""Tests of the synthetic phantom generator (vertkp.phantoms) and of the raw format
writers it uses (vertkp.data.datasets.spondylolisthesis, vertkp.data.datasets.buu_lspine).

The label files are read here with small independent readers that follow
datasets/README.md, not with the project's converters.
"""
import csv
import hashlib
import io
import json
import re
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from vertkp.data.datasets import buu_lspine, spondylolisthesis
from vertkp.data.datasets.buu_lspine.phantoms import label_codes
from vertkp.data.raw.sources import is_junk
from vertkp.grading import DEFAULT_NO_SLIP_PCT, lateral_displacement_percent, meyerding_grade, slip_percent
from vertkp.keypoints import canonical_order
from vertkp.phantoms import TRUTH_FILE
from vertkp.phantoms.make import make_phantoms
from vertkp.phantoms.cli import build_parser
from vertkp.phantoms.truth import inside_image

REPO = Path(__file__).resolve().parents[1]
ROBOFLOW = re.compile(r"^(?P<stem>.+)_jpg\.rf\.[0-9a-f]{32}$")
BUU_STEM = re.compile(r"^\d{4}-[FM]-\d{3}Y[01]$")
LATERAL_ROWS = ["L1a", "L1b", "L2a", "L2b", "L3a", "L3b", "L4a", "L4b", "L5a", "L5b", "S1a"]
# TL, TR, BL, BR of one vertebra, px
CORNERS = np.array([[[10.0, 20.0], [30.0, 22.0], [11.0, 40.0], [31.0, 41.0]]])


def _truth(root: Path) -> dict:
    return json.loads((root / TRUTH_FILE).read_text())


def _files(root: Path) -> list:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())


def _tree_hash(root: Path) -> str:
    h = hashlib.sha256()
    for rel in _files(root):
        h.update(rel.encode() + b"\0" + (root / rel).read_bytes())
    return h.hexdigest()


def _corners(rec, key: str = "corners") -> np.ndarray:
    """The exact ("corners") or labelled ("label_corners") corners [K, 4, 2] of a truth record."""
    return np.array([[c if c is not None else [np.nan, np.nan] for c in v[key]] for v in rec["vertebrae"]],
                    dtype=np.float64)


@pytest.fixture(scope="module")
def spondy(tmp_path_factory):
    root = tmp_path_factory.mktemp("spondy") / "set"
    summary = make_phantoms("spondylolisthesis", root, 60, seed=0, image_size=256, progress=False)
    return root, summary


@pytest.fixture(scope="module")
def buu(tmp_path_factory):
    root = tmp_path_factory.mktemp("buu") / "set"
    summary = make_phantoms("buu-lspine", root, 12, seed=0, image_size=384, progress=False)
    return root, summary


# ----------------------------------------------------------------------------- raw format writers, by hand


def test_json_label_order_and_box(tmp_path):
    text = spondylolisthesis.format_json_labels(CORNERS)
    rec = json.loads(text)
    assert set(rec) == {"boxes", "keypoints", "labels"}
    assert rec["keypoints"] == [[[11.0, 40.0, 1], [31.0, 41.0, 1], [10.0, 20.0, 1], [30.0, 22.0, 1]]]
    assert rec["boxes"] == [[10.0, 20.0, 31.0, 41.0]]
    assert rec["labels"] == [0]
    path = tmp_path / "a.json"
    path.write_text(spondylolisthesis.format_json_labels(CORNERS + [[0.1234567, 0.0]]))
    (v,) = spondylolisthesis.read_json_labels(path)  # the reader gets the written corners back, exactly
    np.testing.assert_array_equal(v.points, (CORNERS[0] + [0.1234567, 0.0])[[2, 3, 0, 1]])
    assert v.superior == (2, 3) and v.coco_visibility == [2, 2, 2, 2]


def test_txt_label_order_and_normalisation(tmp_path):
    text = spondylolisthesis.format_txt_labels(CORNERS, 100, 200, decimals=6)
    assert text == ("0 0.205000 0.152500 0.210000 0.105000 0.100000 0.100000 1.000000 0.110000 0.200000 "
                    "1.000000 0.310000 0.205000 1.000000 0.300000 0.110000 1.000000\n")
    np.testing.assert_array_equal(spondylolisthesis.txt_label_corners(CORNERS, 100, 200, 6), CORNERS)
    # 6 decimals of x / 100 keep 1e-4 px; the reader gets x = written value * width
    odd = CORNERS + [[0.123456789, 0.0]]
    back = spondylolisthesis.txt_label_corners(odd, 100, 200, 6)
    np.testing.assert_allclose(back[0, :, 0], [10.1235, 30.1235, 11.1235, 31.1235], rtol=0, atol=1e-12)
    for decimals in (6, None):
        path = tmp_path / f"{decimals}.txt"
        path.write_text(spondylolisthesis.format_txt_labels(odd, 100, 200, decimals))
        (v,) = spondylolisthesis.read_txt_labels(path, 100, 200)
        assert v.superior == (0, 3)
        np.testing.assert_array_equal(v.points, spondylolisthesis.txt_label_corners(odd, 100, 200, decimals)[0, [0, 2, 3, 1]])
    np.testing.assert_allclose(v.points, odd[0, [0, 2, 3, 1]], rtol=0, atol=1e-12)  # exact writing: no loss


def test_buu_csv_text_rows_and_names(tmp_path):
    text = buu_lspine.format_csv_rows([(1.23456, 2.0, 3.0, 4.5, 0), (5.0, 6.0, 7.0, 8.0, 2)], decimals=3)
    assert text == "1.235,2.000,3.000,4.500,0\n5.000,6.000,7.000,8.000,2\n"
    assert buu_lspine.format_csv_rows([(0.1, 2.0, 1 / 3, 4.0, 1.0)]) == "0.1,2.0,0.3333333333333333,4.0,1\n"
    assert buu_lspine.row_names("lateral") == LATERAL_ROWS and buu_lspine.row_names("ap") == LATERAL_ROWS[:10]
    quads = [np.array([[k, 10.0 * k], [k + 1, 10.0 * k], [k, 10.0 * k + 5], [k + 1, 10.0 * k + 5]]) for k in range(6)]
    rows = buu_lspine.rows_from_corners(quads, "lateral", {"L4b": 1, "L5a": 1})
    assert len(rows) == 11
    assert rows[:2] == [[0.0, 0.0, 1.0, 0.0, 0], [0.0, 5.0, 1.0, 5.0, 0]]  # L1a = (TL, TR), L1b = (BL, BR)
    assert rows[7] == [3.0, 35.0, 4.0, 35.0, 1] and rows[8] == [4.0, 40.0, 5.0, 40.0, 1]  # L4b, L5a
    assert rows[10] == [5.0, 50.0, 6.0, 50.0, 0]  # S1a: only S1's superior corners
    assert len(buu_lspine.rows_from_corners(quads[:5], "ap")) == 10
    with pytest.raises(ValueError, match="L1, L2, L3, L4, L5, S1; got 5"):
        buu_lspine.rows_from_corners(quads[:5], "lateral")
    path = tmp_path / "x.csv"
    path.write_text(buu_lspine.format_csv_rows(rows))
    assert buu_lspine.read_csv_rows(path, 11) == rows  # the reader gets the rows back
    assert buu_lspine.format_name(7, "M", 5, "0") == "0007-M-005Y0"
    name = buu_lspine.parse_name(buu_lspine.format_name("0042", "F", 73, "1"))
    assert (name.patient, name.sex, name.age, name.view_digit) == ("0042", "F", 73, "1")
    with pytest.raises(ValueError, match="NNNN-S-AAAYv"):
        buu_lspine.format_name(1, "X", 40, "1")


def test_roboflow_name_is_the_inverse_of_source_stem():
    name = spondylolisthesis.roboflow_name("3209-F-073Y1", "0123456789abcdef" * 2)
    assert name == "3209-F-073Y1_jpg.rf.0123456789abcdef0123456789abcdef"
    assert spondylolisthesis.source_stem(name) == "3209-F-073Y1"
    with pytest.raises(ValueError, match="32 hexadecimal digits"):
        spondylolisthesis.roboflow_name("x", "abc")


def test_label_codes_by_hand():
    lateral = [{"upper": "L1", "lower": "L2", "grade": 0}, {"upper": "L2", "lower": "L3", "grade": -1},
               {"upper": "L3", "lower": "L4", "grade": 0}, {"upper": "L4", "lower": "L5", "grade": 5},
               {"upper": "L5", "lower": "S1", "grade": 1}]
    assert label_codes("lateral", lateral) == {"L2b": 2, "L3a": 2, "L4b": 1, "L5a": 1, "L5b": 1, "S1a": 1}
    assert label_codes("lateral", lateral[:1]) == {}
    ap = [{"upper": u, "lower": low, "lateral_displacement_pct": d}
          for u, low, d in (("L1", "L2", 1.0), ("L2", "L3", -7.5), ("L3", "L4", 5.0), ("L4", "L5", 6.0))]
    assert label_codes("ap", ap) == {"L2b": 3, "L3a": 3, "L4b": 3, "L5a": 3}  # 5.0 is inside the band
    # the patient's sagittal codes win on a shared row; AP rows stop at L5b
    sagittal = [{"upper": "L4", "lower": "L5", "grade": 1}, {"upper": "L5", "lower": "S1", "grade": -1}]
    assert label_codes("ap", ap, sagittal) == {"L2b": 3, "L3a": 3, "L4b": 1, "L5a": 1, "L5b": 2}


# ----------------------------------------------------------------------------- spondylolisthesis layout


def test_spondy_layout_and_names(spondy):
    root, summary = spondy
    truth = _truth(root)
    files = set(_files(root))
    images = {r["file_name"] for r in truth["images"]}
    labels = {r[k] for r in truth["images"] for k in ("label_file", "twin_label_file") if r[k]}
    assert files == images | labels | set(truth["junk"]) | {TRUTH_FILE}
    assert all(is_junk(j) for j in truth["junk"]) and len(truth["junk"]) >= 3
    # the layout of datasets/README.md, spelled out here to check vertkp.data.datasets.spondylolisthesis's constants
    pat = re.compile(r"^Dataset/Train/Keypointrcnn_data/(images|labels)/(train|val)/([^/]+)\.(jpg|json|txt)$")
    for f in files - {TRUTH_FILE} - set(truth["junk"]):
        if f.startswith("Test/"):
            assert re.match(r"^Test/[^/]+\.jpg$", f), f
            assert BUU_STEM.match(Path(f).stem), f
            continue
        m = pat.match(f)
        assert m, f
        assert (m.group(1) == "images") == (m.group(4) == "jpg"), f
        assert ROBOFLOW.match(m.group(3)), f
    for r in truth["images"]:
        if r["split"] == "test":
            assert r["label_file"] is None
            continue
        img, lab = Path(r["file_name"]), Path(r["label_file"])
        assert img.stem == lab.stem and lab.suffix == ".json" == "." + r["label_format"]  # a JSON for every image
        assert img.parent.name == lab.parent.name == r["split"]
        if r["twin_label_file"]:
            assert Path(r["twin_label_file"]) == lab.with_suffix(".txt")
    counts = summary["images_per_split"]
    assert counts["train"] + counts["val"] == 60 and counts["test"] == 6
    assert 0.25 <= counts["val"] / 60 <= 0.35


def test_spondy_splits_stems_and_counts(spondy):
    root, _ = spondy
    truth = _truth(root)
    split_of, copies = {}, {}
    for r in truth["images"]:
        stem = r["source_stem"]
        if r["split"] != "test":
            assert ROBOFLOW.match(Path(r["file_name"]).stem).group("stem") == stem
        assert split_of.setdefault(stem, r["split"]) == r["split"], f"{stem} is in two splits"
        copies[stem] = copies.get(stem, 0) + 1
        if r["split"] in ("val", "test"):
            assert BUU_STEM.match(stem) and stem.endswith("1"), stem
        assert 3 <= len(r["vertebrae"]) <= 11
        assert r["view"] == "lateral"
    assert max(copies.values()) >= 2 and max(copies.values()) <= 3
    train_stems = [s for s, sp in split_of.items() if sp == "train"]
    assert any(BUU_STEM.match(s) for s in train_stems) and any(not BUU_STEM.match(s) for s in train_stems)
    labelled = [r for r in truth["images"] if r["split"] != "test"]
    assert 0.3 <= sum(r["twin_label_file"] is not None for r in labelled) / len(labelled) <= 0.5  # TXT twins
    assert [r["twin_offset_px"] for r in labelled if r["twin_offset_px"]] == [3.0]  # exactly one bad twin
    assert {r["facing"] for r in truth["images"]} == {"left", "right"}
    assert {r["facing"] for r in truth["images"] if r["split"] == "val"} == {"left"}
    ends = [r["vertebrae"][-1]["level"] for r in truth["images"]]
    assert ends.count("S1") == len(ends)  # realistic: every vertebra in full view is labelled, down to S1
    # augmented copies are different images with their own labels
    by_stem = {}
    for r in truth["images"]:
        by_stem.setdefault(r["source_stem"], []).append(r)
    multi = [rs for rs in by_stem.values() if len(rs) > 1]
    for rs in multi:
        assert len({(root / r["file_name"]).read_bytes() for r in rs}) == len(rs)
        assert len({json.dumps(r["vertebrae"]) for r in rs}) == len(rs)


def test_spondy_images(spondy):
    root, _ = spondy
    truth = _truth(root)
    channels = set()
    for r in truth["images"]:
        img = cv2.imread(str(root / r["file_name"]), cv2.IMREAD_UNCHANGED)
        assert img.shape[:2] == (r["height"], r["width"])
        channels.add(1 if img.ndim == 2 else img.shape[2])
        assert (img.ndim == 3) == r["colour"]
        if r["split"] == "test":
            assert r["height"] > 1.5 * 256 and r["width"] != r["height"]
        else:
            assert r["width"] == r["height"] == 256
    assert channels == {1, 3}


def test_spondy_labels_match_truth(spondy):
    root, _ = spondy
    truth = _truth(root)
    for r in truth["images"]:
        if r["split"] == "test":
            continue
        c = _corners(r, "label_corners")
        w, h = r["width"], r["height"]
        text = (root / r["label_file"]).read_text()
        if r["label_format"] == "json":
            rec = json.loads(text)
            assert set(rec) == {"boxes", "keypoints", "labels"}
            assert rec["labels"] == [0] * len(c)
            kp = np.array(rec["keypoints"], dtype=np.float64)
            assert kp.shape == (len(c), 4, 3) and np.all(kp[..., 2] == 1)
            np.testing.assert_array_equal(kp[:, :, :2], c[:, [2, 3, 0, 1]])  # BL, BR, TL, TR
            boxes = np.array(rec["boxes"])
            np.testing.assert_array_equal(boxes, np.concatenate([c.min(axis=1), c.max(axis=1)], axis=1))
        else:
            lines = text.splitlines()
            assert len(lines) == len(c)
            for line, q in zip(lines, c):
                fields = line.split()
                assert len(fields) == 17 and fields[0] == "0"
                vals = np.array([float(f) for f in fields])
                assert np.all((vals >= 0) & (vals <= 1))
                pts = vals[5:].reshape(4, 3)
                assert np.all(pts[:, 2] == 1)
                back = pts[:, :2] * [w, h]
                np.testing.assert_array_equal(back, q[[0, 2, 3, 1]])  # TL, BL, BR, TR
                lo, hi = back.min(axis=0), back.max(axis=0)
                np.testing.assert_allclose(vals[1:5] * [w, h, w, h], [*(lo + hi) / 2, *(hi - lo)], atol=1e-5 * w)


def test_truth_corners_are_canonical(spondy, buu):
    for root, _ in (spondy, buu):
        for r in _truth(root)["images"]:
            for v in r["vertebrae"]:
                q = np.array([p for p in v["corners"] if p is not None])
                if len(q) == 4:
                    res = canonical_order(q)
                    assert res.agreed, (r["file_name"], v["level"], res.reason)
                assert np.all((q >= 0) & (q <= [r["width"], r["height"]]))


def _slip_by_facing(upper, lower, facing):
    """The slip of canonical corners [4, 2] under a facing, corners picked here by hand
    (docs/clinical.md): P/A = lower posterior/anterior-superior, Q = upper posterior-inferior."""
    if facing == "left":  # anterior = image-left: TL anterior, TR posterior, BR posterior-inferior
        a, p, q = lower[0], lower[1], upper[3]
    else:
        a, p, q = lower[1], lower[0], upper[2]
    return slip_percent(p, a, q)


def test_planted_slips(spondy):
    root, _ = spondy
    truth = _truth(root)
    assert truth["no_slip_pct"] == DEFAULT_NO_SLIP_PCT
    grades = []
    for r in truth["images"]:
        c = _corners(r)
        levels = [v["level"] for v in r["vertebrae"]]
        assert len(r["pairs"]) == len(levels) - 1
        for k, pair in enumerate(r["pairs"]):
            assert (pair["upper"], pair["lower"]) == (levels[k], levels[k + 1])
            expect = _slip_by_facing(c[k], c[k + 1], r["facing"])
            assert abs(pair["slip_pct"] - expect) < 1e-9
            assert pair["grade"] == meyerding_grade(pair["slip_pct"], truth["no_slip_pct"])
            if pair["grade"] != 0:
                assert pair["upper"] in ("L1", "L2", "L3", "L4", "L5"), pair
            else:
                assert abs(pair["slip_pct"]) < 3.0  # normal pairs stay well inside the band
            if r["split"] != "test":
                grades.append(pair["grade"])
    grades = np.array(grades)
    assert np.mean(grades == 0) > 0.7
    for g in (-1, 1, 2):
        assert np.any(grades == g), g
    assert np.any(grades >= 3)
    # the same source keeps its slips in every augmented copy (slip % is similarity invariant)
    by_stem = {}
    for r in truth["images"]:
        by_stem.setdefault(r["source_stem"], []).append([p["slip_pct"] for p in r["pairs"]])
    for slips in by_stem.values():
        for s in slips[1:]:  # equal up to the rounding of the written corners (1/1000 px)
            np.testing.assert_allclose(s, slips[0], rtol=0, atol=0.05)


def _assert_corners_on_bright_bodies(root: Path, margin: float, edge: float, edge_share: float) -> None:
    """Every exact body is brighter than the ring around it by ``margin`` grey levels, and 3 px inside
    each corner is brighter than 3 px outside it by ``edge`` on average (``edge_share`` of the corners)."""
    for r in _truth(root)["images"][:20]:
        img = cv2.imread(str(root / r["file_name"]), cv2.IMREAD_GRAYSCALE).astype(np.float64)
        c = _corners(r)
        inside, outside, body, around = [], [], [], []
        all_bodies = np.zeros(img.shape, np.uint8)
        for q in c:
            if not np.isnan(q).any():
                cv2.fillPoly(all_bodies, [np.round(q[[0, 1, 3, 2]] * 16).astype(np.int32)], 1, shift=4)
        for q in c:
            if np.isnan(q).any():
                continue
            mask = np.zeros(img.shape, np.uint8)
            cv2.fillPoly(mask, [np.round(q[[0, 1, 3, 2]] * 16).astype(np.int32)], 1, shift=4)
            size = np.sqrt(mask.sum())
            ring = cv2.dilate(mask, np.ones((3, 3), np.uint8), iterations=max(2, int(0.25 * size)))
            ring = (ring > 0) & (all_bodies == 0)
            body.append(img[mask > 0].mean())
            around.append(img[ring].mean())
            centre = q.mean(axis=0)
            for p in q:
                d = (centre - p) / np.linalg.norm(centre - p)
                for off, out in ((3.0, inside), (-3.0, outside)):
                    x, y = np.round(p + off * d).astype(int)
                    out.append(img[max(y - 1, 0):y + 2, max(x - 1, 0):x + 2].mean())
        body, around = np.array(body), np.array(around)
        assert np.all(body > around + margin), r["file_name"]
        diff = np.array(inside) - np.array(outside)
        assert np.mean(diff > 0) >= edge_share and diff.mean() > edge, r["file_name"]


def test_corners_sit_on_bright_bodies_clean(tmp_path):
    for layout, n, size in (("spondylolisthesis", 12, 256), ("buu-lspine", 4, 384)):
        make_phantoms(layout, tmp_path / layout, n, seed=0, image_size=size, progress=False, difficulty="clean")
        _assert_corners_on_bright_bodies(tmp_path / layout, margin=10, edge=20, edge_share=0.95)


def test_corners_sit_on_bodies_under_the_clutter(spondy, buu):
    """At the default (realistic) difficulty the bodies are dimmer and blurred, still under their corners."""
    for root, _ in (spondy, buu):
        _assert_corners_on_bright_bodies(root, margin=4, edge=8, edge_share=0.9)


# ----------------------------------------------------------------------------- BUU-LSPINE layout


def test_buu_layout_names_and_sizes(buu):
    root, summary = buu
    truth = _truth(root)
    files = set(_files(root))
    expect = {TRUTH_FILE, "pixel_spacing.xlsx", "pixel_spacing.csv"}
    for r in truth["images"]:
        expect |= {r["file_name"], r["label_file"]}
    [stray] = truth["strays"]  # a duplicate download in LA/, as in a circulating copy
    assert files == expect | {stray["file_name"]}
    assert stray["file_name"] == stray["copy_of"][:-4] + "(1).jpg" and stray["file_name"].startswith("LA/")
    assert (root / stray["file_name"]).read_bytes() == (root / stray["copy_of"]).read_bytes()
    stems = {}
    for f in files - {TRUTH_FILE, "pixel_spacing.xlsx", "pixel_spacing.csv", stray["file_name"]}:
        m = re.match(r"^(AP|LA)/([^/]+)\.(jpg|csv)$", f)
        assert m and BUU_STEM.match(m.group(2)), f
        assert m.group(2)[-1] == ("0" if m.group(1) == "AP" else "1"), f
        stems.setdefault(m.group(2)[:-1], set()).add((m.group(1), m.group(3)))
    assert len(stems) == 6 == summary["patients"]
    assert all(v == {("AP", "jpg"), ("AP", "csv"), ("LA", "jpg"), ("LA", "csv")} for v in stems.values())
    for r in truth["images"]:
        img = cv2.imread(str(root / r["file_name"]), cv2.IMREAD_UNCHANGED)
        assert img.shape[:2] == (r["height"], r["width"]) and r["height"] == 384
        assert 0.6 * 384 - 1 <= r["width"] <= 0.8 * 384 + 1
        assert r["split"] is None


def test_buu_csv_rows_match_truth(buu):
    root, _ = buu
    truth = _truth(root)
    codes_seen = {"lateral": set(), "ap": set()}
    lateral_of = {r["source_stem"][:-1]: r for r in truth["images"] if r["view"] == "lateral"}
    for r in truth["images"]:
        text = (root / r["label_file"]).read_text()
        rows = list(csv.reader(io.StringIO(text)))
        assert all(len(row) == 5 for row in rows)
        vals = np.array([[float(x) for x in row[:4]] for row in rows])  # no header: row 1 is numbers
        labels = [int(row[4]) for row in rows]
        codes_seen[r["view"]] |= set(labels)
        c = _corners(r, "label_corners")
        names = [f"{v['level']}{e}" for v in r["vertebrae"] for e in "ab"][:len(rows)]
        if r["view"] == "lateral":
            assert len(rows) == 11 and r["facing"] == "left"
            assert [v["level"] for v in r["vertebrae"]] == ["L1", "L2", "L3", "L4", "L5", "S1"]
            assert r["vertebrae"][-1]["corners"][2:] == [None, None]
            assert names == LATERAL_ROWS
            sagittal = []
            if all(p["grade"] == 0 for p in r["pairs"]):
                assert labels == [0] * 11  # a spine without a slip has no code
        else:
            assert len(rows) == 10 and r["facing"] is None
            assert [v["level"] for v in r["vertebrae"]] == ["L1", "L2", "L3", "L4", "L5"]
            sagittal = lateral_of[r["source_stem"][:-1]]["pairs"]
        flat = c.reshape(-1, 2, 2)[: len(rows)]  # rows a, b per vertebra = (TL, TR), (BL, BR)
        np.testing.assert_array_equal(vals.reshape(-1, 2, 2), flat)
        assert np.all(vals[:, 0] < vals[:, 2])  # point 1 is image-left (anterior on LA)
        # the file's codes are label_codes' (tested by hand above) of the truth's pairs
        want = label_codes(r["view"], r["pairs"], sagittal)
        assert {n: lab for n, lab in zip(names, labels) if lab} == want, r["file_name"]
    assert codes_seen["lateral"] <= {0, 1, 2} and codes_seen["ap"] <= {0, 1, 2, 3}
    assert 0 in codes_seen["lateral"] and len(codes_seen["lateral"]) > 1  # some slips planted, some not


def test_buu_pairs_and_ap_displacement(buu):
    root, _ = buu
    truth = _truth(root)
    planted = []
    for r in truth["images"]:
        c = _corners(r)
        for k, p in enumerate(r["pairs"]):
            if r["view"] == "lateral":
                assert abs(p["slip_pct"] - _slip_by_facing(c[k], c[k + 1], "left")) < 1e-9
            else:
                assert set(p) == {"upper", "lower", "lateral_displacement_pct", "label_lateral_displacement_pct"}
                d = p["lateral_displacement_pct"]
                # the upper vertebra's inferior corners (BL, BR) over the lower's superior ones (TL, TR)
                assert d == lateral_displacement_percent(c[k + 1][0], c[k + 1][1], c[k][2], c[k][3])
                # planted: within +-2% (normal) or 7-20% either way, up to the 1/1000 px of the CSV
                assert abs(d) <= 2.01 or 6.99 <= abs(d) <= 20.01, (r["file_name"], p)
                planted.append(abs(d) > 5)
    assert len(planted) == 6 * 4 and not all(planted)


def test_buu_pixel_spacing(buu):
    import openpyxl

    root, _ = buu
    truth = _truth(root)
    wb = openpyxl.load_workbook(root / "pixel_spacing.xlsx")
    assert wb.sheetnames == ["Pixel Spacing"]
    rows = list(wb["Pixel Spacing"].iter_rows(values_only=True))
    assert rows[0] == ("file_name", "pixel_spacing_mm")
    with open(root / "pixel_spacing.csv", newline="") as f:
        csv_rows = list(csv.reader(f))
    assert [(n, float(v)) for n, v in csv_rows[1:]] == [(n, float(v)) for n, v in rows[1:]]
    want = sorted((Path(r["file_name"]).name, r["pixel_spacing"]) for r in truth["images"])
    assert list(rows[1:]) == want
    for _, mm in want:
        assert 300 / 384 <= mm <= 480 / 384  # 300-400 mm of anatomy over 384 px, zoomed out if needed


# ----------------------------------------------------------------------------- determinism, errors, CLI


@pytest.mark.parametrize("layout,n,size", [("spondylolisthesis", 10, 160), ("buu-lspine", 4, 192)])
def test_same_seed_same_bytes(tmp_path, layout, n, size):
    make_phantoms(layout, tmp_path / "a", n, seed=7, image_size=size, progress=False)
    make_phantoms(layout, tmp_path / "b", n, seed=7, image_size=size, progress=False)
    make_phantoms(layout, tmp_path / "c", n, seed=8, image_size=size, progress=False)
    assert _files(tmp_path / "a") == _files(tmp_path / "b")
    assert _tree_hash(tmp_path / "a") == _tree_hash(tmp_path / "b")
    assert _tree_hash(tmp_path / "a") != _tree_hash(tmp_path / "c")


def test_errors(tmp_path):
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x.txt").write_text("x")
    with pytest.raises(FileExistsError, match="not empty"):
        make_phantoms("spondylolisthesis", tmp_path / "full", 4, seed=0, image_size=160, progress=False)
    with pytest.raises(ValueError, match="layout must be one of"):
        make_phantoms("coco", tmp_path / "a", 4, seed=0, progress=False)
    with pytest.raises(ValueError, match=">= 2"):
        make_phantoms("buu-lspine", tmp_path / "b", 1, seed=0, progress=False)
    (tmp_path / "empty").mkdir()  # an existing empty folder is written into
    summary = make_phantoms("buu-lspine", tmp_path / "empty", 2, seed=0, image_size=160, progress=False)
    assert summary["images"] == 2 and summary["patients"] == 1
    assert (tmp_path / "empty" / TRUTH_FILE).is_file()


@pytest.mark.slow
def test_cli_smoke(tmp_path):
    out = tmp_path / "cli"
    cmd = [sys.executable, str(REPO / "tools" / "make_phantoms.py"), "--layout", "spondylolisthesis",
           "--output", str(out), "--num-images", "4", "--seed", "1", "--image-size", "160"]
    res = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, timeout=120)
    assert res.returncode == 0, res.stderr
    assert "train 3" in res.stdout and "val 1" in res.stdout and "test 1" in res.stdout
    assert f"truth: {out}/{TRUTH_FILE}" in res.stdout
    assert (out / TRUTH_FILE).exists()
    res = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, timeout=120)
    assert res.returncode == 2 and res.stderr.startswith("make_phantoms.py: error: ")
    assert "not empty" in res.stderr and "another --output" in res.stderr


def test_cli_errors_name_the_command_run(tmp_path, monkeypatch, capsys):
    from vertkp import cli

    (tmp_path / "x.txt").write_text("x")
    monkeypatch.setattr(sys, "argv", ["vertkp"])  # vertkp.cli sets argv[0] to the command: restored after
    assert cli.main(["phantoms", "--layout", "buu-lspine", "--output", str(tmp_path), "--num-images", "2",
                     "--seed", "0"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("vertkp phantoms: error: ") and "is not empty" in err
    assert [a.dest for a in build_parser()._actions if "--output" in a.option_strings] == ["output"]


def test_ensure_phantoms_keeps_the_same_set_and_remakes_another(tmp_path):
    from vertkp.phantoms.make import ensure_phantoms

    folder = tmp_path / "phantoms"
    made = ensure_phantoms("spondylolisthesis", folder, 4, 0, image_size=128, progress=False)
    assert made is not None and (tmp_path / "phantoms.json").is_file()
    marker = folder / "kept.txt"
    marker.write_text("x")
    assert ensure_phantoms("spondylolisthesis", folder, 4, 0, image_size=128, progress=False) is None
    assert marker.is_file()  # kept as it was
    assert ensure_phantoms("spondylolisthesis", folder, 4, 1, image_size=128, progress=False) is not None
    assert not marker.is_file()  # another seed: removed and made again
    (tmp_path / "phantoms.json").unlink()  # no record (e.g. interrupted): made again
    assert ensure_phantoms("spondylolisthesis", folder, 4, 1, image_size=128, progress=False) is not None


def test_archive_is_packed_as_the_real_download_and_converts_back(tmp_path):
    """--archive: an outer zip with the set's folder, a nested Dataset.zip, junk and the truth at its
    root; the converter takes the zip and gives the same corners as the truth (file names included)."""
    import zipfile

    from vertkp.convert import convert_dataset
    from vertkp.data.datasets import SPECS

    zip_path = tmp_path / "download.zip"
    make_phantoms("spondylolisthesis", zip_path, 8, seed=2, image_size=160, progress=False, archive=True)
    top = SPECS["spondylolisthesis"].phantom_archive_folder
    with zipfile.ZipFile(zip_path) as zf:
        names = set(zf.namelist())
        assert f"{top}/Dataset.zip" in names and TRUTH_FILE in names
        assert any(n.startswith("__MACOSX/") for n in names) and not any("/Train/" in n and "__MACOSX" not in n
                                                                        for n in names)
        truth = json.loads(zf.read(TRUTH_FILE))
        with zipfile.ZipFile(io.BytesIO(zf.read(f"{top}/Dataset.zip"))) as nested:
            assert all(n.startswith("Dataset/") for n in nested.namelist())
    run = convert_dataset("spondylolisthesis", zip_path, extract_to=tmp_path / "x", audit=False, progress=False)
    coco = {s: json.loads((tmp_path / "x" / "coco" / f"{s}.json").read_text()) for s in ("train", "val")}
    by_name = {im["file_name"]: (s, im["id"]) for s, c in coco.items() for im in c["images"]}
    checked = 0
    for rec in truth["images"]:
        if rec["split"] == "test":
            continue
        split, iid = by_name[rec["file_name"]]  # the truth's names are those of the extracted archive
        got = [a["keypoints"] for a in coco[split]["annotations"] if a["image_id"] == iid]
        want = [[v for corner in vert["label_corners"] for v in (*corner, 2)] for vert in rec["vertebrae"]]
        assert got == want
        checked += 1
    assert checked == sum(r["split"] != "test" for r in truth["images"]) > 0
    assert run.report.archive["path"] == str(zip_path) and run.report.archive["verified"] is False
    assert run.report.twins["compared"] > 0 and len(run.report.twins["disagree"]) == 1


def test_jittered_label_corners_stay_inside_the_image():
    # an annotator's click near the top border at y = -0.61 (seed 2's first realistic set had one)
    c = np.array([[[343.04, -0.61], [400.0, 2.0], [-3.0, 30.0], [650.0, 641.0]],
                  [[np.nan, np.nan], [1, 1], [2, 2], [3, 3]]])
    moved = inside_image(c, 640, 640)
    assert moved[0].tolist() == [[343.04, 0.0], [400.0, 2.0], [0.0, 30.0], [640.0, 640.0]]
    assert np.isnan(moved[1, 0]).all() and moved[1, 1:].tolist() == [[1, 1], [2, 2], [3, 3]]
