"""VertebraKeypointEvaluator inside detectron2 (skipped without detectron2)."""
import json
import math
import os
import uuid
from pathlib import Path

import numpy as np
import pytest

from tests.helpers import DETECTRON2_SKIP_REASON  # noqa: E402

pytest.importorskip("detectron2", reason=DETECTRON2_SKIP_REASON)

import torch  # noqa: E402
from detectron2.data import DatasetCatalog, MetadataCatalog  # noqa: E402
from detectron2.data.datasets import load_coco_json  # noqa: E402
from detectron2.evaluation import COCOEvaluator, DatasetEvaluators  # noqa: E402
from detectron2.structures import Boxes, Instances  # noqa: E402

from tests.helpers import load_tool, run_tool  # noqa: E402
from tests.helpers.raw import quad  # noqa: E402
from vertkp.evaluation.evaluator import VertebraKeypointEvaluator, dataset_ground_truth  # noqa: E402
from vertkp.keypoints import KEYPOINT_FLIP_MAP, KEYPOINT_NAMES, OKS_SIGMAS  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
W, H, PITCH = 40.0, 25.0, 35.0


def box(cx, cy, theta_deg=0.0):
    """Canonical corners of a W x H vertebra centred at (cx, cy), tilted by theta_deg."""
    return quad(cx, cy, W, H, theta_deg)


def write_gt(path: Path):
    """Two lateral images: L1..S1 with a 37.5 % L5/S1 slip and a 2-corner S1 (spacing 0.2,
    facing left); a lordotic spine without levels or facing."""
    cats = [{"id": 1, "name": "vertebra", "supercategory": "spine", "keypoints": list(KEYPOINT_NAMES),
             "skeleton": [[1, 2], [2, 4], [4, 3], [3, 1]]}]
    spines = [
        ([box(100.0 - (15.0 if k == 4 else 0.0), 100.0 + PITCH * k) for k in range(6)],
         ["L1", "L2", "L3", "L4", "L5", "S1"], [4, 4, 4, 4, 4, 2], {"pixel_spacing": 0.2, "facing": "left"}),
        ([box(x, 100.0 + PITCH * k, th) for k, (x, th) in
          enumerate(zip(100.0 - 20.0 * (1.0 - ((np.arange(6) - 2.5) / 2.5) ** 2), np.linspace(5, -40, 6)))],
         [None] * 6, [4] * 6, {"pixel_spacing": None, "facing": None}),
    ]
    images, anns = [], []
    for i, (bodies, levels, ncs, extra) in enumerate(spines):
        images.append(dict({"id": 7 + i, "file_name": f"im{i}.jpg", "width": 320, "height": 400,
                            "source_stem": f"im{i}", "view": "lateral"}, **extra))
        for q, lv, nc in zip(bodies, levels, ncs):
            kp, pts = [], q[:nc]
            for k, (x, y) in enumerate(q):
                kp += [float(x), float(y), 2] if k < nc else [0, 0, 0]
            x0, y0 = pts.min(axis=0) - 4
            x1, y1 = pts.max(axis=0) + 4
            anns.append({"id": len(anns) + 1, "image_id": 7 + i, "category_id": 1, "keypoints": kp,
                         "num_keypoints": nc, "bbox": [x0, y0, x1 - x0, y1 - y0], "area": (x1 - x0) * (y1 - y0),
                         "iscrowd": 0, "vertebra_level": lv, "source_label": None})
    gt = {"info": {}, "licenses": [], "categories": cats, "images": images, "annotations": anns}
    path.write_text(json.dumps(gt))
    return gt


def register(json_file: Path) -> str:
    """Register a COCO file as detectron2 does for vertkp (load_coco_json + image extras)."""
    name = f"vertkp_eval_test_{uuid.uuid4().hex[:8]}"
    extras = {im["id"]: im for im in json.loads(json_file.read_text())["images"]}

    def load():
        dicts = load_coco_json(str(json_file), str(json_file.parent), name,
                               extra_annotation_keys=["vertebra_level", "source_label"])
        for d in dicts:
            for k in ("source_stem", "view", "pixel_spacing", "facing"):
                d[k] = extras[d["image_id"]].get(k)
        return dicts

    DatasetCatalog.register(name, load)
    MetadataCatalog.get(name).set(json_file=str(json_file), image_root=str(json_file.parent),
                                  thing_classes=["vertebra"], keypoint_names=list(KEYPOINT_NAMES),
                                  keypoint_flip_map=list(KEYPOINT_FLIP_MAP), keypoint_oks_sigmas=list(OKS_SIGMAS))
    return name


@pytest.fixture
def dataset(tmp_path):
    gt = write_gt(tmp_path / "gt.json")
    name = register(tmp_path / "gt.json")
    yield name, gt, tmp_path
    DatasetCatalog.remove(name)
    MetadataCatalog.remove(name)


def outputs_from_dicts(dicts, offsets=None):
    """Perfect detectron2 outputs from the dataset dicts (keypoints already +0.5); offsets:
    (image_id, annotation index) -> [4, 2] px added."""
    inputs, outputs = [], []
    for d in dicts:
        kps = []
        for j, a in enumerate(d["annotations"]):
            kp = np.array(a["keypoints"], dtype=np.float32).reshape(4, 3)
            missing = kp[:, 2] == 0
            kp[missing, :2] = kp[~missing, :2][: missing.sum()] + [0.0, H]  # a guess for unlabelled corners
            kp[:, 2] = 1.0
            if offsets and (d["image_id"], j) in offsets:
                kp[:, :2] += np.asarray(offsets[(d["image_id"], j)], dtype=np.float32)
            kps.append(kp)
        kps = torch.as_tensor(np.stack(kps))
        inst = Instances((d["height"], d["width"]))
        inst.pred_boxes = Boxes(torch.cat([kps[:, :, :2].min(dim=1).values - 4, kps[:, :, :2].max(dim=1).values + 4],
                                          dim=1))
        inst.scores = torch.full((len(kps),), 0.99)
        inst.pred_classes = torch.zeros(len(kps), dtype=torch.int64)
        inst.pred_keypoints = kps
        inputs.append({"image_id": d["image_id"], "file_name": d["file_name"], "height": d["height"],
                       "width": d["width"]})
        outputs.append({"instances": inst})
    return inputs, outputs


def assert_same(a, b, path="metrics"):
    if isinstance(a, dict):
        assert isinstance(b, dict) and set(a) == set(b), path
        for k in a:
            assert_same(a[k], b[k], f"{path}.{k}")
    elif isinstance(a, list):
        assert isinstance(b, list) and len(a) == len(b), path
        for k, (x, y) in enumerate(zip(a, b)):
            assert_same(x, y, f"{path}[{k}]")
    elif isinstance(a, float) or isinstance(b, float):
        assert a == pytest.approx(b, rel=1e-9, abs=1e-9), path
    else:
        assert a == b, path


def run(evaluator, inputs, outputs):
    evaluator.reset()
    for i, o in zip(inputs, outputs):
        evaluator.process([i], [o])
    return evaluator.evaluate()


def test_perfect_predictions_score_zero(dataset):
    name, gt, tmp = dataset
    inputs, outputs = outputs_from_dicts(DatasetCatalog.get(name))
    # distributed=True on one process: detectron2's comm.gather returns this process's list
    res = run(VertebraKeypointEvaluator(name, output_dir=str(tmp / "d2")), inputs, outputs)
    v = res["vertkp"]
    assert all(isinstance(x, float) for x in v.values())
    # 0 up to float32, the precision of Instances.pred_keypoints
    assert v["MRE_px"] == pytest.approx(0.0, abs=1e-4) and v["MRE_mm"] == pytest.approx(0.0, abs=1e-4)
    assert v["SDR_px@12"] == 100.0 and v["SDR_px@6"] == 100.0 and v["SDR_mm@2"] == 100.0
    assert v["det_F1"] == 100.0 and v["grade_acc"] == 100.0 and v["kappa"] == 1.0
    assert v["slip_MAE_pp"] == pytest.approx(0.0, abs=1e-4)
    assert v["n_pairs"] == 10.0 and v["n_images"] == 2.0
    # the same agreement as vertkp evaluate; no bootstrap unless asked (training stays fast)
    assert v["slip_icc_a1"] == pytest.approx(1.0) and v["slip_bias_pp"] == pytest.approx(0.0, abs=1e-4)
    assert math.isnan(v["MRE_px_ci95_low"]) and math.isnan(v["kappa_ci95_high"])
    m = json.loads((tmp / "d2" / "metrics.json").read_text())
    assert m["bootstrap"]["n_resamples"] == 0 and m["ci95"]["MRE_px"] == [None, None]
    assert list(m["slip_by_level"]) == ["L1/L2", "L2/L3", "L3/L4", "L4/L5", "L5/S1"]
    for f in ("metrics.json", "per_landmark.csv", "per_pair.csv", "sdr_curve.png", "grade_confusion.png"):
        assert (tmp / "d2" / f).is_file()


def test_same_numbers_as_the_cli(dataset):
    name, gt, tmp = dataset
    offsets = {(7, 0): [[3, 4], [0, 0], [6, 8], [0, -13]], (7, 4): [[2, 0]] * 4, (8, 2): [[0, 20]] * 4}
    dicts = DatasetCatalog.get(name)
    inputs, outputs = outputs_from_dicts(dicts, offsets)
    # drop one vertebra of image 8 and add a false positive to image 7
    keep = [k for k in range(6) if k != 3]
    outputs[1]["instances"] = outputs[1]["instances"][keep]
    # the bootstrap is off by default in training; asked for, it gives the CLI's intervals
    res = run(VertebraKeypointEvaluator(name, output_dir=str(tmp / "d2"), distributed=False, bootstrap=200, seed=3),
              inputs, outputs)
    # the same predictions as a COCO results file (detectron2's -0.5 removed, as COCOEvaluator writes them)
    results = []
    for inp, out in zip(inputs, outputs):
        inst = out["instances"]
        for kp, s in zip(inst.pred_keypoints.numpy(), inst.scores.numpy()):
            kp = kp.astype(np.float64).copy()
            kp[:, :2] -= 0.5
            results.append({"image_id": inp["image_id"], "category_id": 1, "keypoints": kp.ravel().tolist(),
                            "score": float(s)})
    (tmp / "pred.json").write_text(json.dumps(results))
    assert load_tool("evaluate").main(["--gt", str(tmp / "gt.json"), "--predictions", str(tmp / "pred.json"), "--output",
                        str(tmp / "cli"), "--quiet", "--no-plots", "--bootstrap", "200", "--seed", "3"]) == 0
    m_cli = json.loads((tmp / "cli" / "metrics.json").read_text())
    m_d2 = json.loads((tmp / "d2" / "metrics.json").read_text())
    assert_same(m_d2, m_cli)  # identical up to the last bits of GT + 0.5 - 0.5
    assert res["vertkp"]["MRE_px"] == pytest.approx(m_cli["MRE_px"]) and m_cli["MRE_px"] > 0
    assert res["vertkp"]["slip_MAE_pp"] == pytest.approx(m_cli["slip_MAE_pp"])
    assert res["vertkp"]["n_unscored_pairs"] == m_cli["n_unscored_pairs"] == 2.0
    assert m_d2["bootstrap"]["n_resamples"] == 200 and m_cli["ci95"]["MRE_px"][0] < m_cli["ci95"]["MRE_px"][1]
    assert res["vertkp"]["MRE_px_ci95_high"] == pytest.approx(m_cli["ci95"]["MRE_px"][1])
    assert res["vertkp"]["slip_icc_a1"] == pytest.approx(m_cli["agreement"]["slip_pct"]["icc_a1"])
    # every scalar of metrics.json is in detectron2's results, under the same name
    assert {k for k, v in m_cli.items() if not isinstance(v, dict)} == set(res["vertkp"])


def test_a_dataset_registered_without_its_coco_file_gives_the_same_ground_truth(dataset):
    name, gt, tmp = dataset
    from_file = dataset_ground_truth(name)
    meta = MetadataCatalog.get(name)
    kept = meta.as_dict()
    MetadataCatalog.remove(name)  # registered without a COCO file: the dataset dicts are read
    MetadataCatalog.get(name).set(**{k: v for k, v in kept.items() if k not in ("name", "json_file")})
    from_dicts = dataset_ground_truth(name)
    assert [t.image_id for t in from_dicts.images] == [t.image_id for t in from_file.images] == [7, 8]
    for a, b in zip(from_file.images, from_dicts.images):
        np.testing.assert_allclose(b.corners, a.corners, atol=1e-9)  # the +0.5 of load_coco_json removed
        assert (b.visible == a.visible).all() and b.levels == a.levels
        assert (b.view, b.facing, b.pixel_spacing, b.source_stem) == (a.view, a.facing, a.pixel_spacing,
                                                                       a.source_stem)


def test_beside_coco_evaluator_with_the_project_sigmas(dataset):
    name, gt, tmp = dataset
    inputs, outputs = outputs_from_dicts(DatasetCatalog.get(name))
    # ours first: on the CPU, COCOEvaluator.process subtracts 0.5 from pred_keypoints in place
    # (instances_to_coco_json), so an evaluator after it would see shifted corners
    evaluators = DatasetEvaluators([
        VertebraKeypointEvaluator(name, distributed=False, plots=False),
        COCOEvaluator(name, tasks=("keypoints",), distributed=False, output_dir=str(tmp / "coco"),
                      kpt_oks_sigmas=OKS_SIGMAS),
    ])
    res = run(evaluators, inputs, outputs)
    assert res["keypoints"]["AP"] == pytest.approx(100.0)
    assert res["vertkp"]["MRE_px"] == pytest.approx(0.0, abs=1e-4)


def test_only_processed_images_are_scored_and_unknown_ids_fail(dataset):
    name, gt, tmp = dataset
    inputs, outputs = outputs_from_dicts(DatasetCatalog.get(name))
    res = run(VertebraKeypointEvaluator(name, distributed=False, plots=False), inputs[:1], outputs[:1])
    assert res["vertkp"]["n_images"] == 1.0 and res["vertkp"]["n_matched"] == 6.0
    ev = VertebraKeypointEvaluator(name, distributed=False, plots=False)
    assert run(ev, [], []) == {}
    with pytest.raises(ValueError, match="does not have"):
        run(ev, [{"image_id": 12345}], outputs[:1])


def test_pixel_spacing_override(dataset):
    name, gt, tmp = dataset
    offsets = {(8, 0): [[3, 4]] * 4}
    inputs, outputs = outputs_from_dicts(DatasetCatalog.get(name), offsets)
    res = run(VertebraKeypointEvaluator(name, distributed=False, plots=False, pixel_spacing={"im1": 0.5}),
              inputs, outputs)
    assert res["vertkp"]["MRE_mm"] == pytest.approx((0.5 * 5 * 4) / (22 + 24), abs=1e-5)  # float32 corners


def test_phantom_ground_truth_against_itself(tmp_path):
    from vertkp.phantoms.make import make_phantoms

    root = tmp_path / "buu"
    make_phantoms("buu-lspine", root, 6, 1, 512, progress=False)
    r = run_tool("convert_to_coco", "--dataset", "buu-lspine", "--root", root, "--view", "lateral",
                 "--pixel-spacing", root / "pixel_spacing.csv", "--no-progress")
    assert r.returncode == 0, r.stderr
    from vertkp.data.loading.registration import register_dataset

    name = f"vertkp_eval_test_{uuid.uuid4().hex[:8]}"
    register_dataset(name, root / "coco" / "lateral" / "train.json", root)  # image root: the phantom set
    try:
        dicts = DatasetCatalog.get(name)
        inputs, outputs = outputs_from_dicts(dicts)
        v = run(VertebraKeypointEvaluator(name, distributed=False, plots=False), inputs, outputs)["vertkp"]
    finally:
        DatasetCatalog.remove(name)
        MetadataCatalog.remove(name)
    assert v["n_images"] == len(dicts) > 0
    assert v["MRE_px"] == pytest.approx(0.0, abs=1e-3) and v["MRE_mm"] == pytest.approx(0.0, abs=1e-3)
    assert v["SDR_px@6"] == 100.0 and v["SDR_mm@2"] == 100.0 and v["det_F1"] == 100.0
    assert v["grade_acc"] == 100.0 and v["n_pairs"] == 5.0 * len(dicts)
    # the set's phantom_truth.json is found: the labels' jitter shows against the exact corners
    assert v["truth_MRE_px"] == pytest.approx(v["label_MRE_px"], abs=1e-3) and v["label_MRE_px"] > 0.5
    assert v["truth_det_F1"] == 100.0


def _gather_worker(rank, world, init_file, json_file, out_dir):
    """One process of a 2-process CPU run (gloo): each scores half of the images."""
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        name = register(Path(json_file))
        inputs, outputs = outputs_from_dicts(DatasetCatalog.get(name), {(7, 0): [[3, 4]] * 4})
        ev = VertebraKeypointEvaluator(name, output_dir=out_dir if rank == 0 else None, plots=False)
        res = run(ev, inputs[rank::world], outputs[rank::world])
        Path(out_dir, f"rank{rank}.json").write_text(json.dumps(res))
        dist.barrier()  # leave together: a rank that tears down first aborts the other's pending collective
    finally:
        dist.destroy_process_group()
    # The results are on disk. Skip the interpreter's teardown, where gloo's background threads can
    # still abort the process ("terminate called without an active exception") on a loaded machine.
    os._exit(0)


@pytest.mark.slow
def test_gathers_predictions_from_several_processes(dataset):
    name, gt, tmp = dataset
    out = tmp / "dist"
    out.mkdir()
    torch.multiprocessing.spawn(_gather_worker, args=(2, str(tmp / "init"), str(tmp / "gt.json"), str(out)),
                                nprocs=2, join=True)
    r0 = json.loads((out / "rank0.json").read_text())
    assert json.loads((out / "rank1.json").read_text()) == {}  # only the main process reports
    v = r0["vertkp"]
    assert v["n_images"] == 2.0 and v["n_matched"] == 12.0
    assert v["MRE_px"] == pytest.approx(5.0 * 4 / 46, abs=1e-5)
    assert (out / "metrics.json").is_file()
