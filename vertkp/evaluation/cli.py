"""``vertkp evaluate`` / ``tools/evaluate.py``: score COCO keypoint predictions of vertebra
corners against vertkp ground truth.

    vertkp evaluate --gt GT.json --predictions PRED.json --output DIR
            [--facing left|right|auto] [--score-threshold 0.5] [--pixel-spacing FILE|MM]
            [--truth phantom_truth.json]
            [--bootstrap 1000] [--seed 0] [--table md|latex|csv]

GT.json is a COCO keypoint file from ``vertkp convert``; PRED.json a COCO keypoint
results list (``vertkp predict``'s coco_results.json, or what detectron2's
COCOEvaluator writes as coco_instances_results.json). Writes DIR/metrics.json,
DIR/per_landmark.csv, DIR/per_pair.csv and PNG plots, and prints a summary (and,
with --table, a results table with 95% CIs, limits of agreement and ICC). No
detectron2 needed. Exit status: 0 on success, 2 on bad input (the message says
what to fix).
"""
from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Optional

from ..files import InvalidInput, output_folder
from ..data.imaging.spacing import load_pixel_spacing
from ..grading import DEFAULT_GAP_FACTOR, DEFAULT_NO_SLIP_PCT
from .dataset import DatasetEvaluation, evaluate_dataset
from .exact_truth import add_truth_scores
from .ground_truth import EvaluationInputError, apply_pixel_spacing, load_ground_truth
from .matching import DEFAULT_GATE_FACTOR, DEFAULT_SCORE_THRESHOLD
from .predictions import load_predictions
from .report import format_summary, write_evaluation
from .scoring import DEFAULT_BOOTSTRAP, DEFAULT_SDR_THRESHOLDS_MM, DEFAULT_SDR_THRESHOLDS_PX, EvaluationSettings
from .table import TABLE_FORMATS, format_results_table

__all__ = ["EvaluationRun", "evaluate_files", "build_parser", "main"]


@dataclass
class EvaluationRun:
    """What :func:`evaluate_files` did: the evaluation, the files it wrote, and notes."""

    result: DatasetEvaluation
    files: Dict[str, Path]
    notes: list = field(default_factory=list)


def evaluate_files(gt, predictions, output, settings: Optional[EvaluationSettings] = None,
                   pixel_spacing=None, plots: bool = True, truth=None) -> EvaluationRun:
    """Score a COCO results file against a vertkp COCO file and write the evaluation.

    Args:
        gt: ground-truth COCO file (or its parsed dict).
        predictions: COCO keypoint results file (or the parsed list).
        output: folder for metrics.json, the CSVs and the plots.
        settings: :class:`EvaluationSettings` (defaults when None).
        pixel_spacing: mm per pixel for every image, or a table file
            (``vertkp.data.imaging.spacing``), overriding the GT file's spacings.
        plots: write the PNG plots too.
        truth: a phantom set's ``phantom_truth.json`` (or its dict): also score against
            its exact corners, and the labels' own error (``exact_truth``).

    Raises:
        EvaluationInputError: bad ground truth (one without any labelled vertebra
            included: nothing to score against), predictions, pixel spacing or truth.
        ValueError: ``output`` is not a folder.
    """
    output = output_folder(output)
    exact, truth = truth, load_ground_truth(gt)
    if not any(t.n for t in truth.images):
        raise EvaluationInputError(
            f"{truth.source} holds no labelled vertebra ({len(truth.images)} images): nothing to score against. Is "
            "it an unlabelled split (test.json)? Pass the COCO file of a labelled split (val.json)")
    preds = load_predictions(predictions, truth)
    notes = list(truth.notes)
    if not preds:
        named = f" in {predictions}" if isinstance(predictions, (str, os.PathLike)) else ""
        notes.append(f"no prediction for any image{named}: every vertebra of the ground truth counts as missed")
    if pixel_spacing is not None:
        try:
            n = apply_pixel_spacing(truth.images, load_pixel_spacing(pixel_spacing))
        except InvalidInput as e:
            raise EvaluationInputError(f"pixel spacing {e}") from None
        notes.append(f"pixel spacing from {pixel_spacing}: {n} of {len(truth.images)} images")
    result = evaluate_dataset(truth.images, preds, settings)
    if exact is not None:
        add_truth_scores(result.metrics, exact, truth.images, preds, settings)
    return EvaluationRun(result, write_evaluation(result, output, plots=plots), notes)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--gt", required=True, metavar="GT.json", help="COCO keypoint ground truth (vertkp convert)")
    p.add_argument("--predictions", required=True, metavar="PRED.json", help="COCO keypoint results list (JSON)")
    p.add_argument("--output", required=True, metavar="DIR", help="folder for metrics.json, CSVs and plots")
    p.add_argument("--facing", choices=("left", "right", "auto"), default="auto",
                   help="anterior side of lateral views; auto: the image's own facing from the GT file when it "
                        "has one, else estimated from the spine's lordosis")
    p.add_argument("--score-threshold", type=float, default=DEFAULT_SCORE_THRESHOLD,
                   help="ignore predictions scoring below this")
    p.add_argument("--pixel-spacing", metavar="FILE|MM",
                   help="mm per pixel: one number for every image, or a CSV/.xlsx/.json table (image name or "
                        "stem, mm per pixel) that overrides the GT file's pixel_spacing")
    p.add_argument("--truth", metavar="phantom_truth.json",
                   help="phantoms: also score against the exact corners of the set's truth file, and show the "
                        "labels' own error against them (the floor label noise puts under MRE)")
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
    p.add_argument("--bootstrap", type=int, default=DEFAULT_BOOTSTRAP, metavar="N",
                   help="resamples for the bootstrap 95%% confidence intervals of MRE_px, det_F1, grade_acc, "
                        "slip_MAE_pp and kappa (patients when the ground truth says who the images are of, else "
                        "images); 0 turns them off")
    p.add_argument("--seed", type=int, default=0, help="seed of the bootstrap: the same seed, the same intervals")
    p.add_argument("--table", choices=TABLE_FORMATS,
                   help="also print a results table (headline metrics with 95%% CIs, slip limits of agreement and "
                        "ICC, per level) in this format; printed even with --quiet")
    p.add_argument("--no-plots", action="store_true", help="skip the PNG plots")
    p.add_argument("--quiet", action="store_true", help="print nothing on success (but the --table)")
    return p


def main(argv=None) -> int:
    """Exit 0 on success, 2 on bad input or arguments."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        settings = EvaluationSettings(
            facing=args.facing, score_threshold=args.score_threshold, gate_factor=args.match_gate,
            no_slip_pct=args.no_slip_pct, gap_factor=args.gap_factor,
            sdr_thresholds_px=args.sdr_px, sdr_thresholds_mm=args.sdr_mm, bootstrap=args.bootstrap,
            seed=args.seed)
        run = evaluate_files(args.gt, args.predictions, args.output, settings, args.pixel_spacing,
                             plots=not args.no_plots, truth=args.truth)
    except (ValueError, EvaluationInputError) as e:
        print(f"{parser.prog}: error: {e}", file=sys.stderr)
        return 2
    if not args.quiet:
        for note in run.notes:
            print(f"note: {note}")
        print(format_summary(run.result.metrics))
        print(f"wrote {', '.join(p.name for p in run.files.values())} to {Path(args.output)}")
    if args.table:
        print(format_results_table(run.result.metrics, args.table))
    return 0
