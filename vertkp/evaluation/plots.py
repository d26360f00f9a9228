"""PNG plots of an evaluation (matplotlib's Agg canvas; no display needed).

The figures are drawn on ``matplotlib.figure.Figure`` with an Agg canvas
directly, so importing this module never changes the user's pyplot backend.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Dict, Mapping

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from ..keypoints import KEYPOINT_NAMES
from ..review import bins_calibration_error
from .dataset import DatasetEvaluation

__all__ = ["write_plots", "reliability_plot"]


def _figure(w=6.4, h=4.2):
    fig = Figure(figsize=(w, h), dpi=100)
    FigureCanvasAgg(fig)
    return fig


def _save(fig, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path)
    return path


def _no_data(ax, text):
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, color="0.4")


def _sdr_curve(ax, errors: np.ndarray, marks, unit: str):
    e = errors[~np.isnan(errors)]
    if e.size == 0:
        _no_data(ax, f"no labelled corners ({unit})")
        return
    top = 2.0 * max(marks)
    xs = np.linspace(0.0, top, 201)
    ys = [100.0 * np.count_nonzero(e <= x) / e.size for x in xs]
    ax.plot(xs, ys, color="tab:blue")
    lines = []
    for t in marks:
        v = 100.0 * np.count_nonzero(e <= t) / e.size
        ax.plot([t], [v], "o", color="tab:red")
        lines.append(f"{t:g} {unit}: {v:.1f}%")
    ax.text(0.97, 0.04, "\n".join(lines), transform=ax.transAxes, ha="right", va="bottom", fontsize=8,
            bbox={"boxstyle": "round", "facecolor": "white", "alpha": 0.8})
    ax.set_xlim(0, top)
    ax.set_ylim(0, 102)
    ax.set_xlabel(f"threshold ({unit})")
    ax.set_ylabel("SDR (% of labelled GT corners)")
    ax.grid(alpha=0.3)


def _bland_altman(ax, truth: np.ndarray, pred: np.ndarray, agreement: dict):
    """Differences pred - truth against the means of the two, with the bias and the 95%
    limits of agreement drawn and labelled."""
    if truth.size == 0:
        _no_data(ax, "no scored lateral pairs")
        return
    mean, diff = 0.5 * (truth + pred), pred - truth
    ax.scatter(mean, diff, s=14, color="tab:blue", alpha=0.7)
    lines = [("bias", agreement["bias_pp"], "-", "tab:red"),
             ("+1.96 SD", agreement["loa_high_pp"], "--", "tab:gray"),
             ("-1.96 SD", agreement["loa_low_pp"], "--", "tab:gray")]
    for label, y, style, color in lines:
        if y is None:
            continue
        ax.axhline(y, linestyle=style, color=color)
        ax.annotate(f"{label} {y:+.2f}", xy=(1.0, y), xycoords=("axes fraction", "data"), xytext=(-4, 3),
                    textcoords="offset points", ha="right", va="bottom", fontsize=8, color=color)
    ax.axhline(0.0, color="0.7", linewidth=0.8)
    ax.set_xlabel("mean of predicted and true slip (%)")
    ax.set_ylabel("predicted - true slip (percentage points)")
    ax.grid(alpha=0.3)


def write_plots(result: DatasetEvaluation, output_dir) -> Dict[str, Path]:
    """Write the five PNGs (six when the predictions carry corner signals); returns short name -> path.

    * sdr_curve.png: SDR against threshold (px, and mm when any image has a
      spacing), the configured thresholds marked; missed corners count as
      failures, so the curve tops out at the share of corners found.
    * per_corner_error.png: box plot of the matched corners' px error per
      corner TL, TR, BL, BR, means as diamonds.
    * error_histogram.png: histogram of matched corners' px errors.
    * grade_confusion.png: GT grade (rows) against predicted grade
      (columns) over the scored lateral pairs.
    * bland_altman_slip.png: Bland-Altman plot of the slip % over the scored
      lateral pairs: mean of predicted and true on x, predicted - true on y,
      the bias and the 95% limits of agreement (bias -+ 1.96 SD, ddof=1).
    * reliability.png (predictions with corner signals): :func:`reliability_plot` of
      metrics.json["calibration"], the error risk of the corners against their large errors.
    """
    out = Path(output_dir)
    m = result.metrics
    s = result.settings
    files = {}

    e_px, e_mm = result.all_errors("px"), result.all_errors("mm")
    has_mm = m["n_images_with_spacing"] > 0
    fig = _figure(10 if has_mm else 6.4, 4.2)
    ax = fig.add_subplot(1, 2 if has_mm else 1, 1)
    _sdr_curve(ax, e_px, s.sdr_thresholds_px, "px")
    ax.set_title("Successful detection rate (px)")
    if has_mm:
        ax2 = fig.add_subplot(1, 2, 2)
        _sdr_curve(ax2, e_mm, s.sdr_thresholds_mm, "mm")
        ax2.set_title("Successful detection rate (mm)")
    files["sdr_curve"] = _save(fig, out / "sdr_curve.png")

    by_corner = result.matched_errors_by_corner()
    fig = _figure()
    ax = fig.add_subplot(1, 1, 1)
    if any(e.size for e in by_corner):
        data = [e if e.size else np.array([np.nan]) for e in by_corner]
        ax.boxplot(data, showfliers=True)
        ax.set_xticks(range(1, len(KEYPOINT_NAMES) + 1), KEYPOINT_NAMES)
        means = [float(e.mean()) if e.size else np.nan for e in by_corner]
        ax.plot(range(1, len(means) + 1), means, "D", color="tab:red", label="mean")
        ax.legend(loc="upper right")
    else:
        _no_data(ax, "no matched corners")
    ax.set_ylabel("error (px)")
    ax.set_title("Corner error of matched vertebrae")
    ax.grid(alpha=0.3, axis="y")
    files["per_corner_error"] = _save(fig, out / "per_corner_error.png")

    fig = _figure()
    ax = fig.add_subplot(1, 1, 1)
    finite = e_px[np.isfinite(e_px)]
    if finite.size:
        ax.hist(finite, bins=min(50, max(5, finite.size // 4)), color="tab:blue", alpha=0.8)
        ax.axvline(float(finite.mean()), color="tab:red", label=f"MRE {finite.mean():.2f} px")
        ax.legend(loc="upper right")
    else:
        _no_data(ax, "no matched corners")
    n_missed = int(np.isinf(e_px).sum())
    ax.set_xlabel("error (px)")
    ax.set_ylabel("corners")
    ax.set_title(f"Corner error histogram ({n_missed} corners of missed vertebrae not shown)")
    files["error_histogram"] = _save(fig, out / "error_histogram.png")

    cm = np.asarray(m["grade_confusion"]["matrix"])
    labels = m["grade_confusion"]["labels"]
    fig = _figure(6.4, 5.4)
    ax = fig.add_subplot(1, 1, 1)
    ax.imshow(cm, cmap="Blues", vmin=0, vmax=max(1, int(cm.max())))
    short = ["retro" if lab == "retrolisthesis" else lab for lab in labels]
    ax.set_xticks(range(len(labels)), short)
    ax.set_yticks(range(len(labels)), short)
    thresh = cm.max() / 2.0 if cm.max() else 1
    for i in range(cm.shape[0]):
        for j in range(cm.shape[1]):
            if cm[i, j]:
                ax.text(j, i, str(cm[i, j]), ha="center", va="center",
                        color="white" if cm[i, j] > thresh else "black")
    ax.set_xlabel("predicted grade")
    ax.set_ylabel("ground-truth grade")
    acc = "n/a" if m["grade_acc"] is None else f"{m['grade_acc']:.1f}%"
    kap = "n/a" if m["kappa"] is None else f"{m['kappa']:.3f}"
    ax.set_title(f"Meyerding grade ({m['n_pairs']} pairs, accuracy {acc}, kappa {kap})")
    files["grade_confusion"] = _save(fig, out / "grade_confusion.png")

    scored = [r for r in result.pair_rows("lateral") if r["scored"]]
    a = m["agreement"]["slip_pct"]
    fig = _figure()
    ax = fig.add_subplot(1, 1, 1)
    _bland_altman(ax, np.array([r["gt_value"] for r in scored], dtype=np.float64),
                  np.array([r["pred_value"] for r in scored], dtype=np.float64), a)
    icc = "n/a" if a["icc_a1"] is None else f"{a['icc_a1']:.3f}"
    ax.set_title(f"Bland-Altman, slip % ({a['n']} pairs, ICC(A,1) {icc})")
    files["bland_altman_slip"] = _save(fig, out / "bland_altman_slip.png")

    calibration = m.get("calibration")
    if calibration and "reliability" in calibration:
        files["reliability"] = reliability_plot(calibration, out / "reliability.png")
    return files


def reliability_plot(report_or_bins: Mapping, path) -> Path:
    """Write a reliability diagram PNG; returns its path.

    Top: mean predicted probability (x) against the observed large-error rate (y) of
    each non-empty bin, with the diagonal of perfect calibration. Below: the corners per
    bin as bars. Title: the ECE and the number of corners.

    Args:
        report_or_bins: a :func:`vertkp.review.calibration_report` made with a probability, or the
            dict of ``reliability_bins``.
        path: the PNG to write.
    """
    if "reliability" in report_or_bins:
        bins, ece = report_or_bins["reliability"], report_or_bins.get("ece")
    elif "edges" in report_or_bins:
        bins, ece = report_or_bins, None
    else:
        raise ValueError("reliability_plot needs calibration_report(..., probability=...) or reliability_bins(...)")
    edges = np.asarray(bins["edges"], dtype=np.float64)
    mean_p = np.asarray(bins["mean_predicted"], dtype=np.float64)
    observed = np.asarray(bins["observed_rate"], dtype=np.float64)
    count = np.asarray(bins["count"], dtype=np.int64)
    ece = bins_calibration_error(bins) if ece is None else float(ece)

    fig = Figure(figsize=(5.6, 6.0), dpi=100)
    FigureCanvasAgg(fig)
    grid = fig.add_gridspec(2, 1, height_ratios=(3, 1))
    ax = fig.add_subplot(grid[0])
    hist = fig.add_subplot(grid[1], sharex=ax)
    ax.plot([0, 1], [0, 1], "--", color="0.6", label="perfect calibration")
    full = count > 0
    if full.any():
        ax.plot(mean_p[full], observed[full], "o-", color="tab:blue", label="observed")
    else:
        ax.text(0.5, 0.5, "no corners", ha="center", va="center", transform=ax.transAxes, color="0.4")
    ax.set_xlim(0, 1)
    ax.set_ylim(-0.02, 1.02)
    ax.set_ylabel("observed large-error rate")
    ax.legend(loc="upper left")
    ax.grid(alpha=0.3)
    ax.tick_params(labelbottom=False)
    hist.bar(0.5 * (edges[:-1] + edges[1:]), count, width=np.diff(edges) * 0.9, color="tab:gray", alpha=0.8)
    hist.set_xlabel("predicted probability of a large error")
    hist.set_ylabel("corners")
    hist.grid(alpha=0.3, axis="y")
    ece_text = "n/a" if math.isnan(ece) else f"{ece:.3f}"
    ax.set_title(f"Reliability (ECE {ece_text}, {int(count.sum())} corners)")
    return _save(fig, Path(path))
