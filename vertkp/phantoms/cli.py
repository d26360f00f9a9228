"""Write a synthetic spine X-ray dataset in a real dataset's raw layout (vertkp phantoms, tools/make_phantoms.py).

    vertkp phantoms --layout spondylolisthesis --output DIR --num-images 40 --seed 0
    vertkp phantoms --layout spondylolisthesis --output FILE.zip --archive --num-images 40 --seed 0
    vertkp phantoms --layout buu-lspine --output DIR --num-images 20 --seed 0 --image-size 1024
    vertkp phantoms --layout spondylolisthesis --output DIR --num-images 40 --seed 0 --difficulty clean

See vertkp.phantoms.make.make_phantoms for what is written; the truth of every
image is in DIR/phantom_truth.json (with --archive, at the zip's root). With
--format dicom every image is also written as DICOM, with the truth's pixel
spacing, into DIR_dicom/ (vertkp.phantoms.dicom).
"""
from __future__ import annotations

import argparse
import sys

from vertkp.data.datasets import SPECS

from .dicom import check_dicom_dir, dicom_dir, write_dicom_set
from .difficulty import DEFAULT_DIFFICULTY, DIFFICULTIES
from .make import make_phantoms
from .sheet import contact_sheet
from .truth import TRUTH_FILE

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--layout", required=True, choices=tuple(SPECS), help="raw layout to imitate")
    p.add_argument("--output", required=True, help="new or empty output folder (with --archive: the .zip to write)")
    p.add_argument("--archive", action="store_true",
                   help="pack the set the way the real dataset is downloaded (spondylolisthesis: an outer zip "
                        "with a nested Dataset.zip) into the .zip named by --output")
    p.add_argument("--num-images", type=int, required=True,
                   help="spondylolisthesis: labelled images (plus n//10 test); buu-lspine: images (n//2 patients)")
    p.add_argument("--seed", type=int, required=True, help="random seed; same seed, same bytes")
    p.add_argument("--image-size", type=int, default=None,
                   help="px; spondylolisthesis: square side (default %d); buu-lspine: height (default: the "
                        "originals' sizes, 1434-3408 px high; %d at --difficulty clean)"
                   % (SPECS["spondylolisthesis"].phantom_image_size, SPECS["buu-lspine"].phantom_image_size))
    p.add_argument("--difficulty", choices=tuple(DIFFICULTIES), default=DEFAULT_DIFFICULTY,
                   help="clean: bright bodies on an empty background, labels equal to the truth; realistic: the "
                        "real archive's sizes, counts and positions, overlapping anatomy, degeneration, scatter "
                        "and noise, jittered labels; hard: more of all that, severe slips, strong tilts")
    p.add_argument("--label-noise", type=float, default=None, metavar="PX",
                   help="SD per coordinate of the annotators' jitter, px (0: labels equal the exact corners; "
                        "default: the difficulty's, 1%% of the vertebra width at realistic, 2%% at hard)")
    p.add_argument("--format", choices=("jpeg", "dicom"), default="jpeg",
                   help="jpeg: the images as the real dataset has them; dicom: a DICOM copy of every image too, "
                        "with the truth's pixel spacing, in OUTPUT_dicom/ beside the set (not with --archive)")
    p.add_argument("--sheet", metavar="FILE.png",
                   help="also write a contact sheet: the first 8 labelled images with their exact corners (dots) "
                        "and, where the annotator was off, the labelled ones (rings); not with --archive")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    return p


def main(argv=None) -> int:
    """Exit 0 written, 2 bad arguments or an output folder that is not empty."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if args.format == "dicom":
            if args.archive:
                raise ValueError("--format dicom writes a folder of DICOM files beside the set: not with --archive")
            check_dicom_dir(dicom_dir(args.output))
        if args.sheet and args.archive:
            raise ValueError("--sheet draws from the phantom folder: not with --archive")
        s = make_phantoms(args.layout, args.output, args.num_images, args.seed, args.image_size,
                          progress=not args.no_progress, archive=args.archive, difficulty=args.difficulty,
                          label_noise=args.label_noise)
        d = write_dicom_set(args.output) if args.format == "dicom" else None
        sheet = contact_sheet(args.output, args.sheet) if args.sheet else None
    except (ValueError, FileExistsError) as e:
        print(f"{parser.prog}: error: {e}", file=sys.stderr)
        return 2
    print(f"wrote {s['images']} {s['layout']} phantom images ({args.difficulty}) to {s['out_dir']} "
          f"in {s['seconds']} s ({s['seconds_per_image']} s/image)")
    if "patients" in s:
        print(f"  patients: {s['patients']} (one AP and one LA image each)")
    print("  images: " + ", ".join(f"{k} {v}" for k, v in s["images_per_split"].items()))
    print(f"  labelled vertebrae: {s['labelled_vertebrae']}")
    print("  adjacent pairs per grade: " + ", ".join(f"{k} {v}" for k, v in s["pairs_per_grade"].items()))
    if "ap_pairs" in s:
        print("  AP pairs: " + ", ".join(f"{k} {v}" for k, v in s["ap_pairs"].items()))
    print(f"  truth: {s['out_dir']}" + (f" ({TRUTH_FILE} at its root)" if args.archive else f"/{TRUTH_FILE}"))
    if d is not None:
        print(f"  DICOM: {d['images']} files in {d['out_dir']} ({d['with_spacing']} with PixelSpacing)")
    if sheet is not None:
        print(f"  contact sheet: {sheet}")
    return 0
