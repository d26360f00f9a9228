"""Bad input, in one table: kinds of broken or odd files a user feeds vertkp, at every entry point
(``vertkp convert`` from a folder and from a zip, ``vertkp phantoms --archive`` read back, ``vertkp
audit``, ``vertkp evaluate``, ``vertkp predict``, DICOM), each with what vertkp does with it.

Outcomes (README, "Reliability: bad input", lists every case by its id):

* ``refused``: exit status 2, the message names the file and the problem, and nothing is written
  (no output folder, no temporary file); a converter's refusal of one image's files is, with
  ``--skip-invalid``, a skip of that image that the report lists, the rest converted;
* ``skipped``: predict's per-file failure: exit status 1, the file and the problem in
  predictions.json, every other input predicted;
* ``reported``: exit status 0, the file named in what the tool prints or writes;
* ``read``: read as it is (it only looks odd).

Whatever the outcome, every file written is complete, and nothing is lost: every input is
counted once (converted, skipped or left out; predicted or failed; audited; scored). Kinds tested
elsewhere are listed in the README beside these, with their own tests.
"""
import csv
import io
import json
import shutil
import subprocess
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pytest

from tests.helpers import DETECTRON2_SKIP_REASON, INSTANT_CONFIG, REPO, random_weights, run_main
from tests.helpers.raw import KP_DIR, buu_tree, mendeley_tree, quad, roboflow_name, write_image
from vertkp.audit.cli import main as audit_main
from vertkp.convert import main as convert_main
from vertkp.data.imaging.images import IMAGE_SUFFIXES
from vertkp.data.raw.extraction import MARKER
from vertkp.data.raw.sources import is_junk
from vertkp.evaluation.cli import main as evaluate_main
from vertkp.phantoms.cli import main as phantoms_main

SPINE = [quad(320, 120 + 70 * k, 90, 55, t) for k, t in enumerate((0, 5, -8, 12))]
GOOD, BAD, VAL = (roboflow_name(f"000{k}-F-037Y1", k) for k in (6, 5, 7))
OUT = "out"  # every case's output folder, under its tmp_path
# A config whose model is not the instant config's (HRNet-W32): the instant weights do not fit it.
OTHER_CONFIG = REPO / "configs" / "kprcnn_hrnet_w32_phantoms.yaml"


# ---- what the cases are built from -------------------------------------------------------------

@dataclass
class Job:
    """One case's world: its folder, a monkeypatch, and the module's random weights (predict)."""

    t: Path
    mp: pytest.MonkeyPatch
    request: pytest.FixtureRequest

    @property
    def weights(self) -> Path:
        return self.request.getfixturevalue("weights")


def mendeley(job: Job) -> Path:
    """A Mendeley tree under raw/ (train: GOOD and BAD, val: VAL); returns BAD's label file."""
    mendeley_tree(job.t / "raw", [("train", GOOD, "json", SPINE), ("train", BAD, "json", SPINE[:3]),
                                  ("val", VAL, "txt", SPINE)])
    return job.t / "raw" / KP_DIR / "labels" / "train" / f"{BAD}.json"


def image_of(label: Path) -> Path:
    return label.parents[2] / "images" / label.parent.name / f"{label.stem}.jpg"


def convert(job: Job, root=None, *extra) -> list:
    """convert's argv for the Mendeley layout at ``root`` (default raw/)."""
    return ["--dataset", "spondylolisthesis", "--root", root or job.t / "raw", "--output", job.t / OUT,
            "--no-progress", "--no-overlays", *extra]


def zip_bytes(members: dict) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


def zipped(job: Job, name_of=lambda rel: rel) -> dict:
    """{member name: bytes} of the Mendeley tree of :func:`mendeley` (removed from disk: the zip
    is then the only copy)."""
    mendeley(job)
    raw = job.t / "raw"
    members = {name_of(p.relative_to(raw).as_posix()): p.read_bytes() for p in sorted(raw.rglob("*")) if p.is_file()}
    shutil.rmtree(raw)
    return members


def from_zip(job: Job, members: dict) -> list:
    path = job.t / "download.zip"
    path.write_bytes(zip_bytes(members))
    return convert(job, path, "--extract-to", job.t / "x")


def deny(job: Job, path: Path, method: str) -> None:
    """Make ``Path.<method>`` of ``path`` fail as the OS does without permission (as root reads
    everything, chmod cannot say it here)."""
    real = getattr(Path, method)

    def denied(self, *a, **k):
        if self == path:
            raise PermissionError(13, "Permission denied", str(self))
        return real(self, *a, **k)

    job.mp.setattr(Path, method, denied)


def gt_dict(n_images=2) -> dict:
    """A vertkp COCO file: n_images images of 3 upright vertebrae each."""
    cats = [{"id": 1, "name": "vertebra", "keypoints": ["TL", "TR", "BL", "BR"], "skeleton": []}]
    images, anns = [], []
    for i in range(n_images):
        images.append({"id": i + 1, "file_name": f"im{i}.png", "width": 200, "height": 200, "view": "lateral"})
        for k in range(3):
            kp = [v for x, y in quad(100, 50 + 45 * k, 40, 25) for v in (float(x), float(y), 2)]
            anns.append({"id": len(anns) + 1, "image_id": i + 1, "category_id": 1, "keypoints": kp,
                         "num_keypoints": 4, "bbox": [0, 0, 1, 1], "area": 1.0, "iscrowd": 0})
    return {"info": {}, "images": images, "annotations": anns, "categories": cats}


def write_gt(job: Job, gt: dict, images: bool = True) -> Path:
    if images:
        for im in gt["images"]:
            write_image(job.t / im["file_name"], im["width"], im["height"])
    path = job.t / "gt.json"
    path.write_text(json.dumps(gt))
    return path


def audit(job: Job, gt: Path) -> list:
    return ["--gt", gt, "--output", job.t / OUT, "--no-progress", "--no-overlays"]


def results(gt: dict) -> list:
    return [{"image_id": a["image_id"], "category_id": 1, "keypoints": a["keypoints"], "score": 0.9}
            for a in gt["annotations"]]


def evaluate(job: Job, gt=None, preds=None, *extra) -> list:
    """evaluate's argv: gt.json (``gt``, default :func:`gt_dict`) and pred.json (``preds``,
    default the ground truth as results), each written unless the case wrote its own."""
    gt = gt if gt is not None else gt_dict()
    gt_path = job.t / "gt.json"
    if not gt_path.exists():
        gt_path.write_text(json.dumps(gt))
    pred_path = job.t / "pred.json"
    if not pred_path.exists():
        pred_path.write_text(json.dumps(results(gt) if preds is None else preds))
    return ["--gt", gt_path, "--predictions", pred_path, "--output", job.t / OUT, "--no-plots", "--bootstrap", "0",
            *extra]


def xrays(job: Job, n=2) -> list:
    """n small grey images in in/."""
    return [write_image(job.t / "in" / f"x{k}.png", 128, 96) for k in range(n)]


def predict(job: Job, *inputs, config=INSTANT_CONFIG, weights=None, extra=()) -> list:
    """predict's argv: ``inputs`` (default the folder in/), the instant config, random weights."""
    return ["--config-file", config, "--weights", weights or job.weights, "--input", *(inputs or [job.t / "in"]),
            "--output", job.t / OUT, "--device", "cpu", "--tta", "none", "--score-threshold", "0.0",
            "--no-progress", "--no-overlays", *extra]


# ---- the builders: each makes its bad input under job.t and returns (argv, the file named) -----

def label_json_is_a_list(job):
    lbl = mendeley(job)
    lbl.write_text(json.dumps([json.loads(lbl.read_text())]))
    return convert(job), lbl


def label_json_with_bom(job):
    lbl = mendeley(job)
    lbl.write_bytes(b"\xef\xbb\xbf" + lbl.read_bytes())
    return convert(job), lbl


def label_json_in_utf16(job):
    lbl = mendeley(job)
    lbl.write_bytes(lbl.read_text().encode("utf-16"))
    return convert(job), lbl


def label_file_unreadable(job):
    lbl = mendeley(job)
    deny(job, lbl, "read_bytes")
    return convert(job), lbl


def label_folder_unreadable(job):
    lbl = mendeley(job)
    deny(job, lbl.parent, "iterdir")
    return convert(job), lbl.parent


def label_without_vertebrae(job):
    lbl = mendeley(job)
    lbl.write_text(json.dumps({"boxes": [], "keypoints": [], "labels": []}))
    return convert(job), lbl


def corner_infinite(job):
    lbl = mendeley(job)
    data = json.loads(lbl.read_text())
    data["keypoints"][0][1][0] = float("inf")  # json writes Infinity, which Python reads back
    lbl.write_text(json.dumps(data))
    return convert(job), lbl


def corner_not_a_number(job):
    lbl = mendeley(job)
    data = json.loads(lbl.read_text())
    data["keypoints"][1][2][0] = str(data["keypoints"][1][2][0])
    lbl.write_text(json.dumps(data))
    return convert(job), lbl


def image_zero_bytes(job):
    lbl = mendeley(job)
    image_of(lbl).write_bytes(b"")
    return convert(job), image_of(lbl)


def two_images_one_stem(job):
    lbl = mendeley(job)
    write_image(image_of(lbl).with_suffix(".png"), 640, 640)  # the message names both
    return convert(job), image_of(lbl)


def same_image_in_two_splits(job):
    lbl = mendeley(job)
    val_labels = lbl.parents[1] / "val"
    (val_labels / lbl.name).write_bytes(lbl.read_bytes())
    (image_of(lbl).parents[1] / "val" / image_of(lbl).name).write_bytes(image_of(lbl).read_bytes())
    return convert(job), image_of(lbl)


def stray_files_in_data_folders(job):
    lbl = mendeley(job)
    (lbl.parent / "notes.xml").write_text("<annotation/>")
    (image_of(lbl).parent / "readme.txt").write_text("exported by Roboflow")
    write_image(lbl.parent / "preview.png", 64, 64)
    return convert(job), lbl.parent / "notes.xml"


def odd_unicode_file_name(job):
    lbl = mendeley(job)
    name = "Ünïcödé 脊椎 (copy)"
    image_of(lbl).rename(image_of(lbl).with_name(f"{name}.jpg"))
    lbl.rename(lbl.with_name(f"{name}.json"))
    return convert(job), lbl.with_name(f"{name}.json")


def convert_output_is_a_file(job):
    mendeley(job)
    (job.t / OUT).write_text("a file where the COCO folder should go")
    return convert(job), job.t / OUT


def buu_file_neither_image_nor_csv(job):
    buu_tree(job.t / "raw", ["0001", "0002"])
    note = job.t / "raw" / "LA" / "0001-F-040Y1.docx"
    note.write_bytes(b"PK\x03\x04 a Word file")
    return ["--dataset", "buu-lspine", "--root", job.t / "raw", "--output", job.t / OUT, "--no-progress",
            "--no-overlays", "--val-fraction", "0"], note


def zip_encrypted_member(job):
    path = job.t / "download.zip"
    path.write_bytes(zip_bytes(zipped(job)))
    data = bytearray(path.read_bytes())
    for sig, flags in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):  # set bit 0 (encrypted) of every header
        at = data.find(sig)
        while at >= 0:
            data[at + flags] |= 1
            at = data.find(sig, at + 4)
    path.write_bytes(bytes(data))
    return convert(job, path, "--extract-to", job.t / "x"), path


def zip_nested_dataset_zip_corrupt(job):
    inner = zip_bytes(zipped(job))
    return from_zip(job, {"Spondylolisthesis/Dataset.zip": inner[: len(inner) // 2],
                          "Spondylolisthesis/README.txt": b"x"}), job.t / "download.zip"


def zip_windows_backslash_paths(job):
    return from_zip(job, zipped(job, lambda rel: rel.replace("/", "\\"))), job.t / "download.zip"


def zip_without_the_dataset(job):
    return from_zip(job, {"Spondylolisthesis/notes.txt": b"the images are elsewhere"}), job.t / "x"


def phantom_archive_truncated(job):
    data = job.request.getfixturevalue("phantom_archive").read_bytes()
    path = job.t / "download.zip"
    path.write_bytes(data[: len(data) * 2 // 3])
    return convert(job, path, "--extract-to", job.t / "x"), path


def phantom_archive_with_junk_and_a_stray_copy(job):
    with zipfile.ZipFile(job.request.getfixturevalue("phantom_archive")) as zf:
        outer = {i.filename: zf.read(i) for i in zf.infolist()}
    nested_name = next(n for n in outer if n.endswith("/Dataset.zip"))
    with zipfile.ZipFile(io.BytesIO(outer[nested_name])) as zf:
        nested = {i.filename: zf.read(i) for i in zf.infolist()}
    first = next(n for n in sorted(nested) if "/images/train/" in n and n.endswith(".jpg"))
    stray = first[:-len(".jpg")] + " (1).jpg"  # a second download of one image
    nested[stray] = nested[first]
    nested[first.rsplit("/", 1)[0] + "/Thumbs.db"] = b"junk"
    outer[nested_name] = zip_bytes(nested)
    outer[nested_name.rsplit("/", 1)[0] + "/.DS_Store"] = b"junk"
    path = job.t / "download.zip"
    path.write_bytes(zip_bytes(outer))
    return convert(job, path, "--extract-to", job.t / "x"), Path(stray)


def audit_gt_without_images(job):
    gt = gt_dict()
    del gt["images"]
    path = write_gt(job, gt, images=False)
    return audit(job, path), path


def audit_keypoints_wrong_length(job):
    gt = gt_dict()
    gt["annotations"][2]["keypoints"] = gt["annotations"][2]["keypoints"][:6]
    path = write_gt(job, gt)
    return audit(job, path), path


def audit_duplicate_annotation_ids(job):
    gt = gt_dict()
    gt["annotations"][4]["id"] = gt["annotations"][1]["id"]
    path = write_gt(job, gt)
    return audit(job, path), path


def audit_annotation_of_unknown_image(job):
    gt = gt_dict()
    gt["annotations"][0]["image_id"] = 99
    path = write_gt(job, gt)
    return audit(job, path), path


def audit_image_id_not_an_integer(job):
    gt = gt_dict()
    gt["images"][1]["id"] = [2]
    path = write_gt(job, gt)
    return audit(job, path), path


def audit_image_files_missing(job):
    gt = gt_dict()
    path = write_gt(job, gt)
    (job.t / gt["images"][1]["file_name"]).unlink()
    return audit(job, path), job.t / gt["images"][1]["file_name"]


def audit_output_is_a_file(job):
    path = write_gt(job, gt_dict())
    (job.t / OUT).write_text("not a folder")
    return audit(job, path), job.t / OUT


def predictions_not_a_list(job):
    gt = gt_dict()
    return evaluate(job, gt, {"results": results(gt)}), job.t / "pred.json"


def prediction_score_nan(job):
    gt = gt_dict()
    preds = results(gt)
    preds[3]["score"] = float("nan")  # json writes NaN, which Python reads back
    return evaluate(job, gt, preds), job.t / "pred.json"


def predictions_empty(job):
    return evaluate(job, gt_dict(), []), job.t / "pred.json"


def predictions_in_utf16(job):
    gt = gt_dict()
    (job.t / "pred.json").write_bytes(json.dumps(results(gt)).encode("utf-16"))
    return evaluate(job, gt), job.t / "pred.json"


def gt_without_annotations(job):
    gt = dict(gt_dict(), annotations=[])
    return evaluate(job, gt, []), job.t / "gt.json"


def gt_annotations_null(job):
    gt = gt_dict()
    preds = results(gt)
    return evaluate(job, dict(gt, annotations=None), preds), job.t / "gt.json"


def pixel_spacing_malformed(job):
    table = job.t / "spacing.csv"
    table.write_text("file_name,pixel_spacing_mm\nim0.png,0.2\nim1.png,abc\n")
    return evaluate(job, None, None, "--pixel-spacing", table), table


def pixel_spacing_json_with_bom(job):
    table = job.t / "spacing.json"
    table.write_bytes(b"\xef\xbb\xbf" + json.dumps({"im0.png": 0.2, "im1.png": 0.25}).encode())
    return evaluate(job, None, None, "--pixel-spacing", table), table


def input_folder_without_images(job):
    (job.t / "in").mkdir()
    (job.t / "in" / "notes.txt").write_text("no X-ray here")
    return predict(job), job.t / "in"


def weights_not_a_checkpoint(job):
    xrays(job)
    (job.t / "model_best.pth").write_text("<html>the download page, saved by mistake</html>")
    return predict(job, weights=job.t / "model_best.pth"), job.t / "model_best.pth"


def weights_of_another_config(job):
    pytest.importorskip("timm")
    xrays(job)
    return predict(job, config=OTHER_CONFIG), job.weights


def predict_output_is_a_file(job):
    xrays(job)
    (job.t / OUT).write_text("not a folder")
    return predict(job), job.t / OUT


def gt_of_other_images(job):
    xrays(job)
    gt = job.t / "gt.json"
    gt.write_text(json.dumps(gt_dict()))
    return predict(job, extra=["--gt", gt]), job.t / "in" / "x0.png"


def corrupt_image_among_good(job):
    xrays(job)
    bad = job.t / "in" / "scan.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0" + bytes(range(256)) * 4)
    return predict(job), bad


def dicom_without_pixel_data(job):
    import pydicom

    from vertkp.phantoms.dicom import dicom_bytes, save_dicom

    xrays(job)
    ds = pydicom.dcmread(io.BytesIO(dicom_bytes(np.full((96, 128), 90, np.uint8), 0.2, "bad input")))
    del ds.PixelData
    save_dicom(ds, str(job.t / "in" / "header_only.dcm"))
    return predict(job), job.t / "in" / "header_only.dcm"


def missing_input_among_good(job):
    gone = job.t / "elsewhere" / "x9.png"
    return predict(job, *xrays(job), gone), gone


# ---- the table ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class Case:
    """One kind of bad input: ``make`` builds it (argv, the file the outcome must name), ``tool``
    is the entry point it is fed to, ``outcome`` what vertkp does (module docstring), ``says``
    what the message or report must hold. ``skippable``: a converter's refusal that
    ``--skip-invalid`` turns into a listed skip."""

    id: str
    tool: str
    make: Callable
    outcome: str
    says: tuple = ()
    skippable: bool = False


CASES = [
    # vertkp convert, from a folder
    Case("label_json_is_a_list", "convert", label_json_is_a_list, "refused", ('expected an object with a "keypoints"',),
         skippable=True),
    Case("label_json_with_bom", "convert", label_json_with_bom, "read"),
    Case("label_json_in_utf16", "convert", label_json_in_utf16, "refused", ("UTF-16", "save it as UTF-8"),
         skippable=True),
    Case("label_file_unreadable", "convert", label_file_unreadable, "refused", ("cannot be read", "Permission denied"),
         skippable=True),
    Case("label_folder_unreadable", "convert", label_folder_unreadable, "refused",
         ("cannot be listed", "Permission denied")),
    Case("label_without_vertebrae", "convert", label_without_vertebrae, "refused", ("holds no vertebra",),
         skippable=True),
    Case("corner_infinite", "convert", corner_infinite, "refused", ("vertebra 1: corner coordinates are not finite",),
         skippable=True),
    Case("corner_not_a_number", "convert", corner_not_a_number, "refused",
         ("vertebra 2: corner 3 is not [x, y, v] numbers",), skippable=True),
    Case("image_zero_bytes", "convert", image_zero_bytes, "refused", ("the file is empty",), skippable=True),
    Case("two_images_one_stem", "convert", two_images_one_stem, "refused",
         ("would label 2 images of one stem", f"{BAD}.png", "rename or remove the others"), skippable=True),
    Case("same_image_in_two_splits", "convert", same_image_in_two_splits, "reported",
         ("duplicate_image", "source_overlap")),
    Case("stray_files_in_data_folders", "convert", stray_files_in_data_folders, "reported",
         ("not a label file", "readme.txt: not an image file", "preview.png: an image in the label folder")),
    Case("odd_unicode_file_name", "convert", odd_unicode_file_name, "read"),
    Case("convert_output_is_a_file", "convert", convert_output_is_a_file, "refused", ("is a file, not a folder",)),
    Case("buu_file_neither_image_nor_csv", "convert", buu_file_neither_image_nor_csv, "reported",
         ("neither an image nor a CSV label file",)),
    # vertkp convert, from a zip
    Case("zip_encrypted_member", "convert", zip_encrypted_member, "refused",
         ("encrypted", "unpack the archive by hand")),
    Case("zip_nested_dataset_zip_corrupt", "convert", zip_nested_dataset_zip_corrupt, "refused",
         ("member Spondylolisthesis/Dataset.zip", "damaged or incomplete")),
    Case("zip_windows_backslash_paths", "convert", zip_windows_backslash_paths, "read"),
    Case("zip_without_the_dataset", "convert", zip_without_the_dataset, "refused", ("no Keypointrcnn_data folder",)),
    # vertkp phantoms --archive, read back by vertkp convert
    Case("phantom_archive_truncated", "convert", phantom_archive_truncated, "refused",
         ("damaged or incomplete", "download it again")),
    Case("phantom_archive_with_junk_and_a_stray_copy", "convert", phantom_archive_with_junk_and_a_stray_copy,
         "reported", ("no label file", "it has the same bytes as", "junk")),
    # vertkp audit
    Case("audit_gt_without_images", "audit", audit_gt_without_images, "refused", ("missing ['images']",)),
    Case("audit_keypoints_wrong_length", "audit", audit_keypoints_wrong_length, "refused",
         ("annotation 3: 'keypoints' has 6 numbers, expected 12",)),
    Case("audit_duplicate_annotation_ids", "audit", audit_duplicate_annotation_ids, "refused",
         ("annotation 2 appears twice",)),
    Case("audit_annotation_of_unknown_image", "audit", audit_annotation_of_unknown_image, "refused",
         ("image_id 99 is not in 'images'",)),
    Case("audit_image_id_not_an_integer", "audit", audit_image_id_not_an_integer, "refused",
         ("images[1] has the id [2]",)),
    Case("audit_image_files_missing", "audit", audit_image_files_missing, "reported",
         ("unreadable_image", "no such file")),
    Case("audit_output_is_a_file", "audit", audit_output_is_a_file, "refused", ("is a file, not a folder",)),
    # vertkp evaluate
    Case("predictions_not_a_list", "evaluate", predictions_not_a_list, "refused",
         ("must be a JSON list", "got a JSON dict")),
    Case("prediction_score_nan", "evaluate", prediction_score_nan, "refused",
         ("result #3", "'score' must be a finite number")),
    Case("predictions_empty", "evaluate", predictions_empty, "reported", ("no prediction for any image",)),
    Case("predictions_in_utf16", "evaluate", predictions_in_utf16, "refused", ("UTF-16", "save it as UTF-8")),
    Case("gt_without_annotations", "evaluate", gt_without_annotations, "refused",
         ("holds no labelled vertebra", "labelled split")),
    Case("gt_annotations_null", "evaluate", gt_annotations_null, "refused", ("'annotations' must be a list",)),
    Case("pixel_spacing_malformed", "evaluate", pixel_spacing_malformed, "refused",
         ("row 3", "'abc' is not a positive number of mm per pixel")),
    Case("pixel_spacing_json_with_bom", "evaluate", pixel_spacing_json_with_bom, "read",
         ("pixel spacing from", "2 of 2 images")),
    # vertkp predict (DICOM included)
    Case("input_folder_without_images", "predict", input_folder_without_images, "refused",
         ("nothing to predict", "folder holds no image")),
    Case("weights_not_a_checkpoint", "predict", weights_not_a_checkpoint, "refused",
         ("cannot be loaded as a checkpoint",)),
    Case("weights_of_another_config", "predict", weights_of_another_config, "refused",
         ("do not fit the config's model", "another config")),
    Case("predict_output_is_a_file", "predict", predict_output_is_a_file, "refused", ("is a file, not a folder",)),
    Case("gt_of_other_images", "predict", gt_of_other_images, "reported", ("not images of the --gt file",)),
    Case("corrupt_image_among_good", "predict", corrupt_image_among_good, "skipped", ("not a readable image",)),
    Case("dicom_without_pixel_data", "predict", dicom_without_pixel_data, "skipped", ("no pixel data",)),
    Case("missing_input_among_good", "predict", missing_input_among_good, "skipped", ("no such file or folder",)),
]
MAINS = {"convert": convert_main, "audit": audit_main, "evaluate": evaluate_main}
EXIT = {"refused": 2, "skipped": 1, "reported": 0, "read": 0}


# ---- fixtures ----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    """A checkpoint of the instant config with random weights (plumbing, not accuracy)."""
    pytest.importorskip("detectron2", reason=DETECTRON2_SKIP_REASON)
    return random_weights(tmp_path_factory.mktemp("weights"), INSTANT_CONFIG)


@pytest.fixture(scope="module")
def phantom_archive(tmp_path_factory):
    """A tiny phantom set packed as the Mendeley download (``vertkp phantoms --archive``)."""
    path = tmp_path_factory.mktemp("phantoms") / "download.zip"
    r = run_main(phantoms_main, "--layout", "spondylolisthesis", "--output", path, "--archive", "--num-images", "4",
                 "--seed", "0", "--image-size", "128", "--no-progress", prog="vertkp phantoms")
    assert r.returncode == 0, r.stderr
    return path


def run(case: Case, argv) -> subprocess.CompletedProcess:
    """The case's entry point run in this process (``run_main``); predict on one torch thread."""
    if case.tool == "predict":
        import torch

        from vertkp.inference.cli import main

        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            return run_main(main, *argv, prog="vertkp predict")
        finally:
            torch.set_num_threads(threads)
    return run_main(MAINS[case.tool], *argv, prog=f"vertkp {case.tool}")


# ---- the checks --------------------------------------------------------------------------------

def leftovers(folder: Path) -> list:
    """Temporary files and folders a crash or a refusal must not leave."""
    return [p for p in folder.rglob("*") if p.name.endswith((".tmp", ".part", ".partial"))]


def written_whole(out: Path) -> str:
    """The text of every file the tool wrote (each must parse: nothing half-written)."""
    texts = []
    for p in sorted(out.rglob("*")) if out.is_dir() else []:
        if p.suffix == ".json":
            json.loads(p.read_text())
        elif p.suffix == ".jsonl":
            [json.loads(line) for line in p.read_text().splitlines()]
        elif p.suffix == ".csv":
            list(csv.reader(io.StringIO(p.read_text())))
        else:
            continue
        texts.append(p.read_text())
    return "\n".join(texts)


def accounted(case: Case, job: Job, argv) -> None:
    """Nothing lost: every input is counted once in what the tool wrote."""
    out = job.t / OUT
    if case.tool == "convert":
        report = json.loads((out / "conversion_report.json").read_text())
        root = job.t / "x" if (job.t / "x").is_dir() else job.t / "raw"
        if "buu-lspine" in argv:
            root = root / "LA"  # the view converted
        images = [p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
                  and not is_junk(p.relative_to(root)) and out not in p.parents]
        written = sum(len(json.loads(f.read_text())["images"]) for f in out.glob("*.json")
                      if f.name in ("train.json", "val.json", "test.json"))
        left_out = [x for x in report["left_out"] if Path(x["file"]).suffix.lower() in IMAGE_SUFFIXES]
        assert len(images) == written + report["n_skipped"] + len(left_out), report
    elif case.tool == "predict":
        pred = json.loads((out / "predictions.json").read_text())
        seen = {p["image"] for p in pred["images"]} | {f["image"] for f in pred["failures"]}
        inputs = [str(p) for p in (job.t / "in").rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES]
        assert set(inputs) <= seen
        assert pred["summary"]["images"] == len(pred["images"]) + len(pred["failures"]) == len(seen)
        assert pred["summary"]["failed"] == len(pred["failures"])
    elif case.tool == "evaluate":
        gt = json.loads(Path(argv[argv.index("--gt") + 1]).read_text())
        assert json.loads((out / "metrics.json").read_text())["n_images"] == len(gt["images"])
    elif case.tool == "audit":
        gt_path = str(argv[argv.index("--gt") + 1])
        found = json.loads((out / "audit.json").read_text())["datasets"][gt_path]
        assert found["images"] == len(json.loads(Path(gt_path).read_text())["images"])


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_is_refused_skipped_or_reported_naming_the_file(case, tmp_path, monkeypatch, request):
    if case.tool == "predict":
        pytest.importorskip("detectron2", reason=DETECTRON2_SKIP_REASON)
    job = Job(tmp_path, monkeypatch, request)
    argv, named = case.make(job)
    before = (tmp_path / OUT).read_bytes() if (tmp_path / OUT).is_file() else None
    r = run(case, argv)
    said = r.stdout + r.stderr
    assert r.returncode == EXIT[case.outcome], said
    assert "Traceback" not in said
    assert not leftovers(tmp_path)
    if case.outcome == "refused":
        assert r.stderr.startswith(f"vertkp {case.tool}: error: "), r.stderr
        assert str(named) in r.stderr
        assert all(s in r.stderr for s in case.says), r.stderr
        if before is not None:  # the file in the way is left as it was
            assert (tmp_path / OUT).read_bytes() == before
        else:
            assert not (tmp_path / OUT).exists()  # nothing written
        extraction = tmp_path / "x"
        assert not extraction.exists() or (extraction / MARKER).is_file()  # none, or a whole one (reused next time)
        if case.skippable:
            skipped_and_listed(case, job, argv, named)
        return
    report = said + written_whole(tmp_path / OUT)
    if case.outcome != "read":
        assert named.name in report, report
    assert all(s in report for s in case.says), report
    accounted(case, job, argv)


def skipped_and_listed(case: Case, job: Job, argv, named: Path) -> None:
    """With --skip-invalid, the refused image is skipped and listed, the rest converted."""
    r = run(case, [*argv, "--skip-invalid"])
    assert r.returncode == 0, r.stdout + r.stderr
    report = json.loads((job.t / OUT / "conversion_report.json").read_text())
    assert report["n_skipped"] >= 1 and all(s["file"] and s["problem"] for s in report["skipped"])
    assert any(s["file"] == str(named) and all(x in f"{s['where']}: {s['problem']}" for x in case.says)
               for s in report["skipped"]), report["skipped"]
    assert "skipped" in r.stdout and named.name in r.stdout
    train = json.loads((job.t / OUT / "train.json").read_text())
    assert GOOD in {Path(im["file_name"]).stem for im in train["images"]}
    accounted(case, job, argv)


def test_the_readme_lists_every_case_of_the_table():
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Reliability: bad input", 1)[1].split("\n## ", 1)[0]
    missing = [c.id for c in CASES if f"`{c.id}`" not in section]
    assert not missing, f"README, Reliability: bad input, does not list {missing}"
