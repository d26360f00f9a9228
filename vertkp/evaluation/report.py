"""Write an evaluation to disk and summarise it for people.

Files (all in one output folder):

* ``metrics.json``: :attr:`DatasetEvaluation.metrics` (NaN and None -> null).
* ``per_landmark.csv``: image_id, file_name, vertebra, corner, gt_x, gt_y,
  pred_x, pred_y, error_px, error_mm; one row per labelled GT corner, empty
  prediction/error cells for a missed vertebra, empty error_mm without
  spacing. ``vertebra`` is the level when the data gives it, else
  "#k from bottom".
* ``per_pair.csv``: image_id, file_name, upper, lower, gt_slip_pct,
  pred_slip_pct, gt_grade, pred_grade, level; one row per measurable GT pair
  of a lateral image, grades as names (none, I..V, retrolisthesis), empty
  prediction cells for an unscored pair, ``level`` "L5/S1" when the data
  names both vertebrae (the key of metrics.json's ``by_level``), else empty.
* ``per_pair_ap.csv`` (only when AP images have pairs): image_id, file_name,
  upper, lower, gt_lateral_displacement_pct, pred_lateral_displacement_pct,
  gt_side, pred_side.
* PNG plots: ``sdr_curve.png``, ``per_corner_error.png``,
  ``error_histogram.png``, ``grade_confusion.png``, ``bland_altman_slip.png``, and
  ``reliability.png`` when the predictions carry corner signals (see ``plots``).
"""
from __future__ import annotations

from pathlib import Path
from typing import Dict, List

from ..files import write_csv, write_json
from ..grading import grade_name
from .dataset import DatasetEvaluation, pair_level
from .plots import write_plots

__all__ = [
    "PER_LANDMARK_COLUMNS",
    "PER_PAIR_COLUMNS",
    "PER_PAIR_AP_COLUMNS",
    "write_evaluation",
    "format_summary",
]

PER_LANDMARK_COLUMNS = ("image_id", "file_name", "vertebra", "corner", "gt_x", "gt_y", "pred_x", "pred_y",
                        "error_px", "error_mm")
PER_PAIR_COLUMNS = ("image_id", "file_name", "upper", "lower", "gt_slip_pct", "pred_slip_pct", "gt_grade",
                    "pred_grade", "level")
PER_PAIR_AP_COLUMNS = ("image_id", "file_name", "upper", "lower", "gt_lateral_displacement_pct",
                       "pred_lateral_displacement_pct", "gt_side", "pred_side")


def grade_label(grade) -> str:
    """CSV text of a grade: "none", "I".."V", "retrolisthesis", "" when missing."""
    return "" if grade is None else grade_name(grade)


def _pair_csv_rows(result: DatasetEvaluation) -> List[dict]:
    return [{"image_id": r["image_id"], "file_name": r["file_name"], "upper": r["upper"], "lower": r["lower"],
             "gt_slip_pct": r["gt_value"], "pred_slip_pct": r["pred_value"],
             "gt_grade": grade_label(r["gt_class"]),
             "pred_grade": grade_label(r["pred_class"]) if r["scored"] else "", "level": pair_level(r) or ""}
            for r in result.pair_rows("lateral")]


def _ap_csv_rows(result: DatasetEvaluation) -> List[dict]:
    return [{"image_id": r["image_id"], "file_name": r["file_name"], "upper": r["upper"], "lower": r["lower"],
             "gt_lateral_displacement_pct": r["gt_value"], "pred_lateral_displacement_pct": r["pred_value"],
             "gt_side": r["gt_class"], "pred_side": r["pred_class"]}
            for r in result.pair_rows("ap")]


def write_evaluation(result: DatasetEvaluation, output_dir, plots: bool = True) -> Dict[str, Path]:
    """Write metrics.json, the CSVs and (``plots``) the PNGs into ``output_dir``.

    Returns:
        dict short name -> path of every file written.
    """
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    files = {
        "metrics": write_json(out / "metrics.json", result.metrics, nan="null", indent=2),
        "per_landmark": write_csv(out / "per_landmark.csv", result.landmark_rows(), PER_LANDMARK_COLUMNS),
        "per_pair": write_csv(out / "per_pair.csv", _pair_csv_rows(result), PER_PAIR_COLUMNS),
    }
    ap_rows = _ap_csv_rows(result)
    if ap_rows:
        files["per_pair_ap"] = write_csv(out / "per_pair_ap.csv", ap_rows, PER_PAIR_AP_COLUMNS)
    if plots:
        files.update(write_plots(result, out))
    return files


def _fmt(v, spec=".2f", suffix=""):
    return "n/a" if v is None else f"{v:{spec}}{suffix}"


def _sdr_line(m: dict, unit: str) -> str:
    cells = [(k.split("@")[1], v) for k, v in m.items() if k.startswith(f"SDR_{unit}@")]
    if not cells or all(v is None for _, v in cells):
        return ""
    return "  " + (f"SDR ({unit})" if unit == "mm" else "SDR      ") + "  " + "  ".join(
        f"{t}{unit} {_fmt(v, '.1f', '%')}" for t, v in cells)


def _interval(pair, spec=".2f", suffix=""):
    lo, hi = pair
    return "n/a" if lo is None or hi is None else f"{lo:{spec}} to {hi:{spec}}{suffix}"


def _agreement_lines(m: dict) -> List[str]:
    """Bland-Altman and ICC of the slip (when 2 pairs or more), and the bootstrap CIs."""
    lines = []
    a = m["agreement"]["slip_pct"]
    if a["n"] >= 2:
        lines.append(f"  agreement slip bias {_fmt(a['bias_pp'], '+.2f', ' pp')}, 95% limits of agreement "
                     f"{_interval((a['loa_low_pp'], a['loa_high_pp']), '+.2f', ' pp')} (SD {_fmt(a['sd_pp'])}, "
                     f"ddof 1); ICC(A,1) {_fmt(a['icc_a1'], '.3f')} (95% CI {_interval(a['icc_a1_ci95'], '.3f')}); "
                     f"Pearson r {_fmt(a['pearson_r'], '.3f')}")
    b, ci = m["bootstrap"], m["ci95"]
    if b["n_resamples"] and b["n_units"]:
        lines.append(f"  95% CI    bootstrap, {b['n_resamples']} resamples of {b['n_units']} {b['unit']}: "
                     f"MRE {_interval(ci['MRE_px'], suffix=' px')}  F1 {_interval(ci['det_F1'], '.1f', '%')}  "
                     f"grade accuracy {_interval(ci['grade_acc'], '.1f', '%')}  slip MAE "
                     f"{_interval(ci['slip_MAE_pp'], suffix=' pp')}  kappa {_interval(ci['kappa'], '.3f')}")
    return lines


def _tail_lines(m: dict) -> List[str]:
    """The slip tails, corners off by > 10% of the width, missed S1, and the level naming
    (when the predictions name levels)."""
    lines = [f"  tails     corners off > 10% of width {_fmt(m['corners_off10pct_width'], '.1f', '%')}"
             + (f"; missed S1 {m['n_missed_S1']} of {m['n_gt_S1']}" if m["n_gt_S1"] else "")
             + (f"; slip off > 10 pp {m['n_slip_off10']} ({_fmt(m['slip_off10_pct'], '.1f', '%')}), > 20 pp "
                f"{m['n_slip_off20']} ({_fmt(m['slip_off20_pct'], '.1f', '%')}) of {m['n_pairs']} pairs"
                if m["n_pairs"] else "")]
    if m.get("n_level_scored") is not None:
        lines.append(f"  levels    named right {_fmt(m['level_acc'], '.1f', '%')}, wrong "
                     f"{_fmt(m['level_wrong_pct'], '.1f', '%')}, named at all {_fmt(m['level_named_pct'], '.1f', '%')} "
                     f"of {m['n_level_scored']} matched vertebrae with a level")
    return lines


def _level_table(m: dict) -> List[str]:
    """metrics.json's ``by_level``, compact: a row per pair level (scored pairs, slip MAE, grade
    accuracy, pairs off by > 10 and > 20 pp, unscored) and per vertebra level (GT vertebrae,
    missed, MRE, corners off by > 10% of the width)."""
    by_level = m.get("by_level") or {}
    pairs, vertebrae = by_level.get("pairs") or {}, by_level.get("vertebrae") or {}
    lines = []
    if pairs:
        lines.append("  by level  pair      n   MAE pp  grade acc  >10 pp  >20 pp  unscored")
        lines += [f"            {name:<7}{p['n_pairs']:>4} {_fmt(p['slip_MAE_pp']):>8} "
                  f"{_fmt(p['grade_acc'], '.1f', '%'):>10} {p['n_slip_off10']:>7} {p['n_slip_off20']:>7} "
                  f"{p['n_unscored']:>9}" for name, p in pairs.items()]
    if vertebrae:
        lines.append("            vertebra  n   missed     MRE px  >10% width")
        lines += [f"            {name:<7}{v['n']:>4} {v['missed']:>8} {_fmt(v['MRE_px']):>10} "
                  f"{_fmt(v['corners_off10pct_width'], '.1f', '%'):>11}" for name, v in vertebrae.items()]
    return lines


def format_summary(metrics: dict) -> str:
    """A few lines for people: counts, MRE, SDR, detection, slip agreement (Bland-Altman,
    ICC), the bootstrap 95% confidence intervals, the tails and a block per pair level."""
    m = metrics
    s = m["settings"]
    lines = [
        f"vertkp evaluation: {m['n_images']} images, {m['n_gt_vertebrae']} GT vertebrae, "
        f"{m['n_predictions']} predictions (score >= {s['score_threshold']:g}), {m['n_matched']} matched",
        f"  MRE       {_fmt(m['MRE_px'], suffix=' px')} (median {_fmt(m['MRE_px_median'])}, "
        f"std {_fmt(m['MRE_px_std'])})"
        + (f"   {_fmt(m['MRE_mm'], suffix=' mm')} over {m['n_images_with_spacing']} images with spacing"
           if m["MRE_mm"] is not None else "   (no pixel spacing: no mm)"),
        "  per corner " + "  ".join(f"{k} {_fmt(m[f'MRE_px_{k}'])}" for k in ("TL", "TR", "BL", "BR")) + " px",
    ]
    lines += [line for line in (_sdr_line(m, "px"), _sdr_line(m, "mm")) if line]
    lines.append(f"  detection precision {m['det_precision']:.1f}%  recall {m['det_recall']:.1f}%  "
                 f"F1 {m['det_F1']:.1f}%  (TP {m['det_TP']}, FP {m['det_FP']}, FN {m['det_FN']})")
    lines.append(f"  slip      MAE {_fmt(m['slip_MAE_pp'], suffix=' pp')}  grade accuracy "
                 f"{_fmt(m['grade_acc'], '.1f', '%')}  kappa {_fmt(m['kappa'], '.3f')}  "
                 f"({m['n_pairs']} pairs scored, {m['n_unscored_pairs']} unscored: a vertebra was missed)")
    lines += _agreement_lines(m)
    lines += _tail_lines(m)
    lines += _level_table(m)
    if m.get("truth_MRE_px") is not None or m.get("label_MRE_px") is not None:
        lines.append(f"  exact truth: MRE {_fmt(m.get('truth_MRE_px'), suffix=' px')} (labels' own error "
                     f"{_fmt(m.get('label_MRE_px'), suffix=' px')}), det F1 {_fmt(m.get('truth_det_F1'), '.1f', '%')}, "
                     f"slip MAE {_fmt(m.get('truth_slip_MAE_pp'), suffix=' pp')}, grade accuracy "
                     f"{_fmt(m.get('truth_grade_acc'), '.1f', '%')}")
    if m["n_ap_pairs"] or m["n_unscored_ap_pairs"]:
        lines.append(f"  AP lateral displacement MAE {_fmt(m['lateral_displacement_MAE_pp'], suffix=' pp')}  "
                     f"side accuracy {_fmt(m['lateral_side_acc'], '.1f', '%')}  ({m['n_ap_pairs']} pairs, "
                     f"{m['n_unscored_ap_pairs']} unscored)")
    ln = m["level_names"]
    if ln["n_images_position"] or ln["n_images_mixed"]:
        lines.append(f"  levels    from the data on {ln['n_images_data']} images; vertebrae and pairs are named by "
                     f"position from the bottom (\"#1 from bottom\") on {ln['n_images_position']}"
                     + (f" and partly on {ln['n_images_mixed']}" if ln["n_images_mixed"] else "")
                     + " (the data gives no levels there)")
    fc = m["facing"]
    if fc["n_estimated"]:
        lines.append(f"  facing    estimated on {fc['n_estimated']} of {fc['n_lateral_images']} lateral images "
                     f"(mean confidence {fc['mean_gt_confidence']:.2f}); predicted spine disagrees on "
                     f"{fc['n_pred_differs_from_gt']}")
    return "\n".join(lines)
