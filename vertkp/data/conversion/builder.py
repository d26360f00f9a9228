"""What both converters share: source vertebrae -> checked COCO records -> files.

A converter reads its source into ``SourceVertebra`` objects, one per labelled
vertebra, and hands them to :class:`CocoBuilder`, which validates them, puts
the corners in the canonical order, and collects COCO images/annotations per
split. ``finish`` writes every output file atomically, with the report.

Where the labels name no level but every image is labelled down to a known one
(the spec's ``bottom_level``: Mendeley's S1), the builder names the vertebrae
upward from it (:func:`anchored_levels`) and marks the image
``level_source: "anchored_bottom_<level>"``; an image without that field has the
data's own levels (or none).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from ...anatomy import LEVELS, level_index, levels_up_from
from ...files import InvalidInput, write_json_files
from ...grading import order_spine
from ...keypoints import canonical_order
from .coco import make_annotation, make_coco
from .report import ConversionReport

__all__ = ["SourceVertebra", "CocoBuilder", "order_corners", "anchored_levels", "anchored_level_source"]


@dataclass
class SourceVertebra:
    """One vertebra as the source gives it.

    Attributes:
        points: [4, 2] or [2, 2] pixels (x right, y down) in source order;
            2 points means the superior endplate only (BUU's S1).
        superior: indices of the superior endplate in ``points``, source-left
            first; the other indices, in order, form the inferior endplate.
        where: where it is in its file, for messages ("line 3", "vertebra 2").
        level: "L1".."S1" when the source says, else None.
        source_label: the source's label values for this vertebra.
        coco_visibility: COCO flag per source point (2 labelled, 1 labelled
            but not visible); None means all 2.
    """

    points: np.ndarray
    superior: tuple
    where: str
    level: Optional[str] = None
    source_label: Optional[list] = None
    coco_visibility: Optional[Sequence[int]] = None


def order_corners(v: SourceVertebra):
    """Canonical corners of a source vertebra.

    Returns:
        (corners [4, 2], visible [4] bool, flags [4] int, reason) where
        ``reason`` is "" when the source order was already canonical.

    Raises:
        ValueError: degenerate or malformed corners (message without path).
    """
    p = np.asarray(v.points, dtype=np.float64)
    flags = list(v.coco_visibility) if v.coco_visibility is not None else [2] * len(p)
    if p.shape == (2, 2):
        # superior endplate only: left/right along the endplate, towards +x
        i, j = v.superior
        a, b = p[i], p[j]
        if np.allclose(a, b):
            raise ValueError("degenerate endplate: both corners coincide")
        swapped = (b - a)[0] < 0
        left, right = (b, a) if swapped else (a, b)
        fl = [flags[j], flags[i]] if swapped else [flags[i], flags[j]]
        corners = np.stack([left, right, np.zeros(2), np.zeros(2)])
        reason = "source left/right order is swapped" if swapped else ""
        return corners, np.array([True, True, False, False]), fl + [0, 0], reason
    order = canonical_order(p, superior=v.superior)
    # carry each point's flag along with it
    src_flags = {tuple(pt): f for pt, f in zip(p.tolist(), flags)}
    fl = [src_flags[tuple(c)] for c in order.corners.tolist()]
    return order.corners, np.ones(4, dtype=bool), fl, order.reason


def anchored_levels(corners: np.ndarray, bottom_level: str) -> list:
    """Level names of one image's vertebrae, counted upward from its most caudal one.

    The cranio-caudal order is ``vertkp.grading.order_spine``'s (not file order, not
    image y); the most caudal vertebra is ``bottom_level``, the next one up the level
    above it in ``vertkp.anatomy.LEVELS``, and so on. An order that is a guess (one
    vertebra, a rotated image without an area trend) still names them.

    Args:
        corners: [N, 4, 2] px, canonical order, NaN where unlabelled.
        bottom_level: a name of ``LEVELS`` ("S1").

    Returns:
        [N] level names in input order; None for a vertebra above ``LEVELS[0]``.
    """
    c = np.asarray(corners, dtype=np.float64).reshape(-1, 4, 2)
    names = levels_up_from(bottom_level, len(c))
    out: list = [None] * len(c)
    for name, i in zip(names, order_spine(c).order[::-1]):  # caudal first
        out[int(i)] = name
    return out


def anchored_level_source(bottom_level: str) -> str:
    """The image field ``level_source`` of levels named by :func:`anchored_levels`."""
    return f"anchored_bottom_{bottom_level}"


class CocoBuilder:
    """Collects checked COCO images and annotations per split.

    Image and annotation ids run across all splits, so they are unique over
    the train/val/test files of one conversion.

    Args:
        bottom_level: the spec's ``bottom_level``: an image whose vertebrae carry no
            level gets them named upward from it (:func:`anchored_levels`) and the
            image field ``level_source`` (:func:`anchored_level_source`); None: the
            levels are the data's.
    """

    def __init__(self, report: ConversionReport, description: str, bottom_level: Optional[str] = None):
        if bottom_level is not None and level_index(bottom_level) is None:
            raise ValueError(f"bottom_level {bottom_level!r} is not one of {LEVELS}")
        self.report = report
        self.description = description
        self.bottom_level = bottom_level
        self.images: dict = {}
        self.annotations: dict = {}
        self._next_image_id = 1
        self._next_ann_id = 1

    def add_image(
        self,
        split: str,
        image_path: Path,
        file_name: str,
        width: int,
        height: int,
        vertebrae: Sequence[SourceVertebra],
        label_path: Optional[Path] = None,
        **extra,
    ) -> dict:
        """Check ``vertebrae`` and add the image with its annotations.

        All-or-nothing: when one vertebra is invalid, InvalidInput is raised
        (naming ``label_path`` and the vertebra) and nothing of the image is
        added; the caller decides whether to stop or skip the image. A label
        file without any vertebra is invalid too: the image would teach a model
        that its vertebrae are background.
        """
        src = label_path or image_path
        if label_path is not None and not vertebrae:
            raise InvalidInput(label_path, "the label file holds no vertebra: the image would teach a model that its "
                                           "vertebrae are background; label them, or remove the label file to leave "
                                           "the image out")
        image_id = self._next_image_id
        checked = []
        for v in vertebrae:
            p = np.asarray(v.points, dtype=np.float64)
            if not np.all(np.isfinite(p)):
                raise InvalidInput(src, "corner coordinates are not finite (NaN or inf)", v.where)
            outside = (p[:, 0] < 0) | (p[:, 0] > width) | (p[:, 1] < 0) | (p[:, 1] > height)
            if outside.any():
                k = int(np.argmax(outside))
                raise InvalidInput(
                    src,
                    f"corner {k + 1} at ({p[k, 0]:.2f}, {p[k, 1]:.2f}) lies outside the {width}x{height} image",
                    v.where,
                )
            try:
                corners, visible, flags, reason = order_corners(v)
            except ValueError as e:
                raise InvalidInput(src, str(e), v.where) from None
            if reason:
                self.report.warn(split, src, f"corners re-ordered by geometry: {reason}", v.where)
            checked.append((v, corners, visible, flags))
        levels = [v.level for v, *_ in checked]
        anchored = self.bottom_level is not None and checked and all(lv is None for lv in levels)
        if anchored:
            levels = anchored_levels(np.stack([np.where(vis[:, None], c, np.nan) for _, c, vis, _ in checked]),
                                     self.bottom_level)
        anns = [
            make_annotation(self._next_ann_id + k, image_id, corners, visible, width, height, vertebra_level=level,
                            source_label=v.source_label, coco_visibility=flags)
            for k, ((v, corners, visible, flags), level) in enumerate(zip(checked, levels))
        ]
        image = {"id": image_id, "file_name": file_name, "width": int(width), "height": int(height), **extra}
        if anchored:
            image["level_source"] = anchored_level_source(self.bottom_level)
        self.images.setdefault(split, []).append(image)
        self.annotations.setdefault(split, []).extend(anns)
        self._next_image_id += 1
        self._next_ann_id += len(anns)
        self.report.images[split] += 1
        self.report.vertebrae[split] += len(anns)
        return image

    def finish(self, output: Path, splits: Sequence[str], image_root: Optional[Path] = None) -> list:
        """Write ``output/<split>.json`` for each split that has images (and
        always for train and val), plus ``conversion_report.json``.

        ``image_root``: the folder the images' ``file_name`` are relative to; it
        goes into each file's ``info.image_root``, relative to ``output``.

        Returns:
            the paths written.
        """
        files = {}
        rel = os.path.relpath(Path(image_root).resolve(), Path(output).resolve()) if image_root is not None else None
        for split in splits:
            if split in ("train", "val") or self.images.get(split):
                files[Path(output) / f"{split}.json"] = make_coco(
                    self.images.get(split, []),
                    self.annotations.get(split, []),
                    f"{self.description}, {split} split",
                    image_root=None if rel is None else Path(rel).as_posix(),
                )
        files[Path(output) / "conversion_report.json"] = self.report.as_dict()
        write_json_files(files, nan="error")
        return list(files)
