"""A paper-ready results table of metrics.json (``vertkp evaluate --table md|latex|csv``).

Rows: the headline metrics with their bootstrap 95% CIs (MRE, detection F1, grade
accuracy, slip MAE, kappa), the slip agreement (Bland-Altman bias with its 95% limits
of agreement, ICC(A,1) with its F-distribution 95% CI, Pearson r), and per level
(bias with LoA, MAE, grade accuracy) when the data names the levels.

* md: a GitHub/pandoc pipe table, then a line of notes.
* latex: a booktabs ``tabular`` (``\\usepackage{booktabs}``), then the notes as a
  comment.
* csv: one row per measure, numbers unrounded beyond ``vertkp.files.csv_cell``:
  measure, n, value, ci95_low, ci95_high, ci95_method, loa95_low, loa95_high.
"""
from __future__ import annotations

import csv
import io
from typing import List, Optional

from ..files import csv_cell

__all__ = ["TABLE_FORMATS", "TABLE_CSV_COLUMNS", "results_table_rows", "format_results_table"]

TABLE_FORMATS = ("md", "latex", "csv")
TABLE_CSV_COLUMNS = ("measure", "n", "value", "ci95_low", "ci95_high", "ci95_method", "loa95_low", "loa95_high")
BOOTSTRAP_METHOD = "bootstrap percentile"
ICC_METHOD = "F distribution (McGraw & Wong 1996)"


def _row(measure, n, value, decimals, ci=None, method="", loa=None) -> dict:
    return {"measure": measure, "n": n, "value": value, "decimals": decimals, "ci95": ci,
            "ci95_method": method if ci is not None else "", "loa95": loa}


def results_table_rows(metrics: dict) -> List[dict]:
    """The table's rows: {"measure", "n", "value", "decimals" (shown), "ci95" ([low,
    high] or None when the row has no CI), "ci95_method", "loa95" ([low, high] or None)}.

    n is the number of images for MRE and F1, of scored lateral pairs otherwise.
    """
    m = metrics
    boot = m["bootstrap"]["n_resamples"] > 0
    ci = (lambda name: m["ci95"][name]) if boot else (lambda name: None)
    a = m["agreement"]["slip_pct"]
    rows = [
        _row("MRE (px)", m["n_images"], m["MRE_px"], 2, ci("MRE_px"), BOOTSTRAP_METHOD),
        _row("Detection F1 (%)", m["n_images"], m["det_F1"], 1, ci("det_F1"), BOOTSTRAP_METHOD),
        _row("Grade accuracy (%)", m["n_pairs"], m["grade_acc"], 1, ci("grade_acc"), BOOTSTRAP_METHOD),
        _row("Slip MAE (pp)", m["n_pairs"], m["slip_MAE_pp"], 2, ci("slip_MAE_pp"), BOOTSTRAP_METHOD),
        _row("Grade kappa (quadratic)", m["n_pairs"], m["kappa"], 3, ci("kappa"), BOOTSTRAP_METHOD),
        _row("Slip bias (pp)", a["n"], a["bias_pp"], 2, loa=[a["loa_low_pp"], a["loa_high_pp"]]),
        _row("Slip ICC(A,1)", a["n"], a["icc_a1"], 3, a["icc_a1_ci95"], ICC_METHOD),
        _row("Slip Pearson r", a["n"], a["pearson_r"], 3),
    ]
    for level, g in m["slip_by_level"].items():
        rows += [
            _row(f"{level} slip bias (pp)", g["n"], g["bias_pp"], 2, loa=[g["loa_low_pp"], g["loa_high_pp"]]),
            _row(f"{level} slip MAE (pp)", g["n"], g["slip_MAE_pp"], 2),
            _row(f"{level} grade accuracy (%)", g["n"], g["grade_acc"], 1),
        ]
    return rows


def _number(v: Optional[float], decimals: int, latex: bool) -> str:
    if v is None:
        return "n/a"
    text = f"{v:.{decimals}f}"
    if text.startswith("-") and float(text) == 0:
        text = text[1:]
    return "$-$" + text[1:] if latex and text.startswith("-") else text


def _interval(pair, decimals: int, latex: bool) -> str:
    if pair is None:
        return ""
    lo, hi = pair
    if lo is None or hi is None:
        return "n/a"
    return f"{_number(lo, decimals, latex)} to {_number(hi, decimals, latex)}"


def _notes(metrics: dict) -> str:
    b = metrics["bootstrap"]
    boot = (f"percentile bootstrap, {b['n_resamples']} resamples of {b['n_units']} {b['unit']}" if b["n_resamples"]
            else "no bootstrap (--bootstrap 0)")
    return ("n: images for MRE and F1, scored lateral pairs otherwise. 95% CI: " + boot + "; ICC(A,1) (two-way, "
            "absolute agreement, single measure): F distribution (McGraw & Wong 1996). 95% LoA: bias +- 1.96 SD of "
            "predicted - true (sample SD, ddof 1).")


def _latex_escape(text: str) -> str:
    for a, b in (("\\", "\\textbackslash{}"), ("&", "\\&"), ("%", "\\%"), ("_", "\\_"), ("#", "\\#")):
        text = text.replace(a, b)
    return text


def format_results_table(metrics: dict, fmt: str) -> str:
    """The table of :func:`results_table_rows` as text in ``fmt`` (one of :data:`TABLE_FORMATS`).

    Raises:
        ValueError: an unknown format.
    """
    if fmt not in TABLE_FORMATS:
        raise ValueError(f"table format must be one of {TABLE_FORMATS}, got {fmt!r}")
    rows = results_table_rows(metrics)
    if fmt == "csv":
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(TABLE_CSV_COLUMNS)
        for r in rows:
            ci, loa = r["ci95"] or [None, None], r["loa95"] or [None, None]
            w.writerow([csv_cell(v) for v in (r["measure"], r["n"], r["value"], ci[0], ci[1], r["ci95_method"],
                                              loa[0], loa[1])])
        return buf.getvalue().rstrip("\n")
    latex = fmt == "latex"
    cells = [[_latex_escape(r["measure"]) if latex else r["measure"], str(r["n"]),
              _number(r["value"], r["decimals"], latex), _interval(r["ci95"], r["decimals"], latex),
              _interval(r["loa95"], r["decimals"], latex)] for r in rows]
    if latex:
        lines = ["\\begin{tabular}{lrrll}", "\\toprule", "Measure & $n$ & Value & 95\\% CI & 95\\% LoA \\\\",
                 "\\midrule"]
        lines += [" & ".join(c) + " \\\\" for c in cells]
        lines += ["\\bottomrule", "\\end{tabular}", "% " + _notes(metrics)]
        return "\n".join(lines)
    lines = ["| Measure | n | Value | 95% CI | 95% LoA |", "|---|---:|---:|---|---|"]
    lines += ["| " + " | ".join(c) + " |" for c in cells]
    lines += ["", _notes(metrics)]
    return "\n".join(lines)
