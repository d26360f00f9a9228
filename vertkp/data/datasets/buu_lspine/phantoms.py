"""The BUU-LSPINE layout, written as phantoms.

``AP/`` and ``LA/`` with one AP and one lateral image per patient, named
``NNNN-S-AAAYv``, each with its headerless CSV of endplate rows, plus the pixel
spacing table (``datasets/README.md``); names, rows and CSV text are written
with this dataset's writers (``labels``, ``layout``), beside its readers.

The CSV ``label`` column's meaning is unconfirmed in the real data; the
phantoms write ``BUU_LABEL_CODES`` (see :func:`label_codes`).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from tqdm import tqdm

from vertkp.data.imaging.spacing import format_spacing_csv, format_spacing_xlsx
from vertkp.grading import DEFAULT_NO_SLIP_PCT

from vertkp.phantoms.ap import build_ap
from vertkp.phantoms.difficulty import Difficulty
from vertkp.phantoms.geometry import Scene, apply_affine, canonical_from_anatomical, frame_affine, rotation
from vertkp.phantoms.labelling import label_corners
from vertkp.phantoms.lateral import build_lateral
from vertkp.phantoms.patients import degenerated, sample_degeneration, sample_lateral_displacements, sample_patient, \
    sample_people, sample_slip_targets, stream
from vertkp.phantoms.render import degraded_style, render_jpeg, sample_style
from vertkp.phantoms.truth import (LABEL_DECIMALS, LATERAL_DISPLACEMENT_PCT_DEFINITION, inside_image,
                                   lateral_displacement_pairs, on_label_grid, slip_pairs, vertebra_records, write_file)

from .labels import format_csv_rows, row_names, rows_from_corners
from .layout import BUU_LEVELS, VIEW_LAYOUT, format_name

__all__ = ["BUU_LABEL_CODES", "label_codes", "write_buu"]

BUU_LABEL_CODES = {0: "normal", 1: "anterolisthesis", 2: "retrolisthesis", 3: "laterolisthesis"}
_AP_LEVELS = BUU_LEVELS[:-1]  # the AP view stops at L5
# The originals' sizes, px (realistic and hard, with no --image-size): height, and the width
# as a share of it, clipped to the widths seen.
BUU_HEIGHT_PX = (1434, 3408)
BUU_WIDTH_PX = (860, 3040)
_WIDTH_SHARE = (0.6, 0.9)


def _spacing(rng: np.random.Generator, height: int, extent_mm: float) -> float:
    """mm per px for ``height`` px showing 300-400 mm of anatomy, zoomed out if the
    labelled extent would not fit in 85% of the height; rounded to 1e-4 mm."""
    s = max(rng.uniform(300.0, 400.0) / height, extent_mm / (0.85 * height))
    return float(np.ceil(s * 1e4) / 1e4)


def _pair_code(pair: dict) -> int:
    if "grade" in pair:
        return 1 if pair["grade"] >= 1 else 2 if pair["grade"] == -1 else 0
    return 3 if abs(pair["lateral_displacement_pct"]) > DEFAULT_NO_SLIP_PCT else 0


def label_codes(view: str, pairs: list, sagittal_pairs: list = ()) -> dict:
    """The non-zero CSV label codes of one phantom image, by row name (``{"L4b": 1, "L5a": 1}``).

    A slipped pair puts its code (``BUU_LABEL_CODES``) on the two endplates that
    face its disc: the upper vertebra's "b" row and the lower one's "a" row.
    Lateral pairs (with a "grade"): 1 for an anterolisthesis (grade >= 1), 2
    for a retrolisthesis (grade -1). AP pairs (with a
    "lateral_displacement_pct"): 3 when the displacement is over
    ``DEFAULT_NO_SLIP_PCT`` either way. An AP image also carries its patient's
    sagittal codes, from ``sagittal_pairs`` (the lateral image's pairs), which
    win over a 3 on the same row. Only the rows of ``view`` are returned.

    Args:
        view: "lateral" or "ap".
        pairs: truth pairs of the image (``{"upper", "lower", "grade" | "lateral_displacement_pct"}``).
        sagittal_pairs: AP only: truth pairs of the patient's lateral image.
    """
    codes = {}
    for p in (*pairs, *sagittal_pairs):
        code = _pair_code(p)
        if code:
            codes[f"{p['upper']}b"] = codes[f"{p['lower']}a"] = code
    rows = row_names(view)
    return {name: codes[name] for name in rows if name in codes}


def _image_size(size: int | None, rng: np.random.Generator, xrng: np.random.Generator) -> tuple:
    """(width, height) px of one view: ``size`` high (width 0.6-0.8 of it), or with ``size``
    None an original's size (``BUU_HEIGHT_PX``, ``BUU_WIDTH_PX``)."""
    if size is not None:
        return int(round(size * rng.uniform(0.6, 0.8))), size
    height = int(round(xrng.uniform(*BUU_HEIGHT_PX)))
    return int(np.clip(round(height * xrng.uniform(*_WIDTH_SHARE)), *BUU_WIDTH_PX)), height


def write_buu(out: Path, n: int, seed: int, size: int | None, progress: bool, difficulty: Difficulty,
              label_noise_px: float | None = None) -> dict:
    """Write ``n // 2`` patients of the BUU-LSPINE layout into ``out``, one AP and one LA image each.

    As in a circulating copy of the real set, ``LA/`` also holds a stray duplicate
    download of the first lateral image, ``<stem>(1).jpg`` (same bytes, no CSV).

    Args:
        size: image height, px; None: the originals' sizes.
        difficulty: the knobs (``vertkp.phantoms.difficulty``).
        label_noise_px: SD per coordinate of the label jitter, px (None: the difficulty's).

    Returns:
        {"images": truth records of every image, "patients": number of patients,
        "strays": [{"file_name", "copy_of"}], and the truth's "label_codes" and
        "lateral_displacement_pct_definition"}
    """
    if n < 2:
        raise ValueError("the buu-lspine layout needs --num-images >= 2 (one AP and one LA image per patient)")
    people = sample_people(stream(seed, 2, 0), n // 2)
    images, spacing_rows = [], []
    bar = tqdm(total=2 * len(people), desc="buu-lspine phantoms", unit="img", disable=not progress)
    for i, (pid, sex, age) in enumerate(people):
        rng, xrng = stream(seed, 2, 1, i), stream(seed, 2, 3, i)
        patient = sample_patient(rng)
        knobs = (difficulty, label_noise_px, xrng)
        lat = _write_lateral(out, format_name(pid, sex, age, VIEW_LAYOUT["lateral"][1]), patient, size, rng, knobs)
        ap = _write_ap(out, format_name(pid, sex, age, VIEW_LAYOUT["ap"][1]), patient, size, rng, lat["pairs"],
                       knobs)
        for rec in (ap, lat):
            images.append(rec)
            spacing_rows.append((Path(rec["file_name"]).name, rec["pixel_spacing"]))
            bar.update(1)
    bar.close()
    _write_spacing(out, sorted(spacing_rows))
    first = next(r["file_name"] for r in images if r["view"] == "lateral")
    stray = first[:-len(".jpg")] + "(1).jpg"
    write_file(out / stray, (out / first).read_bytes())
    return {"images": images, "patients": len(people), "strays": [{"file_name": stray, "copy_of": first}],
            "label_codes": {str(k): v for k, v in BUU_LABEL_CODES.items()},
            "lateral_displacement_pct_definition": LATERAL_DISPLACEMENT_PCT_DEFINITION}


def _frame(scene: Scene, levels, linear: np.ndarray, width: int, height: int, rng, extent_factor: float,
           x_centre: tuple, y_place: tuple) -> tuple:
    """The scene moved to the image at a random pixel spacing: (moved scene, mm per px, 2x3 affine).

    The labelled extent times ``extent_factor`` must fit; the corners' centre
    goes at a random fraction ``x_centre`` of the width, the spare height at a
    random ``y_place`` (ranges)."""
    keep = np.stack([scene.corner(lv) for lv in levels])
    extent = np.ptp((keep.reshape(-1, 2) @ linear.T)[:, 1]) * extent_factor
    spacing = _spacing(rng, height, extent)
    m = frame_affine(linear, keep, width, height, 1.0 / spacing, rng.uniform(*x_centre), rng.uniform(*y_place))
    return scene.transformed(m), spacing, m


def _labelled(scene: Scene, levels, m: np.ndarray, truth: np.ndarray, knobs: tuple, canonical, size) -> np.ndarray:
    """The label file's corners (canonical, px, on the label grid, inside the image of ``size``
    (width, height)): ``truth`` unless the annotator jitters."""
    difficulty, label_noise_px, xrng = knobs
    mm = label_corners(scene, levels, m, difficulty, label_noise_px, xrng)
    if mm is None:
        return truth
    out = on_label_grid(inside_image(canonical(apply_affine(m, mm)), *size))
    out[np.isnan(truth)] = np.nan
    return out


def _write_lateral(out: Path, stem: str, patient: dict, size: int | None, rng, knobs: tuple) -> dict:
    difficulty, _, xrng = knobs
    targets = sample_slip_targets(rng if difficulty.clean else xrng, BUU_LEVELS[:-1], difficulty.slip_cases)
    tilt = float(np.clip(rng.normal(0.0, 4.0), -12.0, 12.0))
    if not difficulty.clean:
        tilt = float(np.clip(xrng.normal(0.0, difficulty.tilt_sd_deg), -difficulty.tilt_max_deg,
                             difficulty.tilt_max_deg))
    style = degraded_style(sample_style(rng), difficulty, xrng)
    width, height = _image_size(size, rng, xrng)
    linear = rotation(tilt)
    degeneration = sample_degeneration(xrng, difficulty)
    scene = build_lateral(degenerated(patient, degeneration), targets, linear, rng, clutter=difficulty.clutter,
                          degeneration=None if difficulty.clean else degeneration, xrng=xrng)
    moved, spacing, m = _frame(scene, BUU_LEVELS, linear, width, height, rng, 1.0, (0.38, 0.5), (0.35, 0.6))
    truth = on_label_grid(canonical_from_anatomical(np.stack([moved.corner(lv) for lv in BUU_LEVELS]), "left"))
    truth[-1, 2:] = np.nan  # no S1 inferior endplate in BUU
    labelled = _labelled(scene, BUU_LEVELS, m, truth, knobs, lambda c: canonical_from_anatomical(c, "left"),
                         (width, height))
    pairs = slip_pairs(BUU_LEVELS, truth, "left", DEFAULT_NO_SLIP_PCT, labelled)
    return _write_image(out, "lateral", stem, moved, width, height, spacing, style, rng, truth, labelled, pairs,
                        label_codes("lateral", pairs))


def _write_ap(out: Path, stem: str, patient: dict, size: int | None, rng, sagittal_pairs: list, knobs: tuple) -> dict:
    difficulty, _, xrng = knobs
    targets = sample_lateral_displacements(rng)
    tilt = float(rng.normal(0.0, 2.0))
    style = degraded_style(sample_style(rng), difficulty, xrng)
    width, height = _image_size(size, rng, xrng)
    linear = rotation(tilt)
    scene = build_ap(patient, targets, linear, rng)
    # the extent leaves room for the sacrum and ilia
    moved, spacing, m = _frame(scene, _AP_LEVELS, linear, width, height, rng, 1.5, (0.45, 0.55), (0.3, 0.5))
    truth = on_label_grid(np.stack([moved.corner(lv) for lv in _AP_LEVELS]))
    labelled = _labelled(scene, _AP_LEVELS, m, truth, knobs, lambda c: c, (width, height))
    pairs = lateral_displacement_pairs(_AP_LEVELS, truth, labelled)
    return _write_image(out, "ap", stem, moved, width, height, spacing, style, rng, truth, labelled, pairs,
                        label_codes("ap", pairs, sagittal_pairs))


def _write_image(out: Path, view: str, stem: str, moved: Scene, width: int, height: int, spacing: float,
                 style: dict, rng, truth: np.ndarray, labelled: np.ndarray, pairs: list, codes: dict) -> dict:
    """The CSV and JPEG of one view (scene in pixels, exact and labelled corners, pairs, label codes);
    returns its truth record."""
    levels = BUU_LEVELS if view == "lateral" else _AP_LEVELS
    rel = f"{VIEW_LAYOUT[view][0]}/{stem}"
    text = format_csv_rows(rows_from_corners(labelled, view, codes), LABEL_DECIMALS)
    write_file(out / f"{rel}.csv", text.encode("utf-8"))
    write_file(out / f"{rel}.jpg", render_jpeg(moved, width, height, style, rng))
    return {
        "file_name": f"{rel}.jpg", "label_file": f"{rel}.csv", "label_format": "csv", "split": None,
        "source_stem": stem, "copy_index": 0, "view": view, "facing": "left" if view == "lateral" else None,
        "colour": False, "width": width, "height": height, "pixel_spacing": spacing,
        "vertebrae": vertebra_records(levels, truth, labelled, superior_only=("S1",)), "pairs": pairs,
    }


def _write_spacing(out: Path, rows: list) -> None:
    """``pixel_spacing.xlsx`` (sheet "Pixel Spacing") and ``pixel_spacing.csv``, same rows."""
    write_file(out / "pixel_spacing.xlsx", format_spacing_xlsx(rows, creator="vertkp phantoms"))
    write_file(out / "pixel_spacing.csv", format_spacing_csv(rows).encode("utf-8"))
