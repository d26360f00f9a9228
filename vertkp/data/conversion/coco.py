"""Building and writing vertkp's COCO keypoint files.

A vertkp COCO file has one category ("vertebra") with 4 keypoints in the
canonical order TL, TR, BL, BR (``vertkp.keypoints``). Coordinates are the
source annotation's pixels (x right, y down), written unchanged.
"""
from __future__ import annotations

from typing import Optional, Sequence

import numpy as np
from shapely.geometry import Polygon

from ...keypoints import KEYPOINT_NAMES, OUTLINE_ORDER, SKELETON

__all__ = [
    "BOX_PAD_FRACTION",
    "S1_DEPTH_FRACTION",
    "CATEGORY",
    "padded_box",
    "body_outline",
    "make_annotation",
    "make_coco",
]

# Keypoint R-CNN predicts a corner as the argmax of a heatmap inside the box,
# so a corner on the box edge is lost as soon as a detected box is a little
# tight. Boxes are therefore the tight box of the corners grown on each side
# by this fraction of its longer side (then clipped to the image).
BOX_PAD_FRACTION = 0.10
# A vertebra labelled only by its superior endplate (BUU's S1) still needs a
# box around its body: the body is taken to reach this fraction of the
# endplate length beyond the endplate, perpendicular to it, away from the
# image top (the sacral body's usual depth-to-width ratio is about this).
S1_DEPTH_FRACTION = 0.6

CATEGORY = {
    "id": 1,
    "name": "vertebra",
    "supercategory": "spine",
    "keypoints": list(KEYPOINT_NAMES),
    "skeleton": SKELETON,
}


def body_outline(corners: np.ndarray, visible: np.ndarray) -> np.ndarray:
    """Outline of the vertebral body, [4, 2] in TL, TR, BR, BL cycle order.

    With all 4 corners labelled it is the quadrilateral itself. With only the
    superior endplate (TL, TR), the inferior side is estimated by moving the
    endplate by S1_DEPTH_FRACTION of its length along its normal that points
    down the image.
    """
    c = np.asarray(corners, dtype=np.float64)
    v = np.asarray(visible, dtype=bool)
    if v.all():
        return c[list(OUTLINE_ORDER)]
    if v[0] and v[1] and not v[2] and not v[3]:
        tl, tr = c[0], c[1]
        d = tr - tl
        n = np.array([-d[1], d[0]])
        if n[1] < 0:
            n = -n
        offset = S1_DEPTH_FRACTION * n
        return np.stack([tl, tr, tr + offset, tl + offset])
    raise ValueError(f"unsupported labelled corners {v.tolist()}: need all 4, or TL and TR only")


def padded_box(outline: np.ndarray, width: int, height: int, pad: float = BOX_PAD_FRACTION) -> list:
    """COCO box [x, y, w, h] around ``outline`` ([N, 2] pixels), grown by
    ``pad`` x its longer side on each side and clipped to the image."""
    lo, hi = outline.min(axis=0), outline.max(axis=0)
    margin = pad * float(np.max(hi - lo))
    x0, y0 = max(0.0, lo[0] - margin), max(0.0, lo[1] - margin)
    x1, y1 = min(float(width), hi[0] + margin), min(float(height), hi[1] + margin)
    return [float(x0), float(y0), float(x1 - x0), float(y1 - y0)]


def make_annotation(
    ann_id: int,
    image_id: int,
    corners: np.ndarray,
    visible: Sequence[bool],
    width: int,
    height: int,
    vertebra_level: Optional[str] = None,
    source_label: Optional[list] = None,
    coco_visibility: Optional[Sequence[int]] = None,
) -> dict:
    """One COCO annotation from canonical corners.

    Args:
        corners: [4, 2] pixels in TL, TR, BL, BR order; absent ones ignored.
        visible: [4] whether each corner is labelled.
        coco_visibility: optional [4] COCO flags for labelled corners (2 by
            default; 1 for "labelled, not visible"). Absent corners are
            written as x = y = 0, v = 0.
        source_label: the source's label values for this vertebra (a list).

    The ``area`` is that of the body outline (shapely), which COCO's OKS uses
    as the object scale.
    """
    corners = np.asarray(corners, dtype=np.float64)
    visible = np.asarray(visible, dtype=bool)
    flags = list(coco_visibility) if coco_visibility is not None else [2] * 4
    kps = []
    for (x, y), vis, flag in zip(corners, visible, flags):
        kps += [float(x), float(y), int(flag)] if vis else [0.0, 0.0, 0]
    outline = body_outline(corners, visible)
    return {
        "id": int(ann_id),
        "image_id": int(image_id),
        "category_id": CATEGORY["id"],
        "keypoints": kps,
        "num_keypoints": int(visible.sum()),
        "bbox": padded_box(outline, width, height),
        "area": float(Polygon(outline).area),
        "iscrowd": 0,
        "vertebra_level": vertebra_level,
        "source_label": source_label,
    }


def make_coco(images: list, annotations: list, description: str, image_root: Optional[str] = None) -> dict:
    """A whole COCO keypoint file (dict). No timestamps: same input, same bytes.

    ``image_root``: where the images' ``file_name`` are relative to, as a path relative
    to the COCO file's own folder ("..", "../.."), written as ``info.image_root`` so that
    ``vertkp audit`` and others find the images wherever the dataset folder moves.
    """
    info = {"description": description, "version": "1.0", "keypoint_order": list(KEYPOINT_NAMES)}
    if image_root is not None:
        info["image_root"] = image_root
    return {
        "info": info,
        "licenses": [],
        "categories": [CATEGORY],
        "images": images,
        "annotations": annotations,
    }
