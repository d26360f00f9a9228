"""Safe extraction of zip archives, which are trusted with nothing.

* before anything is written, every member is checked (``check_members``): an
  absolute path, a drive letter, a ``..`` component (zip slip), a symbolic link,
  an encrypted member, a name twice, or declared sizes that add up to more than
  ``max_bytes`` (zip bomb) refuse the whole archive, naming the member;
* while extracting, the bytes each member really holds are counted and its
  CRC-32 checked: a member that holds more than it declares aborts, so what is
  written never passes the declared total the bound caps;
* everything goes into a temporary folder beside the target, renamed into place
  only when complete, with a marker (``MARKER``) that lets the next run with the
  same archive reuse it. An error, a refusal or Ctrl-C removes everything written.

Archive and OS junk (``vertkp.data.raw.sources.is_junk``: ``__MACOSX/``, ``._*``,
``.DS_Store``, ``Thumbs.db``, ``desktop.ini``) is counted and not extracted. A member
named ``Dataset.zip`` (the Mendeley download's inner archive), in any folder, is
extracted next to itself with the same checks, then removed (the outer archive still
holds it).
"""
from __future__ import annotations

import copy
import glob
import hashlib
import os
import re
import shutil
import stat
import tempfile
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from tqdm import tqdm

from ... import __version__
from ...files import InvalidInput, read_json, write_json
from .sources import is_junk

__all__ = ["MAX_EXTRACT_BYTES", "MARKER", "NESTED_ZIP", "ArchiveError", "ExtractResult", "format_bytes",
           "sha256_file", "check_members", "extract_zip"]

# The most bytes one extraction may write (all members, a nested zip and its content both
# counted): 50 GiB. The Mendeley archive holds 716 JPEGs, most of them 640 x 640 (well under
# 1 GB); the full BUU-LSPINE holds 7,200 JPEGs of up to about 3000 x 3400 px (at most some
# 20 GB). 50 GiB is far above both, yet stops a zip bomb before it fills a disk.
MAX_EXTRACT_BYTES = 50 * 2**30
# The completion marker written inside a finished extraction (archive name, size, sha256).
MARKER = ".vertkp_extracted.json"
# Nested archives extracted in place: the Mendeley download's inner zip.
NESTED_ZIP = "Dataset.zip"
MAX_NESTING = 3  # zips inside zips, at most
PARTIAL = ".partial"  # suffix of the temporary extraction folder
CHUNK = 1 << 20  # bytes per read
DRIVE = re.compile(r"^[A-Za-z]:")


class ArchiveError(InvalidInput):
    """An archive refused or unreadable; ``path`` is the archive (or the target folder),
    ``where`` the member."""


@dataclass(frozen=True)
class ExtractResult:
    """What ``extract_zip`` did."""

    folder: Path  # the complete extraction
    n_files: int  # files written (nested Dataset.zip's content counted, the nested zip not)
    n_junk_skipped: int  # junk entries not extracted (is_junk)
    reused: bool  # True: a complete extraction of the same archive was already there
    n_bytes: int = 0  # bytes of the files extracted


def format_bytes(n: int) -> str:
    """``n`` bytes in the largest binary unit that keeps it >= 1 ("1.5 GiB")."""
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n} B" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")


def sha256_file(path, progress: bool = False) -> str:
    """SHA-256 of a file (lowercase hex), read in 1 MiB chunks."""
    path = Path(path)
    h = hashlib.sha256()
    with open(path, "rb") as f, tqdm(total=path.stat().st_size, unit="B", unit_scale=True, unit_divisor=1024,
                                      desc=f"sha256 {path.name}", disable=not progress) as bar:
        while chunk := f.read(CHUNK):
            h.update(chunk)
            bar.update(len(chunk))
    return h.hexdigest()


def _parts(name: str) -> list:
    """A member name's path components ("/" or "\\" separated; "" and "." dropped)."""
    return [p for p in name.replace("\\", "/").split("/") if p not in ("", ".")]


def _is_junk(name: str) -> bool:
    """Whether a member is archive or OS junk (``vertkp.data.raw.sources.is_junk``)."""
    return is_junk("/".join(_parts(name)))


def _problem(info: zipfile.ZipInfo) -> Optional[str]:
    """Why a member must not be extracted, or None."""
    name = info.filename.replace("\\", "/")
    if name.startswith("/"):
        return "an absolute path (it would be written outside the extraction folder)"
    if DRIVE.match(name):
        return "a path with a drive letter (it would be written outside the extraction folder)"
    if ".." in name.split("/"):
        return "a '..' component (zip slip: it would be written outside the extraction folder)"
    if stat.S_ISLNK(info.external_attr >> 16):
        return "a symbolic link (it could point outside the extraction folder; a dataset holds none)"
    if info.flag_bits & 0x1:
        return "encrypted (vertkp cannot extract it: unpack the archive by hand and pass the folder)"
    if not info.is_dir() and not _parts(name):
        return "a file without a name"
    return None


def _open_zip(path, shown_as: str) -> zipfile.ZipFile:
    try:
        return zipfile.ZipFile(path)
    except (zipfile.BadZipFile, zipfile.LargeZipFile) as e:
        raise ArchiveError(shown_as, f"not a zip archive, or a damaged or incomplete one ({e}): "
                                     "download it again") from None


def _checked(zf: zipfile.ZipFile, shown_as: str, max_bytes: int, already: int = 0) -> tuple:
    """(members to extract in archive order, number of junk entries); refuses as in the module
    docstring. ``already``: bytes this extraction wrote before (an outer archive's)."""
    members, n_junk, total, seen = [], 0, already, set()
    for info in zf.infolist():
        problem = _problem(info)
        if problem is None and not info.is_dir() and not _is_junk(info.filename):
            key = "/".join(_parts(info.filename))
            if key in seen:
                problem = "appears twice in the archive (the second copy would overwrite the first)"
            seen.add(key)
        if problem:
            raise ArchiveError(shown_as, f"{problem}; the archive is refused, nothing is left written",
                               f"member {info.filename!r}")
    for info in zf.infolist():
        if _is_junk(info.filename):
            n_junk += 1
            continue
        total += info.file_size
        if total > max_bytes:
            raise ArchiveError(
                shown_as, f"the declared sizes add up to {format_bytes(total)} at this member"
                f"{f' (with the {format_bytes(already)} written before it)' if already else ''}, more than the bound "
                f"of {format_bytes(max_bytes)} one extraction may write: refused as a possible zip bomb, nothing "
                "is left written (if the archive is genuine, pass a larger max_bytes, or unpack it by hand and pass "
                "the folder)", f"member {info.filename!r}")
        members.append(info)
    return members, n_junk


def check_members(zip_path, max_bytes: int = MAX_EXTRACT_BYTES) -> list:
    """The members ``extract_zip`` would write (``zipfile.ZipInfo``, junk left out), checked
    without writing anything.

    Raises:
        ArchiveError: naming the first unsafe member (see the module docstring), or the
            declared sizes passing ``max_bytes`` (bytes); or not a zip.
    """
    with _open_zip(zip_path, str(zip_path)) as zf:
        return _checked(zf, str(zip_path), max_bytes)[0]


@dataclass
class _Tally:
    """Counts of one extraction, nested zips included."""

    max_bytes: int
    progress: bool
    n_files: int = 0
    n_junk: int = 0
    n_written: int = 0  # bytes written, a nested zip removed since included: what max_bytes bounds
    n_bytes: int = 0  # bytes of the files kept


def _copy_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo, path: Path, tally: _Tally, shown_as: str, bar) -> None:
    """Write one member to ``path``, counting the bytes it really holds."""
    where = f"member {info.filename!r}"
    opened = copy.copy(info)
    opened.file_size = info.file_size + 1  # read one byte past the declared size: a lie shows
    opened.CRC = None  # checked below, once the real length is known
    crc, n = 0, 0
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        with zf.open(opened) as src, open(path, "xb") as out:
            while chunk := src.read(CHUNK):
                n += len(chunk)
                if n > info.file_size:
                    raise ArchiveError(shown_as, f"holds more than the {info.file_size} bytes it declares: "
                                                 "the extraction is aborted and everything written removed "
                                                 "(a zip bomb, or a damaged archive)", where)
                crc = zlib.crc32(chunk, crc)
                out.write(chunk)
                tally.n_written += len(chunk)
                tally.n_bytes += len(chunk)
                bar.update(len(chunk))
    except FileExistsError:
        raise ArchiveError(shown_as, f"would overwrite {path.name}, already extracted (a nested {NESTED_ZIP} "
                                     "whose files collide with the outer archive's?); nothing was kept",
                           where) from None
    except (zipfile.BadZipFile, zlib.error, EOFError) as e:
        raise ArchiveError(shown_as, f"damaged ({e}): download the archive again; nothing was kept", where) from None
    except NotImplementedError as e:
        raise ArchiveError(shown_as, f"{e}: unpack the archive by hand (e.g. with 7-Zip) and pass the folder",
                           where) from None
    except OSError as e:
        raise ArchiveError(shown_as, f"cannot be written ({e}); nothing was kept", where) from None
    if n != info.file_size or crc != info.CRC:
        raise ArchiveError(shown_as, f"damaged: it holds {n} bytes (CRC-32 {crc:08x}) but declares "
                                     f"{info.file_size} (CRC-32 {info.CRC:08x}); nothing was kept", where)


def _unpack(zip_path: Path, dest: Path, tally: _Tally, shown_as: str, depth: int = 0) -> None:
    """Extract ``zip_path`` into ``dest``, then each ``NESTED_ZIP`` it held next to itself."""
    nested = []
    with _open_zip(zip_path, shown_as) as zf:
        members, n_junk = _checked(zf, shown_as, tally.max_bytes, tally.n_written)
        tally.n_junk += n_junk
        with tqdm(total=sum(m.file_size for m in members), unit="B", unit_scale=True, unit_divisor=1024,
                  desc=f"extract {zip_path.name}", disable=not tally.progress) as bar:
            for info in members:
                path = dest.joinpath(*_parts(info.filename))
                if info.is_dir():
                    path.mkdir(parents=True, exist_ok=True)
                    continue
                _copy_member(zf, info, path, tally, shown_as, bar)
                tally.n_files += 1
                if path.name.lower() == NESTED_ZIP.lower():
                    nested.append((info.filename, path))
    for name, path in nested:
        inner = f"{shown_as}, member {name}"
        if depth + 1 >= MAX_NESTING:
            raise ArchiveError(inner, f"zips nested more than {MAX_NESTING} deep: refused, nothing was kept")
        _unpack(path, path.parent, tally, inner, depth + 1)
        tally.n_files -= 1
        tally.n_bytes -= path.stat().st_size
        path.unlink()


def _read_marker(folder: Path) -> Optional[dict]:
    try:
        marker = read_json(folder / MARKER)
    except (OSError, ValueError):
        return None
    return marker if isinstance(marker, dict) else None


def extract_zip(zip_path, target, max_bytes: int = MAX_EXTRACT_BYTES, progress: bool = True,
                sha256: Optional[str] = None) -> ExtractResult:
    """Extract a zip safely into the folder ``target`` (see the module docstring).

    Args:
        max_bytes: the most bytes the extraction may write, nested zips included.
        progress: show tqdm bars (checksum, extraction).
        sha256: the archive's SHA-256 when already known (else computed: the marker records it).

    Returns:
        ExtractResult; ``reused`` when ``target`` already holds the complete extraction of
        this archive (same size and SHA-256), which is then not extracted again.

    Raises:
        ArchiveError: an unsafe, damaged or oversized archive (nothing is left written), or
            ``target`` exists without the marker of this archive (it is never overwritten).
    """
    zip_path, target = Path(zip_path), Path(target)
    if not zip_path.is_file():
        raise ArchiveError(zip_path, "no such archive")
    size = zip_path.stat().st_size
    if target.exists() or target.is_symlink():
        marker = _read_marker(target) if target.is_dir() else None
        digest = (sha256 or sha256_file(zip_path, progress)) if marker else None
        if marker and marker.get("sha256") == digest and marker.get("size") == size:
            return ExtractResult(target, int(marker.get("n_files", 0)), int(marker.get("n_junk_skipped", 0)), True,
                                 int(marker.get("n_bytes", 0)))
        if marker:
            raise ArchiveError(target, f"holds the extraction of another archive ({marker.get('archive')}, sha256 "
                                       f"{marker.get('sha256')}), not of {zip_path.name} (sha256 {digest}): "
                                       "remove it, or pass another --extract-to")
        raise ArchiveError(target, f"exists but is not a complete extraction of {zip_path.name} (it has no {MARKER}); "
                                   "vertkp never overwrites it: remove it, or pass another --extract-to")
    check_members(zip_path, max_bytes)  # refuse before anything is written
    digest = sha256 or sha256_file(zip_path, progress)
    created = [p for p in (target.parent, *target.parent.parents) if not p.exists()]
    target.parent.mkdir(parents=True, exist_ok=True)
    for leftover in target.parent.glob(f".{glob.escape(target.name)}.*{PARTIAL}"):  # from a killed run
        shutil.rmtree(leftover, ignore_errors=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=PARTIAL, dir=target.parent))
    tally = _Tally(max_bytes, progress)
    try:
        _unpack(zip_path, tmp, tally, str(zip_path))
        write_json(tmp / MARKER, {"archive": zip_path.name, "size": size, "sha256": digest, "n_files": tally.n_files,
                                  "n_junk_skipped": tally.n_junk, "n_bytes": tally.n_bytes, "vertkp": __version__})
        os.rename(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        for p in created:  # deepest first
            if p.is_dir() and not any(p.iterdir()):
                p.rmdir()
        raise
    return ExtractResult(target, tally.n_files, tally.n_junk, False, tally.n_bytes)
