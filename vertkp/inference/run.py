"""One ``vertkp predict`` run into an output folder OUT, for one process or one of several:
make OUT ready (start afresh, or keep what an interrupted run predicted), predict this
process's share of a :class:`~vertkp.inference.inputs.PredictPlan` line by line into
predictions.jsonl (or its shard), then, on rank 0, merge the lines and write the files
(``vertkp.inference.stream``). ``predict_files`` is all of it in one call.

The process group is detectron2's (``comm``): one process without one.
"""
from __future__ import annotations

import itertools
import shutil
from pathlib import Path
from typing import Optional, Sequence, Tuple

import cv2
import numpy as np
from tqdm import tqdm

from .. import HAS_DETECTRON2
from ..data.imaging.images import ImageReadError, ImageRecord
from ..files import read_json, write_json
from .inputs import PredictPlan, image_record, plan_inputs
from .outputs import format_summary
from .overlay import draw_overlay
from .review_page import REVIEW_FILE
from .stream import (LINES_FILE, RUN_FILE, SHARDS_DIR, done_indices, failure_line, finalize, keep_predicted,
                     merge_lines, prediction_line, read_ahead, read_lines, resume_conflicts, shard_file, start_fresh)

if HAS_DETECTRON2:
    from detectron2.utils import comm

__all__ = ["prepare_output", "predict_plan", "predict_files"]


def prepare_output(plan: PredictPlan, output, settings: Optional[dict] = None, *, resume: bool = False,
                   quiet: bool = False) -> None:
    """Make OUT ready before any process predicts: start afresh, or with ``resume`` keep an
    interrupted run's predicted lines (``vertkp.inference.stream.keep_predicted``); then record
    the run's settings (``settings`` but its "inputs") in OUT/predict_run.json.

    Raises:
        ValueError: ``resume`` with settings other than those predict_run.json records.
    """
    out = Path(output)
    (out / "overlays").mkdir(parents=True, exist_ok=True)
    run = {k: v for k, v in (settings or {}).items() if k != "inputs"}
    say = (lambda text: None) if quiet else print
    if plan.gt is not None:
        missing = [p for p, i in zip(plan.paths, plan.ids) if i is None]
        if missing:
            say(f"note: {len(missing)} input(s) are not images of the --gt file and are left out of "
                f"coco_results.json (first: {missing[0]})")
    if resume:
        lines = [f for f in [out / LINES_FILE, *(out / SHARDS_DIR).glob("*.jsonl")] if f.is_file()]
        if lines and not (out / RUN_FILE).is_file():
            raise ValueError(f"--resume: {out / RUN_FILE} is missing, so the settings of {lines[0]} are unknown; "
                             "rerun without --resume")
        recorded = read_json(out / RUN_FILE) if lines else run
        differ = resume_conflicts(recorded, run)
        if differ:
            raise ValueError(f"--resume: {out} was predicted with other settings: " + ", ".join(
                f"{k} {recorded.get(k)!r} (now {run.get(k)!r})" for k in differ)
                + "; give the same ones, or leave out --resume to start afresh")
        kept = keep_predicted(out, plan.paths, plan.ids, say)
        say(f"resume: {kept} of {len(plan.paths)} input(s) already predicted in {out / LINES_FILE}; "
            f"predicting the other {len(plan.paths) - kept}")
    else:
        start_fresh(out)
    write_json(out / RUN_FILE, run)


def _read_input(predictor, plan: PredictPlan, k: int) -> Tuple[Optional[np.ndarray], Optional[ImageRecord],
                                                                Optional[str]]:
    """(decoded image, its record, None) of input ``k``, or (None, None, why) when it cannot be read
    (what is wrong; the failure's "image" names the file)."""
    try:
        image, record = predictor.load(plan.paths[k])
    except ImageReadError as e:
        return None, None, f"{e.where + ': ' if e.where else ''}{e.what}"
    return image, image_record(plan, k, record), None


def _predict_share(predictor, plan: PredictPlan, indices: Sequence[int], lines: Path, overlay_dir: Optional[Path], *,
                   batch_size: int, progress: bool, quiet: bool) -> None:
    """Predict inputs ``indices`` (in order), appending each one's line to ``lines`` (flushed) and
    writing its overlay into ``overlay_dir`` (None: none) as it is made; a background thread reads
    up to 2 batches ahead."""
    bar = tqdm(total=len(indices), desc="predict", unit="image", disable=not progress or quiet)
    read = read_ahead(lambda k: _read_input(predictor, plan, k), indices, batch_size)
    with open(lines, "a", encoding="utf-8") as f:
        for batch in read:
            ok = [(k, image, record) for k, (image, record, error) in batch if error is None]
            results = iter(predictor.predict_decoded([im for _, im, _ in ok], [plan.paths[k] for k, _, _ in ok],
                                                     [r for _, _, r in ok]) if ok else ())
            images = {k: image for k, image, _ in ok}
            for k, (_, _, error) in batch:
                path = plan.paths[k]
                if error is not None:
                    f.write(failure_line(k, path, error))
                    if not quiet:
                        tqdm.write(f"skipped: {path}: {error}")
                else:
                    res = next(results)
                    res.image_id = plan.ids[k]
                    f.write(prediction_line(k, path, res))
                    if overlay_dir is not None:
                        cv2.imwrite(str(overlay_dir / f"{plan.overlays[k]}.png"),
                                    draw_overlay(predictor.gray(images[k]), res))
                f.flush()
            bar.update(len(batch))
    bar.close()


def predict_plan(predictor, plan: PredictPlan, output, *, batch_size: int = 1, overlays: bool = True,
                 progress: bool = True, quiet: bool = False, settings: Optional[dict] = None,
                 predictions_json: bool = True) -> Optional[dict]:
    """This process's part of a run into OUT made ready by :func:`prepare_output`: predict the
    inputs of its rank (k % world size == rank) that OUT/predictions.jsonl does not hold yet,
    into it (one process) or into OUT/shards/rank<r>.jsonl; once every process is done
    (``comm.synchronize``), rank 0 merges the lines in input order and writes the files
    (``vertkp.inference.stream.finalize``). Returns the summary on rank 0, None elsewhere."""
    out = Path(output)
    rank, world = comm.get_rank(), comm.get_world_size()
    lines = out / LINES_FILE
    done = done_indices(lines)
    kept_end = lines.stat().st_size if lines.is_file() else 0
    share = [k for k in range(rank, len(plan.paths), world) if k not in done]
    target = lines if world == 1 else shard_file(out, rank)
    target.parent.mkdir(parents=True, exist_ok=True)
    if world > 1:
        target.write_bytes(b"")
    _predict_share(predictor, plan, share, target, out / "overlays" if overlays else None, batch_size=batch_size,
                   progress=progress and rank == 0, quiet=quiet)
    comm.synchronize()
    if rank != 0:
        return None
    if world > 1:
        merge_lines([(lines, 0, None)] + [(shard_file(out, r), 0, None) for r in range(world)], lines)
        shutil.rmtree(out / SHARDS_DIR)
    elif kept_end and share:  # the kept lines, then those appended: two runs in input order
        merge_lines([(lines, 0, kept_end), (lines, kept_end, None)], lines)
    summary = finalize(out, plan.failures, settings, predictions_json=predictions_json,
                       overlays=out / "overlays" if overlays else None, overlay_stems=plan.overlays,
                       gt=list(plan.gt.values()) if plan.gt is not None else None)
    if not quiet:
        print(format_summary(summary))
        if summary["failed"]:
            read = (line["failure"] for line in read_lines(lines) if "failure" in line)
            for f in itertools.chain(plan.failures, read):
                print(f"failed: {f['image']}: {f['error']}")
        print(f"wrote {LINES_FILE}, {'predictions.json, ' if predictions_json else ''}report.csv, {REVIEW_FILE}, "
              f"coco_results.json{' and overlays/' if overlays else ''} to {out}")
    return summary


def predict_files(predictor, inputs: Sequence[str], output, *, view: str = "lateral", pixel_spacing=None,
                  gt=None, batch_size: int = 1, overlays: bool = True, progress: bool = True, quiet: bool = False,
                  settings: Optional[dict] = None, resume: bool = False,
                  predictions_json: bool = True) -> Optional[dict]:
    """Predict image files and write predictions.jsonl, predictions.json, report.csv, review.html,
    coco_results.json and overlays/ into ``output``; returns
    :func:`vertkp.inference.outputs.summarize` (None on a process of rank > 0).

    Args:
        predictor: a :class:`vertkp.inference.VertebraPredictor` (its ``keep_dicom_ids`` says whether
            DICOM files' identifiers are read and recorded; by default no output holds any).
        inputs: files, folders (searched recursively) and glob patterns.
        view: what the images are, unless ``gt`` says.
        pixel_spacing: mm per pixel for every image, or a table file (``vertkp.data.imaging.spacing``);
            over a DICOM file's own.
        gt: a vertkp COCO file of these images: its image ids go into coco_results.json,
            and its view, pixel spacing and facing are used per image.
        settings: recorded as predictions.json's "settings" (and, but its "inputs", in predict_run.json).
        resume: keep what an interrupted run with the same ``settings`` predicted (:func:`prepare_output`).
        predictions_json: write predictions.json (else predictions.jsonl alone holds the predictions).

    Raises:
        ValueError: nothing to predict, bad pixel spacing or ground truth, ``resume`` with other settings.
    """
    if batch_size < 1:
        raise ValueError(f"--batch-size must be >= 1, got {batch_size}")
    plan = plan_inputs(inputs, view=view, pixel_spacing=pixel_spacing, gt=gt)
    if comm.get_rank() == 0:
        prepare_output(plan, output, settings, resume=resume, quiet=quiet)
    comm.synchronize()
    return predict_plan(predictor, plan, output, batch_size=batch_size, overlays=overlays, progress=progress,
                        quiet=quiet, settings=settings, predictions_json=predictions_json)
