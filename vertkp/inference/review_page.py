"""The review page of a ``vertkp predict`` run: OUT/review.html, one self-contained file.

Images come worst first (:func:`review_order`: the prediction's ``risk``, else its number of
flags, then of findings), each with why it is flagged (its flags and what they mean,
``vertkp.review.FLAGS``), its findings (``SpinePrediction.findings``: what was repaired in its
chain of vertebrae, and what could not be) and notes, its overlay embedded as a ``data:image/jpeg;base64`` URI, and a table of its pairs
(slip % with its interval, grade and the grade's probability, flags); the images that could
not be read come last. With ground truth, each image also gets its errors, computed by the
evaluator (``vertkp.evaluation.scoring.evaluate_image``): per pair the true slip and grade,
the slip error in percentage points and a mark where the grade is wrong, the mean corner
error in px and, where the prediction names levels, how many it names right and wrong.

Inline CSS, no script, no link out: the file opens anywhere, mailed or copied alone. Every
string taken from the inputs is HTML-escaped. The predictions are read twice from a sequence
(:class:`vertkp.inference.stream.IndexedLines` reads predictions.jsonl from disk on access),
once for the order and once for the sections, and one overlay at a time is held in memory.
Fields that a line written by an earlier version lacks (``risk``, ``findings``,
``level_confidence``, ``grade_probability``) are shown as missing, not guessed.
"""
from __future__ import annotations

import base64
import html
import math
from pathlib import Path
from typing import Dict, Iterable, List, Mapping, NamedTuple, Optional, Sequence, Tuple

import cv2
import numpy as np

from ..drawing import overlay_names
from ..evaluation.ground_truth import EvaluationInputError, ImageTruth
from ..evaluation.metrics import error_stats
from ..evaluation.scoring import LEVEL_OUTCOMES, EvaluationSettings, evaluate_image
from ..files import atomic_open
from ..grading import GRADE_NAMES
from ..keypoints import KEYPOINT_NAMES, NUM_KEYPOINTS
from ..modeling.outputs import ImagePredictions
from ..review import FLAGS
from .outputs import RunSummary, match_image_ids

__all__ = ["REVIEW_FILE", "review_order", "image_predictions", "write_review_page"]

REVIEW_FILE = "review.html"
# The overlays embedded in the page: JPEG of this quality, at most this many px on the longer side.
OVERLAY_JPEG_QUALITY = 85
OVERLAY_MAX_SIDE = 1024
# The settings of predictions.json's "settings" that the header shows, in this order, when present.
SHOWN_SETTINGS = ("config_file", "weights", "tta", "view", "facing", "bottom_level", "score_threshold",
                  "corner_threshold", "vertebra_threshold", "spread_threshold", "pixel_spacing", "gt")

_CSS = """
body { font: 14px/1.4 system-ui, sans-serif; margin: 1.5em; color: #222; background: #fafafa; }
h1 { font-size: 1.4em; } h2 { font-size: 1.15em; margin: 0 0 .3em; }
section.image { background: #fff; border: 1px solid #ddd; border-radius: 6px; padding: 1em; margin: 1em 0; }
section.flagged { border-left: 6px solid #c0c; }
table { border-collapse: collapse; margin: .5em 0; } td, th { border: 1px solid #ccc; padding: 2px 8px; }
th { background: #eee; text-align: left; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
tr.wrong td { background: #fde2e2; } .mark { color: #b00; font-weight: bold; }
.flag { color: #a0a; } .muted { color: #777; } .risk { float: right; font-weight: bold; }
img.overlay { max-width: 100%; max-height: 90vh; display: block; margin: .5em 0; }
"""


def _e(value) -> str:
    """``value`` as HTML text, escaped (quotes too: it may stand in an attribute)."""
    return html.escape("" if value is None else str(value), quote=True)


def _number(value) -> Optional[float]:
    """A finite float, or None (JSON null, NaN)."""
    return float(value) if isinstance(value, (int, float)) and math.isfinite(value) else None


def _pct(value) -> str:
    """A percentage (or percentage points) signed to 0.1, "n/m" where not measured."""
    v = _number(value)
    return "n/m" if v is None else f"{v:+.1f}"


def _order_key(prediction: Mapping) -> Tuple[float, int, int]:
    """Ascending key of :func:`review_order`: higher risk, then more flags, then more findings, first."""
    risk = _number(prediction.get("risk"))
    return (-(risk if risk is not None else -1.0), -len(prediction.get("flags") or ()),
            -len(prediction.get("findings") or ()))


def _worst_first(keys: Sequence[Tuple[float, int, int]]) -> List[int]:
    """Positions of ``keys`` (:func:`_order_key`) sorted worst first, ties in their order."""
    return sorted(range(len(keys)), key=lambda k: (keys[k], k))


def review_order(predictions: Iterable[Mapping]) -> List[int]:
    """Positions of ``predictions`` (``SpinePrediction.as_dict()``), worst first: by ``risk``
    (an image without one after those with one), then by number of image flags, then of
    findings; ties keep the input order."""
    return _worst_first([_order_key(p) for p in predictions])


def image_predictions(prediction: Mapping) -> ImagePredictions:
    """The :class:`ImagePredictions` of a ``SpinePrediction.as_dict()`` (corners, scores, corner
    confidences and levels of its vertebrae, in its order), what the evaluator scores; levels
    None when the prediction names none (positional)."""
    vs = prediction.get("vertebrae") or []
    corners = np.array([[v["corners"][k] for k in KEYPOINT_NAMES] for v in vs], dtype=np.float64)
    confidence = np.array([[np.nan if v["corner_scores"][k] is None else v["corner_scores"][k]
                            for k in KEYPOINT_NAMES] for v in vs], dtype=np.float64)
    levels = [v.get("level") for v in vs]
    return ImagePredictions(corners.reshape(-1, NUM_KEYPOINTS, 2), np.array([v["score"] for v in vs], np.float64),
                            confidence.reshape(-1, NUM_KEYPOINTS), levels=levels if any(levels) else None)


def evaluation_settings(settings: Mapping) -> EvaluationSettings:
    """The evaluator's settings for a run's predictions: the run's facing, no-slip band and gap
    factor, and every reported vertebra scored as reported (the run already dropped those under
    its threshold, repaired the chain and named the levels: the pair rows map back to its pairs)."""
    facing = settings.get("facing") or "auto"
    kw = {k: float(settings[k]) for k in ("no_slip_pct", "gap_factor") if _number(settings.get(k)) is not None}
    return EvaluationSettings(facing=facing if facing in ("left", "right", "auto") else "auto", score_threshold=0.0,
                              bootstrap=0, repair_chain=False, name_levels=False, **kw)


def _level_counts(outcomes: Optional[Sequence[Optional[str]]]) -> str:
    """", levels: 4 right, 1 wrong" of the evaluator's ``level_outcomes`` (its ``LEVEL_OUTCOMES``
    per true vertebra matched with a known level); "" when the prediction names no level."""
    if outcomes is None:
        return ""
    counts = [(o, sum(1 for x in outcomes if x == o)) for o in LEVEL_OUTCOMES]
    return "; levels: " + ", ".join(f"{n} {o}" for o, n in counts if n) if any(n for _, n in counts) else ""


def _class_name(value) -> str:
    """A pair's class from the evaluator: a grade (int) by its name, a side as it is."""
    return GRADE_NAMES.get(value, str(value)) if isinstance(value, int) else ("n/m" if value is None else str(value))


def _errors(prediction: Mapping, truth: ImageTruth, settings: EvaluationSettings):
    """The evaluator's view of one image: (ImageEvaluation, {predicted pair position: scored row},
    [scored rows of GT pairs that no predicted pair measures])."""
    ev = evaluate_image(truth, image_predictions(prediction), settings)
    scores = np.array([v["score"] for v in prediction.get("vertebrae") or []], dtype=np.float64)
    kept = np.flatnonzero(scores >= settings.score_threshold)  # the evaluator's indices -> vertebra positions
    by_vertebrae = {(p["upper"], p["lower"]): k for k, p in enumerate(prediction.get("pairs") or [])}
    rows, unpaired = {}, []
    measured = [p for p in ev.gt_grading.pairs if p.measurable]  # ev.pairs: one row each, in this order
    for gt_pair, row in zip(measured, ev.pairs):
        pu, pl = (int(ev.matching.gt_to_pred[i]) for i in (gt_pair.upper, gt_pair.lower))
        k = by_vertebrae.get((int(kept[pu]), int(kept[pl]))) if pu >= 0 and pl >= 0 else None
        if k is None:
            unpaired.append(row)
        else:
            rows[k] = row
    return ev, rows, unpaired


def _truth_cells(row: Optional[Mapping]) -> Tuple[str, bool]:
    """(<td> cells of a scored row: true value, true class, error (pp), mark; whether the class is wrong)."""
    if row is None:
        return '<td colspan="4" class="muted">no ground-truth pair</td>', False
    wrong = bool(row["scored"]) and row["pred_class"] != row["gt_class"]
    error = (_number(row["pred_value"]) - _number(row["gt_value"])) if row["scored"] else None
    mark = '<span class="mark">&#10007; wrong grade</span>' if wrong else (
        "&#10003;" if row["scored"] else f'<span class="muted">{_e(row["reason"])}</span>')
    return (f'<td class="num">{_pct(row["gt_value"])}</td><td>{_e(_class_name(row["gt_class"]))}</td>'
            f'<td class="num">{_pct(error)}</td><td>{mark}</td>'), wrong


def _list(items: Sequence[str], css: str = "") -> str:
    """A <ul> of ``items`` (HTML already escaped)."""
    return "<ul>" + "".join(f'<li class="{css}">{item}</li>' if css else f"<li>{item}</li>" for item in items) + "</ul>"


def _pairs_table(prediction: Mapping, gt_rows: Optional[Dict[int, Mapping]], unpaired: Sequence[Mapping]) -> str:
    """The table of an image's adjacent pairs, named as in report.csv's "pair" column; with
    ``gt_rows`` ({pair position: the evaluator's row}) the truth columns, and a row for each of
    ``unpaired`` (ground-truth pairs that no predicted pair measures)."""
    lateral = prediction.get("view", "lateral") == "lateral"
    head = ["pair", "slip %" if lateral else "displacement %"] + (["interval %"] if lateral else []) + [
        "grade" if lateral else "side", "probability", "flags"]
    if gt_rows is not None:
        head += ["true %", "true grade" if lateral else "true side", "error (pp)", ""]
    out = ["<table><tr>" + "".join(f"<th>{_e(h)}</th>" for h in head) + "</tr>"]
    for k, p in enumerate(prediction.get("pairs") or []):
        value = p.get("slip_pct") if lateral else p.get("lateral_displacement_pct")
        cls = p.get("grade_name") if lateral else p.get("lateral_side")
        prob = _number(p.get("grade_probability"))
        probs = p.get("grade_probabilities") or {}
        title = ", ".join(f"{g} {100 * v:.0f}%" for g, v in probs.items() if _number(v) is not None)
        cells = [f"<td>{_e(p.get('name'))}</td>", f'<td class="num">{_pct(value)}</td>']
        if lateral:
            lo, hi = _number(p.get("slip_low_pct")), _number(p.get("slip_high_pct"))
            cells.append(f'<td class="num">{_pct(lo)} .. {_pct(hi)}</td>' if lo is not None and hi is not None
                         else '<td class="muted">-</td>')
        cells += [f"<td>{_e(cls or 'n/m')}</td>",
                  f'<td class="num" title="{_e(title)}">{"-" if prob is None else f"{100 * prob:.0f}%"}</td>',
                  f'<td class="flag">{_e(", ".join(p.get("flags") or ()))}</td>']
        wrong = False
        if gt_rows is not None:
            truth, wrong = _truth_cells(gt_rows.get(k))
            cells.append(truth)
        out.append(f'<tr class="{"wrong" if wrong else ""}">' + "".join(cells) + "</tr>")
    for row in unpaired:  # GT pairs no predicted pair measures (a vertebra missed, or not found adjacent)
        span = len(head) - 4
        truth, wrong = _truth_cells(row)
        out.append(f'<tr class="{"wrong" if wrong else ""}"><td>{_e(row["name"])}</td>'
                   f'<td colspan="{span - 1}" class="muted">not a predicted pair</td>{truth}</tr>')
    out.append("</table>")
    return "".join(out) if len(out) > 2 else '<p class="muted">no adjacent pair</p>'


def _vertebrae_table(prediction: Mapping) -> str:
    """The table of an image's vertebrae: name, detection score, level confidence, flags."""
    rows = ["<table><tr><th>vertebra</th><th>score</th><th>level confidence</th><th>flags</th></tr>"]
    for v in prediction.get("vertebrae") or []:
        conf = _number(v.get("level_confidence"))
        rows.append(f"<tr><td>{_e(v.get('name'))}</td><td class=\"num\">{_number(v.get('score')) or 0:.2f}</td>"
                    f"<td class=\"num\">{'-' if conf is None else f'{100 * conf:.0f}%'}</td>"
                    f"<td class=\"flag\">{_e(', '.join(v.get('flags') or ()))}</td></tr>")
    return "".join(rows) + "</table>"


def overlay_jpeg(png: Path, max_side: int = OVERLAY_MAX_SIDE, quality: int = OVERLAY_JPEG_QUALITY) -> bytes:
    """The overlay PNG at ``png`` as JPEG bytes, at most ``max_side`` px on its longer side: a noisy
    radiograph compresses about ten times better so, and the page stays light for many images."""
    image = cv2.imread(str(png), cv2.IMREAD_COLOR)
    if image is None:
        raise ValueError(f"{png} is not a readable image")
    scale = max_side / max(image.shape[:2])
    if scale < 1:
        image = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise ValueError(f"{png} could not be encoded as JPEG")
    return data.tobytes()


def _overlay(overlays: Optional[Path], stem: Optional[str]) -> str:
    """The <img> of overlays/<stem>.png as a JPEG data URI (:func:`overlay_jpeg`), or why there is none."""
    if overlays is None:
        return '<p class="muted">no overlay (--no-overlays)</p>'
    png = overlays / f"{stem}.png" if stem is not None else None
    if png is None or not png.is_file():
        return f'<p class="muted">no overlay ({_e(png.name if png is not None else "unknown file")} is missing)</p>'
    try:
        data = base64.b64encode(overlay_jpeg(png)).decode("ascii")
    except ValueError as e:
        return f'<p class="muted">no overlay ({_e(e)})</p>'
    return f'<img class="overlay" alt="overlay of {_e(stem)}" src="data:image/jpeg;base64,{data}">'


def _repaired(finding: Mapping) -> bool:
    """Whether a finding was repaired (its detection removed); False when it does not say."""
    return finding.get("repaired") is True


def _finding(finding: Mapping) -> str:
    """One finding as HTML: its message, its vertebrae, and whether it was repaired."""
    names = ", ".join(map(str, finding.get("vertebrae") or ()))
    state = ("repaired: the detection was removed" if _repaired(finding)
             else "not repaired" if finding.get("repaired") is False else "")
    what = "; ".join(x for x in (names, state) if x)
    return (f'<code>{_e(finding.get("code"))}</code>: {_e(finding.get("message"))}'
            + (f' <span class="muted">({_e(what)})</span>' if what else ""))


def _section(rank: int, line: Mapping, stem: Optional[str], overlays: Optional[Path],
             truth: Optional[ImageTruth], settings: Optional[EvaluationSettings]) -> str:
    """The <section> of the predicted image of ``line``, ``rank``-th worst (id "image-<rank>")."""
    p = line["prediction"]
    risk = _number(p.get("risk"))
    flags, findings = p.get("flags") or [], p.get("findings") or []
    said = {x.get("message") for x in findings}
    notes = [n for n in p.get("notes") or () if n not in said]  # a repair is also a note: said once
    parts = [f'<section class="image{" flagged" if flags else ""}" id="image-{rank}">',
             f'<span class="risk">risk {"n/a" if risk is None else f"{risk:.2f}"}</span>',
             f"<h2>{rank}. {_e(p.get('image', line.get('input')))}</h2>"]
    facing = p.get("facing")
    about = [f"view {p.get('view')}", f"{len(p.get('vertebrae') or ())} vertebrae",
             f"{len(p.get('pairs') or ())} pairs", f"levels: {p.get('level_source') or 'n/a'}"]
    if facing is not None:
        conf = _number(p.get("facing_confidence"))
        about.append(f"facing {facing} ({p.get('facing_source')}{'' if conf is None else f', {conf:.2f}'})")
    parts.append(f'<p class="muted">{_e(", ".join(about))}</p>')
    if flags:
        parts.append("<h3>Why it is flagged</h3>" + _list(
            [f'<code class="flag">{_e(f)}</code>: {_e(FLAGS.get(f, ""))}' for f in flags]))
    if findings:
        parts.append("<h3>Findings</h3>" + _list([_finding(x) for x in sorted(findings, key=_repaired)]))
    if notes:
        parts.append("<h3>Notes</h3>" + _list([_e(n) for n in notes]))
    gt_rows, unpaired = None, []
    if truth is not None:
        try:
            ev, gt_rows, unpaired = _errors(p, truth, settings)
            mre = error_stats(ev.errors_px)  # finite errors: the matched vertebrae's labelled corners
            mean = "n/a" if mre["mean"] is None else f"{mre['mean']:.2f} px"
            parts.append(f"<p><b>Against the ground truth</b>: mean corner error {mean} over {mre['n']} corners; "
                         f"{ev.n_matched} of {ev.truth.n} true vertebrae matched{_level_counts(ev.level_outcomes)}.</p>")
        except EvaluationInputError as e:
            parts.append(f'<p class="muted">errors not computed: {_e(e)}</p>')
    parts.append(_overlay(overlays, stem))
    parts.append(_pairs_table(p, gt_rows, unpaired))
    parts.append(_vertebrae_table(p))
    return "\n".join(parts) + "</section>\n"


class _Listed(NamedTuple):
    """What pass 1 keeps of a predicted image: its place, name and what orders it."""

    position: int  # in ``lines``
    index: int  # in the run's inputs
    image: str
    risk: Optional[float]
    flags: List[str]
    key: Tuple[float, int, int]


def _stem(stems, index: int) -> Optional[str]:
    """The overlay stem of input ``index`` (``stems``: a sequence, or a mapping by index)."""
    if isinstance(stems, Mapping):
        return stems.get(index)
    return stems[index] if 0 <= index < len(stems) else None


def write_review_page(path, lines: Sequence[Mapping], overlays=None, *, overlay_stems: Optional[Sequence[str]] = None,
                      settings: Optional[Mapping] = None, failures: Sequence[Mapping] = (),
                      gt: Optional[Sequence[ImageTruth]] = None) -> Path:
    """Write the review page (module docstring) atomically.

    Args:
        path: the HTML file to write (OUT/review.html).
        lines: predictions.jsonl lines ({"index", "input", "prediction"} or {"index", "input",
            "failure"}), a list or a :class:`~vertkp.inference.stream.IndexedLines`; read twice.
        overlays: the folder of the overlay PNGs; None: the run wrote none.
        overlay_stems: the overlay stem of each input, by line "index" (``PredictPlan.overlays``);
            default ``vertkp.drawing.overlay_names`` of the lines' inputs in index order.
        settings: the run's settings (predictions.json "settings"): shown in the header, and the
            facing, no-slip band and gap factor of the evaluator.
        failures: inputs that matched no file ({"image", "error"}), listed with the failed ones.
        gt: the ground truth's images (``load_ground_truth(...).images``); the predictions are
            matched to them by file path (``vertkp.inference.outputs.match_image_ids``).
    """
    settings = dict(settings or {})
    summary, images, inputs, failed = RunSummary(), [], {}, list(failures)
    for _ in failures:
        summary.add_failure()
    for position, line in enumerate(lines):  # pass 1: the order and the counts, one line at a time
        inputs[line.get("index", position)] = line.get("input", "")
        if "prediction" in line:
            p = line["prediction"]
            summary.add(p)
            images.append(_Listed(position, line.get("index", position), p.get("image", line.get("input")),
                                  _number(p.get("risk")), p.get("flags") or [], _order_key(p)))
        else:
            summary.add_failure()
            failed.append(line["failure"])
    if overlay_stems is None:
        overlay_stems = dict(zip(sorted(inputs), overlay_names([inputs[k] for k in sorted(inputs)])))
    ids = match_image_ids([x.image for x in images], gt) if gt is not None else [None] * len(images)
    truths = {im.image_id: im for im in gt} if gt is not None else {}
    ev_settings = evaluation_settings(settings) if gt is not None else None
    order = _worst_first([x.key for x in images])
    counts = summary.as_dict()
    flagged = sum(1 for x in images if x.flags)
    overlays = Path(overlays) if overlays is not None else None
    with atomic_open(path) as f:
        f.write(f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
                f"<title>vertkp review: {counts['images']} images</title><style>{_CSS}</style></head><body>\n")
        f.write(f"<h1>vertkp review</h1><p>{counts['images']} images ({counts['predicted']} predicted, "
                f"{counts['failed']} failed), {counts['pairs']} adjacent pairs, {flagged} flagged"
                + (f"; pairs per grade: {_e(', '.join(f'{g} {n}' for g, n in counts['pairs_per_grade'].items()))}"
                   if counts["pairs_per_grade"] else "") + ". Worst first (by risk, else by flags).</p>\n")
        shown = [(k, "config default" if k == "tta" and settings[k] is None else settings[k])
                 for k in SHOWN_SETTINGS if k in settings and (settings[k] is not None or k == "tta")]
        if shown:
            f.write("<p class=\"muted\">" + ", ".join(f"{_e(k)}: {_e(v)}" for k, v in shown) + "</p>\n")
        if images:
            f.write("<table><tr><th>#</th><th>image</th><th>risk</th><th>flags</th></tr>" + "".join(
                f"<tr><td><a href=\"#image-{r}\">{r}</a></td><td>{_e(images[k].image)}</td>"
                f"<td class=\"num\">{'n/a' if images[k].risk is None else f'{images[k].risk:.2f}'}</td>"
                f"<td class=\"flag\">{_e(', '.join(images[k].flags))}</td></tr>"
                for r, k in enumerate(order, 1)) + "</table>\n")
        for rank, k in enumerate(order, 1):  # pass 2: one image, and one overlay, at a time
            x = images[k]
            stem = _stem(overlay_stems, x.index)
            f.write(_section(rank, lines[x.position], stem, overlays, truths.get(ids[k]), ev_settings))
        if failed:
            f.write("<h2>Failed</h2>" + _list([f"{_e(x.get('image'))}: {_e(x.get('error'))}" for x in failed]) + "\n")
        f.write("</body></html>\n")
    return Path(path)
