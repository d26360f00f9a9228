"""The Mendeley dataset converted to vertkp COCO keypoint files (``vertkp convert``).

What the real folders hold and what happens to it (``datasets/README.md``):

* an image with a JSON label: the JSON is used (absolute pixels); a TXT twin of
  the same stem is read too and compared after canonical ordering
  (``labels.compare_twins``): the report counts twins that agree within
  ``TWIN_TOLERANCE_PX`` and lists every other one with its largest difference;
  a twin that cannot be read or compared is listed the same way. Never a stop;
* an image with a TXT label only: the TXT is used;
* the labels name no level, but every image is labelled down to S1 (the spec's
  ``bottom_level``): each labelled image's vertebrae are named upward from S1 in
  their cranio-caudal order (``CocoBuilder``), the image marked
  ``level_source: "anchored_bottom_S1"``;
* an image without a label file: left out and listed with its reason (and, when
  it has the bytes of another image, which one it copies);
* a file in an image or label folder that is neither (a note, an image among the
  labels): left out and listed, never read;
* archive and OS junk: set aside and counted;
* a broken label file used for an image, or one whose stem several images share
  (``a.jpg`` and ``a.png``: which one it labels cannot be told): a stop (or, with
  ``skip_invalid``, a skip of the image with its labels), naming the file and what
  is wrong.
"""
from __future__ import annotations

from pathlib import Path
from typing import Dict, List

from tqdm import tqdm

from ...conversion.builder import CocoBuilder
from ....files import InvalidInput
from ...conversion.report import TWIN_TOLERANCE_PX, ConversionReport
from ...imaging.images import image_size
from ...raw.sources import byte_copies, list_folder, shared_stem_error, shared_stems
from .labels import compare_twins, read_json_labels, read_txt_labels
from .layout import IMAGES_DIR, LABELS_DIR, SPLITS, TEST_DIR, find_keypointrcnn_dir, find_test_images, source_stem

__all__ = ["convert_spondylolisthesis"]

_LABEL_SUFFIXES = (".json", ".txt")


def _labels_by_suffix(files: List[Path]) -> Dict[str, Path]:
    """{".json": path, ".txt": path} of one stem's label files (suffixes lower-cased)."""
    return {p.suffix.lower(): p for p in files}


def _read_twin(split, root: Path, img, used, other, width, height, used_verts, report: ConversionReport) -> None:
    """Compare an image's TXT twin with the JSON in use; record the outcome in ``report``
    (paths relative to the dataset ``root``)."""
    try:
        largest, detail = compare_twins(used_verts, read_txt_labels(other, width, height))
    except InvalidInput as e:
        largest, detail = None, f"the TXT twin cannot be read ({e.where + ': ' if e.where else ''}{e.what})"
    except ValueError as e:
        largest, detail = None, f"the twins cannot be compared ({e})"
    agree = largest is not None and largest <= TWIN_TOLERANCE_PX
    if largest is not None and not agree:
        detail = f"largest corner difference {largest:.2f} px"
    report.compare_twin(split, img.relative_to(root).as_posix(), used.relative_to(root).as_posix(),
                        other.relative_to(root).as_posix(), largest, agree, detail)


def convert_spondylolisthesis(
    root, output=None, skip_invalid: bool = False, progress: bool = True
) -> ConversionReport:
    """Convert the Mendeley dataset at ``root`` (a folder) to COCO keypoint files.

    Writes ``output/train.json``, ``output/val.json``, ``output/test.json``
    (when unlabelled test images exist) and ``output/conversion_report.json``;
    ``output`` defaults to ``root/coco``. The official train/val folders are
    kept as the split (``vertkp audit`` lists source images on both sides).

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
    from . import SPEC  # this package's spec (defined after this module): the level its images end at
    builder = CocoBuilder(report, "Spondylolisthesis Vertebral Landmark Dataset (vertkp COCO keypoints)",
                          bottom_level=SPEC.bottom_level)

    def fail(split, err: InvalidInput):
        if not skip_invalid:
            raise err
        report.skip(split, err)

    unlabelled, every_image = [], []
    for split in SPLITS:
        img_dir, lbl_dir = kp_dir / IMAGES_DIR / split, kp_dir / LABELS_DIR / split
        if not img_dir.is_dir():
            raise InvalidInput(img_dir, f"missing {split} image folder")
        if not lbl_dir.is_dir():
            raise InvalidInput(lbl_dir, f"missing {split} label folder")
        images, labels = list_folder(img_dir), list_folder(lbl_dir, _LABEL_SUFFIXES)
        report.add_junk(p.relative_to(root).as_posix() for p in images.junk + labels.junk)
        for p, reason in ([(p, "not an image file: not read") for p in images.other]
                          + [(p, "not a label file (.json or .txt): not read") for p in labels.other]
                          + [(p, f"an image in the label folder: not read (images belong in {img_dir})")
                             for p in labels.images]):
            report.leave_out(split, p.relative_to(root).as_posix(), reason)
        every_image += images.images
        by_stem = {p.stem: p for p in images.images}
        shared = shared_stems(images.images)
        for stem in sorted(set(labels.labels) - set(by_stem)):
            fail(split, InvalidInput(labels.labels[stem][0], f"label file without its image (no image of that stem "
                                     f"in {img_dir})"))
        for img in tqdm(images.images, desc=f"spondylolisthesis {split}", disable=not progress, unit="img"):
            found = _labels_by_suffix(labels.labels.get(img.stem, []))
            if not found:
                unlabelled.append((split, img, f"no label file ({img.stem}.json or {img.stem}.txt) in {lbl_dir}"))
                continue
            lbl = found.get(".json", found.get(".txt"))
            if img.stem in shared:
                fail(split, shared_stem_error(img, lbl, shared[img.stem]))
                continue
            try:
                width, height = image_size(img)
                report.read[split] += 1
                verts = read_json_labels(lbl) if lbl.suffix.lower() == ".json" else read_txt_labels(lbl, width, height)
                if ".json" in found and ".txt" in found:
                    _read_twin(split, root, img, lbl, found[".txt"], width, height, verts, report)
                src = source_stem(img.stem)
                if src is None:
                    report.warn(split, img, "file name is not a Roboflow export name; source stem = file stem")
                    src = img.stem
                builder.add_image(
                    split, img, img.relative_to(root).as_posix(), width, height, verts, lbl,
                    source_stem=src, view="lateral", pixel_spacing=None, facing=None,
                )
            except InvalidInput as e:
                fail(split, e)

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
    copies = byte_copies([img for _, img, _ in unlabelled], every_image + test_images)
    for split, img, reason in unlabelled:
        copy = copies.get(img)
        report.leave_out(split, img.relative_to(root).as_posix(),
                         reason + (f"; it has the same bytes as {copy.relative_to(root).as_posix()}" if copy else ""))
    builder.finish(output, ("train", "val", "test"), image_root=root)
    return report
