"""What identifies a dataset: its :class:`DatasetSpec`, plain data read by every command."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, Optional, Tuple

__all__ = ["PublishedArchive", "DatasetSpec"]


@dataclass(frozen=True)
class PublishedArchive:
    """A dataset's published download."""

    url: str  # what a browser or ``vertkp download`` fetches
    sha256: str  # of the whole downloaded file, lowercase hex
    file_name: str  # the name vertkp saves it under
    doi: str
    version: int

    @property
    def doi_url(self) -> str:
        return f"https://doi.org/{self.doi}"


@dataclass(frozen=True)
class DatasetSpec:
    """One dataset: its names, where its files are, how it is converted, registered and imitated.

    Attributes:
        name: its name on the command line (``vertkp convert --dataset``, ``vertkp download``,
            ``vertkp phantoms --layout``).
        title: one line for ``--help``.
        folder: its folder under the datasets root (``$VERTKP_DATASETS``), where a zip of it is
            extracted by default.
        published: its public download, or None.
        access: how to get it when it has no public download (``vertkp download NAME`` prints it).
        find_root: the folder the converter reads, from the unpacked dataset (or its extraction).
        convert: ``convert(root, output=, skip_invalid=, progress=, **options)`` -> ``ConversionReport``.
        options: the converter's own keyword options, each a ``vertkp convert`` flag (``view`` is
            ``--view``); the other datasets refuse those flags.
        coco_folder: the COCO files' folder in the dataset folder, formatted with the options.
        splits: the COCO files a conversion can write (``<split>.json``).
        registered: detectron2 dataset name -> (its COCO file in the dataset folder, the
            ``vertkp convert`` flags besides ``--dataset`` and ``--root`` that make it).
        phantom_writer: the function writing phantoms in its raw layout, called as
            ``phantom_writer(out, num_images, seed, image_size, progress, difficulty, label_noise)``
            and returning the truth's ``images`` (and ``junk``, ``strays``, ``patients``, ... if any).
        phantom_image_size: the phantoms' default image size, px.
        phantom_original_sizes: without an image size (and not ``clean``), the phantoms take the
            originals' sizes instead of ``phantom_image_size``.
        phantom_archive_folder: the folder inside the zip ``vertkp phantoms --archive`` writes.
        phantom_nested_folder: a folder the zip holds as a nested ``<folder>.zip``, or None.
        bottom_level: the level of the most caudal labelled vertebra of every image when the
            labels name no level ("S1": the converter names the vertebrae upward from it, see
            ``vertkp.data.conversion.builder.anchored_levels``); None where the data names levels.
    """

    name: str
    title: str
    folder: str
    published: Optional[PublishedArchive]
    access: str
    find_root: Callable[[Path], Path]
    convert: Callable
    options: Tuple[str, ...]
    coco_folder: str
    splits: Tuple[str, ...]
    registered: Dict[str, Tuple[str, Tuple[str, ...]]]
    phantom_writer: Callable[..., dict]
    phantom_image_size: int
    phantom_original_sizes: bool
    phantom_archive_folder: str
    phantom_nested_folder: Optional[str]
    bottom_level: Optional[str] = None
