"""How much a Mendeley-style phantom set measures like the real archive.

``ARCHIVE`` holds what is known of the real "Spondylolisthesis Vertebral Landmark
Dataset" train/val images (640 x 640 px; ``datasets/README.md``): tight-box sizes of
the labelled vertebrae (the box of the 4 corners, px), their width/height ratio,
the y of their centres (px), vertebrae per image, the share touching the image
border, and a crude median |slip|. :func:`measure` computes the same numbers from a
phantom set's ``phantom_truth.json`` (labelled train/val images, scaled to 640 px),
and :func:`compare` sets them side by side with ``TOLERANCES``.
"""
from __future__ import annotations

from typing import Dict, List

import numpy as np

__all__ = ["ARCHIVE", "TOLERANCES", "ARCHIVE_SIZE", "measure", "compare", "format_comparison"]

ARCHIVE_SIZE = 640  # px, side of the archive's square train/val images
ARCHIVE: Dict[str, object] = {
    "width_px": {5: 59.0, 25: 78.0, 50: 98.0, 75: 129.0, 95: 176.0},
    "height_px": {5: 40.0, 25: 50.0, 50: 60.0, 75: 71.0, 95: 112.0},
    "aspect": {5: 1.05, 50: 1.58, 95: 2.67},
    "centre_y_px": {5: 59.0, 50: 262.0, 95: 457.0},
    "vertebrae_per_image": {3: 21, 4: 35, 5: 72, 6: 197, 7: 204, 8: 115, 9: 37, 10: 13, 11: 4},
    "border_share": 0.003,
    "median_abs_slip_pct": 17.0,
}
# Allowed |phantoms - archive| per statistic: relative for sizes and positions, absolute for
# the rest. Loose enough for a set of about 100 images, tight enough to tell the clean
# phantoms (vertebrae 1.6 times too big, filling the image) from the archive.
TOLERANCES: Dict[str, tuple] = {
    "width_px": ("relative", 0.15),
    "height_px": ("relative", 0.15),
    "aspect": ("relative", 0.15),
    "centre_y_px": ("relative", 0.2),
    "mean_vertebrae_per_image": ("absolute", 0.5),
    "border_share": ("absolute", 0.01),
    "median_abs_slip_pct": ("absolute", 6.0),
}


def _box_sizes(corners: np.ndarray) -> tuple:
    """Tight-box width, height and centre y of corners [K, 4, 2] (NaN rows ignored), px."""
    lo, hi = np.nanmin(corners, axis=1), np.nanmax(corners, axis=1)
    return hi[:, 0] - lo[:, 0], hi[:, 1] - lo[:, 1], (lo[:, 1] + hi[:, 1]) / 2, lo, hi


def measure(truth: dict) -> dict:
    """The ``ARCHIVE`` statistics of the labelled lateral images of a phantom truth dict.

    Sizes and positions are scaled to a 640 px image (each image by 640 / its height).
    The slip statistic is the median over images of the largest |slip| among the
    image's pairs (percent). Uses the exact ``corners``.
    """
    widths, heights, ys, counts, slips = [], [], [], [], []
    touching = total = 0
    for rec in truth["images"]:
        if rec.get("split") == "test" or rec.get("label_file") is None or rec["view"] != "lateral":
            continue
        c = np.array([[p if p is not None else [np.nan, np.nan] for p in v["corners"]] for v in rec["vertebrae"]],
                     dtype=np.float64)
        f = ARCHIVE_SIZE / rec["height"]
        w, h, y, lo, hi = _box_sizes(c)
        widths += list(w * f)
        heights += list(h * f)
        ys += list(y * f)
        counts.append(len(c))
        touch = (lo[:, 0] <= 1.0) | (lo[:, 1] <= 1.0) | (hi[:, 0] >= rec["width"] - 2.0) | \
            (hi[:, 1] >= rec["height"] - 2.0)
        touching += int(touch.sum())
        total += len(c)
        pair_slips = [abs(p["slip_pct"]) for p in rec["pairs"] if "slip_pct" in p]
        if pair_slips:
            slips.append(max(pair_slips))
    if not counts:
        raise ValueError("the truth has no labelled lateral image to measure")
    widths, heights = np.array(widths), np.array(heights)

    def pct(values, qs):
        return {q: float(np.percentile(values, q)) for q in qs}

    hist = {k: counts.count(k) for k in sorted(set(counts))}
    return {
        "width_px": pct(widths, ARCHIVE["width_px"]),
        "height_px": pct(heights, ARCHIVE["height_px"]),
        "aspect": pct(widths / np.maximum(heights, 1e-9), ARCHIVE["aspect"]),
        "centre_y_px": pct(ys, ARCHIVE["centre_y_px"]),
        "vertebrae_per_image": hist,
        "mean_vertebrae_per_image": float(np.mean(counts)),
        "border_share": touching / total,
        "median_abs_slip_pct": float(np.median(slips)) if slips else float("nan"),
        "n_images": len(counts),
        "n_vertebrae": total,
    }


def _archive_mean_count() -> float:
    hist = ARCHIVE["vertebrae_per_image"]
    return sum(k * v for k, v in hist.items()) / sum(hist.values())


def compare(measured: dict) -> List[dict]:
    """One row per statistic: {"statistic", "archive", "phantoms", "tolerance", "ok"}.

    Percentile statistics give a row per percentile ("width_px p50").
    """
    rows = []
    for name, (kind, tol) in TOLERANCES.items():
        want = _archive_mean_count() if name == "mean_vertebrae_per_image" else ARCHIVE[name]
        got = measured[name]
        pairs = [(f"{name} p{q}", w, got[q]) for q, w in want.items()] if isinstance(want, dict) else \
            [(name, want, got)]
        for label, w, g in pairs:
            allowed = tol * abs(w) if kind == "relative" else tol
            rows.append({"statistic": label, "archive": float(w), "phantoms": float(g),
                         "tolerance": f"{'±' + format(100 * tol, 'g') + '%' if kind == 'relative' else '±' + format(tol, 'g')}",
                         "ok": bool(abs(g - w) <= allowed)})
    return rows


def format_comparison(rows: List[dict]) -> str:
    """The rows of :func:`compare` as an aligned text table."""
    lines = [f"{'statistic':<28}{'archive':>10}{'phantoms':>10}  tolerance  ok"]
    for r in rows:
        lines.append(f"{r['statistic']:<28}{r['archive']:>10.3g}{r['phantoms']:>10.3g}  {r['tolerance']:<9}  "
                     f"{'yes' if r['ok'] else 'NO'}")
    return "\n".join(lines)
