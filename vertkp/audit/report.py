"""The audit's files: audit.json, audit.csv and overlays/<stem>.png.

* audit.json: ``{"findings": [{kind, severity, gt_file, file_name, annotation_ids,
  detail}], "summary": {kind: count}, "severities", "datasets" (per label: images,
  vertebrae, image root and how it was found), "shared_images", "settings" (the
  thresholds), "overlays" ([{"overlay": "overlays/x.png", "images": [{gt_file,
  file_name}]}])}``;
* audit.csv: one row per finding, the same columns (annotation ids separated by
  spaces);
* overlays/<stem>.png: one per image file with a finding (an image listed in several
  files gets one, with the vertebrae and findings of all of them), drawn at the
  image's size (``vertkp.audit.overlay``). Names are the file stem, made unique with
  the parent folder's name, then a number.

JSON and CSV go through ``vertkp.files``; every file is written atomically.
"""
from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Dict, List, Optional

import cv2
from tqdm import tqdm

from ..data.imaging.images import ImageReadError, decode_image
from ..drawing import overlay_names
from ..files import atomic_open, write_csv, write_json
from .findings import FINDING_COLUMNS
from .overlay import OverlayVertebra, draw_audit_overlay

__all__ = ["write_audit", "csv_rows"]


def csv_rows(findings) -> List[dict]:
    """audit.csv's rows: a finding's fields, annotation ids joined by spaces."""
    return [dict(f.as_dict(), annotation_ids=" ".join(str(i) for i in f.annotation_ids)) for f in findings]


def _short(label: str) -> str:
    """A dataset label on an overlay: a GT file's name with its folder ("coco/val.json")."""
    p = Path(label)
    return label if len(p.parts) <= 2 else str(Path(*p.parts[-2:]))


def _finding_line(f, several_files: bool) -> str:
    where = f"[{_short(f.gt_file)}] " if several_files else ""
    named = " ".join(w.strip(",;()") for w in f.detail.split())
    shown = set(named.split())
    ids = f" (annotation{'s' if len(f.annotation_ids) > 1 else ''} {', '.join(map(str, f.annotation_ids))})" \
        if f.annotation_ids and not {str(i) for i in f.annotation_ids} <= shown else ""
    return f"{where}{f.kind} ({f.severity}): {f.detail}{ids}"


def _draw(path: Path, records, findings) -> Optional[bytes]:
    """PNG bytes of one image's overlay, or None when the image cannot be read."""
    try:
        image = decode_image(path, "BGR")
    except ImageReadError:
        return None
    named = {(f.gt_file, a) for f in findings for a in f.annotation_ids}
    vertebrae = [OverlayVertebra(c, str(a), (r.label, a) in named)
                 for r in records for c, a in zip(r.truth.corners, r.truth.ann_ids)]
    labels = list(dict.fromkeys(r.label for r in records))
    title = f"{Path(records[0].file_name).name} in " + ", ".join(_short(lb) for lb in labels)
    lines = [(title, "title")] + [(_finding_line(f, len(labels) > 1), f.severity) for f in findings]
    ok, png = cv2.imencode(".png", draw_audit_overlay(image, vertebrae, lines))
    return png.tobytes() if ok else None


def write_audit(audit, output_dir, overlays: bool = True, progress: bool = False) -> Dict[str, Optional[Path]]:
    """Write an :class:`~vertkp.audit.Audit`'s files into ``output_dir`` (see the module
    docstring); returns {"audit": audit.json, "csv": audit.csv, "overlays": the folder,
    or None when ``overlays`` is False}."""
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    listing = []
    folder = None
    if overlays:
        folder = out / "overlays"
        folder.mkdir(parents=True, exist_ok=True)
        by_entry = {(r.label, r.file_name): r for r in reversed(audit.records)}
        by_path = defaultdict(list)
        for r in audit.records:
            by_path[r.path].append(r)
        flagged: Dict[Path, list] = {}
        for f in audit.findings:
            r = by_entry.get((f.gt_file, f.file_name))
            if r is not None:
                flagged.setdefault(r.path, []).append(f)
        paths = list(flagged)
        for path, name in tqdm(list(zip(paths, overlay_names([str(p) for p in paths]))), desc="overlays",
                               unit="img", disable=not progress, leave=False):
            png = _draw(path, by_path[path], flagged[path])
            if png is None:
                continue
            with atomic_open(folder / f"{name}.png", "wb") as fh:
                fh.write(png)
            images = list({(f.gt_file, f.file_name): None for f in flagged[path]})
            listing.append({"overlay": f"overlays/{name}.png",
                            "images": [{"gt_file": g, "file_name": n} for g, n in images]})
    content = audit.as_dict()
    content["overlays"] = listing
    json_path = write_json(out / "audit.json", content)
    csv_path = write_csv(out / "audit.csv", csv_rows(audit.findings), FINDING_COLUMNS)
    return {"audit": json_path, "csv": csv_path, "overlays": folder}
