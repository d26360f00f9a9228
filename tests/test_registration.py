"""Registration of vertkp datasets in detectron2's catalogs."""
import json

import numpy as np
import pytest

from tests.helpers import DETECTRON2_SKIP_REASON
from tests.helpers.raw import buu_tree, mendeley_tree, quad, roboflow_name
from vertkp.data.datasets.buu_lspine import convert_buu_lspine
from vertkp.data.datasets.spondylolisthesis import convert_spondylolisthesis

pytest.importorskip("detectron2", reason=DETECTRON2_SKIP_REASON)
from detectron2.data import DatasetCatalog, MetadataCatalog  # noqa: E402

import vertkp.config  # noqa: E402,F401  (registers vertkp's datasets)
from vertkp.data.loading.registration import DATASETS, DatasetNotConverted, register_all  # noqa: E402


@pytest.fixture
def datasets_root(tmp_path, monkeypatch):
    spine = [quad(320, 150 + 70 * k, 90, 55, 5 * k) for k in range(4)]
    mendeley_tree(tmp_path / "spondylolisthesis",
                  [("train", roboflow_name("0001-F-037Y1"), "json", spine),
                   ("val", roboflow_name("0002-F-037Y1"), "txt", spine)],
                  test=["0003-F-060Y1.jpg"])
    convert_spondylolisthesis(tmp_path / "spondylolisthesis", progress=False)
    buu_tree(tmp_path / "buu_lspine", ["0001", "0002"])
    convert_buu_lspine(tmp_path / "buu_lspine", "lateral", progress=False, val_fraction=0.5)
    monkeypatch.setenv("VERTKP_DATASETS", str(tmp_path))
    register_all()
    yield tmp_path
    monkeypatch.delenv("VERTKP_DATASETS")
    register_all()


def test_every_name_is_registered_on_import():
    expected = {f"spondylolisthesis_{s}" for s in ("train", "val", "test")}
    expected |= {f"buu_lspine_{v}_{s}" for v in ("lateral", "ap") for s in ("train", "val")}
    expected |= {"phantoms_train", "phantoms_val"}
    assert expected == set(DATASETS) and expected <= set(DatasetCatalog.list())
    for name in expected:
        meta = MetadataCatalog.get(name)
        assert meta.keypoint_names == ["TL", "TR", "BL", "BR"]
        assert meta.keypoint_flip_map == [("TL", "TR"), ("BL", "BR")]
        assert meta.keypoint_oks_sigmas == [0.05] * 4
        assert meta.thing_classes == ["vertebra"]


def test_dicts_carry_extras_and_detectron2_half_pixel_shift(datasets_root):
    dicts = DatasetCatalog.get("spondylolisthesis_train")
    coco = json.loads((datasets_root / "spondylolisthesis" / "coco" / "train.json").read_text())
    (d,) = dicts
    assert d["file_name"] == str(datasets_root / "spondylolisthesis" / coco["images"][0]["file_name"])
    assert d["source_stem"] == "0001-F-037Y1" and d["view"] == "lateral" and d["pixel_spacing"] is None
    for a, ref in zip(d["annotations"], coco["annotations"]):
        kp = np.array(a["keypoints"]).reshape(4, 3)
        np.testing.assert_allclose(kp[:, :2], np.array(ref["keypoints"]).reshape(4, 3)[:, :2] + 0.5)
        assert a["category_id"] == 0 and a["source_label"] == [0]
    # Mendeley labels name no level: the conversion names them upwards from S1, the lowest (image y)
    by_height = sorted(d["annotations"], key=lambda a: -np.mean(np.array(a["keypoints"]).reshape(4, 3)[:, 1]))
    assert [a["vertebra_level"] for a in by_height][:2] == ["S1", "L5"]
    test = DatasetCatalog.get("spondylolisthesis_test")
    assert len(test) == 1 and test[0]["annotations"] == [] and test[0]["width"] == 900
    buu = DatasetCatalog.get("buu_lspine_lateral_train") + DatasetCatalog.get("buu_lspine_lateral_val")
    assert len(buu) == 2
    levels = [a["vertebra_level"] for a in buu[0]["annotations"]]
    assert levels == ["L1", "L2", "L3", "L4", "L5", "S1"]
    assert buu[0]["facing"] == "left"


def test_missing_file_says_which_and_how_to_make_it(datasets_root):
    with pytest.raises(DatasetNotConverted) as e:
        DatasetCatalog.get("buu_lspine_ap_train")
    msg = str(e.value)
    assert str(datasets_root / "buu_lspine" / "coco" / "ap" / "train.json") in msg
    assert f"vertkp convert --dataset buu-lspine --view ap --root {datasets_root / 'buu_lspine'}" \
        in msg
