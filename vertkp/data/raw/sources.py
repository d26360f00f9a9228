"""What a source folder holds, before any label is read: images, label files, junk, copies.

Real archives carry files that are not data: macOS resource forks and folders
(``__MACOSX/``, ``._*``), Finder and Explorer files (``.DS_Store``, ``Thumbs.db``,
``desktop.ini``), and stray copies of images (BUU-LSPINE's ``1665-M-014Y1(1).jpg``).
The converters list folders through :func:`list_folder`, which sets junk aside
(counted, never read), and report a left-out image that has the same bytes as
another one as a copy of it (:func:`byte_copies`).
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Iterable, List, Sequence

from ...files import InvalidInput
from ..imaging.images import is_image_file

__all__ = ["JUNK_FILE_NAMES", "JUNK_FOLDER_NAMES", "is_junk", "FolderListing", "list_folder", "shared_stems",
           "shared_stem_error", "byte_copies"]

# OS and archive files that are never data (compared case-insensitively).
JUNK_FILE_NAMES = frozenset({".ds_store", "thumbs.db", "desktop.ini"})
JUNK_FOLDER_NAMES = frozenset({"__macosx"})


def is_junk(path) -> bool:
    """Whether a path is archive or OS junk: inside ``__MACOSX``, an AppleDouble
    ``._*`` file, or one of :data:`JUNK_FILE_NAMES`."""
    p = Path(path)
    return (any(part.lower() in JUNK_FOLDER_NAMES for part in p.parts) or p.name.startswith("._")
            or p.name.lower() in JUNK_FILE_NAMES)


@dataclass
class FolderListing:
    """The files directly in one folder, sorted by name.

    Attributes:
        images: image files (``vertkp.data.imaging.images.IMAGE_SUFFIXES``).
        labels: {stem: [label files of that stem]}, for the label suffixes asked for.
        junk: archive and OS junk (:func:`is_junk`).
        other: anything else (listed in reports, never read).
    """

    images: List[Path] = field(default_factory=list)
    labels: Dict[str, List[Path]] = field(default_factory=dict)
    junk: List[Path] = field(default_factory=list)
    other: List[Path] = field(default_factory=list)


def list_folder(folder, label_suffixes: Sequence[str] = ()) -> FolderListing:
    """List the files of ``folder`` (not its subfolders) by kind; see :class:`FolderListing`.

    Raises:
        InvalidInput: the folder cannot be listed (no permission, say).
    """
    out = FolderListing()
    suffixes = {s.lower() for s in label_suffixes}
    try:
        entries = sorted(Path(folder).iterdir())
    except OSError as e:
        raise InvalidInput(folder, f"the folder cannot be listed ({e.strerror or e}): check its permissions") from None
    for p in entries:
        if not p.is_file():
            continue
        if is_junk(p):
            out.junk.append(p)
        elif is_image_file(p):
            out.images.append(p)
        elif p.suffix.lower() in suffixes:
            out.labels.setdefault(p.stem, []).append(p)
        else:
            out.other.append(p)
    return out


def shared_stems(paths: Iterable[Path]) -> Dict[str, List[Path]]:
    """{stem: the paths of that stem} for each stem more than one of ``paths`` has (``a.jpg`` and
    ``a.png``): a label file named after the stem cannot tell which of them it labels."""
    by_stem: Dict[str, List[Path]] = {}
    for p in paths:
        by_stem.setdefault(Path(p).stem, []).append(Path(p))
    return {stem: ps for stem, ps in by_stem.items() if len(ps) > 1}


def shared_stem_error(image: Path, label: Path, images: Sequence[Path]) -> InvalidInput:
    """The refusal of ``image``, one of the ``images`` of one stem that the one ``label`` file would label."""
    return InvalidInput(image, f"{label.name} would label {len(images)} images of one stem ("
                        + ", ".join(p.name for p in images) + "): which one it labels cannot be told; rename or "
                        "remove the others")


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def byte_copies(candidates: Iterable[Path], pool: Iterable[Path]) -> Dict[Path, Path]:
    """For each candidate file, another file of ``pool`` with exactly the same bytes, if any.

    Only files of the same size are hashed (SHA-256), so a large pool costs a
    directory listing. Returns {candidate: the first such file of the pool, by name}.
    """
    candidates = list(candidates)
    sizes = {p.stat().st_size for p in candidates}
    by_size: Dict[int, List[Path]] = {}
    for p in sorted(pool):
        s = p.stat().st_size
        if s in sizes:
            by_size.setdefault(s, []).append(p)
    hashes: Dict[Path, str] = {}
    out = {}
    for c in candidates:
        twins = [p for p in by_size.get(c.stat().st_size, []) if p != c]
        if not twins:
            continue
        hashes.setdefault(c, _sha256(c))
        for p in twins:
            hashes.setdefault(p, _sha256(p))
            if hashes[p] == hashes[c]:
                out[c] = p
                break
    return out
