"""Score COCO keypoint predictions of vertebra corners against vertkp ground truth.

    python tools/evaluate.py --gt GT.json --predictions PRED.json --output DIR
            [--facing left|right|auto] [--score-threshold 0.5] [--pixel-spacing FILE|MM]

GT.json is a COCO keypoint file from tools/convert_to_coco.py; PRED.json a
COCO keypoint results list (what detectron2's COCOEvaluator writes as
coco_instances_results.json). Writes DIR/metrics.json, DIR/per_landmark.csv,
DIR/per_pair.csv and PNG plots, and prints a summary. No detectron2 needed.
Exit status: 0 on success, 2 on bad input (the message says what to fix).
"""
import argparse
import sys
from pathlib import Path


from . import (
    DEFAULT_SCORE_THRESHOLD,
    DEFAULT_SDR_THRESHOLDS_MM,
    DEFAULT_SDR_THRESHOLDS_PX,
    EvaluationInputError,
    EvaluationSettings,
    apply_pixel_spacing,
    evaluate_dataset,
    format_summary,
    load_ground_truth,
    load_pixel_spacing,
    load_predictions,
    write_evaluation,
)
from .matching import DEFAULT_GATE_FACTOR
from ..grading import DEFAULT_GAP_FACTOR, DEFAULT_NO_SLIP_PCT


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--gt", required=True, metavar="GT.json",
                   help="COCO keypoint ground truth (tools/convert_to_coco.py)")
    p.add_argument("--predictions", required=True, metavar="PRED.json", help="COCO keypoint results list (JSON)")
    p.add_argument("--output", required=True, metavar="DIR", help="folder for metrics.json, CSVs and plots")
    p.add_argument("--facing", choices=("left", "right", "auto"), default="auto",
                   help="anterior side of lateral views; auto: the image's own facing from the GT file when it "
                        "has one, else estimated from the spine's lordosis")
    p.add_argument("--score-threshold", type=float, default=DEFAULT_SCORE_THRESHOLD,
                   help="ignore predictions scoring below this")
    p.add_argument("--pixel-spacing", metavar="FILE|MM",
                   help="mm per pixel: one number for every image, or a CSV/.xlsx table (image name or stem, "
                        "mm per pixel) that overrides the GT file's pixel_spacing")
    p.add_argument("--no-slip-pct", type=float, default=DEFAULT_NO_SLIP_PCT,
                   help="|slip| at or under this percent is graded 'no slip'")
    p.add_argument("--match-gate", type=float, default=DEFAULT_GATE_FACTOR,
                   help="a prediction matches a GT vertebra only if its mean corner distance is at most this "
                        "fraction of the vertebra's size (largest corner-to-corner distance)")
    p.add_argument("--gap-factor", type=float, default=DEFAULT_GAP_FACTOR,
                   help="consecutive vertebrae whose disc is taller than this fraction of the body height are "
                        "not a pair (a vertebra between them is missing)")
    p.add_argument("--sdr-px", type=float, nargs="+", default=list(DEFAULT_SDR_THRESHOLDS_PX),
                   help="SDR thresholds in px")
    p.add_argument("--sdr-mm", type=float, nargs="+", default=list(DEFAULT_SDR_THRESHOLDS_MM),
                   help="SDR thresholds in mm")
    p.add_argument("--no-plots", action="store_true", help="skip the PNG plots")
    p.add_argument("--quiet", action="store_true", help="print nothing on success")
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = EvaluationSettings(
            facing=args.facing, score_threshold=args.score_threshold, gate_factor=args.match_gate,
            no_slip_pct=args.no_slip_pct, gap_factor=args.gap_factor,
            sdr_thresholds_px=args.sdr_px, sdr_thresholds_mm=args.sdr_mm)
    except ValueError as e:
        print(f"evaluate.py: error: {e}", file=sys.stderr)
        return 2
    try:
        gt = load_ground_truth(args.gt)
        preds = load_predictions(args.predictions, gt)
        n_spacing = None
        if args.pixel_spacing is not None:
            n_spacing = apply_pixel_spacing(gt.images, load_pixel_spacing(args.pixel_spacing))
        result = evaluate_dataset(gt.images, preds, settings)
    except EvaluationInputError as e:
        print(f"evaluate.py: error: {e}", file=sys.stderr)
        return 2
    files = write_evaluation(result, args.output, plots=not args.no_plots)
    if not args.quiet:
        for note in gt.notes:
            print(f"note: {note}")
        if n_spacing is not None:
            print(f"pixel spacing from {args.pixel_spacing}: {n_spacing} of {len(gt.images)} images")
        print(format_summary(result.metrics))
        print(f"wrote {', '.join(p.name for p in files.values())} to {Path(args.output)}")
    return 0

