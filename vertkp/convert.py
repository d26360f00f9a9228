"""``vertkp convert`` / ``tools/convert_to_coco.py``: a raw dataset, as downloaded, to vertkp
COCO keypoint files, with a report of what was read, written, left out, and an audit.

    vertkp convert --dataset spondylolisthesis --root datasets/spondylolisthesis_v1.zip
    vertkp convert --dataset spondylolisthesis --root datasets/spondylolisthesis
    vertkp convert --dataset buu-lspine --root datasets/buu_lspine --view lateral --pixel-spacing FILE

``--root`` is the unpacked folder or a zip (the Mendeley download with its nested
``Dataset.zip``, ``Dataset.zip`` alone, or a zip of BUU-LSPINE's folders), which is
checked and extracted safely first (``vertkp.data.raw.archives``). What each dataset needs
(its folders, converter, options) is its spec (``vertkp.data.datasets.SPECS``); the audit
(``vertkp.audit``) runs on the files written. Exit status: 0 converted (skips and left-out
files, if any, are listed), 2 bad input or arguments.
"""
from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from .anatomy import VIEWS
from .audit import Audit, audit_files
from .files import InvalidInput, output_folder, write_json
from .data.conversion.report import ConversionReport
from .data.datasets import SPECS
from .data.raw.archives import DatasetRoot, open_dataset
from .data.raw.extraction import ArchiveError

__all__ = ["ConversionRun", "convert_dataset", "build_parser", "main"]

REPORT_FILE = "conversion_report.json"
AUDIT_FOLDER = "audit"


@dataclass
class ConversionRun:
    """What :func:`convert_dataset` did.

    Attributes:
        report: the conversion report (also in ``output/conversion_report.json``).
        output: the folder of the COCO files.
        files: the COCO files written, by split.
        source: where the data came from (a folder, or a zip and its extraction).
        audit: the audit of the COCO files (``output/audit/``), or None.
    """

    report: ConversionReport
    output: Path
    files: dict
    source: DatasetRoot
    audit: Optional[Audit] = None


def convert_dataset(dataset: str, root, *, output=None, extract_to=None, view: str = "lateral",
                    val_fraction: float = 0.2, seed: int = 0, pixel_spacing=None, skip_invalid: bool = False,
                    audit: bool = True, overlays: bool = True, progress: bool = True) -> ConversionRun:
    """``vertkp convert`` as a function: open ``root`` (a folder or a zip, extracted into
    ``extract_to``), convert it, audit the COCO files it wrote (``output/audit/``, with
    the counts in the report), and write the report with where the data came from.

    Args:
        dataset: a name of ``vertkp.data.datasets.SPECS``: "spondylolisthesis" or "buu-lspine".
        output: the COCO folder (default: the spec's ``coco_folder`` in the dataset folder:
            ``coco/``, or ``coco/<view>/`` for buu-lspine).
        view, val_fraction, seed, pixel_spacing: for the datasets whose spec's ``options`` name
            them (buu-lspine: ``convert_buu_lspine``); ignored by the others.

    Raises:
        InvalidInput: bad input (an unsafe archive, a broken label file, ...);
            nothing is written then.
        ValueError: a bad argument (an output folder that is a file, say).
    """
    if dataset not in SPECS:
        raise ValueError(f"dataset must be one of {tuple(SPECS)}, got {dataset!r}")
    spec = SPECS[dataset]
    given = {"view": view, "val_fraction": val_fraction, "seed": seed, "pixel_spacing": pixel_spacing}
    options = {name: given[name] for name in spec.options}
    if output is not None:
        output_folder(output)  # before a zip is extracted
    source = open_dataset(root, spec, extract_to=extract_to, progress=progress)
    folder = spec.find_root(source.folder)
    out = output_folder(output if output is not None else folder / spec.coco_folder.format(**options))
    report = spec.convert(folder, output=out, skip_invalid=skip_invalid, progress=progress, **options)
    files = {split: out / f"{split}.json" for split in spec.splits if (out / f"{split}.json").is_file()}
    if source.archive is not None:
        report.archive = {"path": str(source.archive), "sha256": source.sha256, "verified": source.verified,
                          "extracted_to": str(source.folder)}
    report.notes[:0] = list(source.notes)
    result = None
    if audit:
        result = audit_files(list(files.values()), out / AUDIT_FOLDER, image_root=folder, overlays=overlays,
                             progress=progress).audit
        report.audit = result.summary()
    write_json(out / REPORT_FILE, report.as_dict(), nan="error")
    return ConversionRun(report, out, files, source, result)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", required=True, choices=tuple(SPECS))
    p.add_argument("--root", required=True, type=Path,
                   help="the dataset as downloaded: its folder, or a .zip (see datasets/README.md)")
    p.add_argument("--extract-to", type=Path, default=None, metavar="DIR",
                   help="where a zip is extracted (default: a folder named after the dataset beside the archive, "
                        "e.g. datasets/spondylolisthesis/); a complete extraction there is reused")
    p.add_argument("--output", type=Path, default=None,
                   help="output folder (default ROOT/coco, or ROOT/coco/<view> for buu-lspine)")
    p.add_argument("--view", choices=VIEWS, default="lateral", help="buu-lspine only (default lateral)")
    p.add_argument("--val-fraction", type=float, default=0.2, help="buu-lspine only: patients in val (default 0.2)")
    p.add_argument("--seed", type=int, default=0, help="buu-lspine only: seed of the patient split (default 0)")
    p.add_argument("--pixel-spacing", type=Path, default=None,
                   help="buu-lspine only: spreadsheet/CSV/JSON of mm per pixel by file name")
    p.add_argument("--skip-invalid", action="store_true",
                   help="skip broken images/labels (listed in OUT/conversion_report.json) instead of stopping")
    p.add_argument("--no-audit", action="store_true", help="do not audit the converted files (vertkp audit)")
    p.add_argument("--no-overlays", action="store_true", help="audit without drawing the flagged images")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bars")
    return p


def main(argv=None) -> int:
    """Exit 0 converted (skips, if any, are listed), 2 bad input or arguments."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not (args.root.is_dir() or (args.root.is_file() and args.root.suffix.lower() == ".zip")):
        parser.error(f"--root {args.root} is neither a folder nor a .zip file")
    for flag in ("view", "val_fraction", "seed", "pixel_spacing"):
        if flag not in SPECS[args.dataset].options and getattr(args, flag) != parser.get_default(flag):
            takers = " and ".join(spec.name for spec in SPECS.values() if flag in spec.options)
            parser.error(f"--{flag.replace('_', '-')} applies to {takers} only")
    try:
        run = convert_dataset(args.dataset, args.root, output=args.output, extract_to=args.extract_to,
                              view=args.view, val_fraction=args.val_fraction, seed=args.seed,
                              pixel_spacing=args.pixel_spacing, skip_invalid=args.skip_invalid,
                              audit=not args.no_audit, overlays=not args.no_overlays, progress=not args.no_progress)
    except ArchiveError as e:  # the message says what to do with the archive
        print(f"{parser.prog}: error: {e}", file=sys.stderr)
        return 2
    except InvalidInput as e:
        print(f"{parser.prog}: error: {e}", file=sys.stderr)
        print("no COCO file was written; fix the file, or pass --skip-invalid to skip a broken image with its "
              "label file", file=sys.stderr)
        return 2
    except ValueError as e:
        print(f"{parser.prog}: error: {e}", file=sys.stderr)
        return 2
    print(run.report.summary())
    if run.audit is not None:
        print(run.audit.format_summary())
    print(f"wrote {run.output}/ ({', '.join(p.name for p in run.files.values())}, {REPORT_FILE}"
          + (f", {AUDIT_FOLDER}/" if run.audit is not None else "") + ")")
    return 0
