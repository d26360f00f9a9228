"""Bad-input errors and the conversion report (what was read, written, skipped)."""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Optional

__all__ = ["InvalidInput", "ConversionReport"]


class InvalidInput(ValueError):
    """A source file that cannot be converted.

    Args:
        path: the offending file.
        what: what is wrong, in words a user can act on.
        where: the line, row or vertebra inside the file ("" for the whole file).
    """

    def __init__(self, path, what: str, where: str = ""):
        self.path = str(path)
        self.what = what
        self.where = where
        super().__init__(f"{self.path}: {where + ': ' if where else ''}{what}")

    def as_dict(self) -> dict:
        return {"file": self.path, "where": self.where, "problem": self.what}


@dataclass
class ConversionReport:
    """Counts and messages of one conversion run, per split.

    ``skipped`` holds one entry per skipped image or label file (only with
    ``--skip-invalid``); ``warnings`` holds corrections that lost nothing
    (corners re-ordered by geometry, a source stem on both sides of a split).
    """

    dataset: str
    read: Counter = field(default_factory=Counter)  # label files read, per split
    images: Counter = field(default_factory=Counter)  # images written, per split
    vertebrae: Counter = field(default_factory=Counter)  # annotations written, per split
    skipped: list = field(default_factory=list)
    warnings: list = field(default_factory=list)
    notes: list = field(default_factory=list)

    def skip(self, split: Optional[str], error: InvalidInput) -> None:
        self.skipped.append({"split": split, **error.as_dict()})

    def warn(self, split: Optional[str], path, message: str, where: str = "") -> None:
        self.warnings.append({"split": split, "file": str(path), "where": where, "message": message})

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
                }
                for s in splits
            },
            "n_skipped": len(self.skipped),
            "skipped": self.skipped,
            "n_warnings": len(self.warnings),
            "warnings": self.warnings,
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
        if self.warnings:
            kinds = Counter(w["message"] for w in self.warnings)
            lines.append(f"  warnings {len(self.warnings)} (all listed in conversion_report.json):")
            lines += [f"    {n} x {m}" for m, n in sorted(kinds.items())]
        lines += [f"  note: {n}" for n in self.notes]
        return "\n".join(lines)
