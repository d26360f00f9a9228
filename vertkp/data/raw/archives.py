"""Dataset archives: the published downloads, their checksums, and what a converter reads.

The published downloads are the datasets' archives (``DatasetSpec.published`` in
``vertkp.data.datasets``); ``vertkp download`` fetches them, and the initial weights the
configs name (``vertkp.modeling.published``).

``open_dataset(root, spec)`` takes what a user has (an unpacked folder, or a
``.zip``: the Mendeley download, its inner ``Dataset.zip``, or a zip of
BUU-LSPINE's folders), extracts a zip safely (``vertkp.data.raw.extraction``), and
returns the folder a converter reads with where it came from.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from ..datasets.spec import DatasetSpec
from .extraction import MAX_EXTRACT_BYTES, ArchiveError, ExtractResult, extract_zip, format_bytes, sha256_file

__all__ = ["DatasetRoot", "verify_sha256", "open_dataset"]


@dataclass
class DatasetRoot:
    """The folder a converter reads, and where it came from."""

    folder: Path
    archive: Optional[Path] = None  # the zip it was extracted from; None for a folder root
    sha256: Optional[str] = None  # of the archive
    verified: Optional[bool] = None  # the archive's checksum is the expected one; None: nothing to compare
    extraction: Optional[ExtractResult] = None
    notes: list = field(default_factory=list)  # readable lines for the conversion report and summary


def verify_sha256(digest: str, spec: DatasetSpec, expected="published") -> tuple:
    """Compare an archive's SHA-256 with the expected one.

    Args:
        digest: the archive's SHA-256.
        spec: the dataset.
        expected: "published" (``spec.published``'s, if any), a hex digest, or None.

    Returns:
        (verified: True/False, or None when there is nothing to compare; a readable line)
    """
    published = spec.published
    if expected == "published":
        expected = published.sha256 if published else None
    if expected is None:
        return None, f"sha256 {digest} (no published checksum for {spec.name})"
    expected = expected.lower()
    is_published = published is not None and expected == published.sha256
    what = f"the published v{published.version} archive" if is_published else "the expected archive"
    if digest == expected:
        return True, f"verified: {what} (sha256 {digest})"
    return False, f"not {what} (sha256 {digest}, expected {expected})"


def open_dataset(root, spec: DatasetSpec, extract_to=None, progress: bool = True, expected_sha256="published",
                 max_bytes: int = MAX_EXTRACT_BYTES) -> DatasetRoot:
    """The dataset folder a converter reads, from a folder or a zip.

    Args:
        root: a folder (returned as is) or a ``.zip`` (the Mendeley download, its
            ``Dataset.zip``, or a zip of BUU-LSPINE's ``AP/`` and ``LA/`` folders).
        spec: the dataset (``vertkp.data.datasets.SPECS``).
        extract_to: where a zip is extracted; default ``<zip's folder>/<spec.folder>``.
        expected_sha256: "published" (``spec.published``'s, if any), a hex digest, or None.
            A mismatch is not an error: ``verified`` is False and a note says so.
        max_bytes: passed to ``extract_zip``.

    Returns:
        DatasetRoot; for a zip, ``folder`` is the extraction (the converters look inside it:
        ``spec.find_root``).

    Raises:
        ArchiveError: no such path, not a folder or zip, or what ``extract_zip`` refuses.
    """
    root = Path(root)
    if root.is_dir():
        return DatasetRoot(root)
    if not root.exists():
        raise ArchiveError(root, "no such file or folder: pass the unpacked dataset folder or its .zip archive")
    if root.suffix.lower() != ".zip":
        raise ArchiveError(root, "neither a folder nor a .zip archive: pass the unpacked dataset folder or its .zip")
    digest = sha256_file(root, progress)
    verified, note = verify_sha256(digest, spec, expected_sha256)
    target = Path(extract_to) if extract_to is not None else root.parent / spec.folder
    ex = extract_zip(root, target, max_bytes, progress, sha256=digest)
    if ex.reused:
        notes = [note, f"reused the complete extraction of {root.name} in {ex.folder}"]
    else:
        notes = [note, f"extracted {ex.n_files} files ({format_bytes(ex.n_bytes)}) from {root.name} to {ex.folder} "
                       f"({ex.n_junk_skipped} junk entries skipped)"]
    return DatasetRoot(ex.folder, root, digest, verified, ex, notes)
