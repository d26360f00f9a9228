"""The Mendeley "Spondylolisthesis Vertebral Landmark Dataset" layout, written as phantoms.

``Dataset/Train/Keypointrcnn_data/{images,labels}/{train,val}/`` with Roboflow
export names, and unlabelled ``Test/`` images (``datasets/README.md``). As in the
real archive, every labelled image has a JSON label and ``TWIN_SHARE`` of them a
YOLO-TXT twin of the same stem too; one twin of the set disagrees with its JSON
by ``TWIN_OFFSET_PX`` (an exporter's slip, for the converter to report), and
archive/OS junk lies among the data. Folders, names and label formats are
written with this dataset's writers (``labels``, ``layout``), beside its readers.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from tqdm import tqdm

from vertkp.grading import DEFAULT_NO_SLIP_PCT

from vertkp.phantoms.difficulty import Difficulty
from vertkp.phantoms.geometry import apply_affine, canonical_from_anatomical, frame_affine, rotation
from vertkp.phantoms.labelling import label_corners
from vertkp.phantoms.lateral import build_lateral
from vertkp.phantoms.patients import LATERAL_LEVELS, degenerated, sample_degeneration, sample_patient, sample_people, \
    sample_slip_targets, stream
from vertkp.phantoms.realism import ARCHIVE, ARCHIVE_SIZE
from vertkp.phantoms.render import degraded_style, render_jpeg, sample_style
from vertkp.phantoms.truth import inside_image, on_label_grid, slip_pairs, vertebra_records, write_file

from ..buu_lspine.layout import BUU_LEVELS, VIEW_LAYOUT, format_name
from .labels import format_json_labels, format_txt_labels
from .layout import IMAGES_DIR, KEYPOINTRCNN_DIR, LABELS_DIR, SPLITS, TEST_DIR, roboflow_name

__all__ = ["write_spondylolisthesis"]

# Window of labelled vertebrae per image: count and last level.
_WINDOW_COUNTS = {3: 0.03, 4: 0.04, 5: 0.08, 6: 0.3, 7: 0.3, 8: 0.1, 9: 0.06, 10: 0.05, 11: 0.04}
_WINDOW_ENDS = {"S1": 0.85, "L5": 0.1, "L4": 0.05}
# Decimals of the normalised values in YOLO-TXT labels.
TXT_DECIMALS = 6
# Share of the labelled images that also carry a TXT twin (the peer statistics of the real
# archive: a JSON for every image, TXT files for many), and how far off the one bad twin is, px.
TWIN_SHARE = 0.4
TWIN_OFFSET_PX = 3.0
# Junk written among the data, as archives and file managers leave it (relative paths).
JUNK_FILES = ("__MACOSX/Dataset/._Train", f"{KEYPOINTRCNN_DIR}/{IMAGES_DIR}/train/.DS_Store",
              f"{KEYPOINTRCNN_DIR}/{LABELS_DIR}/val/Thumbs.db", "desktop.ini")
_LATERAL_DIGIT = VIEW_LAYOUT["lateral"][1]


def _mirror(facing: str) -> np.ndarray:
    return np.diag([-1.0, 1.0]) if facing == "right" else np.eye(2)


def _plan(n: int, rng: np.random.Generator) -> list:
    """Source images of a Mendeley-style set: [{"stem", "split", "copies", "buu"}], in split order.

    About 30% of the labelled images go to val (BUU stems, one copy each);
    train mixes BUU and other-source stems, some with 2-3 augmented copies;
    max(1, n // 10) unlabelled test images (BUU stems).
    """
    n_val = int(round(0.3 * n)) if n >= 2 else 0
    n_val = max(n_val, 1) if n >= 2 else 0
    n_train = n - n_val
    n_test = max(1, n // 10)
    people = iter(sample_people(rng, n + n_test))
    sources = []
    other_ids = iter(np.sort(rng.choice(np.arange(1, 10000), size=max(n, 1), replace=False)))
    left = n_train
    while left > 0:
        copies = min(left, int(rng.choice([1, 2, 3], p=[0.8, 0.13, 0.07])))
        if rng.random() < 0.6:
            stem = format_name(*next(people), _LATERAL_DIGIT)
            buu = True
        else:
            k = int(next(other_ids))
            stem = f"hond_{k:04d}" if rng.random() < 0.65 else f"HN-{k:04d}-lat"
            buu = False
        sources.append({"stem": stem, "split": "train", "copies": copies, "buu": buu})
        left -= copies
    for _ in range(n_val):
        sources.append({"stem": format_name(*next(people), _LATERAL_DIGIT), "split": "val", "copies": 1, "buu": True})
    for _ in range(n_test):
        sources.append({"stem": format_name(*next(people), _LATERAL_DIGIT), "split": "test", "copies": 1, "buu": True})
    return sources


def _window(rng: np.random.Generator, counts: dict = _WINDOW_COUNTS, ends: dict = _WINDOW_ENDS) -> tuple:
    """Labelled levels (cranial to caudal) of one Mendeley-style image; ``counts``: relative
    frequency of each number of labelled vertebrae, ``ends``: of each last level."""
    weights = np.array(list(counts.values()), dtype=np.float64)
    count = list(counts)[int(rng.choice(len(counts), p=weights / weights.sum()))]
    end_weights = np.array(list(ends.values()), dtype=np.float64)
    end = LATERAL_LEVELS.index(list(ends)[int(rng.choice(len(ends), p=end_weights / end_weights.sum()))])
    start = max(0, end - count + 1)
    return LATERAL_LEVELS[start:end + 1]


# Archive framing (realistic, hard): every vertebra in full view is labelled, down to S1; the
# one above the labelled window is cut by the top border. px per mm at a 640 px export
# (log-normal), and the stretch of a portrait radiograph squeezed into the square export
# (log-normal, width factor).
_ARCHIVE_ENDS = {"S1": 1.0}
_ARCHIVE_PX_PER_MM = (1.9, 0.25)
# A window of n labelled vertebrae is seen (_TYPICAL_COUNT / n) ** _ZOOM_POWER times closer.
_TYPICAL_COUNT, _ZOOM_POWER = 6.5, 0.5
_ARCHIVE_STRETCH = (1.3, 0.25)
# The lowest the labelled window's bottom goes (the archive's lowest centres are at 0.7 H), the
# share (range) of the vertebra above the window that the top border cuts off, and the share of
# images whose top labelled vertebra touches the border.
_ARCHIVE_BOTTOM = 0.85
_CUT_SHARE = (0.05, 0.6)
_TOUCH_SHARE = 0.02


def _archive_affine(linear: np.ndarray, keep: np.ndarray, above: np.ndarray | None, size: int, facing: str,
                    rng: np.random.Generator) -> np.ndarray:
    """2x3 affine model mm -> image px placing the labelled corners ``keep`` as the archive does.

    The scale gives archive-sized vertebrae (a short window is a closer view), shrunk
    when the window would reach below ``_ARCHIVE_BOTTOM`` of the height, so that the
    pelvis, not labelled vertebrae, fills the lower part. The vertebra ``above`` the
    window (its corners, mm; None: none) is cut by the top border, so that no vertebra
    in full view is left unlabelled; now and then the top labelled one touches the border.
    """
    p = np.asarray(keep, dtype=np.float64).reshape(-1, 2) @ linear.T
    lo, hi = p.min(axis=0), p.max(axis=0)
    span = hi - lo
    zoom = (_TYPICAL_COUNT / len(keep)) ** _ZOOM_POWER
    scale = size / ARCHIVE_SIZE * _ARCHIVE_PX_PER_MM[0] * zoom * np.exp(rng.normal(0.0, _ARCHIVE_PX_PER_MM[1]))
    touch = rng.random() < _TOUCH_SHARE
    if above is not None:  # the window's top, mm below the image top: the vertebra above is partly out
        q = np.asarray(above, dtype=np.float64) @ linear.T
        gap_mm = max(lo[1] - q[:, 1].min() - rng.uniform(*_CUT_SHARE) * np.ptp(q[:, 1]), 0.0)
    else:
        gap_mm = rng.uniform(0.01, 0.08) * size / scale
    if touch:
        gap_mm = 0.0
    scale = min(scale, _ARCHIVE_BOTTOM * size / (gap_mm + span[1]), 0.94 * size / span[0])
    top = scale * gap_mm + (rng.uniform(0.0, 1.0) if touch else 0.0)
    x_centre = rng.uniform(0.4, 0.52) if facing == "left" else rng.uniform(0.48, 0.6)
    m = np.zeros((2, 3))
    m[:, :2] = scale * linear
    m[:, 2] = [x_centre * size - scale * (lo[0] + hi[0]) / 2, top - scale * lo[1]]
    q = p * scale + m[:, 2]
    pad = 0.01 * size
    m[0, 2] += max(0.0, pad - q[:, 0].min()) - max(0.0, q[:, 0].max() - (size - pad))
    return m


def _archive_counts() -> dict:
    return {k: float(v) for k, v in ARCHIVE["vertebrae_per_image"].items()}


def _similarity(deg: float, scale: float, shift, width: int, height: int) -> np.ndarray:
    """3x3 rotation + scaling about the image centre, then a shift (px)."""
    c = np.array([(width - 1) / 2, (height - 1) / 2])
    m = np.eye(3)
    m[:2, :2] = scale * rotation(deg)
    m[:2, 2] = c - m[:2, :2] @ c + np.asarray(shift)
    return m


def _inside(pts: np.ndarray, width: int, height: int, frac: float = 0.01) -> bool:
    x, y = pts[..., 0], pts[..., 1]
    return bool(x.min() >= frac * width and x.max() <= (1 - frac) * width
                and y.min() >= frac * height and y.max() <= (1 - frac) * height)


def _copy_affines(base: np.ndarray, keep: np.ndarray, copies: int, size: int, rng: np.random.Generator,
                  mirror_fallback: bool = False) -> list:
    """Per copy: (2x3 affine, flipped). Copy 0 is the export itself; later copies get a random
    flip and a small rotation/zoom/shift, halved until the labelled corners stay in the image;
    when none fits, the export itself, or with ``mirror_fallback`` its mirror image (labelled
    vertebrae near the top border leave no room to rotate or zoom)."""
    out = [(base, False)]
    b3 = np.vstack([base, [0.0, 0.0, 1.0]])
    for _ in range(1, copies):
        flip = bool(rng.random() < 0.3)
        deg, zoom, shift = rng.uniform(-4, 4), rng.uniform(-0.06, 0.04), rng.uniform(-0.03, 0.03, 2) * size
        m = None
        for damp in (1.0, 0.5, 0.25) if mirror_fallback else (1.0, 0.5, 0.25, 0.0):
            aug = _similarity(deg * damp, 1.0 + zoom * damp, shift * damp, size, size)
            if flip:
                aug = np.array([[-1.0, 0.0, size - 1.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]) @ aug
            cand = (aug @ b3)[:2]
            if _inside(apply_affine(cand, keep), size, size):
                m = cand
                break
        if m is None and mirror_fallback:
            flip = True
            m = (np.array([[-1.0, 0.0, size - 1.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]) @ b3)[:2]
            moved = m + [[0.0, 0.0, shift[0]], [0.0, 0.0, 0.0]]
            m = moved if _inside(apply_affine(moved, keep), size, size, 0.0) else m
        out.append((m, flip) if m is not None else (base, False))
    return out


def _jitter_style(style: dict, rng: np.random.Generator) -> dict:
    s = dict(style)
    lo, hi = style["window"]
    s["window"] = (lo + rng.uniform(-0.04, 0.04), hi + rng.uniform(-0.08, 0.08))
    s["gamma"] = style["gamma"] * rng.uniform(0.88, 1.12)
    s["bone_gain"] = style["bone_gain"] * rng.uniform(0.9, 1.1)
    return s


def write_spondylolisthesis(out: Path, n: int, seed: int, size: int, progress: bool, difficulty: Difficulty,
                            label_noise_px: float | None = None) -> dict:
    """Write ``n`` labelled images (and their test images) of the Mendeley layout into ``out``.

    Args:
        difficulty: the knobs (``vertkp.phantoms.difficulty``).
        label_noise_px: SD per coordinate of the label jitter, px (None: the difficulty's,
            relative to each vertebra's width).

    Returns:
        {"images": truth records of every image}
    """
    plan_rng = stream(seed, 1, 0)
    sources = _plan(n, plan_rng)
    # TXT twins and colour: exact shares per split, drawn at random; the first twin drawn is the bad one
    labelled = [(i, c) for i, s in enumerate(sources) if s["split"] != "test" for c in range(s["copies"])]
    twin, colour = {}, {}
    for split in SPLITS:
        items = [ic for ic in labelled if sources[ic[0]]["split"] == split]
        order = plan_rng.permutation(len(items))
        n_twin, n_col = int(round(TWIN_SHARE * len(items))), int(round(0.35 * len(items)))
        for rank, j in enumerate(order):
            twin[items[j]] = rank < n_twin
        for rank, j in enumerate(plan_rng.permutation(len(items))):
            colour[items[j]] = rank < n_col
    bad_twin = next((ic for ic in labelled if twin[ic]), None)
    images = []
    total = sum(s["copies"] for s in sources)
    bar = tqdm(total=total, desc="spondylolisthesis phantoms", unit="img", disable=not progress)
    for i, src in enumerate(sources):
        rng = stream(seed, 1, 1, i)
        images += _write_source(out, src, i, size, rng, twin, colour, bad_twin, difficulty, label_noise_px,
                                stream(seed, 1, 3, i))
        bar.update(src["copies"])
    bar.close()
    for rel in JUNK_FILES:
        write_file(out / rel, b"\x00\x05\x16\x07junk")
    return {"images": images, "junk": list(JUNK_FILES)}


def _write_source(out: Path, src: dict, i: int, size: int, rng, twin: dict, colour: dict, bad_twin,
                  difficulty: Difficulty, label_noise_px, xrng) -> list:
    """The images of one source (its augmented copies, or one test image); returns their truth records.

    ``rng`` draws what a clean phantom draws, ``xrng`` what a harder difficulty adds, so a
    clean set keeps its bytes."""
    patient = sample_patient(rng)
    test = src["split"] == "test"
    archive = difficulty.archive_framing
    if test:
        levels = BUU_LEVELS
    elif archive:
        levels = _window(xrng, _archive_counts(), _ARCHIVE_ENDS)
    else:
        levels = _window(rng)
    targets = sample_slip_targets(xrng if archive else rng, levels[:-1], difficulty.slip_cases)
    facing = "right" if (not src["buu"] and rng.random() < 0.4) else "left"
    tilt = float(np.clip(rng.normal(0.0, 5.0), -15.0, 15.0))
    if not difficulty.clean:
        tilt = float(np.clip(xrng.normal(0.0, difficulty.tilt_sd_deg), -difficulty.tilt_max_deg,
                             difficulty.tilt_max_deg))
    style = degraded_style(sample_style(rng), difficulty, xrng)
    if test:
        height = int(round(size * rng.uniform(1.6, 2.0)))
        width = int(round(height * rng.uniform(0.55, 0.8)))
        stretch = 1.0
    else:
        height = width = size
        stretch = 1.0 / rng.uniform(0.6, 0.8)  # portrait original stretched to a square export
        if archive:
            stretch = float(np.clip(_ARCHIVE_STRETCH[0] * np.exp(xrng.normal(0.0, _ARCHIVE_STRETCH[1])), 1.0, 2.4))
    linear = np.diag([stretch, 1.0]) @ rotation(tilt) @ _mirror(facing)
    degeneration = sample_degeneration(xrng, difficulty)
    scene = build_lateral(degenerated(patient, degeneration), targets, linear, rng, clutter=difficulty.clutter,
                          degeneration=degeneration if degeneration["discs"] or difficulty.endplate_roughness else None,
                          xrng=xrng)
    keep = np.stack([scene.corner(lv) for lv in levels])
    first = LATERAL_LEVELS.index(levels[0])
    h_above = patient["bodies"][LATERAL_LEVELS[max(first - 1, 0)]]["height"]
    top = h_above * rng.uniform(0.15, 0.55)
    bottom = patient["bodies"]["S1"]["height"] * rng.uniform(0.3, 1.3) if levels[-1] == "S1" else \
        patient["bodies"][levels[-1]]["height"] * rng.uniform(0.15, 0.55)
    x_centre = rng.uniform(0.4, 0.5) if facing == "left" else rng.uniform(0.5, 0.6)
    if archive and not test:
        above = scene.corner(LATERAL_LEVELS[first - 1]) if first > 0 else None
        base = _archive_affine(linear, keep, above, size, facing, xrng)
    else:
        base = frame_affine(linear, keep, width, height, None, x_centre, 0.5, (top, bottom))
    frames = [(base, False)] if test else _copy_affines(base, keep, src["copies"], size, rng, archive)
    # the annotation, made once on the export and carried by its augmented copies (model frame)
    labels_mm = label_corners(scene, levels, base, difficulty, label_noise_px, xrng)
    records = []
    for c, (m, flip) in enumerate(frames):
        crng = np.random.default_rng(rng.integers(0, 2**63))
        img_facing = ("right" if facing == "left" else "left") if flip else facing
        moved = scene.transformed(m)
        canon = canonical_from_anatomical(np.stack([moved.corner(lv) for lv in levels]), img_facing)
        truth = on_label_grid(canon)
        labelled = truth if labels_mm is None else \
            on_label_grid(inside_image(canonical_from_anatomical(apply_affine(m, labels_mm), img_facing), width,
                                       height))
        cstyle = style if c == 0 else _jitter_style(style, crng)
        key = (i, c)
        twin_lab, twin_offset = None, None
        if test:
            rel_img, rel_lab = f"{TEST_DIR}/{src['stem']}.jpg", None
        else:
            name = roboflow_name(src["stem"], crng.bytes(16).hex())
            rel_img = f"{KEYPOINTRCNN_DIR}/{IMAGES_DIR}/{src['split']}/{name}.jpg"
            rel_lab = f"{KEYPOINTRCNN_DIR}/{LABELS_DIR}/{src['split']}/{name}.json"
            write_file(out / rel_lab, format_json_labels(labelled).encode("utf-8"))
            if twin[key]:
                twin_lab = rel_lab[:-len(".json")] + ".txt"
                shifted = labelled.copy()
                if key == bad_twin:
                    twin_offset = TWIN_OFFSET_PX
                    shifted[0, 0, 0] += TWIN_OFFSET_PX  # the first vertebra's TL, to the right
                write_file(out / twin_lab, format_txt_labels(shifted, width, height, TXT_DECIMALS).encode("utf-8"))
        write_file(out / rel_img, render_jpeg(moved, width, height, cstyle, crng, colour.get(key, False)))
        records.append({
            "file_name": rel_img,
            "label_file": rel_lab,
            "label_format": None if test else "json",
            "twin_label_file": twin_lab,
            "twin_offset_px": twin_offset,
            "split": src["split"],
            "source_stem": src["stem"],
            "copy_index": c,
            "view": "lateral",
            "facing": img_facing,
            "colour": bool(colour.get(key, False)),
            "width": width,
            "height": height,
            "pixel_spacing": None,
            "vertebrae": vertebra_records(levels, truth, labelled),
            "pairs": slip_pairs(levels, truth, img_facing, DEFAULT_NO_SLIP_PCT, labelled),
        })
    return records
