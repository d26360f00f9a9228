"""The audit of whole datasets: :func:`audit_datasets` and its result, :class:`Audit`.

Datasets are vertkp COCO keypoint files (``vertkp convert``), given by label: in
memory (``{"train": coco_dict, "val": coco_dict}``, as the converter has them before
writing) or as paths. Their ground truth is read with
``vertkp.evaluation.load_ground_truth``; the image entries' ``width``, ``height``,
``patient_id`` and the file's ``info.image_root`` come from the COCO dict itself.

Images are looked up under, in this order: the image root given for the label; the
COCO file's ``info.image_root`` (relative to the file's folder); the conventions
``<root>/coco/<split>.json`` and ``<root>/coco/<view>/<split>.json``; else the file's
own folder. Each image file is decoded once, small, for its perceptual hash
(``vertkp.audit.hashing``); only pairs of candidate duplicates are decoded in full.
"""
from __future__ import annotations

import hashlib
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np
from tqdm import tqdm

from ..data.imaging.images import ImageReadError, decode_image
from ..data.raw.provenance import patient_of, source_of
from ..evaluation.ground_truth import ImageTruth, load_ground_truth, read_json_input
from ..files import output_folder
from .across import duplicate_findings, overlap_findings
from .checks import vertebra_findings
from .findings import FINDING_KINDS, SEVERITIES, Finding, make_finding
from ..grading.plausibility import (DUPLICATE_IOU, IMPLAUSIBLE_SLIP_PCT, MIN_DISC_HEIGHT_PX, MIN_ENDPLATE_RATIO,
                                    NON_CONVEX_MIN_DEFICIT, OVERLAP_IOU, TINY_AREA_FRACTION, TINY_BOX_PX)
from .hashing import HASH_BITS, NEAR_DUPLICATE_BITS, THUMBNAIL_MIN_PX, perceptual_hash, read_thumbnail
from .report import write_audit

__all__ = ["AuditedImage", "DatasetInfo", "Audit", "audit_datasets", "resolve_image_root", "settings", "AuditRun",
           "audit_files"]


def settings() -> dict:
    """The audit's thresholds, as written to audit.json."""
    return {"tiny_area_fraction": TINY_AREA_FRACTION, "tiny_box_px": list(TINY_BOX_PX),
            "duplicate_iou": DUPLICATE_IOU, "overlap_iou": OVERLAP_IOU,
            "non_convex_min_deficit": NON_CONVEX_MIN_DEFICIT, "min_endplate_ratio": MIN_ENDPLATE_RATIO,
            "implausible_slip_pct": IMPLAUSIBLE_SLIP_PCT,
            "min_disc_height_px": MIN_DISC_HEIGHT_PX, "near_duplicate_bits": NEAR_DUPLICATE_BITS,
            "hash_bits": HASH_BITS, "hash": "imagehash.phash", "thumbnail_min_px": THUMBNAIL_MIN_PX}


@dataclass
class AuditedImage:
    """One image entry of one dataset, as the audit sees it.

    Attributes:
        label: the dataset's label.
        position: its index among the file's images.
        truth: its ground truth (``load_ground_truth``).
        width, height: its COCO size, px (None when the entry has none).
        path: the resolved image file.
        source: its source stem (``source_of``), patient: its patient id (``patient_of``).
        size: (width, height) px as decoded, hash: its perceptual hash (uint64) and
            error: why it could not be read; filled in by the audit.
    """

    label: str
    position: int
    truth: ImageTruth
    width: Optional[float]
    height: Optional[float]
    path: Path
    source: Optional[str]
    patient: Optional[str]
    size: Optional[Tuple[int, int]] = None
    hash: Optional[int] = None
    error: Optional[str] = None

    @property
    def file_name(self) -> str:
        return self.truth.file_name


@dataclass
class DatasetInfo:
    """What was audited of one dataset: counts and where its images were looked up."""

    label: str
    images: int
    vertebrae: int
    image_root: str
    image_root_from: str
    notes: list = field(default_factory=list)

    def as_dict(self) -> dict:
        return {"images": self.images, "vertebrae": self.vertebrae, "image_root": self.image_root,
                "image_root_from": self.image_root_from, "notes": list(self.notes)}


def resolve_image_root(gt_path: Optional[Path], data: Mapping, given=None) -> Tuple[Path, str]:
    """(folder the images' file_name are relative to, how it was found).

    Args:
        gt_path: the COCO file, or None for a dataset in memory.
        data: the COCO dict (its ``info.image_root``).
        given: a folder given by the caller (wins).

    Raises:
        ValueError: a dataset in memory without a given root.
    """
    if given is not None:
        return Path(given), "given"
    if gt_path is None:
        raise ValueError("a dataset given in memory needs its image root: pass image_roots={label: folder}, "
                         "the folder its images' file_name are relative to")
    info = data.get("info") if isinstance(data, Mapping) else None
    rel = info.get("image_root") if isinstance(info, Mapping) else None
    if isinstance(rel, str) and rel:
        return gt_path.parent / rel, "info.image_root"
    if gt_path.parent.name == "coco":
        return gt_path.parent.parent, "<root>/coco/<split>.json"
    if gt_path.parent.parent.name == "coco":
        return gt_path.parent.parent.parent, "<root>/coco/<view>/<split>.json"
    return gt_path.parent, "the GT file's folder"


def _number(value) -> Optional[float]:
    try:
        v = float(value)
    except (TypeError, ValueError):
        return None
    return v if np.isfinite(v) and v > 0 else None


def _load(label: str, source, root) -> Tuple[List[AuditedImage], DatasetInfo]:
    """The records of one dataset. Raises EvaluationInputError (bad GT) or ValueError (no root)."""
    truth = load_ground_truth(source)
    data, _ = read_json_input(source, "ground-truth") if isinstance(source, (str, os.PathLike)) else (source, "")
    gt_path = Path(source) if isinstance(source, (str, os.PathLike)) else None
    folder, how = resolve_image_root(gt_path, data, root)
    folder = Path(os.path.normpath(os.path.abspath(folder)))  # one spelling per file: "a/../b" is "b"
    raw = {im.get("id"): im for im in data.get("images", []) if isinstance(im, Mapping)}
    records = []
    for k, t in enumerate(truth.images):
        im = raw.get(t.image_id, {})
        records.append(AuditedImage(label, k, t, _number(im.get("width")), _number(im.get("height")),
                                   Path(os.path.normpath(folder / t.file_name)), source_of(im, t.file_name), patient_of(im, t.file_name)))
    info = DatasetInfo(label, len(records), int(sum(t.n for t in truth.images)), str(folder), how, list(truth.notes))
    return records, info


def _pixels(path: Path) -> Tuple[Optional[Tuple[int, int]], Optional[int], Optional[str]]:
    """(size, perceptual hash, None) of an image file, or (None, None, why it is unreadable)."""
    try:
        thumb = read_thumbnail(path)
    except ImageReadError as e:
        return None, None, f"{e.what} ({path})"
    return thumb.size, int(perceptual_hash(thumb.gray)), None


class _FullPixels:
    """``same(i, j)``: whether two records' files decode to identical pixels. Each file
    asked about is decoded in full once and kept as a digest of its shape and bytes
    (BLAKE2b, 256 bits), so memory does not grow with the images."""

    def __init__(self, records: List[AuditedImage]):
        self.records, self.digests = records, {}

    def _digest(self, k: int) -> Optional[bytes]:
        path = self.records[k].path
        if path not in self.digests:
            try:
                a = decode_image(path, "RGB")
            except ImageReadError:
                self.digests[path] = None
            else:
                h = hashlib.blake2b(repr(a.shape).encode(), digest_size=32)
                h.update(np.ascontiguousarray(a).data)
                self.digests[path] = h.digest()
        return self.digests[path]

    def same(self, i: int, j: int) -> bool:
        a, b = self._digest(i), self._digest(j)
        return a is not None and a == b


class Audit:
    """What :func:`audit_datasets` found.

    Attributes:
        findings: list of :class:`Finding`, in a stable order: by dataset (the order
            given), then image (file order), then kind (:data:`FINDING_KINDS` order),
            then annotation ids and detail.
        datasets: per label, a :class:`DatasetInfo`.
        shared: {"source_overlap" | "patient_overlap": {label: images whose source
            or patient is also under another label}}.
        settings: the thresholds used (:func:`settings`).
        records: every image record (for the overlays).
    """

    def __init__(self, findings: List[Finding], datasets: Dict[str, DatasetInfo], shared: Dict[str, Dict[str, int]],
                 records: List[AuditedImage]):
        self.findings = findings
        self.datasets = datasets
        self.shared = shared
        self.settings = settings()
        self.records = records

    def summary(self) -> Dict[str, int]:
        """{kind: count} over the kinds that occur, in :data:`FINDING_KINDS` order."""
        counts = Counter(f.kind for f in self.findings)
        return {k: counts[k] for k in FINDING_KINDS if counts[k]}

    def severity_counts(self) -> Dict[str, int]:
        counts = Counter(f.severity for f in self.findings)
        return {s: counts[s] for s in SEVERITIES}

    def format_summary(self) -> str:
        """A few readable lines: totals, then one line per kind found (with the images of
        each split whose patient or source is also elsewhere)."""
        n_images = sum(d.images for d in self.datasets.values())
        n_vert = sum(d.vertebrae for d in self.datasets.values())
        sev = self.severity_counts()
        head = (f"audit of {len(self.datasets)} dataset(s), {n_images} images, {n_vert} vertebrae: "
                f"{len(self.findings)} finding(s)")
        if self.findings:
            head += " (" + ", ".join(f"{n} {s}{'s' if n > 1 and s != 'info' else ''}" for s, n in sev.items()
                                     if n) + ")"
        lines = [head]
        for kind, n in self.summary().items():
            severities = sorted({f.severity for f in self.findings if f.kind == kind}, key=SEVERITIES.index)
            line = f"  {kind} ({'/'.join(severities)}): {n}  {FINDING_KINDS[kind][1]}"
            if kind in self.shared:
                share = ", ".join(f"{lb} {m} of {self.datasets[lb].images}" for lb, m in self.shared[kind].items()
                                  if m)
                line += f"; images involved: {share}"
            lines.append(line)
        return "\n".join(lines)

    def as_dict(self) -> dict:
        """audit.json's content (without the overlay list, which ``write`` adds)."""
        return {"findings": [f.as_dict() for f in self.findings], "summary": self.summary(),
                "severities": self.severity_counts(),
                "datasets": {lb: d.as_dict() for lb, d in self.datasets.items()},
                "shared_images": self.shared, "settings": self.settings}

    def write(self, output_dir, overlays: bool = True, progress: bool = False) -> Dict[str, Optional[Path]]:
        """Write audit.json, audit.csv and (``overlays``) overlays/<stem>.png for every
        image with a finding; returns {"audit", "csv", "overlays"} paths (overlays None
        when not drawn). See ``vertkp.audit.report``."""
        return write_audit(self, output_dir, overlays=overlays, progress=progress)


def _sort_key(f: Finding, position: Dict[Tuple[str, str], Tuple[int, int]], kinds: Dict[str, int]):
    ids = [(0, i, "") if isinstance(i, int) else (1, 0, str(i)) for i in f.annotation_ids]  # numbers first
    return (position.get((f.gt_file, f.file_name), (len(position), 0)), kinds[f.kind], ids, f.detail)


def audit_datasets(datasets: Mapping, image_roots: Optional[Mapping] = None, progress: bool = False) -> Audit:
    """Audit vertkp COCO datasets: every finding of :data:`FINDING_KINDS`.

    Args:
        datasets: {label: COCO dict or path}, e.g. {"train": coco, "val": coco} or
            {"coco/train.json": "coco/train.json"}; the label names the dataset in
            every finding (``gt_file``).
        image_roots: {label: folder the images' file_name are relative to}; a label
            without one is looked up as ``resolve_image_root`` says.
        progress: show a tqdm progress bar.

    Returns:
        :class:`Audit`.

    Raises:
        EvaluationInputError: a GT file that is not a readable vertkp COCO file.
        ValueError: no datasets, or a dataset in memory without an image root.
    """
    if not datasets:
        raise ValueError("nothing to audit: give at least one dataset {label: COCO dict or path}")
    image_roots = {str(k): v for k, v in (image_roots or {}).items()}
    records: List[AuditedImage] = []
    infos: Dict[str, DatasetInfo] = {}
    for label, source in datasets.items():
        label = str(label)
        recs, infos[label] = _load(label, source, image_roots.get(label))
        records += recs
    findings: List[Finding] = []
    pixels: Dict[Path, tuple] = {}  # each file decoded once
    for rec in tqdm(records, desc="audit", unit="img", disable=not progress, leave=False):
        if rec.path not in pixels:
            pixels[rec.path] = _pixels(rec.path)
        rec.size, rec.hash, rec.error = pixels[rec.path]
        if rec.error is not None:
            findings.append(make_finding("unreadable_image", rec.label, rec.file_name, [], rec.error))
        w, h = (rec.width, rec.height) if rec.width and rec.height else (rec.size or (None, None))
        findings += vertebra_findings(rec.label, rec.truth, w, h)
    labels = [r.label for r in records]
    names = [r.file_name for r in records]
    findings += duplicate_findings(labels, names, [str(r.path) for r in records], [r.hash for r in records],
                                   [r.size for r in records], _FullPixels(records).same)
    order = list(infos)
    shared = {}
    for kind, noun, keys in (("source_overlap", "source", [r.source for r in records]),
                             ("patient_overlap", "patient", [r.patient for r in records])):
        found, shared[kind] = overlap_findings(kind, noun, labels, names, keys, order)
        findings += found
    position = {}
    for r in records:
        position.setdefault((r.label, r.file_name), (order.index(r.label), r.position))
    kinds = {k: n for n, k in enumerate(FINDING_KINDS)}
    findings.sort(key=lambda f: _sort_key(f, position, kinds))
    return Audit(findings, infos, shared, records)


@dataclass
class AuditRun:
    """What :func:`audit_files` did: the audit and the files it wrote
    ({"audit", "csv", "overlays"}, as ``Audit.write`` returns them)."""

    audit: Audit
    files: Dict[str, Optional[Path]]


def audit_files(gt_files: Sequence, output_dir, image_root=None, overlays: bool = True,
                progress: bool = True) -> AuditRun:
    """Audit GT files and write the audit's files.

    Args:
        gt_files: vertkp COCO files; each is labelled by its path as given.
        output_dir: folder for audit.json, audit.csv and overlays/.
        image_root: the folder every file's images are relative to (default: found
            per file, see ``vertkp.audit.resolve_image_root``).
        overlays: draw overlays/<stem>.png for every image with a finding.
        progress: show progress bars.

    Raises:
        EvaluationInputError: a GT file that is missing or not a vertkp COCO file.
        ValueError: no GT file, one given twice, an image root or output folder that is
            not a folder.
    """
    output_dir = output_folder(output_dir)
    labels = [str(p) for p in gt_files]
    if not labels:
        raise ValueError("no GT file given")
    twice = sorted({lb for lb in labels if labels.count(lb) > 1})
    if twice:
        raise ValueError(f"GT file(s) given twice: {twice}")
    if image_root is not None and not Path(image_root).is_dir():
        raise ValueError(f"--image-root {image_root} is not a folder")
    roots = {lb: image_root for lb in labels} if image_root is not None else {}
    audit = audit_datasets({lb: lb for lb in labels}, roots, progress=progress)
    return AuditRun(audit, audit.write(output_dir, overlays=overlays, progress=progress))
