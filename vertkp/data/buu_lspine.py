"""Reader, writer and converter for BUU-LSPINE (Klinwichit et al., Applied
Sciences 2023, 13(15):8646). Layout: ``datasets/README.md``.

``<root>/{AP,LA}/NNNN-S-AAAYv.jpg`` with a headerless CSV of the same stem,
one endplate a row: ``x1,y1,x2,y2,label`` (absolute pixels).
  LA (lateral, facing left): 11 rows L1a, L1b, ..., L5a, L5b, S1a;
      a = superior endplate, b = inferior; point 1 anterior (image-left).
  AP: 10 rows L1a..L5b; point 1 image-left.
The folders, view digits and row counts are ``VIEW_LAYOUT``. Each reader has its
writer beside it (``format_name``, ``rows_from_corners``, ``format_csv_rows``):
the phantoms and the tests write this layout with them.
"""
from __future__ import annotations

import csv
import io
import re
from pathlib import Path
from typing import Optional

import numpy as np
from tqdm import tqdm

from ..anatomy import LEVELS
from .conversion import CocoBuilder, SourceVertebra
from .images import image_size
from .report import ConversionReport, InvalidInput, read_input_text
from .sources import byte_copies, is_junk, list_folder, shared_stem_error, shared_stems
from .spacing import find_pixel_spacing, read_pixel_spacing, spacing_lookup

__all__ = [
    "VIEW_LAYOUT",
    "BUU_LEVELS",
    "BuuName",
    "parse_name",
    "format_name",
    "row_names",
    "read_csv_rows",
    "format_csv_rows",
    "vertebrae_from_rows",
    "rows_from_corners",
    "find_buu_root",
    "split_patients",
    "convert_buu_lspine",
]

# view -> (folder, view digit in the file name, number of CSV rows): the BUU-LSPINE folder layout.
VIEW_LAYOUT = {"lateral": ("LA", "1", 11), "ap": ("AP", "0", 10)}
# The levels BUU-LSPINE labels, cranial to caudal (AP views stop at L5).
BUU_LEVELS = LEVELS[LEVELS.index("L1"):]
NAME = re.compile(r"^(?P<patient>\d{4})-(?P<sex>[FM])-(?P<age>\d{3})Y(?P<view>[01])$")


class BuuName:
    """Parsed ``NNNN-S-AAAYv`` name: patient id, sex F/M, age in years, view digit."""

    __slots__ = ("patient", "sex", "age", "view_digit")

    def __init__(self, patient: str, sex: str, age: int, view_digit: str):
        self.patient, self.sex, self.age, self.view_digit = patient, sex, age, view_digit


def parse_name(stem: str) -> Optional[BuuName]:
    """Parse a BUU-LSPINE file stem; None if it does not follow ``NNNN-S-AAAYv``."""
    m = NAME.match(stem)
    if not m:
        return None
    return BuuName(m["patient"], m["sex"], int(m["age"]), m["view"])


def format_name(patient, sex: str, age: int, view_digit: str) -> str:
    """A BUU-LSPINE file stem ``NNNN-S-AAAYv``: the inverse of :func:`parse_name`.

    ``format_name(1, "F", 37, "1")`` -> ``0001-F-037Y1``; ``patient`` is an id
    (int or digits), ``view_digit`` a view's digit in ``VIEW_LAYOUT``.
    """
    stem = f"{int(patient):04d}-{sex}-{int(age):03d}Y{view_digit}"
    if not NAME.match(stem):
        raise ValueError(f"({patient!r}, {sex!r}, {age!r}, {view_digit!r}) does not make a NNNN-S-AAAYv name")
    return stem


def row_names(view: str) -> list:
    """A view's CSV row names in file order: L1a, L1b, ..., L5b, and S1a on lateral views."""
    n_rows = VIEW_LAYOUT[view][2]
    return [f"{level}{end}" for level in BUU_LEVELS for end in "ab"][:n_rows]


def read_csv_rows(path, n_rows: int) -> list:
    """The rows of one CSV as (x1, y1, x2, y2, label) floats.

    Blank lines are ignored. Raises InvalidInput for an unreadable file, text that is
    not UTF-8 (a byte-order mark is fine), a wrong number of rows or columns, or a
    non-numeric cell (naming line and column).
    """
    path = Path(path)
    text = read_input_text(path)
    lines = [(n + 1, row) for n, row in enumerate(csv.reader(io.StringIO(text, newline="")))
             if any(c.strip() for c in row)]
    if len(lines) != n_rows:
        raise InvalidInput(path, f"expected {n_rows} rows (one per endplate), got {len(lines)}")
    rows = []
    for n, row in lines:
        if len(row) != 5:
            raise InvalidInput(path, f"expected 5 columns x1,y1,x2,y2,label, got {len(row)}", f"line {n}")
        vals = []
        for c, cell in enumerate(row):
            try:
                vals.append(float(cell))
            except ValueError:
                raise InvalidInput(path, f"column {c + 1} is not a number: {cell.strip()!r}", f"line {n}") from None
        rows.append(vals)
    return rows


def format_csv_rows(rows, decimals: Optional[int] = None) -> str:
    """The text of one CSV: the inverse of :func:`read_csv_rows`.

    ``rows``: (x1, y1, x2, y2, label) each; no header, a line
    ``x1,y1,x2,y2,label`` per row, coordinates with ``decimals`` decimals (or
    exactly, shortest repr, when None), the label as an integer.
    """
    lines = []
    for *xy, label in rows:
        cells = [repr(float(v)) if decimals is None else f"{float(v):.{decimals}f}" for v in xy]
        lines.append(",".join(cells + [str(int(label))]) + "\n")
    return "".join(lines)


def _label(value: float):
    return int(value) if float(value).is_integer() else value


def vertebrae_from_rows(rows: list, view: str) -> list:
    """Source vertebrae from the CSV rows of one image.

    Each lumbar vertebra takes its "a" (superior) and "b" (inferior) rows:
    points [a1, a2, b1, b2], superior endplate (0, 1). A lateral S1 has only
    its "a" row: points [a1, a2]. Point 1 is image-left in both views.
    """
    out = []
    for i, level in enumerate(BUU_LEVELS[:5]):
        a, b = rows[2 * i], rows[2 * i + 1]
        pts = np.array([a[0:2], a[2:4], b[0:2], b[2:4]], dtype=np.float64)
        out.append(SourceVertebra(pts, (0, 1), f"{level} (lines {2 * i + 1}-{2 * i + 2})", level,
                                  [_label(a[4]), _label(b[4])]))
    if view == "lateral":
        s = rows[10]
        out.append(SourceVertebra(np.array([s[0:2], s[2:4]], dtype=np.float64), (0, 1), "S1 (line 11)", "S1",
                                  [_label(s[4])]))
    return out


def rows_from_corners(corners, view: str, labels=None) -> list:
    """The CSV rows [x1, y1, x2, y2, label] of one image: the inverse of :func:`vertebrae_from_rows`.

    Args:
        corners: canonical corners (TL, TR, BL, BR) per vertebra, cranial to
            caudal: L1..L5, and S1 on lateral views, of which only TL and TR
            (its "a" row) are written; arrays [4, 2] ([2, 2] for S1).
        view: "lateral" or "ap".
        labels: {row name ("L4b", see :func:`row_names`): label code}; rows not
            in it get 0.

    Returns:
        the rows in file order; point 1 is TL or BL (image-left), point 2 TR or BR.
    """
    names = row_names(view)
    levels = BUU_LEVELS[:(len(names) + 1) // 2]
    if len(corners) != len(levels):
        raise ValueError(f"a {view} view has the vertebrae {', '.join(levels)}; got {len(corners)} of them")
    labels = labels or {}
    rows = []
    for name in names:
        c = np.asarray(corners[levels.index(name[:-1])], dtype=np.float64)
        p1, p2 = (c[0], c[1]) if name.endswith("a") else (c[2], c[3])
        rows.append([float(p1[0]), float(p1[1]), float(p2[0]), float(p2[1]), int(labels.get(name, 0))])
    return rows


def facing_from_rows(rows: list) -> Optional[str]:
    """Lateral facing from the data: point 1 of each row is anterior, so the
    patient faces image-left when point 1 is left of point 2 in most rows."""
    left = sum(r[0] < r[2] for r in rows)
    right = sum(r[0] > r[2] for r in rows)
    if left == right:
        return None
    return "left" if left > right else "right"


def find_buu_root(folder) -> Path:
    """The folder under ``folder`` (itself, or up to 3 levels down, e.g. the top folder of
    an extracted zip) that holds BUU-LSPINE's view folders (``VIEW_LAYOUT``: ``AP/``, ``LA/``).

    Raises:
        InvalidInput: none found, or several.
    """
    folder = Path(folder)
    names = {f for f, _, _ in VIEW_LAYOUT.values()}
    found = sorted({p.parent for depth in range(4) for p in folder.glob("/".join(["*"] * (depth + 1)))
                    if p.is_dir() and p.name in names and not is_junk(p.relative_to(folder))})
    if len(found) == 1:
        return found[0]
    if not found:
        raise InvalidInput(folder, f"no {' or '.join(sorted(names))} folder found (see datasets/README.md for the "
                           "layout)")
    raise InvalidInput(folder, "several BUU-LSPINE folders: " + ", ".join(map(str, found)))


def split_patients(patients, val_fraction: float, seed: int) -> set:
    """The patient ids of the validation split.

    The sorted unique ids are shuffled with numpy's default_rng(seed) and the
    first round(val_fraction * n) are taken: deterministic for a seed and the
    same for both views of a patient.
    """
    if not 0 <= val_fraction < 1:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
    ids = sorted(set(patients))
    perm = np.random.default_rng(seed).permutation(len(ids))
    n_val = int(round(val_fraction * len(ids)))
    return {ids[k] for k in perm[:n_val]}


def convert_buu_lspine(
    root,
    view: str = "lateral",
    output=None,
    val_fraction: float = 0.2,
    seed: int = 0,
    pixel_spacing=None,
    skip_invalid: bool = False,
    progress: bool = True,
) -> ConversionReport:
    """Convert one view of BUU-LSPINE at ``root`` to COCO keypoint files.

    Writes ``output/train.json``, ``output/val.json`` and
    ``output/conversion_report.json``; ``output`` defaults to
    ``root/coco/<view>``. Splits by patient id (``split_patients``, over the
    patients of both views, so a patient's AP and LA images fall on the same
    side). ``pixel_spacing``: a file for ``read_pixel_spacing``, or None.

    An image without its CSV (a stray copy such as ``1665-M-014Y1(1).jpg``) is left
    out and listed with its reason, and with the image it copies when it has the
    same bytes; a file that is neither an image nor a CSV is left out and listed too;
    archive and OS junk is set aside and counted. A CSV without its image, a CSV that
    cannot be read, a CSV whose stem several images share, and a name that does not
    parse or whose view digit contradicts its folder stop the conversion (or, with
    ``skip_invalid``, skip the image with its CSV).

    Raises:
        InvalidInput: the first bad input, when ``skip_invalid`` is False;
            nothing is written then.
    """
    if view not in VIEW_LAYOUT:
        raise ValueError(f"view must be one of {sorted(VIEW_LAYOUT)}, got {view!r}")
    root = Path(root)
    output = Path(output) if output is not None else root / "coco" / view
    folder, digit, n_rows = VIEW_LAYOUT[view]
    view_dir = root / folder
    if not view_dir.is_dir():
        raise InvalidInput(view_dir, f"missing {folder}/ folder for the {view} view (see datasets/README.md)")
    report = ConversionReport(f"buu-lspine {view}")
    builder = CocoBuilder(report, f"BUU-LSPINE {view} view (vertkp COCO keypoints)")
    spacing = spacing_lookup(read_pixel_spacing(pixel_spacing)) if pixel_spacing else {}

    def fail(split, err):
        if not skip_invalid:
            raise err
        report.skip(split, err)

    listing = list_folder(view_dir, (".csv",))
    report.add_junk(p.relative_to(root).as_posix() for p in listing.junk)
    for p in listing.other:
        report.leave_out(None, p.relative_to(root).as_posix(), "neither an image nor a CSV label file: not read")
    images = {p.stem: p for p in listing.images}
    shared = shared_stems(listing.images)
    csvs = {stem: files[0] for stem, files in listing.labels.items()}
    patients = {}
    for d, _, _ in VIEW_LAYOUT.values():
        if (root / d).is_dir():
            for p in (root / d).iterdir():
                name = parse_name(p.stem)
                if name and not is_junk(p):
                    patients[p.stem] = name.patient
    val_patients = split_patients(set(patients.values()), val_fraction, seed)

    def split_of(stem):
        return "val" if patients.get(stem) in val_patients else "train"

    for stem in sorted(set(csvs) - set(images)):
        fail(split_of(stem), InvalidInput(csvs[stem], f"label file without its image (no {stem}.jpg in {view_dir})"))
    with_spacing = 0
    unlabelled = []
    for img in tqdm(sorted(listing.images, key=lambda p: (p.stem, p.name)), desc=f"buu-lspine {view}",
                    disable=not progress, unit="img"):
        stem = img.stem
        name = parse_name(stem)
        if stem not in csvs:
            unlabelled.append((img, f"no label file ({stem}.csv) in {view_dir}" + (
                "" if name else "; its name does not follow NNNN-S-AAAYv either (a stray copy?)")))
            continue
        split = split_of(stem)
        if stem in shared:
            fail(split, shared_stem_error(img, csvs[stem], shared[stem]))
            continue
        try:
            if name is None:
                raise InvalidInput(img, "file name does not follow NNNN-S-AAAYv (patient-sex-age, view digit)")
            if name.view_digit != digit:
                raise InvalidInput(img, f"view digit {name.view_digit} in the name, but the file is in {folder}/ "
                                   f"(expected {digit})")
            width, height = image_size(img)
            report.read[split] += 1
            rows = read_csv_rows(csvs[stem], n_rows)
            facing = facing_from_rows(rows) if view == "lateral" else None
            if view == "lateral" and facing != "left":
                report.warn(split, csvs[stem], f"anterior points are not on the image-left (facing {facing})")
            mm = find_pixel_spacing(spacing, img.name) if spacing else None
            builder.add_image(
                split, img, img.relative_to(root).as_posix(), width, height,
                vertebrae_from_rows(rows, view), csvs[stem],
                source_stem=stem, view=view, pixel_spacing=mm, facing=facing,
                patient_id=name.patient, sex=name.sex, age=name.age,
            )
            with_spacing += mm is not None
        except InvalidInput as e:
            fail(split, e)
    copies = byte_copies([img for img, _ in unlabelled], list(images.values()))
    for img, reason in unlabelled:
        copy = copies.get(img)
        report.leave_out(None, img.relative_to(root).as_posix(),
                         reason + (f"; it has the same bytes as {copy.relative_to(root).as_posix()}" if copy else ""))
    report.notes.append(f"split by patient id with seed {seed}, val fraction {val_fraction}: "
                        f"{len(val_patients)} of {len(set(patients.values()))} patients in val")
    if pixel_spacing:
        report.notes.append(f"pixel spacing from {pixel_spacing}: {with_spacing} of "
                            f"{sum(report.images.values())} images")
    builder.finish(output, ("train", "val"), image_root=root)
    return report
