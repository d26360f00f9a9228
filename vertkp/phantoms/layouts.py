"""Writers of the two raw dataset layouts (shared/DATASETS.md) and of the phantom truth.

Every coordinate written is image pixels, x right, y down, integer values at
pixel centres. The truth file (``phantom_truth.json``) holds, for every image,
the corners exactly as a correct reader reconstructs them from the label
file: JSON and CSV values are the written decimals; YOLO TXT values are the
written normalised decimal times the image width or height (``float(s) * W``).
"""
from __future__ import annotations

import datetime
import io
import json
import re
import time
import zipfile
from pathlib import Path

import numpy as np
from tqdm import tqdm

from vertkp.grading.slip import DEFAULT_NO_SLIP_PCT, grade_name, meyerding_grade, slip_percent
from vertkp.keypoints import anatomical_corners

from . import spine
from .render import encode_jpeg, render, sample_style, tint

__all__ = [
    "LAYOUTS",
    "DEFAULT_IMAGE_SIZE",
    "TRUTH_FILE",
    "MENDELEY_LABEL_ROOT",
    "BUU_LABEL_CODES",
    "make_phantoms",
    "json_label",
    "yolo_label",
    "buu_csv",
]

LAYOUTS = ("spondylolisthesis", "buu-lspine")
DEFAULT_IMAGE_SIZE = {"spondylolisthesis": 640, "buu-lspine": 1024}
TRUTH_FILE = "phantom_truth.json"
MENDELEY_LABEL_ROOT = "Dataset/Train/Keypointrcnn_data"
MENDELEY_TEST_DIR = "Test"
BUU_LABEL_CODES = {0: "normal", 1: "anterolisthesis", 2: "retrolisthesis", 3: "laterolisthesis"}
LATERAL_PCT_DEFINITION = (
    "AP views: 100 * d / w, d = displacement of the midpoint of the upper vertebra's inferior "
    "endplate (BL, BR) from the midpoint of the lower vertebra's superior endplate (TL, TR), "
    "projected on TL -> TR of the lower vertebra, w = |TR - TL|; positive = to the image-right"
)
_FIXED_TIME = datetime.datetime(2000, 1, 1, 0, 0, 0)
# Window of labelled vertebrae per Mendeley-style image: count and last level.
_WINDOW_COUNTS = {3: 0.03, 4: 0.04, 5: 0.08, 6: 0.3, 7: 0.3, 8: 0.1, 9: 0.06, 10: 0.05, 11: 0.04}
_WINDOW_ENDS = {"S1": 0.85, "L5": 0.1, "L4": 0.05}


# ----------------------------------------------------------------------------- label formats


def _json_number(v: float) -> float:
    """A pixel coordinate as written to JSON: rounded to 1/1000 px."""
    return float(round(float(v), 3))


def _csv_number(a: np.ndarray) -> np.ndarray:
    """Pixel coordinates as written to a BUU CSV and parsed back: 3 decimals."""
    return np.vectorize(lambda v: float(f"{v:.3f}"))(np.asarray(a, dtype=np.float64))


def json_label(corners: np.ndarray) -> tuple[str, np.ndarray]:
    """Mendeley JSON label of canonical corners [K, 4, 2] (TL, TR, BL, BR), px.

    Stored corner order: BL, BR, TL, TR (image bottom-left, bottom-right,
    top-left, top-right), visibility 1; box = tight box of the 4 corners;
    labels all 0.

    Returns:
        (file text, corners [K, 4, 2] in canonical order as a reader gets them back).
    """
    c = np.vectorize(_json_number)(corners) if len(corners) else np.zeros((0, 4, 2))
    boxes, kps = [], []
    for q in c:
        boxes.append([float(q[:, 0].min()), float(q[:, 1].min()), float(q[:, 0].max()), float(q[:, 1].max())])
        kps.append([[float(q[i, 0]), float(q[i, 1]), 1] for i in (2, 3, 0, 1)])
    text = json.dumps({"boxes": boxes, "keypoints": kps, "labels": [0] * len(c)})
    return text, c.astype(np.float64)


def yolo_label(corners: np.ndarray, width: int, height: int) -> tuple[str, np.ndarray]:
    """Mendeley YOLO-pose TXT label of canonical corners [K, 4, 2], px.

    One line per vertebra: ``cls cx cy w h x1 y1 v1 .. x4 y4 v4``, every value
    but ``cls`` written with 6 decimals, normalised by the image width
    (x) or height (y); corner order TL, BL, BR, TR; box = tight box of the
    written corners; cls 0, v 1.

    Returns:
        (file text, corners [K, 4, 2] canonical, = float(written) * width or height).
    """
    size = np.array([width, height], dtype=np.float64)
    lines, back = [], []
    for q in np.asarray(corners, dtype=np.float64):
        norm = [[f"{v:.6f}" for v in np.round(p / size, 6)] for p in q]
        rec = np.array([[float(s) for s in p] for p in norm]) * size
        lo, hi = rec.min(axis=0), rec.max(axis=0)
        box = [(lo[0] + hi[0]) / 2 / width, (lo[1] + hi[1]) / 2 / height, (hi[0] - lo[0]) / width,
               (hi[1] - lo[1]) / height]
        fields = ["0"] + [f"{v:.6f}" for v in box]
        for i in (0, 2, 3, 1):
            fields += [norm[i][0], norm[i][1], "1.000000"]
        lines.append(" ".join(fields))
        back.append(rec)
    return "".join(line + "\n" for line in lines), np.array(back).reshape(-1, 4, 2)


def buu_csv(rows: list) -> tuple[str, list]:
    """BUU-LSPINE CSV text (no header) of rows ``(p1, p2, label)``, points in px.

    Each line is ``x1,y1,x2,y2,label`` with coordinates written to 3 decimals.

    Returns:
        (file text, rows of (p1, p2) as a reader parses them back).
    """
    lines, back = [], []
    for p1, p2, label in rows:
        vals = [f"{float(v):.3f}" for v in (p1[0], p1[1], p2[0], p2[1])]
        lines.append(",".join(vals + [str(int(label))]))
        f = [float(v) for v in vals]
        back.append((np.array(f[:2]), np.array(f[2:])))
    return "".join(line + "\n" for line in lines), back


# ----------------------------------------------------------------------------- truth helpers


def _pairs(levels, corners: np.ndarray, facing: str, no_slip_pct: float) -> list:
    """Truth slip of every adjacent pair, from canonical corners [K, 4, 2] and the facing."""
    anat = anatomical_corners(corners, facing)
    out = []
    for k in range(len(levels) - 1):
        s = slip_percent(anat["posterior_superior"][k + 1], anat["anterior_superior"][k + 1],
                         anat["posterior_inferior"][k])
        out.append({"upper": levels[k], "lower": levels[k + 1], "slip_pct": s,
                    "grade": meyerding_grade(s, no_slip_pct)})
    return out


def _lateral_pairs(levels, corners: np.ndarray) -> list:
    """Truth lateral displacement (see LATERAL_PCT_DEFINITION) of every adjacent AP pair."""
    out = []
    for k in range(len(levels) - 1):
        u, low = corners[k], corners[k + 1]
        out.append({"upper": levels[k], "lower": levels[k + 1],
                    "lateral_pct": spine.lateral_percent(low[0], low[1], u[2], u[3])})
    return out


def _vertebrae(levels, corners: np.ndarray, superior_only=()) -> list:
    out = []
    for level, q in zip(levels, corners):
        pts = [[float(x), float(y)] for x, y in q]
        if level in superior_only:
            pts[2] = pts[3] = None
        out.append({"level": level, "corners": pts})
    return out


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def _rng(seed: int, *keys: int) -> np.random.Generator:
    return np.random.default_rng([int(seed), *keys])


def _check_out_dir(out_dir: Path) -> None:
    if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())):
        raise FileExistsError(
            f"{out_dir} exists and is not empty; phantoms are only written into a new or empty "
            "directory (delete it or pass another --out)"
        )


def _buu_stem(pid: int, sex: str, age: int, view: int) -> str:
    return f"{pid:04d}-{sex}-{age:03d}Y{view}"


def _patients(rng: np.random.Generator, n: int) -> list:
    """n distinct (patient id, sex, age), sorted by id."""
    ids = np.sort(rng.choice(np.arange(1, 3601), size=n, replace=False))
    return [(int(i), "F" if rng.random() < 0.55 else "M", int(rng.integers(18, 90))) for i in ids]


def _render_jpeg(scene, width, height, style, rng, colour: bool) -> bytes:
    img = render(scene, width, height, style, rng)
    return encode_jpeg(tint(img, rng) if colour else img)


def _mirror(facing: str) -> np.ndarray:
    return np.diag([-1.0, 1.0]) if facing == "right" else np.eye(2)


# ----------------------------------------------------------------------------- Mendeley layout


def _plan_spondylolisthesis(n: int, rng: np.random.Generator) -> list:
    """Source images of a Mendeley-style set: [{"stem", "split", "copies", "buu"}], in split order.

    About 30% of the labelled images go to val (BUU stems, one copy each);
    train mixes BUU and other-source stems, some with 2-3 augmented copies;
    max(1, n // 10) unlabelled test images (BUU stems).
    """
    n_val = int(round(0.3 * n)) if n >= 2 else 0
    n_val = max(n_val, 1) if n >= 2 else 0
    n_train = n - n_val
    n_test = max(1, n // 10)
    people = iter(_patients(rng, n + n_test))
    sources = []
    other_ids = iter(np.sort(rng.choice(np.arange(1, 10000), size=max(n, 1), replace=False)))
    left = n_train
    while left > 0:
        copies = min(left, int(rng.choice([1, 2, 3], p=[0.8, 0.13, 0.07])))
        if rng.random() < 0.6:
            stem = _buu_stem(*next(people), 1)
            buu = True
        else:
            k = int(next(other_ids))
            stem = f"hond_{k:04d}" if rng.random() < 0.65 else f"HN-{k:04d}-lat"
            buu = False
        sources.append({"stem": stem, "split": "train", "copies": copies, "buu": buu})
        left -= copies
    for _ in range(n_val):
        sources.append({"stem": _buu_stem(*next(people), 1), "split": "val", "copies": 1, "buu": True})
    for _ in range(n_test):
        sources.append({"stem": _buu_stem(*next(people), 1), "split": "test", "copies": 1, "buu": True})
    return sources


def _window(rng: np.random.Generator) -> tuple:
    """Labelled levels (cranial to caudal) of one Mendeley-style image."""
    counts = list(_WINDOW_COUNTS)
    count = counts[int(rng.choice(len(counts), p=list(_WINDOW_COUNTS.values())))]
    ends = list(_WINDOW_ENDS)
    end = spine.LATERAL_LEVELS.index(ends[int(rng.choice(len(ends), p=list(_WINDOW_ENDS.values())))])
    start = max(0, end - count + 1)
    return spine.LATERAL_LEVELS[start:end + 1]


def _similarity(deg: float, scale: float, shift, width: int, height: int) -> np.ndarray:
    """3x3 rotation + scaling about the image centre, then a shift (px)."""
    c = np.array([(width - 1) / 2, (height - 1) / 2])
    m = np.eye(3)
    m[:2, :2] = scale * spine.rotation(deg)
    m[:2, 2] = c - m[:2, :2] @ c + np.asarray(shift)
    return m


def _inside(pts: np.ndarray, width: int, height: int, frac: float = 0.01) -> bool:
    x, y = pts[..., 0], pts[..., 1]
    return bool(x.min() >= frac * width and x.max() <= (1 - frac) * width
                and y.min() >= frac * height and y.max() <= (1 - frac) * height)


def _copy_affines(base: np.ndarray, keep: np.ndarray, copies: int, size: int, rng: np.random.Generator) -> list:
    """Per copy: (2x3 affine, flipped). Copy 0 is the export itself; later copies get a random
    flip and a small rotation/zoom/shift, halved until the labelled corners stay in the image."""
    out = [(base, False)]
    b3 = np.vstack([base, [0.0, 0.0, 1.0]])
    for _ in range(1, copies):
        flip = bool(rng.random() < 0.3)
        deg, zoom, shift = rng.uniform(-4, 4), rng.uniform(-0.06, 0.04), rng.uniform(-0.03, 0.03, 2) * size
        m = None
        for damp in (1.0, 0.5, 0.25, 0.0):
            aug = _similarity(deg * damp, 1.0 + zoom * damp, shift * damp, size, size)
            if flip:
                aug = np.array([[-1.0, 0.0, size - 1.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]) @ aug
            cand = (aug @ b3)[:2]
            if _inside(spine.apply_affine(cand, keep), size, size):
                m = cand
                break
        out.append((m, flip) if m is not None else (base, False))
    return out


def _jitter_style(style: dict, rng: np.random.Generator) -> dict:
    s = dict(style)
    lo, hi = style["window"]
    s["window"] = (lo + rng.uniform(-0.04, 0.04), hi + rng.uniform(-0.08, 0.08))
    s["gamma"] = style["gamma"] * rng.uniform(0.88, 1.12)
    s["bone_gain"] = style["bone_gain"] * rng.uniform(0.9, 1.1)
    return s


def _write_spondylolisthesis(out: Path, n: int, seed: int, size: int, progress: bool) -> dict:
    plan_rng = _rng(seed, 1, 0)
    sources = _plan_spondylolisthesis(n, plan_rng)
    # label format and colour: exact shares per split, drawn at random
    labelled = [(i, c) for i, s in enumerate(sources) if s["split"] != "test" for c in range(s["copies"])]
    fmt, colour = {}, {}
    for split in ("train", "val"):
        items = [ic for ic in labelled if sources[ic[0]]["split"] == split]
        order = plan_rng.permutation(len(items))
        n_txt, n_col = int(round(0.3 * len(items))), int(round(0.35 * len(items)))
        for rank, j in enumerate(order):
            fmt[items[j]] = "txt" if rank < n_txt else "json"
        for rank, j in enumerate(plan_rng.permutation(len(items))):
            colour[items[j]] = rank < n_col
    images = []
    total = sum(s["copies"] for s in sources)
    bar = tqdm(total=total, desc="spondylolisthesis phantoms", unit="img", disable=not progress)
    for i, src in enumerate(sources):
        rng = _rng(seed, 1, 1, i)
        images += _spondylolisthesis_source(out, src, i, size, rng, fmt, colour)
        bar.update(src["copies"])
    bar.close()
    return {"images": images}


def _spondylolisthesis_source(out: Path, src: dict, i: int, size: int, rng, fmt: dict, colour: dict) -> list:
    patient = spine.sample_patient(rng)
    test = src["split"] == "test"
    levels = ("L1", "L2", "L3", "L4", "L5", "S1") if test else _window(rng)
    targets = spine.sample_slip_targets(rng, levels[:-1])
    facing = "right" if (not src["buu"] and rng.random() < 0.4) else "left"
    tilt = float(np.clip(rng.normal(0.0, 5.0), -15.0, 15.0))
    style = sample_style(rng)
    if test:
        height = int(round(size * rng.uniform(1.6, 2.0)))
        width = int(round(height * rng.uniform(0.55, 0.8)))
        stretch = 1.0
    else:
        height = width = size
        stretch = 1.0 / rng.uniform(0.6, 0.8)  # portrait original stretched to a square export
    linear = np.diag([stretch, 1.0]) @ spine.rotation(tilt) @ _mirror(facing)
    scene = spine.build_lateral(patient, targets, linear, rng)
    keep = np.stack([scene.corner(lv) for lv in levels])
    first = spine.LATERAL_LEVELS.index(levels[0])
    h_above = patient["bodies"][spine.LATERAL_LEVELS[max(first - 1, 0)]]["height"]
    top = h_above * rng.uniform(0.15, 0.55)
    bottom = patient["bodies"]["S1"]["height"] * rng.uniform(0.3, 1.3) if levels[-1] == "S1" else \
        patient["bodies"][levels[-1]]["height"] * rng.uniform(0.15, 0.55)
    x_centre = rng.uniform(0.4, 0.5) if facing == "left" else rng.uniform(0.5, 0.6)
    base = spine.frame_affine(linear, keep, width, height, None, x_centre, 0.5, (top, bottom))
    frames = [(base, False)] if test else _copy_affines(base, keep, src["copies"], size, rng)
    records = []
    for c, (m, flip) in enumerate(frames):
        crng = np.random.default_rng(rng.integers(0, 2**63))
        img_facing = ("right" if facing == "left" else "left") if flip else facing
        moved = scene.transformed(m)
        canon = spine.canonical_from_anatomical(np.stack([moved.corner(lv) for lv in levels]), img_facing)
        cstyle = style if c == 0 else _jitter_style(style, crng)
        key = (i, c)
        if test:
            name = f"{src['stem']}.jpg"
            rel_img, rel_lab, label_format = f"{MENDELEY_TEST_DIR}/{name}", None, None
            truth = np.vectorize(_json_number)(canon)
        else:
            name = f"{src['stem']}_jpg.rf.{crng.bytes(16).hex()}"
            label_format = fmt[key]
            rel_img = f"{MENDELEY_LABEL_ROOT}/images/{src['split']}/{name}.jpg"
            rel_lab = f"{MENDELEY_LABEL_ROOT}/labels/{src['split']}/{name}.{label_format}"
            if label_format == "json":
                text, truth = json_label(canon)
            else:
                text, truth = yolo_label(canon, width, height)
            _write(out / rel_lab, text.encode("utf-8"))
        _write(out / rel_img, _render_jpeg(moved, width, height, cstyle, crng, colour.get(key, False)))
        records.append({
            "file_name": rel_img,
            "label_file": rel_lab,
            "label_format": label_format,
            "split": src["split"],
            "source_stem": src["stem"],
            "copy_index": c,
            "view": "lateral",
            "facing": img_facing,
            "colour": bool(colour.get(key, False)),
            "width": width,
            "height": height,
            "pixel_spacing": None,
            "vertebrae": _vertebrae(levels, truth),
            "pairs": _pairs(levels, truth, img_facing, DEFAULT_NO_SLIP_PCT),
        })
    return records


# ----------------------------------------------------------------------------- BUU layout

BUU_LATERAL_LEVELS = ("L1", "L2", "L3", "L4", "L5", "S1")
BUU_AP_LEVELS = ("L1", "L2", "L3", "L4", "L5")


def _spacing(rng: np.random.Generator, height: int, extent_mm: float) -> float:
    """mm per px for ``height`` px showing 300-400 mm of anatomy, zoomed out if the
    labelled extent would not fit in 85% of the height; rounded to 1e-4 mm."""
    s = max(rng.uniform(300.0, 400.0) / height, extent_mm / (0.85 * height))
    return float(np.ceil(s * 1e4) / 1e4)


def _buu_rows_lateral(canon: np.ndarray, codes: dict) -> list:
    """11 CSV rows L1a..L5b, S1a of canonical corners (facing left: point 1 = anterior = TL/BL)."""
    rows = []
    for k, level in enumerate(BUU_LATERAL_LEVELS):
        rows.append((canon[k, 0], canon[k, 1], codes.get((level, "a"), 0)))
        if level != "S1":
            rows.append((canon[k, 2], canon[k, 3], codes.get((level, "b"), 0)))
    return rows


def _buu_rows_ap(canon: np.ndarray, codes: dict) -> list:
    """10 CSV rows L1a..L5b of canonical AP corners (point 1 = image-left)."""
    rows = []
    for k, level in enumerate(BUU_AP_LEVELS):
        rows.append((canon[k, 0], canon[k, 1], codes.get((level, "a"), 0)))
        rows.append((canon[k, 2], canon[k, 3], codes.get((level, "b"), 0)))
    return rows


def _pair_codes(pairs: list, key: str) -> dict:
    """Row label codes {(level, "a"|"b"): code} of the slipped pairs (upper's b row, lower's a row)."""
    codes = {}
    for p in pairs:
        if key == "grade":
            code = 1 if p["grade"] >= 1 else 2 if p["grade"] == -1 else 0
        else:
            code = 3 if abs(p["lateral_pct"]) > DEFAULT_NO_SLIP_PCT else 0
        if code:
            codes[(p["upper"], "b")] = code
            codes[(p["lower"], "a")] = code
    return codes


def _write_buu(out: Path, n: int, seed: int, size: int, progress: bool) -> dict:
    if n < 2:
        raise ValueError("the buu-lspine layout needs --num-images >= 2 (one AP and one LA image per patient)")
    people = _patients(_rng(seed, 2, 0), n // 2)
    images, spacing_rows = [], []
    bar = tqdm(total=2 * len(people), desc="buu-lspine phantoms", unit="img", disable=not progress)
    for i, (pid, sex, age) in enumerate(people):
        rng = _rng(seed, 2, 1, i)
        patient = spine.sample_patient(rng)
        lat = _buu_lateral(out, _buu_stem(pid, sex, age, 1), patient, size, rng)
        ap = _buu_ap(out, _buu_stem(pid, sex, age, 0), patient, size, rng, lat["pairs"])
        for rec in (ap, lat):
            images.append(rec)
            spacing_rows.append((Path(rec["file_name"]).name, rec["pixel_spacing"]))
            bar.update(1)
    bar.close()
    _write_spacing(out, sorted(spacing_rows))
    return {"images": images, "patients": len(people)}


def _buu_lateral(out: Path, stem: str, patient: dict, size: int, rng) -> dict:
    targets = spine.sample_slip_targets(rng, BUU_LATERAL_LEVELS[:-1])
    tilt = float(np.clip(rng.normal(0.0, 4.0), -12.0, 12.0))
    style = sample_style(rng)
    height, width = size, int(round(size * rng.uniform(0.6, 0.8)))
    linear = spine.rotation(tilt)
    scene = spine.build_lateral(patient, targets, linear, rng)
    keep = np.stack([scene.corner(lv) for lv in BUU_LATERAL_LEVELS])
    extent = np.ptp((keep.reshape(-1, 2) @ linear.T)[:, 1])
    spacing = _spacing(rng, height, extent)
    m = spine.frame_affine(linear, keep, width, height, 1.0 / spacing, rng.uniform(0.38, 0.5),
                           rng.uniform(0.35, 0.6))
    moved = scene.transformed(m)
    canon = spine.canonical_from_anatomical(np.stack([moved.corner(lv) for lv in BUU_LATERAL_LEVELS]), "left")
    truth = _csv_number(canon)
    truth[-1, 2:] = np.nan  # no S1 inferior endplate in BUU
    pairs = _pairs(BUU_LATERAL_LEVELS, truth, "left", DEFAULT_NO_SLIP_PCT)
    text, _ = buu_csv(_buu_rows_lateral(truth, _pair_codes(pairs, "grade")))
    rel = f"LA/{stem}"
    _write(out / f"{rel}.csv", text.encode("utf-8"))
    _write(out / f"{rel}.jpg", _render_jpeg(moved, width, height, style, rng, False))
    return {
        "file_name": f"{rel}.jpg", "label_file": f"{rel}.csv", "label_format": "csv", "split": None,
        "source_stem": stem, "copy_index": 0, "view": "lateral", "facing": "left", "colour": False,
        "width": width, "height": height, "pixel_spacing": spacing,
        "vertebrae": _vertebrae(BUU_LATERAL_LEVELS, truth, superior_only=("S1",)), "pairs": pairs,
    }


def _buu_ap(out: Path, stem: str, patient: dict, size: int, rng, lateral_pairs: list) -> dict:
    targets = spine.sample_lateral_targets(rng)
    tilt = float(rng.normal(0.0, 2.0))
    style = sample_style(rng)
    height, width = size, int(round(size * rng.uniform(0.6, 0.8)))
    linear = spine.rotation(tilt)
    scene = spine.build_ap(patient, targets, linear, rng)
    keep = np.stack([scene.corner(lv) for lv in BUU_AP_LEVELS])
    extent = np.ptp((keep.reshape(-1, 2) @ linear.T)[:, 1]) * 1.5  # room for sacrum and ilia
    spacing = _spacing(rng, height, extent)
    m = spine.frame_affine(linear, keep, width, height, 1.0 / spacing, rng.uniform(0.45, 0.55),
                           rng.uniform(0.3, 0.5))
    moved = scene.transformed(m)
    truth = _csv_number(np.stack([moved.corner(lv) for lv in BUU_AP_LEVELS]))
    pairs = _lateral_pairs(BUU_AP_LEVELS, truth)
    codes = _pair_codes(pairs, "lateral")
    codes.update({k: v for k, v in _pair_codes(lateral_pairs, "grade").items() if k[0] != "S1"})
    text, _ = buu_csv(_buu_rows_ap(truth, codes))
    rel = f"AP/{stem}"
    _write(out / f"{rel}.csv", text.encode("utf-8"))
    _write(out / f"{rel}.jpg", _render_jpeg(moved, width, height, style, rng, False))
    return {
        "file_name": f"{rel}.jpg", "label_file": f"{rel}.csv", "label_format": "csv", "split": None,
        "source_stem": stem, "copy_index": 0, "view": "ap", "facing": None, "colour": False,
        "width": width, "height": height, "pixel_spacing": spacing,
        "vertebrae": _vertebrae(BUU_AP_LEVELS, truth), "pairs": pairs,
    }


def _deterministic_zip(data: bytes) -> bytes:
    """Rewrite a zip with fixed entry times and a fixed workbook modification time."""
    src = zipfile.ZipFile(io.BytesIO(data))
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            body = src.read(info.filename)
            if info.filename == "docProps/core.xml":
                stamp = _FIXED_TIME.strftime("%Y-%m-%dT%H:%M:%SZ").encode()
                body = re.sub(rb"(<dcterms:modified[^>]*>)[^<]*(<)", rb"\g<1>" + stamp + rb"\g<2>", body)
            fixed = zipfile.ZipInfo(info.filename, date_time=(1980, 1, 1, 0, 0, 0))
            fixed.compress_type = zipfile.ZIP_DEFLATED
            fixed.external_attr = 0o644 << 16
            dst.writestr(fixed, body)
    return buf.getvalue()


def _write_spacing(out: Path, rows: list) -> None:
    """``pixel_spacing.xlsx`` (sheet "Pixel Spacing") and ``pixel_spacing.csv``, same rows."""
    try:
        import openpyxl
    except ImportError as e:  # a declared dependency of vertkp (setup.py)
        raise ImportError("writing pixel_spacing.xlsx needs openpyxl: pip install openpyxl") from e

    wb = openpyxl.Workbook()
    ws = wb.active
    ws.title = "Pixel Spacing"
    ws.append(["file_name", "pixel_spacing_mm"])
    for name, mm in rows:
        ws.append([name, mm])
    wb.properties.creator = "vertkp phantoms"
    wb.properties.created = _FIXED_TIME
    wb.properties.modified = _FIXED_TIME
    buf = io.BytesIO()
    wb.save(buf)
    _write(out / "pixel_spacing.xlsx", _deterministic_zip(buf.getvalue()))
    text = "file_name,pixel_spacing_mm\n" + "".join(f"{name},{mm!r}\n" for name, mm in rows)
    _write(out / "pixel_spacing.csv", text.encode("utf-8"))


# ----------------------------------------------------------------------------- entry point


def make_phantoms(layout: str, out_dir, num_images: int, seed: int, image_size: int | None = None,
                  progress: bool = True) -> dict:
    """Write a synthetic dataset in one of the raw layouts of DATASETS.md.

    Args:
        layout: "spondylolisthesis" (Mendeley landmark dataset) or "buu-lspine".
        out_dir: new or empty directory to write into.
        num_images: spondylolisthesis: labelled images (train + val, about
            70/30), plus max(1, n // 10) unlabelled test images; buu-lspine:
            images, i.e. n // 2 patients with one AP and one LA image each.
        seed: same seed, same bytes in every file.
        image_size: spondylolisthesis: side of the square train/val images
            (default 640; test images are 1.6-2x taller, portrait);
            buu-lspine: image height (default 1024; width 0.6-0.8 of it).
        progress: show a tqdm progress bar.

    Returns:
        summary dict: layout, out_dir, seed, images per split (or per view),
        patients (buu), vertebrae, pair counts per grade name, seconds.

    Raises:
        ValueError: unknown layout, too few images, or image_size < 128.
        FileExistsError: ``out_dir`` exists and is not empty.
    """
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {LAYOUTS}, got {layout!r}")
    if num_images < 1:
        raise ValueError(f"num_images must be >= 1, got {num_images}")
    size = int(image_size or DEFAULT_IMAGE_SIZE[layout])
    if size < 128:
        raise ValueError(f"image_size must be >= 128 px, got {size}")
    out = Path(out_dir)
    _check_out_dir(out)
    start = time.perf_counter()
    if layout == "spondylolisthesis":
        result = _write_spondylolisthesis(out, num_images, seed, size, progress)
    else:
        result = _write_buu(out, num_images, seed, size, progress)
    images = sorted(result["images"], key=lambda r: r["file_name"])
    truth = {
        "layout": layout,
        "seed": int(seed),
        "image_size": size,
        "no_slip_pct": DEFAULT_NO_SLIP_PCT,
        "corner_order": ["TL", "TR", "BL", "BR"],
        "coordinates": "pixels, x right, y down, integer values at pixel centres",
        "label_codes": {str(k): v for k, v in BUU_LABEL_CODES.items()} if layout == "buu-lspine" else None,
        "lateral_pct_definition": LATERAL_PCT_DEFINITION if layout == "buu-lspine" else None,
        "images": images,
    }
    _write(out / TRUTH_FILE, (json.dumps(truth, indent=1) + "\n").encode("utf-8"))
    return summarize(truth, out, time.perf_counter() - start, result.get("patients"))


def summarize(truth: dict, out_dir, seconds: float | None = None, patients: int | None = None) -> dict:
    """Counts of a truth dict: images per split or view, vertebrae, pairs per grade."""
    per_split, grades, lateral = {}, {}, {"none": 0, "laterolisthesis": 0}
    vertebrae = 0
    for rec in truth["images"]:
        key = rec["split"] if rec["split"] is not None else rec["view"].upper().replace("LATERAL", "LA")
        per_split[key] = per_split.get(key, 0) + 1
        if rec["split"] == "test":
            continue
        vertebrae += len(rec["vertebrae"])
        for p in rec["pairs"]:
            if "grade" in p:
                name = grade_name(p["grade"])
                grades[name] = grades.get(name, 0) + 1
            else:
                lateral["laterolisthesis" if abs(p["lateral_pct"]) > truth["no_slip_pct"] else "none"] += 1
    order = ["retrolisthesis", "none", "I", "II", "III", "IV", "V"]
    summary = {
        "layout": truth["layout"],
        "out_dir": str(out_dir),
        "seed": truth["seed"],
        "images": len(truth["images"]),
        "images_per_split": dict(sorted(per_split.items())),
        "labelled_vertebrae": vertebrae,
        "pairs_per_grade": {k: grades.get(k, 0) for k in order},
    }
    if patients is not None:
        summary["patients"] = patients
        summary["ap_pairs"] = lateral
    if seconds is not None:
        summary["seconds"] = round(seconds, 2)
        summary["seconds_per_image"] = round(seconds / max(1, len(truth["images"])), 3)
    return summary


def ensure_phantoms(layout: str, out_dir, num_images: int, seed: int, image_size: int | None = None,
                    progress: bool = True) -> dict | None:
    """:func:`make_phantoms` into ``out_dir`` unless the same phantoms are already there.

    "The same" is recorded in ``<out_dir>.json`` next to the folder (layout, number,
    seed, image size), written once the phantoms are complete; a folder without it,
    or made with other settings, is removed and made again.

    Returns:
        ``make_phantoms``'s summary, or None when the existing phantoms were kept.
    """
    import shutil

    out_dir = Path(out_dir)
    record = out_dir.parent / f"{out_dir.name}.json"
    want = {"layout": layout, "num_images": num_images, "seed": seed, "image_size": image_size}
    if record.is_file() and json.loads(record.read_text()) == want and out_dir.is_dir():
        return None
    if out_dir.exists():
        shutil.rmtree(out_dir)
    summary = make_phantoms(layout, out_dir, num_images, seed, image_size=image_size, progress=progress)
    record.write_text(json.dumps(want))
    return summary
