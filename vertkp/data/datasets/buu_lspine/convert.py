"""BUU-LSPINE (Klinwichit et al., Applied Sciences 2023, 13(15):8646) converted to vertkp COCO
keypoint files (``vertkp convert --dataset buu-lspine``), one view at a time, split by patient."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from tqdm import tqdm

from ...conversion.builder import CocoBuilder
from ....files import InvalidInput
from ...conversion.report import ConversionReport
from ...imaging.images import image_size
from ...imaging.spacing import find_pixel_spacing, read_pixel_spacing, spacing_lookup
from ...raw.sources import byte_copies, is_junk, list_folder, shared_stem_error, shared_stems
from .labels import facing_from_rows, read_csv_rows, vertebrae_from_rows
from .layout import VIEW_LAYOUT, parse_name

__all__ = ["split_patients", "convert_buu_lspine"]


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
