"""Phantoms of both layouts through the converter: the converted ground truth
is the phantom truth, exactly; what detectron2 loads is the same data."""
import json
from pathlib import Path

import numpy as np
import pytest

from tests.helpers import REPO, keypoint_ap_against_itself
from vertkp.data.datasets.buu_lspine import convert_buu_lspine
from vertkp.data.datasets.spondylolisthesis import convert_spondylolisthesis
from vertkp.phantoms.make import make_phantoms


@pytest.fixture(scope="module")
def spondy(tmp_path_factory):
    root = tmp_path_factory.mktemp("phantoms_spondy")
    make_phantoms("spondylolisthesis", root, 24, seed=3, image_size=320, progress=False)
    report = convert_spondylolisthesis(root, progress=False)
    return root, report


@pytest.fixture(scope="module")
def buu(tmp_path_factory):
    root = tmp_path_factory.mktemp("phantoms_buu")
    make_phantoms("buu-lspine", root, 16, seed=5, image_size=512, progress=False)
    reports = {view: convert_buu_lspine(root, view, progress=False, pixel_spacing=root / "pixel_spacing.xlsx")
               for view in ("lateral", "ap")}
    return root, reports


def load(path):
    return json.loads(Path(path).read_text())


def converted(out: Path, splits):
    """{file_name: (split, image, [annotation, ...])} over the given splits."""
    res = {}
    for split in splits:
        coco = load(out / f"{split}.json")
        by_image = {}
        for a in coco["annotations"]:
            by_image.setdefault(a["image_id"], []).append(a)
        for im in coco["images"]:
            res[im["file_name"]] = (split, im, by_image.get(im["id"], []))
    return res


def assert_same_corners(anns, vertebrae):
    """The converted keypoints are the label files' corners, exactly."""
    assert len(anns) == len(vertebrae)
    for a, v in zip(anns, vertebrae):
        kp = np.array(a["keypoints"]).reshape(4, 3)
        for k, c in enumerate(v["label_corners"]):
            if c is None:
                assert kp[k].tolist() == [0, 0, 0]
            else:
                assert kp[k].tolist() == [c[0], c[1], 2]  # exactly, not approximately


def test_spondylolisthesis_phantoms_round_trip(spondy):
    root, report = spondy
    truth = load(root / "phantom_truth.json")
    got = converted(root / "coco", ("train", "val", "test"))
    assert sorted(got) == sorted(t["file_name"] for t in truth["images"])
    for t in truth["images"]:
        split, im, anns = got[t["file_name"]]
        assert split == t["split"]
        assert (im["width"], im["height"]) == (t["width"], t["height"])
        assert im["source_stem"] == t["source_stem"]
        if t["label_file"] is None:  # unlabelled test image: truth known, nothing to convert
            assert split == "test" and anns == []
        else:
            assert_same_corners(anns, t["vertebrae"])
    assert report.skipped == [] and report.warnings == []  # every source order agreed with geometry


def test_spondylolisthesis_phantoms_get_their_true_levels_named_up_from_s1(spondy):
    """The labels name no level; the converter names each image's vertebrae upward from S1 in
    their cranio-caudal order: on the archive-framed phantoms (labelled down to S1, tilted,
    stretched, mirrored copies) that is the truth's level of every vertebra."""
    root, _ = spondy
    truth = load(root / "phantom_truth.json")
    got = converted(root / "coco", ("train", "val"))
    labelled = [t for t in truth["images"] if t["label_file"] is not None]
    assert labelled and all(t["vertebrae"][-1]["level"] == "S1" for t in labelled)
    assert any(t["facing"] == "right" for t in labelled) and any(len(t["vertebrae"]) < 5 for t in labelled)
    for t in labelled:
        _, im, anns = got[t["file_name"]]
        assert im["level_source"] == "anchored_bottom_S1"
        assert [a["vertebra_level"] for a in anns] == [v["level"] for v in t["vertebrae"]], t["file_name"]


def test_spondylolisthesis_phantom_split_keeps_copies_together(spondy):
    root, _ = spondy
    got = converted(root / "coco", ("train", "val"))
    sides = {}
    for split, im, _ in got.values():
        sides.setdefault(im["source_stem"], set()).add(split)
    assert all(len(s) == 1 for s in sides.values())
    assert max(sum(1 for _, im, _ in got.values() if im["source_stem"] == s) for s in sides) >= 2


def test_buu_phantoms_round_trip_with_levels_and_spacing(buu):
    root, reports = buu
    truth = load(root / "phantom_truth.json")
    for view, folder in (("lateral", "LA"), ("ap", "AP")):
        got = converted(root / "coco" / view, ("train", "val"))
        expected = [t for t in truth["images"] if t["file_name"].startswith(folder + "/")]
        assert sorted(got) == sorted(t["file_name"] for t in expected)
        for t in expected:
            _, im, anns = got[t["file_name"]]
            assert_same_corners(anns, t["vertebrae"])
            assert [a["vertebra_level"] for a in anns] == [v["level"] for v in t["vertebrae"]]
            assert "level_source" not in im  # the data's own levels
            assert im["pixel_spacing"] == t["pixel_spacing"]
            assert im["facing"] == (t["facing"] if view == "lateral" else None)
        assert reports[view].skipped == [] and reports[view].warnings == []
    # a patient's two views are on the same side of the split
    sides = {}
    for view in ("lateral", "ap"):
        for split, im, _ in converted(root / "coco" / view, ("train", "val")).values():
            sides.setdefault(im["patient_id"], set()).add(split)
    assert all(len(s) == 1 for s in sides.values()) and len(sides) == 8


@pytest.mark.parametrize("which", ["spondy", "buu"])
def test_cocoeval_ground_truth_against_itself_is_ap_1(which, request):
    root, _ = request.getfixturevalue(which)
    gt_file = root / "coco" / ("train.json" if which == "spondy" else "lateral/train.json")
    assert keypoint_ap_against_itself(gt_file) == pytest.approx(1.0)


@pytest.mark.slow
def test_readme_quick_start_runs_as_written(tmp_path):
    """The README's quick start block, line for line, in a fresh folder (tools/ linked in)."""
    pytest.importorskip("detectron2", reason="detectron2 is not installed (the last step loads the dataset)")
    import os
    import re
    import shlex
    import subprocess
    import sys

    readme = (REPO / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("## Quick start"):]
    lines = re.search(r"^```\n(.*?)^```", section, flags=re.S | re.M).group(1).strip().splitlines()
    assert len(lines) == 3 and all(line.startswith("python ") for line in lines)
    (tmp_path / "tools").symlink_to(REPO / "tools")
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    for line in lines:
        r = subprocess.run([sys.executable, *shlex.split(line)[1:]], cwd=tmp_path, capture_output=True, text=True,
                           env=env, timeout=600)
        assert r.returncode == 0, f"{line}\n{r.stderr[-3000:]}"
    n_train = len(load(tmp_path / "datasets/phantoms/coco/train.json")["images"])
    assert r.stdout.strip().splitlines()[-1] == str(n_train) and n_train > 30
