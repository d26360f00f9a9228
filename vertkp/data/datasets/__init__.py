"""The datasets vertkp reads, one folder each, and their registry :data:`SPECS`.

Each folder (``spondylolisthesis/``, ``buu_lspine/``) holds a dataset's layout, label
formats (reader beside writer), converter, phantom writer and its ``SPEC``
(:class:`~.spec.DatasetSpec`): everything the commands know of it. A new dataset is a new
folder like these and its ``SPEC`` in the line of :data:`SPECS`.
"""
from . import buu_lspine, spondylolisthesis
from .spec import DatasetSpec, PublishedArchive

__all__ = ["SPECS", "DatasetSpec", "PublishedArchive"]

# Command-line name -> spec, in the order the commands list them.
SPECS = {spec.name: spec for spec in (spondylolisthesis.SPEC, buu_lspine.SPEC)}
