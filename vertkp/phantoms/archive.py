"""A phantom set packed the way the real dataset is downloaded (``vertkp phantoms --archive``).

The Mendeley download is an outer zip whose folder holds a nested ``Dataset.zip``
(``Dataset/Train/Keypointrcnn_data/...``) beside the rest; a BUU-LSPINE copy
circulates as a zip of its folders. ``pack`` turns a phantom folder into such a
zip, with fixed times and sorted members (same seed, same bytes), macOS junk at
its top as a Mac's archiver leaves it, and ``phantom_truth.json`` at its root with
file names relative to the zip's root (what the COCO files hold once ``vertkp
convert`` has extracted it).
"""
from __future__ import annotations

import io
import zipfile
from pathlib import Path

from vertkp.data.datasets import DatasetSpec
from vertkp.files import atomic_open, json_text, read_json

from .truth import TRUTH_FILE

__all__ = ["pack"]

_TIME = (1980, 1, 1, 0, 0, 0)


def _add(zf: zipfile.ZipFile, name: str, data: bytes) -> None:
    info = zipfile.ZipInfo(name, date_time=_TIME)
    info.compress_type = zipfile.ZIP_DEFLATED
    info.external_attr = 0o644 << 16
    zf.writestr(info, data)


def _zip_bytes(members: dict) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name in sorted(members):
            _add(zf, name, members[name])
    return buf.getvalue()


def pack(folder: Path, spec: DatasetSpec, archive: Path) -> Path:
    """Write ``archive`` (a .zip) from the phantom ``folder`` of the dataset ``spec``, atomically.

    The folder's files go under ``<spec.phantom_archive_folder>/`` (``top``), its macOS junk under
    ``__MACOSX/<top>/``, and the tree of ``spec.phantom_nested_folder``, if any, into a nested
    ``<top>/<that folder>.zip`` (Mendeley: ``Dataset.zip``); ``phantom_truth.json`` at the root.
    """
    folder, top, nested_folder = Path(folder), spec.phantom_archive_folder, spec.phantom_nested_folder
    outer, nested = {}, {}
    for p in sorted(folder.rglob("*")):
        if not p.is_file() or p.name == TRUTH_FILE:
            continue
        rel = p.relative_to(folder).as_posix()
        if rel.split("/")[0] == "__MACOSX":
            outer[f"__MACOSX/{top}/{rel.split('/', 1)[1]}"] = p.read_bytes()
        elif rel.split("/")[0] == nested_folder:
            nested[rel] = p.read_bytes()
        else:
            outer[f"{top}/{rel}"] = p.read_bytes()
    if nested:
        outer[f"{top}/{nested_folder}.zip"] = _zip_bytes(nested)
    truth = read_json(folder / TRUTH_FILE)
    for rec in truth["images"]:
        for key in ("file_name", "label_file", "twin_label_file"):
            if rec.get(key):
                rec[key] = f"{top}/{rec[key]}"
    for key in ("junk", "strays"):
        truth[key] = [f"{top}/{j}" if isinstance(j, str) else {k: f"{top}/{v}" for k, v in j.items()}
                      for j in truth.get(key, [])]
    outer[TRUTH_FILE] = json_text(truth, nan="error").encode("utf-8")
    with atomic_open(archive, "wb") as f:
        f.write(_zip_bytes(outer))
    return Path(archive)
