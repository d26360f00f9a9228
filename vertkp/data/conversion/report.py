"""The conversion report: what was read, written, skipped (the bad-input error is
``vertkp.files.InvalidInput``)."""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from ...files import InvalidInput

__all__ = ["TWIN_TOLERANCE_PX", "ConversionReport"]

# Two label files of one image agree when no corner differs by more than this, px: the
# YOLO-pose TXT's 6-decimal normalised coordinates are within 0.0006 px of the JSON's at
# 640 px; 1 px leaves room for rounding done by the exporter.
TWIN_TOLERANCE_PX = 1.0


def _twin_detail(d: dict) -> str:
    return d["detail"] or f"largest corner difference {d['largest_px']:.2f} px"


@dataclass
class ConversionReport:
    """Counts and messages of one conversion run, per split.

    ``skipped`` holds one entry per skipped image or label file (only with
    ``--skip-invalid``); ``warnings`` holds corrections that lost nothing
    (corners re-ordered by geometry); ``left_out`` the files that are not
    data (an image without a label file: a stray copy, an unlabelled image in a
    labelled folder; a file in an image or label folder that is neither), each
    with its reason; ``junk`` the archive and OS files set aside; ``twins``
    the comparison of label files given twice for one image (Mendeley JSON and
    TXT); ``archive`` where the data came from when it was a zip; ``audit`` the
    audit's counts per finding kind (``vertkp audit``).
    """

    dataset: str
    read: Counter = field(default_factory=Counter)  # label files read, per split
    images: Counter = field(default_factory=Counter)  # images written, per split
    vertebrae: Counter = field(default_factory=Counter)  # annotations written, per split
    skipped: list = field(default_factory=list)
    warnings: list = field(default_factory=list)
    notes: list = field(default_factory=list)
    left_out: list = field(default_factory=list)
    junk: list = field(default_factory=list)
    twins: dict = field(default_factory=lambda: {"compared": 0, "agree": 0, "disagree": []})
    archive: Optional[dict] = None
    audit: Optional[dict] = None

    def skip(self, split: Optional[str], error: InvalidInput) -> None:
        self.skipped.append({"split": split, **error.as_dict()})

    def warn(self, split: Optional[str], path, message: str, where: str = "") -> None:
        self.warnings.append({"split": split, "file": str(path), "where": where, "message": message})

    def leave_out(self, split: Optional[str], path, reason: str) -> None:
        self.left_out.append({"split": split, "file": str(path), "reason": reason})

    def add_junk(self, paths) -> None:
        self.junk.extend(str(p) for p in paths)

    def compare_twin(self, split: Optional[str], image, used, other, largest_px: Optional[float], agree: bool,
                     detail: str = "") -> None:
        """Record the comparison of an image's two label files (``used`` is the one converted)."""
        self.twins["compared"] += 1
        if agree:
            self.twins["agree"] += 1
        else:
            self.twins["disagree"].append({"split": split, "image": str(image), "used": str(used),
                                           "other": str(other), "largest_px": largest_px, "detail": detail})

    def as_dict(self) -> dict:
        splits = sorted(set(self.read) | set(self.images))
        return {
            "dataset": self.dataset,
            "per_split": {
                s: {
                    "label_files_read": self.read[s],
                    "images_written": self.images[s],
                    "vertebrae_written": self.vertebrae[s],
                    "skipped": sum(1 for k in self.skipped if k["split"] == s),
                    "left_out": sum(1 for k in self.left_out if k["split"] == s),
                }
                for s in splits
            },
            "n_skipped": len(self.skipped),
            "skipped": self.skipped,
            "n_left_out": len(self.left_out),
            "left_out": self.left_out,
            "n_junk": len(self.junk),
            "junk": self.junk,
            "twins": self.twins,
            "n_warnings": len(self.warnings),
            "warnings": self.warnings,
            "archive": self.archive,
            "audit": self.audit,
            "notes": self.notes,
        }

    def summary(self) -> str:
        """Human-readable closing summary."""
        lines = [f"{self.dataset}: conversion summary"]
        for s, c in self.as_dict()["per_split"].items():
            lines.append(
                f"  {s:<6} label files read {c['label_files_read']:>5}  images {c['images_written']:>5}"
                f"  vertebrae {c['vertebrae_written']:>6}  skipped {c['skipped']:>4}"
            )
        if self.skipped:
            lines.append(f"  skipped {len(self.skipped)}:")
            lines += [f"    {k['file']}: {k['where'] + ': ' if k['where'] else ''}{k['problem']}" for k in self.skipped]
        if self.left_out:
            lines.append(f"  left out {len(self.left_out)} file(s) that are not data:")
            lines += [f"    {k['file']}: {k['reason']}" for k in self.left_out]
        if self.junk:
            lines.append(f"  set aside {len(self.junk)} archive/OS junk file(s) (e.g. {Path(self.junk[0]).name})")
        t = self.twins
        if t["compared"]:
            lines.append(f"  label files given twice (JSON used, TXT compared): {t['compared']} images, {t['agree']} "
                         f"agree within {TWIN_TOLERANCE_PX:g} px, {len(t['disagree'])} disagree"
                         + (":" if t["disagree"] else ""))
            lines += [f"    {d['image']}: {_twin_detail(d)}" for d in t["disagree"]]
        if self.warnings:
            kinds = Counter(w["message"] for w in self.warnings)
            lines.append(f"  warnings {len(self.warnings)} (all listed in conversion_report.json):")
            lines += [f"    {n} x {m}" for m, n in sorted(kinds.items())]
        lines += [f"  note: {n}" for n in self.notes]
        return "\n".join(lines)
