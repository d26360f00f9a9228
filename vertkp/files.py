"""Writing vertkp's output files: every JSON and CSV goes through here.

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
"""
from __future__ import annotations

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

__all__ = ["NAN_POLICIES", "jsonable", "json_text", "write_json", "write_json_stream", "write_json_files",
           "write_text", "write_csv", "csv_cell", "atomic_open", "read_json"]

NAN_POLICIES = ("null", "error")
PathLike = Union[str, os.PathLike]


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


@contextmanager
def atomic_open(path: PathLike, mode: str = "w") -> Iterator[io.IOBase]:
    """Open ``path`` for writing under a temporary name; rename it into place on a
    clean exit, remove it on an error. Parent folders are created."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
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
            fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
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


def read_json(path: PathLike):
    """Read a JSON file (UTF-8)."""
    with open(path, encoding="utf-8") as f:
        return json.load(f)
