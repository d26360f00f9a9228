"""Reading input files and writing vertkp's output files: every JSON and CSV goes through here.

* Atomic: a file is written under a temporary name in its folder and renamed
  into place once complete, so a crash or an error never leaves a
  half-written file (``write_json_files`` does this for several files at
  once: all of them are written, or none).
* One NaN policy for JSON, chosen by the caller:
  ``nan="null"`` writes NaN and +-inf as ``null`` (results, where
  "undefined" is a legitimate value: an MRE over no corner, a slip that could
  not be measured); ``nan="error"`` refuses them (datasets, where a NaN is a
  bug), naming where in the object it is.
* numpy scalars and arrays, tuples and paths are written as JSON numbers,
  lists and strings.
* Streamed: ``write_json_stream`` takes lists as iterators (generators) and writes
  them item by item, never held in memory, into the file ``write_json`` writes.
* Read as written: ``read_text`` and ``read_json`` take UTF-8 (with or without the
  byte-order mark Windows editors write) and say what a file in another encoding is;
  ``read_input_text`` and ``read_input_json`` read a file a user gave, whose every problem is
  an :class:`InvalidInput` naming the file (the one bad-input error of vertkp).
* ``output_folder`` refuses an output folder that a file stands in the way of, before
  anything is written.
"""
from __future__ import annotations

import codecs
import csv
import io
import json
import math
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterable, Iterator, Mapping, Optional, Sequence, Union

import numpy as np

__all__ = ["InvalidInput", "read_input_text", "read_input_json", "NAN_POLICIES", "jsonable", "json_text", "write_json", "write_json_stream", "write_json_files",
           "write_text", "write_csv", "csv_cell", "atomic_open", "read_text", "read_json", "output_folder"]

NAN_POLICIES = ("null", "error")
PathLike = Union[str, os.PathLike]
# Byte-order marks of the encodings a text file may be saved in instead of UTF-8 (UTF-32 first:
# its little-endian mark starts with UTF-16's).
_OTHER_BOMS = ((codecs.BOM_UTF32_LE, "UTF-32"), (codecs.BOM_UTF32_BE, "UTF-32"), (codecs.BOM_UTF16_LE, "UTF-16"),
               (codecs.BOM_UTF16_BE, "UTF-16"))


def jsonable(obj, nan: str = "null", where: str = "$"):
    """A copy of ``obj`` made of JSON types only.

    Args:
        obj: dicts (keys become strings), lists, tuples, numpy arrays and
            scalars, numbers, strings, None, bools, paths.
        nan: "null" (NaN/inf -> None) or "error" (ValueError naming ``where``).
        where: the location printed in errors, JSONPath style.

    Raises:
        ValueError: a non-finite number under ``nan="error"``, or an unknown policy.
        TypeError: an object JSON has no type for.
    """
    if nan not in NAN_POLICIES:
        raise ValueError(f"nan must be one of {NAN_POLICIES}, got {nan!r}")
    if isinstance(obj, Mapping):
        return {str(k): jsonable(v, nan, f"{where}.{k}") for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v, nan, f"{where}[{i}]") for i, v in enumerate(obj)]
    if isinstance(obj, np.ndarray):
        return jsonable(obj.tolist(), nan, where)
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    if isinstance(obj, float) and not math.isfinite(obj):
        if nan == "error":
            raise ValueError(f"{obj} at {where}: this file must hold finite numbers only")
        return None
    if obj is None or isinstance(obj, (str, bool, int, float)):
        return obj
    raise TypeError(f"{type(obj).__name__} at {where} is not JSON serialisable")


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


# The permissions of a file written in place (open() asks 0o666, less the umask): a temporary file
# is made 0o600, and a file renamed from it would keep that, unreadable to the other users of a
# shared machine or of a Docker mount.
_FILE_MODE = 0o666 & ~_umask()


def _temporary(path: Path):
    """(fd, name) of a new temporary file beside ``path``, with the permissions of a plain open()."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    if hasattr(os, "fchmod"):
        os.fchmod(fd, _FILE_MODE)
    return fd, tmp


@contextmanager
def atomic_open(path: PathLike, mode: str = "w") -> Iterator[io.IOBase]:
    """Open ``path`` for writing under a temporary name; rename it into place on a
    clean exit, remove it on an error. Parent folders are created."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = _temporary(path)
    try:
        with os.fdopen(fd, mode, **({} if "b" in mode else {"encoding": "utf-8", "newline": ""})) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def json_text(obj, nan: str = "null", indent: Optional[int] = 1) -> str:
    """The text :func:`write_json` writes for ``obj`` (to put into an archive, say)."""
    return json.dumps(jsonable(obj, nan), indent=indent, allow_nan=False) + "\n"


def write_json(path: PathLike, obj, *, nan: str = "null", indent: Optional[int] = 1) -> Path:
    """Write ``obj`` as JSON to ``path`` atomically (see the module docstring for ``nan``)."""
    text = json_text(obj, nan, indent)  # serialise first: an error leaves no file at all
    with atomic_open(path) as f:
        f.write(text)
    return Path(path)


def _streams(obj) -> bool:
    """Whether ``obj`` is, or holds, an iterator (what :func:`write_json_stream` streams)."""
    if isinstance(obj, Iterator):
        return True
    if isinstance(obj, Mapping):
        return any(_streams(v) for v in obj.values())
    return isinstance(obj, (list, tuple)) and any(_streams(v) for v in obj)


def _json_chunks(obj, nan: str, indent: Optional[int], depth: int, where: str) -> Iterator[str]:
    """The text json.dumps writes for ``obj`` nested ``depth`` levels deep, in pieces: an
    iterator, and a container holding one, item by item; anything else in one piece."""
    if not _streams(obj):
        text = json.dumps(jsonable(obj, nan, where), indent=indent, allow_nan=False)
        yield text.replace("\n", "\n" + " " * (indent * depth)) if indent else text
        return
    mapping = isinstance(obj, Mapping)
    items = obj.items() if mapping else enumerate(obj)
    inner = "" if indent is None else "\n" + " " * (indent * (depth + 1))
    sep = ", " if indent is None else ","
    yield "{" if mapping else "["
    empty = True
    for key, value in items:
        yield ("" if empty else sep) + inner
        if mapping:
            yield json.dumps(str(key)) + ": "
        yield from _json_chunks(value, nan, indent, depth + 1, f"{where}.{key}" if mapping else f"{where}[{key}]")
        empty = False
    if not empty and indent is not None:
        yield "\n" + " " * (indent * depth)
    yield "}" if mapping else "]"


def write_json_stream(path: PathLike, obj, *, nan: str = "null", indent: Optional[int] = 1) -> Path:
    """:func:`write_json` of an object whose lists may be iterators (generators): each is written
    item by item and never held in memory, and the file is byte for byte what ``write_json``
    writes with those iterators as lists. Atomic: an error on the way leaves no file."""
    with atomic_open(path) as f:
        for chunk in _json_chunks(obj, nan, indent, 0, "$"):
            f.write(chunk)
        f.write("\n")
    return Path(path)


def write_json_files(files: Mapping[PathLike, object], *, nan: str = "error", indent: Optional[int] = 1) -> list:
    """Write several JSON files, all or none: every object is serialised first, then
    each file is staged under a temporary name, and only when all are staged are they
    renamed into place. Returns the paths."""
    texts = {Path(p): json_text(obj, nan, indent) for p, obj in files.items()}
    staged = []
    try:
        for path, text in texts.items():
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = _temporary(path)
            staged.append((tmp, path))
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(text)
                f.flush()
                os.fsync(f.fileno())
    except BaseException:
        for tmp, _ in staged:
            Path(tmp).unlink(missing_ok=True)
        raise
    for tmp, path in staged:
        os.replace(tmp, path)
    return list(texts)


def write_text(path: PathLike, text: str) -> Path:
    """Write a text file atomically."""
    with atomic_open(path) as f:
        f.write(text)
    return Path(path)


def csv_cell(value, float_format: Optional[str] = None) -> str:
    """How a value is written in a CSV cell: None, NaN and inf as an empty cell,
    floats with ``float_format`` (e.g. "{:.4g}") or, by default, rounded to 6
    decimals (1e-6 px) in their shortest form, without "-0.0"."""
    if value is None:
        return ""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float):
        if not math.isfinite(value):
            return ""
        return float_format.format(value) if float_format else repr(round(value, 6) + 0.0)
    return str(value)


def write_csv(path: PathLike, rows: Iterable[Mapping], columns: Sequence[str], *,
              float_format: Optional[str] = None, cell: Callable = csv_cell) -> Path:
    """Write ``rows`` (dicts) with exactly ``columns``, a missing key as an empty cell,
    atomically; values go through ``cell(value, float_format)``."""
    with atomic_open(path) as f:
        w = csv.writer(f)
        w.writerow(list(columns))
        for r in rows:
            w.writerow([cell(r.get(c), float_format) for c in columns])
    return Path(path)


def read_text(path: PathLike) -> str:
    """Read a text file saved as UTF-8, with or without a byte-order mark.

    Raises:
        OSError: the file cannot be read.
        ValueError: it is not UTF-8; the message says what it seems to be and to save it as
            UTF-8 (it does not name the file: the caller does).
    """
    data = Path(path).read_bytes()
    for bom, encoding in _OTHER_BOMS:
        if data.startswith(bom):
            raise ValueError(f"the text is {encoding} (it starts with a {encoding} byte-order mark), not UTF-8: "
                             "save it as UTF-8")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise ValueError(f"not UTF-8 text (byte {e.start} is {data[e.start]:#04x}): save it as UTF-8") from None


def read_json(path: PathLike):
    """Read a JSON file saved as UTF-8, with or without a byte-order mark (:func:`read_text`).

    Raises:
        OSError: the file cannot be read.
        json.JSONDecodeError: it is not JSON (a ValueError: catch it first).
        ValueError: it is not UTF-8.
    """
    return json.loads(read_text(path))


def output_folder(path: PathLike, flag: str = "--output") -> Path:
    """``path`` as an output folder, checked before anything is written into it.

    Raises:
        ValueError: ``path``, or the nearest of its parents that exists, is not a folder; the
            message names ``flag``, the path and the file in the way.
    """
    path = Path(path)
    for p in (path, *path.parents):
        if p.exists():
            if not p.is_dir():
                what = "is a file" if p == path else f"cannot be made: {p} is a file"
                raise ValueError(f"{flag} {path} {what}, not a folder: give a folder (it is made if missing)")
            break
    return path


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


def read_input_text(path) -> str:
    """The text of an input file (UTF-8, a byte-order mark allowed: ``vertkp.files.read_text``).

    Raises:
        InvalidInput: naming the file: it cannot be read, or it is not UTF-8 (saying what it is).
    """
    try:
        return read_text(path)
    except ValueError as e:  # not UTF-8
        raise InvalidInput(path, str(e)) from None
    except OSError as e:
        raise InvalidInput(path, f"cannot be read ({e.strerror or e})") from None


def read_input_json(path):
    """The JSON data of an input file (:func:`read_input_text`).

    Raises:
        InvalidInput: as :func:`read_input_text`, or malformed (truncated) JSON.
    """
    text = read_input_text(path)
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise InvalidInput(path, f"malformed JSON ({e})") from None
