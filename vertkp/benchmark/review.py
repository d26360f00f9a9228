"""Review benchmark: ``vertkp benchmark review``: what the chain repair, the level naming and the
flags make of a trained model's predictions, scored against the exact phantom truth.

    vertkp benchmark review --weights output/demo/train/model_final.pth

The weights are a model trained on the train split of a phantom set of seed --seed (``make
demo``'s). Three fresh realistic phantom sets of --held-out-images each, none seen in training,
every split used, each image predicted once (flip TTA, the predictor's default):

* tuning (Mendeley layout, seed --seed + 2): the fits: the corner flag thresholds and error risk
  (``vertkp.review.fit_operating_point``, both its recall-first point and its point at most
  ``vertkp.review.TARGET_FLAG_RATE`` % flagged) and the corner error floor with the
  ``grade_doubt`` threshold that flag the fewest pairs while catching
  ``vertkp.review.TARGET_GRADE_RECALL`` % of the wrong grades (``vertkp.review.fit_grade_doubt``).
  ``vertkp.review.OPERATING_POINTS["flip"]`` holds them: to refit, copy
  ``benchmark.json["fit_on_tuning"]`` there;
* held-out (Mendeley layout, seed --seed + 1) and held-out BUU (BUU-LSPINE layout, lateral
  images, seed --seed + 3): where the fits and the shipped operating point are checked.

On each set, against the exact truth: the tails before and after the chain repair (pairs off by
more than 20 and 10 slip points, corners off by more than 10% of the width, missed S1; the same
for L5/S1 alone), level accuracy (the automatic naming), detection F1, MRE, slip MAE, ICC and
grade kappa; the flags' recall and flag rate; and how the image risk
(``vertkp.inference.SpinePrediction.risk``) ranks the images: its AUROC for "a grade is wrong"
and the rank of each image with a pair off by more than 20 points.

Writes OUT/benchmark.json and prints the tables the README shows. A benchmark, not a test:
~5 minutes on 2 CPU cores at the defaults.
"""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Dict, List, Optional

import numpy as np

from ..data.datasets import SPECS
from ..evaluation import EvaluationSettings, evaluate_dataset, load_ground_truth
from ..evaluation.exact_truth import exact_truth
from ..files import write_json
from ..phantoms.make import ensure_phantoms
from ..phantoms.truth import TRUTH_FILE
from ..review import (OPERATING_POINTS, TARGET_FLAG_RATE, TARGET_GRADE_RECALL, auroc, calibration_at, corner_table,
                      fit_grade_doubt, fit_operating_point, fitted_point, pair_doubts)
from .device import set_threads
from .report import machine_info, machine_line
from .tta import _fmt, predict_raw

__all__ = ["SETS", "TAIL_KEYS", "run"]

# name -> (raw layout, seed offset from --seed); the first is where the thresholds are fitted.
SETS = {"tuning": ("spondylolisthesis", 2), "held_out": ("spondylolisthesis", 1), "held_out_buu": ("buu-lspine", 3)}
# What each set reports before and after the repair (flat metrics against the exact truth).
TAIL_KEYS = ("n_pairs", "n_slip_off20", "slip_off20_pct", "n_slip_off10", "slip_off10_pct", "corners_off10pct_width",
             "n_gt_S1", "n_missed_S1", "det_F1", "MRE_pct_width", "slip_MAE_pp", "slip_icc_a1", "kappa",
             "grade_acc", "level_acc", "level_wrong_pct", "level_named_pct")


def layout_set(folder: Path, layout: str, num_images: int, seed: int, difficulty: str,
               image_size: Optional[int] = None):
    """Phantoms of ``layout`` made (unless there) and converted in ``folder``: (the lateral images'
    truths, the folder their file names are relative to). ``image_size`` None: the layout's own."""
    ensure_phantoms(layout, folder, num_images, seed, image_size=image_size, progress=False, difficulty=difficulty)
    spec = SPECS[layout]
    coco = folder / spec.coco_folder.format(view="lateral")
    spec.convert(spec.find_root(folder), output=coco, skip_invalid=False, progress=False,
                 **({"view": "lateral"} if "view" in spec.options else {}))
    truths = [t for s in ("train", "val", "test") if (coco / f"{s}.json").is_file()
              for t in load_ground_truth(coco / f"{s}.json").images if t.view == "lateral"]
    return truths, folder


def _tails(metrics: dict) -> dict:
    flat = {k: metrics.get(k) for k in TAIL_KEYS}
    l5s1 = metrics.get("by_level", {}).get("pairs", {}).get("L5/S1", {})
    flat.update({f"L5/S1 {k}": l5s1.get(k) for k in ("n_pairs", "n_slip_off20", "n_slip_off10", "slip_MAE_pp")})
    return flat


def image_risks(exact, preds, sizes, point) -> List[dict]:
    """Per image: the risk of its ``build_prediction`` at the operating point ``point``, whether one
    of its grades is wrong and whether a pair is off by more than 20 slip points (against ``exact``)."""
    from ..inference.result import build_prediction
    rows = []
    evaluation = evaluate_dataset(exact, preds, EvaluationSettings(bootstrap=0))
    for t, im in zip(exact, evaluation.images):
        p = preds.get(t.image_id)
        if p is None or not len(p.scores):
            continue
        keep = p.scores >= 0.5
        h, w = sizes[t.image_id]
        pred = build_prediction(p.corners[keep], p.corner_confidence[keep], p.scores[keep], p.boxes[keep],
                                image=t.file_name, height=h, width=w,
                                corner_spread=None if p.corner_spread is None else p.corner_spread[keep],
                                thresholds=point.thresholds, uncertainty=point.uncertainty)
        scored = [r for r in im.pairs if r.get("scored") and r["view"] == "lateral"]
        rows.append({"image": t.file_name, "risk": 1.0 if pred.risk is None else pred.risk,
                     "wrong_grade": any(r["pred_class"] != r["gt_class"] for r in scored),
                     "off20": any(abs(r["pred_value"] - r["gt_value"]) > 20 for r in scored),
                     "flags": pred.flags})
    return rows


def risk_ranking(rows: List[dict]) -> dict:
    """AUROC of the image risk for a wrong grade, and the 1-based rank (by decreasing risk) of each
    image with a pair off by more than 20 points."""
    if not rows:
        return {}
    risk = np.array([r["risk"] for r in rows])
    wrong = np.array([r["wrong_grade"] for r in rows])
    order = np.argsort(-risk, kind="stable")
    rank = np.empty(len(rows), dtype=int)
    rank[order] = np.arange(1, len(rows) + 1)
    flags = {}
    for r in rows:
        for f in r["flags"]:
            flags[f] = flags.get(f, 0) + 1
    return {"n_images": len(rows), "n_wrong_grade_images": int(wrong.sum()),
            "auroc_wrong_grade": auroc(risk, wrong) if 0 < wrong.sum() < len(rows) else None,
            "ranks_of_off20_images": sorted(int(rank[k]) for k, r in enumerate(rows) if r["off20"]),
            "image_flag_pct": {f: 100.0 * n / len(rows) for f, n in sorted(flags.items())}}


def grade_flags(doubts: dict, threshold: float) -> dict:
    """borderline_grade at ``threshold`` on :func:`vertkp.review.pair_doubts`' columns."""
    flagged = doubts["grade_doubt"] >= threshold
    wrong = doubts["wrong_grade"]
    n, nw = int(flagged.size), int(wrong.sum())
    return {"grade_doubt": float(threshold), "n_pairs": n, "n_wrong_grade": nw,
            "flagged_pct": 100.0 * flagged.sum() / n if n else None,
            "wrong_caught_pct": 100.0 * (flagged & wrong).sum() / nw if nw else None,
            "coverage_pct": 100.0 * doubts["covered"].mean() if n else None}


def corner_flags_at(table, thresholds, risk_model) -> dict:
    """The flags' recall of the large corner errors and the share of corners they flag, percent."""
    any_flag = calibration_at(table, thresholds, True, risk_model)["flags"]["any"]
    return {"recall_pct": any_flag["recall"], "flagged_pct": any_flag["flag_rate"]}


def _fit_corner_flags(table) -> dict:
    """``fit_operating_point`` on the tuning set's corners, {} (said) when they cannot be fitted
    (no matched corner, or no large error among them: a model that finds nothing)."""
    try:
        return fit_operating_point(table, True) if table else {}
    except ValueError as e:
        print(f"   the corner flags cannot be fitted on the tuning set: {e}", flush=True)
        return {}


def format_report(report: dict) -> str:
    lines = ["| set | repair | pairs | >20 pp | >10 pp | L5/S1 >20 / >10 | corners >10% width | missed S1 | "
             "det F1 | MRE % width | slip MAE | ICC | kappa | level acc (wrong, named) |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for name, s in report["sets"].items():
        for when in ("before", "after"):
            m = s[when]
            lines.append(
                f"| {name} | {when} | {m['n_pairs']} | {m['n_slip_off20']} ({_fmt(m['slip_off20_pct'], '.1f')}%) | "
                f"{m['n_slip_off10']} ({_fmt(m['slip_off10_pct'], '.1f')}%) | "
                f"{m['L5/S1 n_slip_off20']} / {m['L5/S1 n_slip_off10']} of {m['L5/S1 n_pairs']} | "
                f"{_fmt(m['corners_off10pct_width'], '.1f')}% | {m['n_missed_S1']} of {m['n_gt_S1']} | "
                f"{_fmt(m['det_F1'], '.1f')}% | {_fmt(m['MRE_pct_width'])}% | {_fmt(m['slip_MAE_pp'])} pp | "
                f"{_fmt(m['slip_icc_a1'], '.3f')} | {_fmt(m['kappa'], '.3f')} | {_fmt(m['level_acc'], '.1f')}% "
                f"({_fmt(m['level_wrong_pct'], '.1f')}%, {_fmt(m['level_named_pct'], '.1f')}%) |")
    lines += ["", "| set | borderline_grade (shipped): pairs flagged | wrong grades caught | slip interval coverage | "
              "(fitted): flagged / caught | corner flags (shipped): caught / flagged | (fitted, at most 15%) | "
              "(fitted, recall-first) | image risk AUROC | ranks of images off by > 20 pp |",
              "|---|---|---|---|---|---|---|---|---|---|"]
    for name, s in report["sets"].items():
        g, r, c = s["grade_flags_shipped"], s["risk"], s["corner_flags"]
        f = s.get("grade_flags_fitted") or {}
        lines.append(
            f"| {name} | {_fmt(g['flagged_pct'], '.1f')}% | {_fmt(g['wrong_caught_pct'], '.1f')}% of "
            f"{g['n_wrong_grade']} | {_fmt(g['coverage_pct'], '.1f')}% | "
            f"{_fmt(f.get('flagged_pct'), '.1f')}% / {_fmt(f.get('wrong_caught_pct'), '.1f')}% | "
            + " | ".join(f"{_fmt(c[k]['recall_pct'], '.1f')}% / {_fmt(c[k]['flagged_pct'], '.1f')}%"
                         if c.get(k) else "-" for k in ("shipped", "fitted_at_target_flag_rate", "fitted"))
            + f" | {_fmt(r.get('auroc_wrong_grade'), '.3f')} | {r.get('ranks_of_off20_images')} of "
              f"{r.get('n_images')} |")
    return "\n".join(lines)


def run(args, folder: Optional[Path] = None) -> int:
    """The benchmark (module docstring); ``folder`` is None: review makes its own sets."""
    from ..inference import VertebraPredictor  # detectron2

    set_threads(args.threads)
    out = Path(args.output).resolve()
    predictor = VertebraPredictor(args.config_file[0], args.weights[0], opts=list(args.opts))
    report = {"machine": machine_info(), "settings": {"config": args.config_file[0], "weights": args.weights[0],
                                                      "seed": args.seed, "held_out_images": args.held_out_images,
                                                      "difficulty": args.difficulty, "tta": predictor.tta},
              "sets": {}}
    print(machine_line(report["machine"]), flush=True)
    shipped = OPERATING_POINTS[predictor.tta]
    data: Dict[str, tuple] = {}
    for name, (layout, offset) in SETS.items():
        truths, root = layout_set(out / f"data_{name}", layout, args.held_out_images, args.seed + offset,
                                  args.difficulty, args.image_size if layout == "spondylolisthesis" else None)
        print(f"{name}: {len(truths)} lateral {layout} images (seed {args.seed + offset}), predicting", flush=True)
        preds, _, sizes = predict_raw(predictor, truths, root)
        exact, _ = exact_truth(root / TRUTH_FILE, truths)
        after = evaluate_dataset(exact, preds, EvaluationSettings(bootstrap=0))
        before = evaluate_dataset(exact, preds, EvaluationSettings(bootstrap=0, repair_chain=False, name_levels=False))
        data[name] = (exact, preds, sizes, after)
        report["sets"][name] = {"layout": layout, "seed": args.seed + offset, "n_images": len(truths),
                                "before": _tails(before.metrics), "after": _tails(after.metrics)}
    tuning_images = data["tuning"][3].images
    fit = _fit_corner_flags(corner_table(tuning_images))
    grade_fit = fit_grade_doubt(tuning_images, shipped.uncertainty)
    fitted_uncertainty = replace(shipped.uncertainty, floor_pct_width=grade_fit.get("floor_pct_width",
                                                                                   shipped.uncertainty.floor_pct_width))
    report["fit_on_tuning"] = {"corner_flags": fit, "grade_doubt": grade_fit,
                               "target_grade_recall_pct": TARGET_GRADE_RECALL, "target_flag_rate_pct": TARGET_FLAG_RATE}
    for name, (exact, preds, sizes, after) in data.items():
        s = report["sets"][name]
        if grade_fit:
            s["grade_flags_fitted"] = grade_flags(pair_doubts(after.images, fitted_uncertainty), grade_fit["grade_doubt"])
        s["grade_flags_shipped"] = grade_flags(pair_doubts(after.images, shipped.uncertainty),
                                               shipped.thresholds.grade_doubt)
        table = corner_table(after.images)
        s["corner_flags"] = {"shipped": corner_flags_at(table, shipped.thresholds, shipped.risk_model)} if table else {}
        for which in ("thresholds", "thresholds_at_target_flag_rate") if fit else ():
            point = fitted_point(fit, which)
            if point is not None:
                key = "fitted" if which == "thresholds" else "fitted_at_target_flag_rate"
                s["corner_flags"][key] = corner_flags_at(table, point.thresholds, point.risk_model)
        s["risk"] = risk_ranking(image_risks(exact, preds, sizes, shipped))
    write_json(out / "benchmark.json", report)
    print("\n" + format_report(report))
    print(f"\nfitted on tuning: {grade_fit} (borderline_grade: {TARGET_GRADE_RECALL:g}% of the wrong grades); "
          f"corner thresholds {fit.get('thresholds')}, at most {TARGET_FLAG_RATE:g}% flagged: "
          f"{fit.get('thresholds_at_target_flag_rate')}; risk model {fit.get('risk_model')}")
    print(f"wrote {out / 'benchmark.json'}")
    return 0
