"""vertkp audit (vertkp/audit, tools/audit.py): every kind of finding on a hand-built case with
its exact finding, a clean case with none, the files, the command line end to end, bad
arguments, and the import contract (no torch, no detectron2)."""
import csv
import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from tests.helpers import REPO, load_tool
from tests.helpers.raw import quad, roboflow_name
from vertkp.audit import FINDING_KINDS, Audit, Finding, audit_datasets, audit_files
from vertkp.audit.cli import build_parser, main
from vertkp.audit.dataset import resolve_image_root
from vertkp.grading.plausibility import iou_pairs, reflex_corners, signed_disc_height
from vertkp.audit.hashing import close_hash_pairs, popcount64
from vertkp.audit.overlay import OverlayVertebra, draw_audit_overlay
from vertkp.data.conversion.coco import make_annotation, make_coco
from vertkp.data.raw.provenance import patient_of, source_of
from vertkp.drawing import HIGHLIGHT_COLOR, wrap_text

W, H, GAP = 60.0, 40.0, 20.0  # vertebra width and height, disc height, px: area 2400 px^2, disc ratio 0.5


def picture(path: Path, seed: int, width: int, height: int) -> np.ndarray:
    """Write a distinct picture (blurred noise, grey) to ``path`` (PNG or JPEG by its suffix); returns it."""
    rng = np.random.default_rng(seed)
    a = cv2.GaussianBlur(rng.integers(0, 256, (height, width)).astype(np.float32), (0, 0), 3)
    a = cv2.normalize(a, None, 0, 255, cv2.NORM_MINMAX).astype(np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), a)
    return a


def stack(n, x0=120.0, y0=70.0):
    """Canonical corners of n upright W x H vertebrae, GAP px apart, top to bottom."""
    return [quad(x0, y0 + k * (H + GAP), W, H) for k in range(n)]


class Coco:
    """A vertkp COCO dict built image by image; annotation ids count from 1 in the order added."""

    def __init__(self):
        self.images, self.annotations = [], []

    def add(self, file_name, width, height, vertebrae=(), levels=None, superior_only=(), **extra) -> list:
        """Add an image with its vertebrae (canonical corners; indices in ``superior_only``
        have TL and TR only); returns their annotation ids."""
        image_id = len(self.images) + 1
        self.images.append(dict({"id": image_id, "file_name": file_name, "width": width, "height": height,
                                 "view": "lateral", "pixel_spacing": None, "facing": None}, **extra))
        ids = []
        for k, corners in enumerate(vertebrae):
            visible = [True, True, False, False] if k in superior_only else [True] * 4
            ann = make_annotation(len(self.annotations) + 1, image_id, np.asarray(corners, float), visible, width,
                                  height, levels[k] if levels else None)
            self.annotations.append(ann)
            ids.append(ann["id"])
        return ids

    def coco(self) -> dict:
        return make_coco(self.images, self.annotations, "audit test")


def audit_one(tmp_path, file_name, vertebrae, width=240, height=400, seed=1, **kw) -> list:
    """The findings of a dataset "train" with one image (a distinct picture) and these vertebrae."""
    picture(tmp_path / file_name, seed, width, height)
    c = Coco()
    ids = c.add(file_name, width, height, vertebrae, **kw)
    return audit_datasets({"train": c.coco()}, {"train": tmp_path}).findings, ids


def as_tuples(findings):
    return [(f.kind, f.severity, f.gt_file, f.file_name, f.annotation_ids, f.detail) for f in findings]


# ---- a clean dataset: no finding at all ------------------------------------------------------------
def test_a_clean_dataset_has_no_finding(tmp_path):
    train, val = Coco(), Coco()
    picture(tmp_path / "images/train/a.png", 1, 240, 400)
    train.add("images/train/a.png", 240, 400, stack(5))
    picture(tmp_path / "images/train/0001-F-037Y1.jpg", 2, 240, 440)  # BUU: levels, facing, S1 superior endplate
    spine = stack(5) + [quad(120, 70 + 5 * (H + GAP), W, H)]
    train.add("images/train/0001-F-037Y1.jpg", 240, 440, spine, levels=["L1", "L2", "L3", "L4", "L5", "S1"],
              superior_only=(5,), facing="left", patient_id="0001", source_stem="0001-F-037Y1")
    picture(tmp_path / "images/val/b.png", 3, 240, 400)
    val.add("images/val/b.png", 240, 400, stack(5)[::-1])  # caudal to cranial is an order too
    picture(tmp_path / "images/val/0002-M-050Y1.png", 4, 300, 300)  # no vertebra at all
    val.add("images/val/0002-M-050Y1.png", 300, 300)
    audit = audit_datasets({"train": train.coco(), "val": val.coco()}, {"train": tmp_path, "val": tmp_path})
    assert audit.findings == []
    assert audit.summary() == {}
    assert audit.format_summary() == "audit of 2 dataset(s), 4 images, 16 vertebrae: 0 finding(s)"


# ---- per vertebra -----------------------------------------------------------------------------------
def test_tiny_vertebra_by_area(tmp_path):
    # five 60 x 40 bodies (2400 px^2) and a 25 x 16 one below them: 400 px^2, 16.7% of the median
    findings, ids = audit_one(tmp_path, "tiny.png", stack(5) + [quad(120, 70 + 5 * (H + GAP), 25, 16)], height=420)
    assert as_tuples(findings) == [("tiny_vertebra", "warning", "train", "tiny.png", [ids[5]],
                                    "area 400 px^2 is 16.7% of the image's median 2400 px^2")]


def test_tiny_vertebra_by_corner_box(tmp_path):
    # one 40 x 9 body: the median is its own area, but its box is under 15 x 10 px; a rotated 9 x 14 one too
    findings, ids = audit_one(tmp_path, "thin.png", [quad(100, 100, 40, 9)], width=240, height=240)
    assert as_tuples(findings) == [("tiny_vertebra", "warning", "train", "thin.png", [ids[0]],
                                    "corner box 40.0 x 9.0 px is under 15 x 10 px")]
    findings, ids = audit_one(tmp_path, "narrow.png", [quad(100, 100, 9, 14)], width=240, height=240)
    assert findings[0].detail == "corner box 14.0 x 9.0 px is under 15 x 10 px"


def test_duplicate_vertebra(tmp_path):
    # the third body again 3 px lower: IoU 60 * 37 / (2 * 2400 - 60 * 37) = 0.8605
    spine = stack(3)
    spine.insert(2, spine[1] + [0.0, 3.0])
    findings, ids = audit_one(tmp_path, "dup.png", spine)
    assert as_tuples(findings) == [("duplicate_vertebra", "error", "train", "dup.png", [ids[1], ids[2]],
                                    f"IoU 0.86 with annotation {ids[2]}")]  # and no implausible disc between them


def test_overlapping_vertebrae(tmp_path):
    # 15 px lower: IoU 60 * 25 / (4800 - 1500) = 0.4545: overlapping, not a duplicate
    spine = stack(3)
    spine.insert(2, spine[1] + [0.0, 15.0])
    findings, ids = audit_one(tmp_path, "ovl.png", spine)
    assert as_tuples(findings) == [("overlapping_vertebrae", "warning", "train", "ovl.png", [ids[1], ids[2]],
                                    f"IoU 0.45 with annotation {ids[2]}")]
    assert [round(v, 6) for *_, v in iou_pairs(np.array(spine))] == [round(1500 / 3300, 6)]


def test_self_intersecting(tmp_path):
    q = quad(100, 100, W, H)[[0, 3, 2, 1]]  # TR and BR swapped: a bow-tie
    findings, ids = audit_one(tmp_path, "bow.png", [q], width=240, height=240)
    assert as_tuples(findings) == [("self_intersecting", "error", "train", "bow.png", [ids[0]],
                                    "sides TL-TR and BR-BL cross")]


def test_non_convex(tmp_path):
    # BR pushed inside the triangle TL, TR, BL: area 1050 px^2 of a hull of 1200 px^2
    q = np.array([[100, 100], [160, 100], [100, 140], [130, 115]], float)
    findings, ids = audit_one(tmp_path, "cvx.png", [q], width=240, height=240)
    assert as_tuples(findings) == [("non_convex", "warning", "train", "cvx.png", [ids[0]],
                                    "reflex corner BR; the outline covers 87.5% of its convex hull")]
    assert reflex_corners(quad(100, 100, W, H)) == []


def test_misshapen_vertebra(tmp_path):
    # a trapezoid: superior endplate 60 px, inferior 25 px (a corner on another body); 40 px is fine
    q = np.array([[100, 100], [160, 100], [112, 140], [137, 140]], float)
    findings, ids = audit_one(tmp_path, "trap.png", [q], width=240, height=240)
    assert as_tuples(findings) == [("misshapen_vertebra", "warning", "train", "trap.png", [ids[0]],
                                    "endplates TL-TR 60.0 px and BL-BR 25.0 px: the shorter is under 50% of the longer")]
    fine = np.array([[100, 100], [160, 100], [110, 140], [150, 140]], float)
    assert audit_one(tmp_path, "fine.png", [fine], width=240, height=240)[0] == []


def test_out_of_order_levels(tmp_path):
    findings, ids = audit_one(tmp_path, "lv.png", stack(4), height=300, levels=["L1", "L3", "L2", "L4"])
    assert as_tuples(findings) == [("out_of_order", "warning", "train", "lv.png", [ids[1], ids[2]],
                                    f"levels along the spine, cranial to caudal: L1, L3, L2, L4 "
                                    f"(annotations {ids[0]}, {ids[1]}, {ids[2]}, {ids[3]})")]


def test_out_of_order_levels_that_run_up_the_image(tmp_path):
    findings, ids = audit_one(tmp_path, "up.png", stack(4), height=300, levels=["L4", "L3", "L2", "L1"])
    assert as_tuples(findings) == [("out_of_order", "warning", "train", "up.png", ids[::-1],
                                    "levels from the top of the image down: L4, L3, L2, L1; they increase up the "
                                    "image, against the corners' superior endplates")]


def test_out_of_order_file_order_without_levels_is_info(tmp_path):
    spine = stack(4)
    findings, ids = audit_one(tmp_path, "fo.png", [spine[0], spine[2], spine[1], spine[3]], height=300)
    assert as_tuples(findings) == [("out_of_order", "info", "train", "fo.png", [ids[1], ids[2]],
                                    f"annotations in the file: {', '.join(map(str, ids))}; along the spine, cranial "
                                    f"to caudal: {ids[0]}, {ids[2]}, {ids[1]}, {ids[3]}")]


def test_implausible_slip(tmp_path):
    # facing left: the second body sits 70 px anterior (image-left) of the third: 70 / 60 = 116.7%
    spine = stack(3)
    spine[2] = spine[2] + [70.0, 0.0]
    findings, ids = audit_one(tmp_path, "slip.png", spine, width=300, height=300, facing="left")
    assert as_tuples(findings) == [("implausible_slip", "warning", "train", "slip.png", [ids[1], ids[2]],
                                    f"slip 116.7% between annotations {ids[1]} and {ids[2]}")]


def test_negative_disc_height_is_an_implausible_slip(tmp_path):
    # the third body 25 px higher: its superior endplate 5 px above the second's inferior one (IoU 0.07)
    spine = stack(3)
    spine[2] = spine[2] - [0.0, 25.0]
    findings, ids = audit_one(tmp_path, "disc.png", spine, height=300)
    assert as_tuples(findings) == [("implausible_slip", "warning", "train", "disc.png", [ids[1], ids[2]],
                                    f"disc height -5.0 px between annotations {ids[1]} and {ids[2]}")]
    assert signed_disc_height(spine[1][2:], spine[2][:2], np.array([0.0, 1.0])) == pytest.approx(-5.0)


def test_corner_outside_image(tmp_path):
    findings, ids = audit_one(tmp_path, "out.png", [quad(180, 70, W, H)], width=200, height=200)
    assert as_tuples(findings) == [("corner_outside_image", "error", "train", "out.png", [ids[0]],
                                    "corners TR (210.0, 50.0), BR (210.0, 90.0) outside the 200 x 200 image")]


@pytest.mark.parametrize("content, what", [(None, "no such file"), (b"", "the file is empty")])
def test_unreadable_image(tmp_path, content, what):
    if content is not None:
        (tmp_path / "bad.jpg").write_bytes(content)
    c = Coco()
    c.add("bad.jpg", 240, 400, stack(2))
    (f,) = audit_datasets({"train": c.coco()}, {"train": tmp_path}).findings
    assert (f.kind, f.severity, f.gt_file, f.file_name, f.annotation_ids) == (
        "unreadable_image", "error", "train", "bad.jpg", [])
    assert f.detail == f"{what} ({tmp_path / 'bad.jpg'})"


def test_truncated_jpeg_is_unreadable(tmp_path):
    picture(tmp_path / "whole.jpg", 1, 240, 400)
    (tmp_path / "cut.jpg").write_bytes((tmp_path / "whole.jpg").read_bytes()[:2000])
    c = Coco()
    c.add("cut.jpg", 240, 400)
    (f,) = audit_datasets({"train": c.coco()}, {"train": tmp_path}).findings
    assert f.kind == "unreadable_image" and f.detail.startswith("not a readable image (")


# ---- across images and files ------------------------------------------------------------------------
def two_splits(tmp_path, train_images, val_images):
    """Audit train and val, each a list of (file_name, seed or picture array)."""
    cocos = {}
    for label, images in (("train", train_images), ("val", val_images)):
        c = Coco()
        for name, content in images:
            path = tmp_path / name
            if isinstance(content, np.ndarray):
                path.parent.mkdir(parents=True, exist_ok=True)
                assert cv2.imwrite(str(path), content)
            else:
                picture(path, content, 200, 150)
            c.add(name, 200, 150)
        cocos[label] = c.coco()
    return audit_datasets(cocos, {"train": tmp_path, "val": tmp_path})


def test_duplicate_image_across_splits(tmp_path):
    same = picture(tmp_path / "scratch.png", 7, 200, 150)
    audit = two_splits(tmp_path, [("images/train/a.png", same), ("images/train/c.png", 1)],
                       [("images/val/b.png", same)])
    assert as_tuples(audit.findings) == [("duplicate_image", "warning", "train", "images/train/a.png", [],
                                          "identical pixels to val: images/val/b.png")]


def test_one_file_listed_twice_is_a_duplicate_and_a_source_overlap(tmp_path):
    audit = two_splits(tmp_path, [("images/x.png", 1)], [("images/x.png", 1)])
    assert as_tuples(audit.findings) == [
        ("duplicate_image", "warning", "train", "images/x.png", [],
         "identical pixels to val: images/x.png (the same file)"),
        ("source_overlap", "warning", "train", "images/x.png", [], "source x in train (1 image) and val (1 image)"),
    ]


def test_near_duplicate_image(tmp_path):
    a = picture(tmp_path / "scratch.png", 7, 200, 150)
    b = a.copy()
    b[10, 10] ^= 1  # one grey level of one pixel: the same hash, not the same pixels
    audit = two_splits(tmp_path, [("images/train/a.png", a)], [("images/val/b.png", b), ("images/val/c.png", 3)])
    assert as_tuples(audit.findings) == [("near_duplicate_image", "info", "train", "images/train/a.png", [],
                                          "perceptual hash 0 of 64 bits from val: images/val/b.png")]


def test_source_overlap_from_roboflow_names_and_the_source_stem_field(tmp_path):
    c_train, c_val = Coco(), Coco()
    names = [f"images/train/{roboflow_name('hond_0028', 0)}.jpg",
             f"images/val/{roboflow_name('hond_0028', 1)}.jpg", "images/val/renamed.jpg"]
    for k, name in enumerate(names):
        picture(tmp_path / name, 10 + k, 200, 150)
    c_train.add(names[0], 200, 150)  # source parsed from the Roboflow name
    c_val.add(names[1], 200, 150)
    c_val.add(names[2], 200, 150, source_stem="hond_0028")  # source from the field
    audit = audit_datasets({"train": c_train.coco(), "val": c_val.coco()}, {"train": tmp_path, "val": tmp_path})
    assert as_tuples(audit.findings) == [("source_overlap", "warning", "train", names[0], [],
                                          "source hond_0028 in train (1 image) and val (2 images)")]
    assert audit.shared["source_overlap"] == {"train": 1, "val": 2}


def test_patient_overlap_across_views_and_sources(tmp_path):
    # patient 0042: its AP image in train (name), its lateral Roboflow copy in val (source stem), and a
    # val image named otherwise with its patient_id field; no source is shared
    names = ["AP/0042-F-037Y0.png", f"images/val/{roboflow_name('0042-F-037Y1', 2)}.png".replace("_jpg", "_png"),
             "images/val/other.png", "images/val/0043-M-050Y1.png"]
    for k, name in enumerate(names):
        picture(tmp_path / name, 20 + k, 200, 150)
    c_train, c_val = Coco(), Coco()
    c_train.add(names[0], 200, 150)
    c_val.add(names[1], 200, 150)
    c_val.add(names[2], 200, 150, patient_id=42)
    c_val.add(names[3], 200, 150)
    audit = audit_datasets({"train": c_train.coco(), "val": c_val.coco()}, {"train": tmp_path, "val": tmp_path})
    assert as_tuples(audit.findings) == [("patient_overlap", "warning", "train", names[0], [],
                                          "patient 0042 in train (1 image) and val (2 images)")]
    assert audit.shared["patient_overlap"] == {"train": 1, "val": 2}
    assert "patient_overlap (warning): 1" in audit.format_summary()
    assert "images involved: train 1 of 1, val 2 of 3" in audit.format_summary()


def test_source_and_patient_are_read_from_fields_then_names():
    assert source_of({"source_stem": "a"}, "x/b.jpg") == "a"
    assert source_of({}, f"x/{roboflow_name('3209-F-073Y1', 0)}.jpg") == "3209-F-073Y1"
    assert source_of({}, "x/plain.jpg") == "plain"
    assert patient_of({"patient_id": "7"}, "x.jpg") == "0007"
    assert patient_of({}, f"x/{roboflow_name('3209-F-073Y1', 0)}.jpg") == "3209"
    assert patient_of({"source_stem": "0001-M-020Y0"}, "x.jpg") == "0001"
    assert patient_of({}, "hond_0028.jpg") is None


def test_hash_arithmetic_exact():
    assert popcount64(np.array([0, 1, 0xFF, 2 ** 64 - 1], dtype=np.uint64)).tolist() == [0, 1, 8, 64]
    h = np.array([0b0000, 0b0111, 0b0001, 2 ** 63], dtype=np.uint64)  # distances: 01 3, 02 1, 03 1, 12 2, 13 4, 23 2
    i, j, d = close_hash_pairs(h, max_bits=2, max_block=4)  # one row per block
    assert list(zip(i.tolist(), j.tolist(), d.tolist())) == [(0, 2, 1), (0, 3, 1), (1, 2, 2), (2, 3, 2)]


# ---- the result: order, summary, files ----------------------------------------------------------------
def test_findings_are_in_a_stable_order_and_summarised(tmp_path):
    c = Coco()
    picture(tmp_path / "b.png", 1, 200, 200)
    c.add("b.png", 200, 200, [quad(180, 70, W, H), quad(100, 100, 9, 14)])  # outside, then tiny
    c.add("missing.png", 200, 200)
    audit = audit_datasets({"train": c.coco()}, {"train": tmp_path})
    assert [(f.file_name, f.kind) for f in audit.findings] == [
        ("b.png", "corner_outside_image"), ("b.png", "tiny_vertebra"), ("missing.png", "unreadable_image")]
    assert audit.summary() == {"unreadable_image": 1, "corner_outside_image": 1, "tiny_vertebra": 1}
    assert list(audit.summary()) == [k for k in FINDING_KINDS if k in audit.summary()]
    assert audit.format_summary().splitlines()[0] == (
        "audit of 1 dataset(s), 2 images, 2 vertebrae: 3 finding(s) (2 errors, 1 warning)")
    assert isinstance(audit, Audit) and all(isinstance(f, Finding) for f in audit.findings)
    assert all(FINDING_KINDS[f.kind][0] == f.severity for f in audit.findings)


def test_a_dataset_in_memory_needs_its_image_root():
    with pytest.raises(ValueError, match=r"pass image_roots=\{label: folder\}"):
        audit_datasets({"train": Coco().coco()})


def test_image_roots_are_found_in_order(tmp_path):
    assert resolve_image_root(tmp_path / "coco/train.json", {}, "/given") == (Path("/given"), "given")
    assert resolve_image_root(tmp_path / "x/coco/lateral/train.json", {"info": {"image_root": "../.."}}) == (
        tmp_path / "x/coco/lateral/../..", "info.image_root")
    assert resolve_image_root(tmp_path / "r/coco/train.json", {"info": {}}) == (
        tmp_path / "r", "<root>/coco/<split>.json")
    assert resolve_image_root(tmp_path / "r/coco/ap/val.json", {}) == (
        tmp_path / "r", "<root>/coco/<view>/<split>.json")
    assert resolve_image_root(tmp_path / "elsewhere/gt.json", {}) == (tmp_path / "elsewhere", "the GT file's folder")


def test_write_gives_json_csv_and_one_overlay_per_flagged_image(tmp_path):
    c = Coco()
    picture(tmp_path / "data/a.png", 1, 200, 160)
    c.add("data/a.png", 200, 160, [quad(180, 70, W, H)])
    picture(tmp_path / "data/ok.png", 2, 200, 160)
    c.add("data/ok.png", 200, 160, [quad(100, 70, W, H)])
    audit = audit_datasets({"train": c.coco()}, {"train": tmp_path})
    files = audit.write(tmp_path / "out", overlays=True)
    assert files == {"audit": tmp_path / "out/audit.json", "csv": tmp_path / "out/audit.csv",
                     "overlays": tmp_path / "out/overlays"}
    saved = json.loads(files["audit"].read_text())
    assert saved["findings"] == [f.as_dict() for f in audit.findings]
    assert saved["summary"] == {"corner_outside_image": 1}
    assert saved["overlays"] == [{"overlay": "overlays/a.png",
                                  "images": [{"gt_file": "train", "file_name": "data/a.png"}]}]
    assert saved["settings"]["near_duplicate_bits"] == 4 and saved["settings"]["duplicate_iou"] == 0.5
    assert [p.name for p in files["overlays"].iterdir()] == ["a.png"]
    assert cv2.imread(str(files["overlays"] / "a.png")).shape == (160, 200, 3)
    assert audit.write(tmp_path / "out2", overlays=False)["overlays"] is None
    assert not (tmp_path / "out2/overlays").exists()


def test_overlay_outlines_every_vertebra_highlights_the_named_ones_and_writes_the_findings():
    image = np.full((300, 400), 128, np.uint8)
    vertebrae = [OverlayVertebra(quad(100, 150, W, H), "1"), OverlayVertebra(quad(300, 150, W, H), "2", True)]
    out = draw_audit_overlay(image, vertebrae, [("word " * 60, "warning")])
    assert out.shape == (300, 400, 3) and out.dtype == np.uint8
    b, g, r = (int(v) for v in out[150, 70])  # the left side of vertebra 1: outlined in green
    assert g > b + 80 and g > r + 80
    assert tuple(out[150, 270]) == HIGHLIGHT_COLOR  # vertebra 2 is named by a finding
    assert tuple(out[2, 399]) == (51, 51, 51)  # the text band darkens the top (as many corners as at the bottom)
    assert tuple(out[299, 399]) == (128, 128, 128)
    # wrapping: properties, not a line count (OpenCV 4 and 5 measure the Hershey font differently)
    text, width = " ".join(f"word{i}" for i in range(60)), 200
    lines = wrap_text(text, width, 0.45, 1)

    def px(t):
        return cv2.getTextSize(t, cv2.FONT_HERSHEY_SIMPLEX, 0.45, 1)[0][0]

    assert len(lines) > 1 and all(px(t) <= width for t in lines)  # every line fits
    assert " ".join(t.strip() for t in lines) == text  # nothing lost, nothing reordered
    assert all(t.startswith("  word") for t in lines[1:])  # continuation lines are indented
    assert all(px(a + " " + b.split()[0]) > width for a, b in zip(lines, lines[1:]))  # greedy: full lines
    assert "".join(t.strip() for t in wrap_text("a/very/long/path/without/spaces.jpg", 60, 0.45, 1)) == \
        "a/very/long/path/without/spaces.jpg"  # a word wider than a line is cut, nothing lost


# ---- the command line ----------------------------------------------------------------------------------
def make_two_gt_files(root: Path):
    """root/coco/{train,val}.json (images under root by convention): a JPEG of train is copied
    into val under another name; patient 0042 has an image on each side (AP and lateral)."""
    same = picture(root / "images/train/0007-F-040Y1.jpg", 1, 320, 240)
    (root / "images/val").mkdir(parents=True)
    assert cv2.imwrite(str(root / "images/val/copy.jpg"), same)
    picture(root / "images/train/0042-F-037Y0.jpg", 2, 320, 240)
    picture(root / "images/val/0042-F-037Y1.jpg", 3, 280, 200)
    picture(root / "images/val/0050-M-060Y1.jpg", 4, 280, 200)
    train, val = Coco(), Coco()
    train.add("images/train/0007-F-040Y1.jpg", 320, 240, [quad(100, 60, W, H), quad(100, 120, W, H)])
    train.add("images/train/0042-F-037Y0.jpg", 320, 240, [quad(100, 60, W, H)], view="ap")
    val.add("images/val/copy.jpg", 320, 240, [quad(100, 60, W, H), quad(100, 120, W, H)])
    val.add("images/val/0042-F-037Y1.jpg", 280, 200, [quad(100, 60, W, H)])
    val.add("images/val/0050-M-060Y1.jpg", 280, 200, [quad(100, 60, W, H)])
    (root / "coco").mkdir(parents=True)
    for name, c in (("train", train), ("val", val)):
        (root / "coco" / f"{name}.json").write_text(json.dumps(c.coco()))
    return root / "coco/train.json", root / "coco/val.json"


def test_the_command_line_end_to_end(tmp_path, capsys):
    train, val = make_two_gt_files(tmp_path / "data")
    out = tmp_path / "audit"
    assert main(["--gt", str(train), str(val), "--output", str(out), "--no-progress"]) == 0
    printed = capsys.readouterr().out
    t, v = str(train), str(val)
    expected = [
        {"kind": "duplicate_image", "severity": "warning", "gt_file": t, "file_name": "images/train/0007-F-040Y1.jpg",
         "annotation_ids": [], "detail": f"identical pixels to {v}: images/val/copy.jpg"},
        {"kind": "patient_overlap", "severity": "warning", "gt_file": t, "file_name": "images/train/0042-F-037Y0.jpg",
         "annotation_ids": [], "detail": f"patient 0042 in {t} (1 image) and {v} (1 image)"},
    ]
    saved = json.loads((out / "audit.json").read_text())
    assert saved["findings"] == expected
    assert saved["summary"] == {"duplicate_image": 1, "patient_overlap": 1}
    assert saved["datasets"][t] == {"images": 2, "vertebrae": 3, "image_root": str(tmp_path / "data"),
                                    "image_root_from": "<root>/coco/<split>.json", "notes": []}
    with open(out / "audit.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert rows == [dict(e, annotation_ids="") for e in expected]
    overlays = sorted(p.name for p in (out / "overlays").iterdir())
    assert overlays == ["0007-F-040Y1.png", "0042-F-037Y0.png"]
    for name in overlays:
        assert cv2.imread(str(out / "overlays" / name)).shape == (240, 320, 3)
    assert "audit of 2 dataset(s), 5 images, 7 vertebrae: 2 finding(s) (2 warnings)" in printed
    assert f"images under {tmp_path / 'data'} (<root>/coco/<split>.json)" in printed
    assert f"wrote {out / 'audit.json'}, {out / 'audit.csv'}, {out / 'overlays'}" in printed


@pytest.mark.slow
def test_the_tool_script_with_an_image_root_and_no_overlays(tmp_path):
    train, val = make_two_gt_files(tmp_path / "data")
    moved = tmp_path / "gt"
    moved.mkdir()
    for p in (train, val):
        p.rename(moved / p.name)
    r = subprocess.run([sys.executable, str(REPO / "tools/audit.py"), "--gt", str(moved / "train.json"),
                        str(moved / "val.json"), "--output", str(tmp_path / "out"), "--image-root",
                        str(tmp_path / "data"), "--no-overlays", "--no-progress"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert json.loads((tmp_path / "out/audit.json").read_text())["summary"] == {"duplicate_image": 1,
                                                                                 "patient_overlap": 1}
    assert not (tmp_path / "out/overlays").exists()
    assert load_tool("audit").main is main


@pytest.mark.parametrize("argv, message", [
    ([], "the following arguments are required: --gt, --output"),
    (["--gt", "missing.json", "--output", "out"], "ground-truth file missing.json does not exist"),
    (["--gt", "bad.json", "--output", "out"], "ground-truth file bad.json: malformed JSON"),
    (["--gt", "list.json", "--output", "out"], "list.json is not a COCO file"),
    (["--gt", "list.json", "list.json", "--output", "out"], "GT file(s) given twice: ['list.json']"),
    (["--gt", "list.json", "--output", "out", "--image-root", "nowhere"], "--image-root nowhere is not a folder"),
])
def test_bad_arguments_exit_2_with_a_message_that_starts_with_the_command(argv, message, tmp_path, monkeypatch,
                                                                           capsys):
    monkeypatch.setattr(sys, "argv", ["vertkp audit"])  # as vertkp.cli runs it
    monkeypatch.chdir(tmp_path)
    (tmp_path / "bad.json").write_text("{")
    (tmp_path / "list.json").write_text("[]")
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"vertkp audit: error: {message}"), err
    assert not (tmp_path / "out").exists()


def test_the_parser_names_the_flags():
    a = build_parser().parse_args(["--gt", "a.json", "b.json", "--output", "o"])
    assert (a.gt, a.output, a.image_root, a.no_overlays, a.no_progress) == (["a.json", "b.json"], "o", None, False,
                                                                              False)


def test_audit_files_is_the_library_function_of_the_command(tmp_path):
    train, val = make_two_gt_files(tmp_path / "data")
    run = audit_files([train, val], tmp_path / "out", overlays=False, progress=False)
    assert run.audit.summary() == {"duplicate_image": 1, "patient_overlap": 1}
    assert run.files["audit"] == tmp_path / "out/audit.json" and run.files["overlays"] is None


# ---- the import contract ---------------------------------------------------------------------------------
def test_the_audit_imports_neither_torch_nor_detectron2():
    code = ("import json, sys\nimport vertkp.audit, vertkp.audit.cli\nfrom vertkp.cli import command_parser\n"
            "command_parser('audit')\n"
            "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules} & {'torch', 'detectron2'})))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=300)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout.strip().splitlines()[-1]) == []
