"""Bootstrap 95% confidence intervals of the headline metrics, from per-image sums.

Percentile bootstrap (Efron & Tibshirani, *An Introduction to the Bootstrap*, 1993,
ch. 13): draw as many resampling units as there are, with replacement, B times;
recompute each metric on every resample; the interval is the 2.5th and 97.5th
percentiles of the B values (numpy's linear interpolation). Resamples where a
metric is undefined (no corner matched, no pair drawn) are left out of its
percentiles.

The units are patients when the ground truth says who the images are of
(``ImageTruth.patient_id``: two images of one patient are always drawn together,
and an image without a patient id is a unit of its own), else images. They are
taken in sorted order of their keys, so the intervals do not depend on the order
of the images.

Nothing is re-evaluated: each image is reduced once to sums (matched-corner error
sum and count; TP, FP, FN; scored lateral pairs, their summed |slip difference|,
grade agreements and grade confusion matrix), the sums are added up per unit, and
a resample is a vector of how often each unit was drawn, so every metric of every
resample comes from one matrix product ``counts [B, G] @ sums [G, ...]``.
"""
from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from ..grading.slip import GRADES
from .metrics import confusion_matrix
from .scoring import ImageEvaluation

__all__ = [
    "CI_METRICS",
    "UnitSums",
    "image_sums",
    "resampling_units",
    "resample_counts",
    "metrics_from_sums",
    "quadratic_weighted_kappa_batch",
    "percentile_interval",
    "bootstrap_ci95",
]

# The metrics that get a bootstrap interval: metrics.json "ci95" keys.
CI_METRICS = ("MRE_px", "det_F1", "grade_acc", "slip_MAE_pp", "kappa")


@dataclass
class UnitSums:
    """Sums of G units (images or patients), each array [G] unless said.

    Attributes:
        error_sum_px: summed px error of the matched labelled corners.
        error_n: number of those corners.
        tp, fp, fn: matched GT vertebrae, unmatched predictions, unmatched GT vertebrae.
        n_pairs: scored lateral pairs.
        slip_abs_sum: summed |pred - true| slip, percentage points.
        grade_agree: pairs whose predicted grade is the true one.
        confusion: [G, 7, 7] grade counts, rows true, columns predicted (``GRADES`` order).
    """

    error_sum_px: np.ndarray
    error_n: np.ndarray
    tp: np.ndarray
    fp: np.ndarray
    fn: np.ndarray
    n_pairs: np.ndarray
    slip_abs_sum: np.ndarray
    grade_agree: np.ndarray
    confusion: np.ndarray

    def grouped(self, unit: Sequence[int], n_units: int) -> "UnitSums":
        """The sums per unit, ``unit[i]`` being the unit of row i."""
        idx = np.asarray(unit, dtype=np.int64)

        def add(a):
            out = np.zeros((n_units,) + a.shape[1:], dtype=np.float64)
            np.add.at(out, idx, a)
            return out

        return UnitSums(*(add(getattr(self, f.name)) for f in fields(self)))


def image_sums(images: Sequence[ImageEvaluation]) -> UnitSums:
    """Reduce each evaluated image to its :class:`UnitSums` row (G = number of images)."""
    rows = []
    for ev in images:
        e = ev.errors_px[np.isfinite(ev.errors_px)]
        scored = [r for r in ev.pairs if r["view"] == "lateral" and r["scored"]]
        gt = [r["gt_class"] for r in scored]
        pred = [r["pred_class"] for r in scored]
        rows.append((float(e.sum()), e.size, ev.n_matched, ev.n_predictions - ev.n_matched,
                     ev.truth.n - ev.n_matched, len(scored),
                     float(sum(abs(r["pred_value"] - r["gt_value"]) for r in scored)),
                     sum(a == b for a, b in zip(gt, pred)), confusion_matrix(gt, pred)))
    k = len(GRADES)
    cols = list(zip(*rows)) if rows else [()] * 9
    return UnitSums(*(np.asarray(c, dtype=np.float64) for c in cols[:8]),
                    np.asarray(cols[8], dtype=np.float64).reshape(-1, k, k))


def resampling_units(patient_ids: Sequence[Optional[str]], image_ids: Sequence) -> Tuple[List[int], List[str], str]:
    """Which unit each image belongs to.

    Args:
        patient_ids: each image's patient id, or None.
        image_ids: each image's id.

    Returns:
        (unit index of each image, the sorted unit keys "patient <id>" / "image <id>",
        "patients" when any image has a patient id else "images").
    """
    keys = [f"patient {p}" if p is not None else f"image {i}" for p, i in zip(patient_ids, image_ids)]
    units = sorted(set(keys))
    index = {k: u for u, k in enumerate(units)}
    kind = "patients" if any(p is not None for p in patient_ids) else "images"
    return [index[k] for k in keys], units, kind


def resample_counts(n_units: int, n_resamples: int, seed: int) -> np.ndarray:
    """int [n_resamples, n_units]: how often each unit is drawn in each resample of
    n_units draws with replacement (``numpy.random.default_rng(seed)``)."""
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, n_units, size=(n_resamples, n_units)) if n_units else np.zeros((n_resamples, 0), int)
    flat = draws + n_units * np.arange(n_resamples)[:, None]
    return np.bincount(flat.ravel(), minlength=n_resamples * n_units).reshape(n_resamples, n_units)


def quadratic_weighted_kappa_batch(matrices: np.ndarray) -> np.ndarray:
    """``metrics.quadratic_weighted_kappa`` of each confusion matrix of [B, K, K]: [B],
    NaN for an empty matrix."""
    m = np.asarray(matrices, dtype=np.float64)
    k = m.shape[-1]
    i, j = np.indices((k, k))
    w = (i - j) ** 2 / max(k - 1, 1) ** 2
    n = m.sum(axis=(1, 2))
    with np.errstate(invalid="ignore", divide="ignore"):
        o = m / n[:, None, None]
        e = o.sum(axis=2)[:, :, None] * o.sum(axis=1)[:, None, :]
        num, den = (w * o).sum(axis=(1, 2)), (w * e).sum(axis=(1, 2))
        kappa = np.where(num == 0, 1.0, 1.0 - num / den)
    return np.where(n > 0, kappa, np.nan)


def metrics_from_sums(counts: np.ndarray, sums: UnitSums) -> Dict[str, np.ndarray]:
    """Each metric of :data:`CI_METRICS` for each resample: name -> [B] (NaN where undefined).

    With W = counts [B, G] and S the unit sums: MRE_px = W S.error_sum_px / W S.error_n;
    det_F1 = 100 * 2 TP / (2 TP + FP + FN) (= the harmonic mean of precision and recall;
    100 when there is nothing at all, as ``detection_scores``); grade_acc = 100 * agree /
    pairs; slip_MAE_pp = |slip difference| sum / pairs; kappa from the summed confusion
    matrices. Counts of all ones give the metrics of the whole set.
    """
    w = np.asarray(counts, dtype=np.float64)
    s = sums
    with np.errstate(invalid="ignore", divide="ignore"):
        err_n = w @ s.error_n
        mre = np.where(err_n > 0, (w @ s.error_sum_px) / err_n, np.nan)
        tp, fp, fn = w @ s.tp, w @ s.fp, w @ s.fn
        den = 2 * tp + fp + fn
        f1 = np.where(den > 0, 200.0 * tp / den, 100.0)
        n_pairs = w @ s.n_pairs
        acc = np.where(n_pairs > 0, 100.0 * (w @ s.grade_agree) / n_pairs, np.nan)
        mae = np.where(n_pairs > 0, (w @ s.slip_abs_sum) / n_pairs, np.nan)
    k = s.confusion.shape[-1]
    cms = (w @ s.confusion.reshape(len(s.confusion), k * k)).reshape(-1, k, k)
    return {"MRE_px": mre, "det_F1": f1, "grade_acc": acc, "slip_MAE_pp": mae,
            "kappa": quadratic_weighted_kappa_batch(cms)}


def percentile_interval(values: np.ndarray, level: float = 95.0) -> List[Optional[float]]:
    """[low, high]: the (100 - level) / 2 and (100 + level) / 2 percentiles of the finite
    values (numpy's linear interpolation); [None, None] when there is none."""
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return [None, None]
    lo, hi = np.percentile(v, [(100.0 - level) / 2, (100.0 + level) / 2])
    return [float(lo), float(hi)]


def bootstrap_ci95(images: Sequence[ImageEvaluation], n_resamples: int, seed: int = 0) -> Tuple[dict, dict]:
    """Percentile bootstrap 95% intervals of :data:`CI_METRICS` (see the module docstring).

    Args:
        images: the evaluated images.
        n_resamples: B; 0 gives no interval.
        seed: the random generator's seed.

    Returns:
        (ci95, info): ci95 = name -> [low, high] ([None, None] when B = 0 or the
        metric is never defined); info = {"n_resamples", "seed", "unit": "patients"
        or "images", "n_units", "method": "percentile"}.
    """
    index, units, kind = resampling_units([ev.truth.patient_id for ev in images],
                                          [ev.truth.image_id for ev in images])
    info = {"n_resamples": int(n_resamples), "seed": int(seed), "unit": kind, "n_units": len(units),
            "method": "percentile"}
    if n_resamples <= 0 or not units:
        return {name: [None, None] for name in CI_METRICS}, info
    sums = image_sums(images).grouped(index, len(units))
    values = metrics_from_sums(resample_counts(len(units), n_resamples, seed), sums)
    return {name: percentile_interval(values[name]) for name in CI_METRICS}, info
