"""The spine's vocabulary: vertebral levels, radiographic views and facings.

One home for these names; every module, file field and CLI choice uses them.
The clinical meaning is in ``docs/clinical.md``.
"""
from __future__ import annotations

from typing import List, Optional

__all__ = ["LEVELS", "VIEWS", "FACINGS", "level_index", "level_name", "levels_up_from"]

# Vertebral levels vertkp knows, cranial to caudal; consecutive entries are
# anatomical neighbours (T12 over L1, L5 over S1).
LEVELS = tuple(f"T{k}" for k in range(1, 13)) + ("L1", "L2", "L3", "L4", "L5", "S1")
# Radiographic views: "lateral" (sagittal: slip %, Meyerding grade) and "ap"
# (antero-posterior, frontal: lateral displacement).
VIEWS = ("lateral", "ap")
# Which side of a lateral image is anterior (the patient's belly): "left" =
# image-left on an upright image (the BUU-LSPINE convention), "right" the mirror.
FACINGS = ("left", "right")


def level_index(level) -> Optional[int]:
    """Position of a level name in :data:`LEVELS` ("T12" -> 11, "L1" -> 12), or None.

    Accepts upper or lower case and surrounding blanks; anything else (None,
    "", unknown names) gives None.
    """
    if not isinstance(level, str):
        return None
    name = level.strip().upper()
    return LEVELS.index(name) if name in LEVELS else None


def level_name(level) -> Optional[str]:
    """The canonical spelling of a level ("l4 " -> "L4"), or None when it is not one."""
    k = level_index(level)
    return None if k is None else LEVELS[k]


def levels_up_from(bottom_level, count: int) -> List[Optional[str]]:
    """The levels of ``count`` stacked vertebrae, caudal first, the first being ``bottom_level``
    and each the level above the one before it in :data:`LEVELS`; None past ``LEVELS[0]``.

    Raises:
        ValueError: ``bottom_level`` is not a level name.
    """
    bottom = level_index(bottom_level)
    if bottom is None:
        raise ValueError(f"bottom_level {bottom_level!r} is not one of {LEVELS}")
    return [LEVELS[bottom - k] if bottom - k >= 0 else None for k in range(count)]
