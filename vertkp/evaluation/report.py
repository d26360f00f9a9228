"""Write an evaluation to disk and summarise it for people.

Files (all in one output folder):

* ``metrics.json``: :attr:`DatasetEvaluation.metrics` (None -> null).
* ``per_landmark.csv``: image_id, file_name, vertebra, corner, gt_x, gt_y,
  pred_x, pred_y, error_px, error_mm; one row per labelled GT corner, empty
  prediction/error cells for a missed vertebra, empty error_mm without
  spacing. ``vertebra`` is the level when the data gives it, else
  "#k from bottom".
* ``per_pair.csv``: image_id, file_name, upper, lower, gt_slip_pct,
  pred_slip_pct, gt_grade, pred_grade; one row per measurable GT pair of a
  lateral image, grades as names (none, I..V, retrolisthesis), empty
  prediction cells for an unscored pair.
* ``per_pair_ap.csv`` (only when AP images have pairs): image_id, file_name,
  upper, lower, gt_lateral_pct, pred_lateral_pct, gt_side, pred_side.
* PNG plots: ``sdr_curve.png``, ``per_corner_error.png``,
  ``error_histogram.png``, ``grade_confusion.png`` (see ``plots``).
"""
from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from typing import Dict, List, Sequence

from .scoring import DatasetEvaluation, grade_label

__all__ = [
    "PER_LANDMARK_COLUMNS",
    "PER_PAIR_COLUMNS",
    "PER_PAIR_AP_COLUMNS",
    "write_metrics_json",
    "write_csv",
    "write_evaluation",
    "format_summary",
]

PER_LANDMARK_COLUMNS = ("image_id", "file_name", "vertebra", "corner", "gt_x", "gt_y", "pred_x", "pred_y",
                        "error_px", "error_mm")
PER_PAIR_COLUMNS = ("image_id", "file_name", "upper", "lower", "gt_slip_pct", "pred_slip_pct", "gt_grade",
                    "pred_grade")
PER_PAIR_AP_COLUMNS = ("image_id", "file_name", "upper", "lower", "gt_lateral_pct", "pred_lateral_pct", "gt_side",
                       "pred_side")


def _clean(obj):
    """JSON-safe copy: NaN/inf -> None, numpy scalars -> Python."""
    if isinstance(obj, dict):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    if hasattr(obj, "item") and not isinstance(obj, (str, bytes)):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def write_metrics_json(metrics: dict, path) -> Path:
    path = Path(path)
    with open(path, "w", encoding="utf-8") as f:
        json.dump(_clean(metrics), f, indent=2, allow_nan=False)
        f.write("\n")
    return path


def _cell(v):
    if v is None:
        return ""
    if isinstance(v, float):
        return repr(round(v, 6) + 0.0)  # 6 decimals (1e-6 px), no "-0.0"
    return v


def write_csv(rows: Sequence[Dict], columns: Sequence[str], path) -> Path:
    """Write rows (dicts) with exactly ``columns`` (missing -> empty cell)."""
    path = Path(path)
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(columns)
        for r in rows:
            w.writerow([_cell(r.get(c)) for c in columns])
    return path


def _pair_csv_rows(result: DatasetEvaluation) -> List[dict]:
    return [{"image_id": r["image_id"], "file_name": r["file_name"], "upper": r["upper"], "lower": r["lower"],
             "gt_slip_pct": r["gt_value"], "pred_slip_pct": r["pred_value"],
             "gt_grade": grade_label(r["gt_class"]),
             "pred_grade": grade_label(r["pred_class"]) if r["scored"] else ""}
            for r in result.pair_rows("lateral")]


def _ap_csv_rows(result: DatasetEvaluation) -> List[dict]:
    return [{"image_id": r["image_id"], "file_name": r["file_name"], "upper": r["upper"], "lower": r["lower"],
             "gt_lateral_pct": r["gt_value"], "pred_lateral_pct": r["pred_value"],
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
        "metrics": write_metrics_json(result.metrics, out / "metrics.json"),
        "per_landmark": write_csv(result.landmark_rows(), PER_LANDMARK_COLUMNS, out / "per_landmark.csv"),
        "per_pair": write_csv(_pair_csv_rows(result), PER_PAIR_COLUMNS, out / "per_pair.csv"),
    }
    ap_rows = _ap_csv_rows(result)
    if ap_rows:
        files["per_pair_ap"] = write_csv(ap_rows, PER_PAIR_AP_COLUMNS, out / "per_pair_ap.csv")
    if plots:
        from .plots import write_plots

        files.update(write_plots(result, out))
    return files


def _fmt(v, spec=".2f", suffix=""):
    return "n/a" if v is None else f"{v:{spec}}{suffix}"


def format_summary(metrics: dict) -> str:
    """A few lines for people: counts, MRE, SDR, detection, slip agreement."""
    m = metrics
    s = m["settings"]
    lines = [
        f"vertkp evaluation: {m['n_images']} images, {m['n_gt_vertebrae']} GT vertebrae, "
        f"{m['n_predictions']} predictions (score >= {s['score_threshold']:g}), {m['n_matched']} matched",
        f"  MRE       {_fmt(m['MRE_px'], suffix=' px')} (median {_fmt(m['MRE_px_median'])}, "
        f"std {_fmt(m['MRE_px_std'])})"
        + (f"   {_fmt(m['MRE_mm'], suffix=' mm')} over {m['n_images_with_spacing']} images with spacing"
           if m["MRE_mm"] is not None else "   (no pixel spacing: no mm)"),
        "  per corner " + "  ".join(f"{k} {_fmt(v)}" for k, v in m["per_corner_MRE_px"].items()) + " px",
    ]
    if m["SDR_px"]:
        lines.append("  SDR       " + "  ".join(f"{k}px {v:.1f}%" for k, v in m["SDR_px"].items()))
    if m["SDR_mm"]:
        lines.append("  SDR (mm)  " + "  ".join(f"{k}mm {v:.1f}%" for k, v in m["SDR_mm"].items()))
    d = m["detection"]
    lines.append(f"  detection precision {d['precision']:.1f}%  recall {d['recall']:.1f}%  F1 {d['F1']:.1f}%  "
                 f"(TP {d['TP']}, FP {d['FP']}, FN {d['FN']})")
    sl = m["slip"]
    lines.append(f"  slip      MAE {_fmt(sl['MAE_pp'], suffix=' pp')}  grade accuracy "
                 f"{_fmt(sl['grade_accuracy'], '.1f', '%')}  kappa {_fmt(sl['kappa'], '.3f')}  "
                 f"({sl['n_pairs']} pairs scored, {sl['n_unscored_pairs']} unscored: a vertebra was missed)")
    ld = m["lateral_displacement"]
    if ld["n_pairs"] or ld["n_unscored_pairs"]:
        lines.append(f"  AP lateral displacement MAE {_fmt(ld['MAE_pp'], suffix=' pp')}  side accuracy "
                     f"{_fmt(ld['side_accuracy'], '.1f', '%')}  ({ld['n_pairs']} pairs, "
                     f"{ld['n_unscored_pairs']} unscored)")
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
