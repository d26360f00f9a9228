"""The datasets vertkp reads, one folder each, and their registry :data:`SPECS`.

Each folder (``spondylolisthesis/``, ``buu_lspine/``) holds a dataset's layout, label
formats (reader beside writer), converter, phantom writer and its ``SPEC``
(:class:`~.spec.DatasetSpec`): everything the commands know of it. A new dataset is a new
folder like these and its name in ``FOLDERS``.
"""
from importlib import import_module

from .spec import DatasetSpec, PublishedArchive

__all__ = ["FOLDERS", "SPECS", "DatasetSpec", "PublishedArchive"]

# The dataset folders, in the order the commands list them.
FOLDERS = ("spondylolisthesis", "buu_lspine")
# Command-line name -> spec.
SPECS = {spec.name: spec for spec in (import_module(f"{__name__}.{folder}").SPEC for folder in FOLDERS)}
