"""``vertkp predict``'s streamed output, predictions.jsonl, and the files made from it.

One line per input, written (and flushed) as the input is predicted: a JSON object, NaN as
null, for the input at position ``index`` of the expanded input list,

    {"index", "input", "prediction": SpinePrediction.as_dict(), "report_rows": [report_rows()],
     "coco_results": [coco_results()]}          a predicted image
    {"index", "input", "failure": {"image", "error"}}   one that could not be read

A process writes its lines in index order. A sharded run writes OUT/shards/rank<r>.jsonl,
one file per process, merged by index (``heapq.merge``) into OUT/predictions.jsonl;
:func:`keep_predicted` keeps an interrupted run's predicted lines for ``--resume``;
:func:`finalize` writes report.csv, review.html, coco_results.json and predictions.json from the lines,
one line at a time, so that no step holds every prediction in memory. Every file here is
written atomically (``vertkp.files``).
"""
from __future__ import annotations

import collections.abc
import heapq
import itertools
import json
import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable, Iterator, List, Mapping, Optional, Sequence, Set, Tuple

from ..evaluation.ground_truth import ImageTruth
from ..files import atomic_open, json_text, write_json_stream
from .outputs import RunSummary, coco_results, report_rows, write_report_rows
from .result import SpinePrediction
from .review_page import REVIEW_FILE, write_review_page

__all__ = ["LINES_FILE", "RUN_FILE", "SHARDS_DIR", "RESUME_FREE", "prediction_line", "failure_line", "read_lines",
           "shard_file", "merge_lines", "done_indices", "start_fresh", "keep_predicted", "resume_conflicts",
           "summarize_lines", "finalize", "read_ahead", "IndexedLines"]

LINES_FILE = "predictions.jsonl"
# The settings of the run that wrote OUT/predictions.jsonl (what --resume checks).
RUN_FILE = "predict_run.json"
SHARDS_DIR = "shards"
# predict_run.json keys a resumed run may change: where the files go and how the images are run,
# not what the model and the grading make of them ("backend": a setting of runs before vertkp 0.1's
# one inference path, whose backends gave the same answers).
RESUME_FREE = ("output", "device", "batch_size", "no_overlays", "backend")


def prediction_line(index: int, path: str, prediction: SpinePrediction) -> str:
    """The predictions.jsonl line of a predicted input (its report rows and COCO results made once, here)."""
    return json_text({"index": index, "input": path, "prediction": prediction.as_dict(),
                      "report_rows": report_rows(prediction), "coco_results": coco_results([prediction])},
                     indent=None)


def failure_line(index: int, path: str, error: str) -> str:
    """The predictions.jsonl line of an input that could not be read."""
    return json_text({"index": index, "input": path, "failure": {"image": path, "error": error}}, indent=None)


def _raw_lines(path: Path, start: int = 0, end: Optional[int] = None) -> Iterator[Tuple[int, bytes]]:
    """(byte offset, text) of each line in ``[start, end)`` of a file (the last one maybe without its newline)."""
    with open(path, "rb") as f:
        f.seek(start)
        offset = start
        for raw in f:
            if end is not None and offset >= end:
                return
            yield offset, raw
            offset += len(raw)


def read_lines(path: Path) -> Iterator[dict]:
    """The lines of a predictions.jsonl file, parsed, in file order (none when it does not exist)."""
    if not Path(path).is_file():
        return
    for _, raw in _raw_lines(path):
        yield json.loads(raw)


class IndexedLines(collections.abc.Sequence):
    """The lines of a predictions.jsonl file as a sequence of parsed lines, each read from disk
    when it is asked for: only their byte offsets are held (the review page reads them twice,
    in two orders)."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self._offsets = [offset for offset, _ in _raw_lines(self.path)] if self.path.is_file() else []

    def __len__(self) -> int:
        return len(self._offsets)

    def __getitem__(self, k: int) -> dict:
        with open(self.path, "rb") as f:
            f.seek(self._offsets[k])
            return json.loads(f.readline())


def shard_file(out: Path, rank: int) -> Path:
    """The lines of process ``rank`` of a sharded run."""
    return Path(out) / SHARDS_DIR / f"rank{rank}.jsonl"


def _indexed(path: Path, start: int, end: Optional[int]) -> Iterator[Tuple[int, bytes]]:
    """(index, text) of the lines of a byte range, which must be in index order."""
    last = -1
    for _, raw in _raw_lines(path, start, end):
        index = json.loads(raw)["index"]
        if index < last:
            raise RuntimeError(f"{path}: line of index {index} after {last}: not in input order")
        last = index
        yield index, raw


def merge_lines(sources: Sequence[Tuple[Path, int, Optional[int]]], dest: Path) -> Path:
    """Merge byte ranges ``(file, start, end or None)`` of predictions.jsonl lines, each in index
    order, into ``dest`` in index order (``heapq.merge``: one line of each source in memory;
    ``dest`` may be one of the sources: it is replaced once complete)."""
    runs = [_indexed(Path(p), start, end) for p, start, end in sources if Path(p).is_file()]
    with atomic_open(dest, "wb") as f:
        for _, raw in heapq.merge(*runs, key=lambda line: line[0]):
            f.write(raw)
    return Path(dest)


def done_indices(path: Path) -> Set[int]:
    """The indices that the lines of a predictions.jsonl file hold."""
    return {line["index"] for line in read_lines(path)}


def start_fresh(out: Path) -> None:
    """Remove an earlier run's predictions.jsonl and shards from OUT."""
    (Path(out) / LINES_FILE).unlink(missing_ok=True)
    shutil.rmtree(Path(out) / SHARDS_DIR, ignore_errors=True)


def _complete_lines(path: Path, note: Callable[[str], None]) -> Iterator[Tuple[int, dict]]:
    """(byte offset, parsed line) of the complete lines of an interrupted run's file; a truncated
    last line (the run stopped while writing it) is dropped with a note.

    Raises:
        ValueError: a line before the last one is not JSON (something else wrote the file).
    """
    lines = _raw_lines(path)
    for offset, raw in lines:
        try:
            line = json.loads(raw) if raw.endswith(b"\n") else None
        except json.JSONDecodeError:
            line = None
        if line is None:
            if next(lines, None) is not None:
                raise ValueError(f"{path}: the line at byte {offset} is not JSON, and it is not the last one")
            note(f"note: dropped the truncated last line of {path} (the run stopped while writing it)")
            return
        yield offset, line


def keep_predicted(out: Path, paths: Sequence[str], ids: Sequence[Optional[int]],
                   note: Callable[[str], None] = print) -> int:
    """For --resume: the predicted lines of an interrupted run (OUT/predictions.jsonl, then
    OUT/shards/*.jsonl) whose input is still in ``paths`` with the same image id, once each,
    re-indexed to ``paths`` and in that order, become OUT/predictions.jsonl; failed inputs are
    dropped (tried again), and so are the shards. Returns how many inputs are kept.

    Only the kept lines' offsets are held in memory, never the lines themselves.
    """
    out = Path(out)
    position = {p: k for k, p in enumerate(paths)}
    found = {}  # index in paths -> (file, byte offset of its line)
    for file in [out / LINES_FILE, *sorted((out / SHARDS_DIR).glob("*.jsonl"))]:
        if not file.is_file():
            continue
        for offset, line in _complete_lines(file, note):
            k = position.get(line.get("input"))
            if k is None or k in found or "prediction" not in line:
                continue
            if line["prediction"].get("image_id") == ids[k]:  # else its COCO results are another image's
                found[k] = (file, offset)
    handles = {}
    try:
        with atomic_open(out / LINES_FILE) as dest:
            for k in sorted(found):
                file, offset = found[k]
                f = handles.setdefault(file, open(file, "rb"))
                f.seek(offset)
                line = json.loads(f.readline())
                line["index"] = k
                dest.write(json_text(line, indent=None))
    finally:
        for f in handles.values():
            f.close()
    shutil.rmtree(out / SHARDS_DIR, ignore_errors=True)
    return len(found)


def resume_conflicts(recorded: Mapping, current: Mapping) -> List[str]:
    """The keys of two runs' settings (predict_run.json) that differ, but for :data:`RESUME_FREE`."""
    current = json.loads(json_text(dict(current)))  # as predict_run.json holds it
    keys = sorted(set(recorded) | set(current))
    return [k for k in keys if k not in RESUME_FREE and recorded.get(k) != current.get(k)]


def summarize_lines(path: Path, failures: Sequence[dict] = ()) -> dict:
    """:func:`vertkp.inference.outputs.summarize` of a predictions.jsonl file and of ``failures``
    (inputs that matched no file), one line at a time."""
    summary = RunSummary()
    for _ in failures:
        summary.add_failure()
    for line in read_lines(path):
        if "prediction" in line:
            summary.add(line["prediction"])
        else:
            summary.add_failure()
    return summary.as_dict()


def finalize(out: Path, failures: Sequence[dict], settings: Optional[dict] = None, *,
             predictions_json: bool = True, overlays: Optional[Path] = None,
             overlay_stems: Optional[Sequence[str]] = None, gt: Optional[Sequence[ImageTruth]] = None) -> dict:
    """Write report.csv, review.html, coco_results.json and, with ``predictions_json`` (else an
    earlier one is removed), predictions.json from OUT/predictions.jsonl (in input order), streamed
    one line at a time; they are what ``write_report_csv``, ``write_json`` would write from the
    predictions in memory. ``failures``: inputs that matched no file, listed first. review.html
    (``vertkp.inference.review_page``) embeds the overlays of ``overlays`` (None: the run wrote
    none), named by ``overlay_stems`` (``PredictPlan.overlays``), and, with ``gt`` (the ground
    truth's images), each image's errors. Returns the summary."""
    out = Path(out)
    lines = out / LINES_FILE
    summary = summarize_lines(lines, failures)
    write_report_rows(out / "report.csv", (r for line in read_lines(lines) for r in line.get("report_rows", ())))
    write_review_page(out / REVIEW_FILE, IndexedLines(lines), overlays, overlay_stems=overlay_stems,
                      settings=settings, failures=failures, gt=gt)
    write_json_stream(out / "coco_results.json",
                      (r for line in read_lines(lines) for r in line.get("coco_results", ())))
    if predictions_json:
        write_json_stream(out / "predictions.json", {
            "settings": settings or {}, "summary": summary,
            "images": (line["prediction"] for line in read_lines(lines) if "prediction" in line),
            "failures": itertools.chain(failures, (line["failure"] for line in read_lines(lines) if "failure" in line)),
        })
    else:
        (out / "predictions.json").unlink(missing_ok=True)
    return summary


def read_ahead(read: Callable, items: Sequence, batch_size: int, ahead: int = 2) -> Iterator[list]:
    """``[(item, read(item)) ...]`` per batch of ``batch_size`` items, in order; a background
    thread reads up to ``ahead`` batches ahead while the caller works on the current one."""
    batches = (items[k:k + batch_size] for k in range(0, len(items), batch_size))
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="vertkp-read") as pool:
        pending = []
        for batch in batches:
            pending.append(pool.submit(lambda b: [(item, read(item)) for item in b], batch))
            if len(pending) > ahead:
                yield pending.pop(0).result()
        for future in pending:
            yield future.result()
