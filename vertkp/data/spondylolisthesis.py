"""Reader, writer and converter for the Mendeley "Spondylolisthesis Vertebral
Landmark Dataset" (DOI 10.17632/5jdfdgp762.1). Layout: ``datasets/README.md``;
its folders are the constants ``KEYPOINTRCNN_DIR``, ``IMAGES_DIR``, ``LABELS_DIR``
and ``TEST_DIR``.

Labels come in two formats with different corner orders (image-based names):
  JSON  {"boxes", "keypoints": [[[x, y, v] x 4] ...], "labels"}: BL, BR, TL, TR,
        absolute pixels.
  TXT   YOLO-pose, 17 numbers a line "cls cx cy w h x1 y1 v1 ... x4 y4 v4":
        TL, BL, BR, TR, normalised by image width/height.
Neither order is trusted blindly: ``vertkp.keypoints.canonical_order`` checks
it against the geometry, and every correction is reported. Each reader has its
writer beside it (``format_json_labels``, ``format_txt_labels``,
``roboflow_name``): the phantoms and the tests write these formats with them.
"""
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Optional

import numpy as np
from tqdm import tqdm

from .conversion import CocoBuilder, SourceVertebra
from .images import image_size, is_image_file
from .report import ConversionReport, InvalidInput

__all__ = [
    "KEYPOINTRCNN_DIR",
    "IMAGES_DIR",
    "LABELS_DIR",
    "TEST_DIR",
    "SPLITS",
    "JSON_ORDER",
    "TXT_ORDER",
    "JSON_SUPERIOR",
    "TXT_SUPERIOR",
    "source_stem",
    "roboflow_name",
    "read_json_labels",
    "format_json_labels",
    "read_txt_labels",
    "format_txt_labels",
    "txt_label_corners",
    "find_keypointrcnn_dir",
    "find_test_images",
    "convert_spondylolisthesis",
]

# The archive's folder layout (datasets/README.md), relative to its root: the labelled
# images are KEYPOINTRCNN_DIR/IMAGES_DIR/<split>/, their labels KEYPOINTRCNN_DIR/LABELS_DIR/<split>/;
# the unlabelled test images are in a TEST_DIR folder (where exactly is unconfirmed).
KEYPOINTRCNN_DIR = "Dataset/Train/Keypointrcnn_data"
IMAGES_DIR = "images"
LABELS_DIR = "labels"
TEST_DIR = "Test"
SPLITS = ("train", "val")
# Each label format's corner order, as indices into the canonical TL, TR, BL, BR.
JSON_ORDER = (2, 3, 0, 1)  # BL, BR, TL, TR
TXT_ORDER = (0, 2, 3, 1)  # TL, BL, BR, TR
# Indices of the superior endplate (left first) in each format's corner order.
JSON_SUPERIOR = (JSON_ORDER.index(0), JSON_ORDER.index(1))  # (2, 3)
TXT_SUPERIOR = (TXT_ORDER.index(0), TXT_ORDER.index(1))  # (0, 3)
ROBOFLOW_NAME = re.compile(r"^(?P<stem>.+)_(?:jpe?g|png|bmp)\.rf\.[0-9a-fA-F]{32}$")


def source_stem(stem: str) -> Optional[str]:
    """Source image stem of a Roboflow export name, or None if it is not one.

    ``3209-F-073Y1_jpg.rf.<32 hex>`` -> ``3209-F-073Y1``.
    """
    m = ROBOFLOW_NAME.match(stem)
    return m.group("stem") if m else None


def roboflow_name(stem: str, digest: str) -> str:
    """The Roboflow export name of a source image: the inverse of :func:`source_stem`.

    ``roboflow_name("3209-F-073Y1", 32 hex digits)`` -> ``3209-F-073Y1_jpg.rf.<digest>``.
    """
    name = f"{stem}_jpg.rf.{digest}"
    if not ROBOFLOW_NAME.match(name):
        raise ValueError(f"digest must be 32 hexadecimal digits, got {digest!r}")
    return name


def _visibility(path, where: str, k: int, x: float, y: float, v: float) -> int:
    """COCO flag of a source corner: v > 0 -> 2; v == 0 with coordinates ->
    1 (labelled, not visible). v == 0 at (0, 0) is an absent corner, which a
    4-corner vertebra cannot have."""
    if v > 0:
        return 2
    if x == 0 and y == 0:
        raise InvalidInput(path, f"corner {k + 1} is absent (v=0 at 0,0); a vertebra needs its 4 corners", where)
    return 1


def read_json_labels(path) -> list:
    """Vertebrae of one JSON label file (absolute pixel coordinates).

    Raises:
        InvalidInput: malformed/truncated JSON, missing keys, a vertebra with
            other than 4 corners of 3 numbers, boxes/keypoints count mismatch.
    """
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise InvalidInput(path, f"malformed JSON ({e})") from None
    if not isinstance(data, dict) or not isinstance(data.get("keypoints"), list):
        raise InvalidInput(path, 'expected an object with a "keypoints" list')
    kps = data["keypoints"]
    boxes = data.get("boxes")
    labels = data.get("labels")
    for name, seq in (("boxes", boxes), ("labels", labels)):
        if seq is not None and (not isinstance(seq, list) or len(seq) != len(kps)):
            raise InvalidInput(path, f'"{name}" has {len(seq) if isinstance(seq, list) else "no"} entries '
                               f'but "keypoints" has {len(kps)}')
    out = []
    for n, vert in enumerate(kps):
        where = f"vertebra {n + 1}"
        if not isinstance(vert, list) or len(vert) != 4:
            got = len(vert) if isinstance(vert, list) else type(vert).__name__
            raise InvalidInput(path, f"expected 4 corners, got {got}", where)
        pts, flags = [], []
        for k, c in enumerate(vert):
            if (
                not isinstance(c, list)
                or len(c) != 3
                or not all(isinstance(t, (int, float)) and not isinstance(t, bool) for t in c)
            ):
                raise InvalidInput(path, f"corner {k + 1} is not [x, y, v] numbers: {c!r}", where)
            x, y, v = (float(t) for t in c)
            pts.append((x, y))
            flags.append(_visibility(path, where, k, x, y, v))
        label = labels[n] if labels is not None else None
        out.append(
            SourceVertebra(
                np.array(pts), JSON_SUPERIOR, where,
                source_label=None if label is None else [label], coco_visibility=flags,
            )
        )
    return out


def format_json_labels(corners) -> str:
    """The text of a JSON label file of canonical corners [K, 4, 2] (TL, TR, BL, BR), pixels.

    The inverse of :func:`read_json_labels`: corners stored in ``JSON_ORDER``
    (BL, BR, TL, TR) with visibility 1, each box the tight box of its 4
    corners, labels all 0. Coordinates are written exactly (shortest repr).
    """
    boxes, kps = [], []
    for q in np.asarray(corners, dtype=np.float64).reshape(-1, 4, 2):
        boxes.append([float(q[:, 0].min()), float(q[:, 1].min()), float(q[:, 0].max()), float(q[:, 1].max())])
        kps.append([[float(q[i, 0]), float(q[i, 1]), 1] for i in JSON_ORDER])
    return json.dumps({"boxes": boxes, "keypoints": kps, "labels": [0] * len(kps)})


def read_txt_labels(path, width: int, height: int) -> list:
    """Vertebrae of one YOLO-pose TXT label file, de-normalised to pixels by
    the image ``width`` and ``height`` (x = nx * width, y = ny * height).

    Raises:
        InvalidInput: a line that is not 17 numbers, a non-numeric value.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise InvalidInput(path, f"not a text file ({e})") from None
    out = []
    for n, line in enumerate(text.splitlines()):
        if not line.strip():
            continue
        where = f"line {n + 1}"
        fields = line.split()
        if len(fields) != 17:
            raise InvalidInput(path, f"expected 17 numbers (cls cx cy w h + 4 x [x y v]), got {len(fields)}", where)
        try:
            vals = [float(f) for f in fields]
        except ValueError:
            bad = next(f for f in fields if not _is_float(f))
            raise InvalidInput(path, f"not a number: {bad!r}", where) from None
        k = np.array(vals[5:]).reshape(4, 3)
        pts = k[:, :2] * np.array([width, height], dtype=np.float64)
        flags = [_visibility(path, where, i, k[i, 0], k[i, 1], k[i, 2]) for i in range(4)]
        cls = vals[0]
        out.append(
            SourceVertebra(
                pts, TXT_SUPERIOR, where,
                source_label=[int(cls) if cls.is_integer() else cls], coco_visibility=flags,
            )
        )
    return out


def _txt_fields(corners, width: int, height: int, decimals: Optional[int]):
    """Per vertebra: (normalised corner strings [4][2], pixel corners [4, 2] read back from them)."""
    size = np.array([width, height], dtype=np.float64)
    out = []
    for q in np.asarray(corners, dtype=np.float64).reshape(-1, 4, 2):
        if decimals is None:
            norm = [[repr(float(v)) for v in p] for p in q / size]
        else:
            norm = [[f"{v:.{decimals}f}" for v in p] for p in np.round(q / size, decimals)]
        out.append((norm, np.array([[float(t) for t in p] for p in norm]) * size))
    return out


def txt_label_corners(corners, width: int, height: int, decimals: Optional[int] = None) -> np.ndarray:
    """The canonical corners [K, 4, 2], pixels, that :func:`read_txt_labels` gets back from
    ``format_txt_labels(corners, width, height, decimals)``: each written value times the
    image width (x) or height (y)."""
    return np.array([back for _, back in _txt_fields(corners, width, height, decimals)]).reshape(-1, 4, 2)


def format_txt_labels(corners, width: int, height: int, decimals: Optional[int] = None) -> str:
    """The text of a YOLO-pose TXT label file of canonical corners [K, 4, 2], pixels.

    The inverse of :func:`read_txt_labels`: one line per vertebra, ``cls cx cy
    w h x1 y1 v1 .. x4 y4 v4``, corners in ``TXT_ORDER`` (TL, BL, BR, TR)
    normalised by the image ``width`` (x) and ``height`` (y); the box is the
    tight box of the corners as read back (:func:`txt_label_corners`); cls 0,
    v 1. Every value but cls is written with ``decimals`` decimals, or exactly
    (shortest repr) when None.
    """
    def number(v: float) -> str:
        return repr(float(v)) if decimals is None else f"{v:.{decimals}f}"

    lines = []
    for norm, back in _txt_fields(corners, width, height, decimals):
        lo, hi = back.min(axis=0), back.max(axis=0)
        box = [(lo[0] + hi[0]) / 2 / width, (lo[1] + hi[1]) / 2 / height, (hi[0] - lo[0]) / width,
               (hi[1] - lo[1]) / height]
        fields = ["0"] + [number(v) for v in box]
        for i in TXT_ORDER:
            fields += [norm[i][0], norm[i][1], number(1.0)]
        lines.append(" ".join(fields) + "\n")
    return "".join(lines)


def _is_float(s: str) -> bool:
    try:
        float(s)
        return True
    except ValueError:
        return False


def find_keypointrcnn_dir(root: Path) -> Path:
    """The ``Keypointrcnn_data`` folder under ``root`` (expected at
    ``root/KEYPOINTRCNN_DIR``; searched 4 levels deep)."""
    root = Path(root)
    expected = root / KEYPOINTRCNN_DIR
    if expected.is_dir():
        return expected
    name = expected.name
    found = sorted(p for depth in range(5) for p in root.glob("/".join(["*"] * depth + [name])) if p.is_dir())
    if len(found) == 1:
        return found[0]
    if not found:
        raise InvalidInput(root, f"no {name} folder found; expected {KEYPOINTRCNN_DIR} "
                           "(see datasets/README.md for the layout)")
    raise InvalidInput(root, f"several {name} folders: " + ", ".join(map(str, found)))


def find_test_images(root: Path, kp_dir: Path) -> tuple:
    """Unlabelled test images: every image in folders named ``TEST_DIR`` (``Test``,
    or ``test``) up to 3 levels under ``root``, outside ``kp_dir``. Where the archive
    puts them is unconfirmed, so the folders found are returned for the report.

    Returns:
        (sorted image paths, sorted folders)
    """
    root = Path(root)
    dirs = sorted(
        {
            p
            for depth in range(3)
            for p in root.glob("/".join(["*"] * (depth + 1)))
            if p.name in (TEST_DIR, TEST_DIR.lower()) and p.is_dir() and kp_dir not in p.parents and p != kp_dir
        }
    )
    images = sorted(f for d in dirs for f in d.rglob("*") if f.is_file() and is_image_file(f))
    return images, dirs


def convert_spondylolisthesis(
    root, output=None, skip_invalid: bool = False, progress: bool = True
) -> ConversionReport:
    """Convert the Mendeley dataset at ``root`` to COCO keypoint files.

    Writes ``output/train.json``, ``output/val.json``, ``output/test.json``
    (when unlabelled test images exist) and ``output/conversion_report.json``;
    ``output`` defaults to ``root/coco``. The official train/val folders are
    kept as the split; a source stem found on both sides is reported.

    Args:
        skip_invalid: skip broken images/label files (listed in the report)
            instead of stopping at the first one. The unit skipped is the
            image with its label file: an image with one vertebra dropped
            would teach the model that vertebra is background.

    Raises:
        InvalidInput: the first bad input, when ``skip_invalid`` is False;
            nothing is written then.
    """
    root = Path(root)
    output = Path(output) if output is not None else root / "coco"
    report = ConversionReport("spondylolisthesis")
    kp_dir = find_keypointrcnn_dir(root)
    builder = CocoBuilder(report, "Spondylolisthesis Vertebral Landmark Dataset (vertkp COCO keypoints)")

    def fail(split, err: InvalidInput):
        if not skip_invalid:
            raise err
        report.skip(split, err)

    stems_by_split = {}
    for split in SPLITS:
        img_dir, lbl_dir = kp_dir / IMAGES_DIR / split, kp_dir / LABELS_DIR / split
        if not img_dir.is_dir():
            raise InvalidInput(img_dir, f"missing {split} image folder")
        if not lbl_dir.is_dir():
            raise InvalidInput(lbl_dir, f"missing {split} label folder")
        images = {p.stem: p for p in sorted(img_dir.iterdir()) if p.is_file() and is_image_file(p)}
        labels = {}
        for p in sorted(lbl_dir.iterdir()):
            if p.suffix.lower() in (".json", ".txt"):
                if p.stem in labels:
                    fail(split, InvalidInput(p, f"two label files for one image (also {labels[p.stem].name})"))
                    continue
                labels[p.stem] = p
        for stem in sorted(set(labels) - set(images)):
            fail(split, InvalidInput(labels[stem], "label file without its image (no image of that stem in "
                                     f"{img_dir})"))
        stems_by_split[split] = set()
        for stem in tqdm(sorted(images), desc=f"spondylolisthesis {split}", disable=not progress, unit="img"):
            img = images[stem]
            lbl = labels.get(stem)
            try:
                if lbl is None:
                    raise InvalidInput(img, f"image has no label file ({stem}.json or {stem}.txt) in {lbl_dir}")
                width, height = image_size(img)
                report.read[split] += 1
                if lbl.suffix.lower() == ".json":
                    verts = read_json_labels(lbl)
                else:
                    verts = read_txt_labels(lbl, width, height)
                src = source_stem(stem)
                if src is None:
                    report.warn(split, img, "file name is not a Roboflow export name; source stem = file stem")
                    src = stem
                builder.add_image(
                    split, img, img.relative_to(root).as_posix(), width, height, verts, lbl,
                    source_stem=src, view="lateral", pixel_spacing=None, facing=None,
                )
                stems_by_split[split].add(src)
            except InvalidInput as e:
                fail(split, e)
    for stem in sorted(stems_by_split["train"] & stems_by_split["val"]):
        report.warn(None, stem, "source stem appears in both train and val (official split kept)")

    test_images, test_dirs = find_test_images(root, kp_dir)
    if test_dirs:
        report.notes.append("test images taken from: " + ", ".join(d.relative_to(root).as_posix() for d in test_dirs))
    else:
        report.notes.append(f"no {TEST_DIR} folder found: test.json not written")
    for img in tqdm(test_images, desc="spondylolisthesis test", disable=not progress, unit="img"):
        try:
            width, height = image_size(img)
            builder.add_image(
                "test", img, img.relative_to(root).as_posix(), width, height, [],
                source_stem=source_stem(img.stem) or img.stem, view="lateral", pixel_spacing=None, facing=None,
            )
        except InvalidInput as e:
            fail("test", e)
    builder.finish(output, ("train", "val", "test"))
    return report
