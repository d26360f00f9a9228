"""BUU-LSPINE's folder layout (``datasets/README.md``) and its file names.

``<root>/{AP,LA}/NNNN-S-AAAYv.jpg``, each with a headerless CSV of the same stem (``labels``):
patient id, sex F/M, age in years, view digit (0 = AP, 1 = lateral). The folders, view digits
and row counts are ``VIEW_LAYOUT``; ``format_name`` is the writer beside ``parse_name``.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Optional

from ....anatomy import LEVELS
from ....files import InvalidInput
from ...raw.sources import is_junk

__all__ = ["VIEW_LAYOUT", "BUU_LEVELS", "BuuName", "parse_name", "format_name", "find_buu_root"]

# view -> (folder, view digit in the file name, number of CSV rows): the BUU-LSPINE folder layout.
VIEW_LAYOUT = {"lateral": ("LA", "1", 11), "ap": ("AP", "0", 10)}
# The levels BUU-LSPINE labels, cranial to caudal (AP views stop at L5).
BUU_LEVELS = LEVELS[LEVELS.index("L1"):]
NAME = re.compile(r"^(?P<patient>\d{4})-(?P<sex>[FM])-(?P<age>\d{3})Y(?P<view>[01])$")


class BuuName:
    """Parsed ``NNNN-S-AAAYv`` name: patient id, sex F/M, age in years, view digit."""

    __slots__ = ("patient", "sex", "age", "view_digit")

    def __init__(self, patient: str, sex: str, age: int, view_digit: str):
        self.patient, self.sex, self.age, self.view_digit = patient, sex, age, view_digit


def parse_name(stem: str) -> Optional[BuuName]:
    """Parse a BUU-LSPINE file stem; None if it does not follow ``NNNN-S-AAAYv``."""
    m = NAME.match(stem)
    if not m:
        return None
    return BuuName(m["patient"], m["sex"], int(m["age"]), m["view"])


def format_name(patient, sex: str, age: int, view_digit: str) -> str:
    """A BUU-LSPINE file stem ``NNNN-S-AAAYv``: the inverse of :func:`parse_name`.

    ``format_name(1, "F", 37, "1")`` -> ``0001-F-037Y1``; ``patient`` is an id
    (int or digits), ``view_digit`` a view's digit in ``VIEW_LAYOUT``.
    """
    stem = f"{int(patient):04d}-{sex}-{int(age):03d}Y{view_digit}"
    if not NAME.match(stem):
        raise ValueError(f"({patient!r}, {sex!r}, {age!r}, {view_digit!r}) does not make a NNNN-S-AAAYv name")
    return stem


def find_buu_root(folder) -> Path:
    """The folder under ``folder`` (itself, or up to 3 levels down, e.g. the top folder of
    an extracted zip) that holds BUU-LSPINE's view folders (``VIEW_LAYOUT``: ``AP/``, ``LA/``).

    Raises:
        InvalidInput: none found, or several.
    """
    folder = Path(folder)
    names = {f for f, _, _ in VIEW_LAYOUT.values()}
    found = sorted({p.parent for depth in range(4) for p in folder.glob("/".join(["*"] * (depth + 1)))
                    if p.is_dir() and p.name in names and not is_junk(p.relative_to(folder))})
    if len(found) == 1:
        return found[0]
    if not found:
        raise InvalidInput(folder, f"no {' or '.join(sorted(names))} folder found (see datasets/README.md for the "
                           "layout)")
    raise InvalidInput(folder, "several BUU-LSPINE folders: " + ", ".join(map(str, found)))
