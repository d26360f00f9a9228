"""Hand-built raw datasets in the real layouts, for converter tests.

Corners are given in the canonical order TL, TR, BL, BR (pixels, y down) and
written in each source's own order, so a test knows the exact expected result.
"""
import json
from pathlib import Path

import cv2
import numpy as np

HEX = "0123456789abcdef" * 4
KP_DIR = Path("Dataset/Train/Keypointrcnn_data")


def quad(cx, cy, w, h, angle_deg=0.0):
    """Canonical corners [4, 2] of a w x h box centred at (cx, cy), rotated by
    angle_deg (positive = clockwise on screen, since y points down)."""
    t = np.deg2rad(angle_deg)
    rot = np.array([[np.cos(t), -np.sin(t)], [np.sin(t), np.cos(t)]])
    base = np.array([[-w / 2, -h / 2], [w / 2, -h / 2], [-w / 2, h / 2], [w / 2, h / 2]])
    return base @ rot.T + np.array([cx, cy])


def write_image(path, width, height, color=False):
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    img = np.full((height, width, 3) if color else (height, width), 90, np.uint8)
    assert cv2.imwrite(str(path), img)
    return path


def roboflow_name(stem, k=0):
    return f"{stem}_jpg.rf.{HEX[k:k + 32]}"


def json_label(vertebrae):
    """JSON label text: corners in BL, BR, TL, TR order, v = 1."""
    kps, boxes = [], []
    for c in vertebrae:
        c = np.asarray(c, float)
        kps.append([[float(c[i, 0]), float(c[i, 1]), 1] for i in (2, 3, 0, 1)])
        boxes.append([*c.min(0).tolist(), *c.max(0).tolist()])
    return json.dumps({"boxes": boxes, "keypoints": kps, "labels": [0] * len(kps)})


def txt_label(vertebrae, width, height):
    """YOLO-pose text: corners in TL, BL, BR, TR order, normalised."""
    lines = []
    for c in vertebrae:
        c = np.asarray(c, float) / [width, height]
        lo, hi = c.min(0), c.max(0)
        vals = [0, *((lo + hi) / 2), *(hi - lo)]
        for i in (0, 2, 3, 1):
            vals += [c[i, 0], c[i, 1], 1]
        lines.append(" ".join(repr(float(v)) if k else "0" for k, v in enumerate(vals)))
    return "\n".join(lines) + "\n"


def mendeley_tree(root, items, test=(), size=640):
    """Write a Mendeley-layout tree.

    items: list of (split, file stem, "json"|"txt", [canonical corners]).
    test: file names of unlabelled test images (written under Test/).
    Returns {file stem: (split, corners)}.
    """
    root = Path(root)
    for split, stem, fmt, verts in items:
        write_image(root / KP_DIR / "images" / split / f"{stem}.jpg", size, size)
        lbl = root / KP_DIR / "labels" / split / f"{stem}.{fmt}"
        lbl.parent.mkdir(parents=True, exist_ok=True)
        lbl.write_text(json_label(verts) if fmt == "json" else txt_label(verts, size, size))
    for split in ("train", "val"):
        (root / KP_DIR / "images" / split).mkdir(parents=True, exist_ok=True)
        (root / KP_DIR / "labels" / split).mkdir(parents=True, exist_ok=True)
    for name in test:
        write_image(root / "Test" / name, 900, 1400, color=True)
    return {stem: (split, verts) for split, stem, fmt, verts in items}


def lateral_spine(x0=300.0, y0=150.0, w=80.0, h=55.0, gap=22.0, tilt=0.0):
    """Canonical corners of L1..L5 and the 2 superior corners of S1 (tilted 40
    degrees), stacked downwards, each vertebra tilted by ``tilt``."""
    verts = [quad(x0 + 4 * k, y0 + k * (h + gap), w, h, tilt) for k in range(5)]
    s1 = quad(x0 + 30, y0 + 5 * (h + gap) + 20, w, h, 40.0)[:2]
    return verts, s1


def buu_csv_rows(verts, s1=None, labels=None):
    """CSV rows x1,y1,x2,y2,label: point 1 = image-left (anterior when facing left)."""
    rows = []
    for k, c in enumerate(verts):
        la, lb = (labels[2 * k], labels[2 * k + 1]) if labels else (0, 0)
        rows.append([*c[0], *c[1], la])
        rows.append([*c[2], *c[3], lb])
    if s1 is not None:
        rows.append([*s1[0], *s1[1], labels[10] if labels else 0])
    return rows


def write_csv(path, rows):
    Path(path).write_text("".join(",".join(repr(float(v)) if i < 4 else str(v) for i, v in enumerate(r)) + "\n"
                                  for r in rows))


def buu_tree(root, patients, width=700, height=1000):
    """Write AP/ and LA/ for each patient id (4-digit string); returns
    {stem: rows} of every CSV written."""
    root = Path(root)
    out = {}
    for k, pid in enumerate(patients):
        for folder, digit in (("LA", "1"), ("AP", "0")):
            stem = f"{pid}-{'FM'[k % 2]}-0{40 + k % 50:02d}Y{digit}"
            write_image(root / folder / f"{stem}.jpg", width, height)
            verts, s1 = lateral_spine(y0=150 + k % 7)
            rows = buu_csv_rows(verts, s1 if folder == "LA" else None)
            write_csv(root / folder / f"{stem}.csv", rows)
            out[stem] = rows
    return out
