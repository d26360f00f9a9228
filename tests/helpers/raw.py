"""Hand-built raw datasets in the real layouts, for converter tests.

Corners are given in the canonical order TL, TR, BL, BR (pixels, y down) and
written, exactly, in each source's own order and folders by the writers that
stand beside the readers (``vertkp.data.datasets.spondylolisthesis``,
``vertkp.data.datasets.buu_lspine``), so a test knows the exact expected result.
"""
import zlib
from pathlib import Path

import cv2
import numpy as np

from vertkp.data.datasets import buu_lspine, spondylolisthesis

HEX = "0123456789abcdef" * 4
KP_DIR = Path(spondylolisthesis.KEYPOINTRCNN_DIR)


def quad(cx, cy, w, h, angle_deg=0.0):
    """Canonical corners [4, 2] of a w x h box centred at (cx, cy), rotated by
    angle_deg (positive = clockwise on screen, since y points down)."""
    t = np.deg2rad(angle_deg)
    rot = np.array([[np.cos(t), -np.sin(t)], [np.sin(t), np.cos(t)]])
    base = np.array([[-w / 2, -h / 2], [w / 2, -h / 2], [-w / 2, h / 2], [w / 2, h / 2]])
    return base @ rot.T + np.array([cx, cy])


def column(n, shifts=None, w=40.0, h=25.0, pitch=35.0):
    """n upright w x h bodies [n, 4, 2] centred at x = 100 (+ shifts[k]), y = 100 + pitch k:
    with the defaults, 10 px discs."""
    shifts = shifts or [0.0] * n
    return np.stack([quad(100.0 + shifts[k], 100.0 + pitch * k, w, h) for k in range(n)])


def write_image(path, width, height, color=False):
    """A grey (or colour) image whose pixels differ from every other name's: mid grey with a
    band whose place follows the file name (two files are byte-identical only when copied)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    img = np.full((height, width, 3) if color else (height, width), 90, np.uint8)
    k = zlib.crc32(path.name.encode()) % max(1, height - 4)
    img[k:k + 4] = 160
    assert cv2.imwrite(str(path), img)
    return path


def roboflow_name(stem, k=0):
    """The Roboflow export name of ``stem`` with the k-th 32-digit slice of HEX as its digest."""
    return spondylolisthesis.roboflow_name(stem, HEX[k:k + 32])


def mendeley_tree(root, items, test=(), size=640):
    """Write a Mendeley-layout tree.

    items: list of (split, file stem, "json"|"txt", [canonical corners]).
    test: file names of unlabelled test images (written under the Test folder).
    Returns {file stem: (split, corners)}.
    """
    root = Path(root)
    for split in spondylolisthesis.SPLITS:
        (root / KP_DIR / spondylolisthesis.IMAGES_DIR / split).mkdir(parents=True, exist_ok=True)
        (root / KP_DIR / spondylolisthesis.LABELS_DIR / split).mkdir(parents=True, exist_ok=True)
    for split, stem, fmt, verts in items:
        write_image(root / KP_DIR / spondylolisthesis.IMAGES_DIR / split / f"{stem}.jpg", size, size)
        text = (spondylolisthesis.format_json_labels(verts) if fmt == "json"
                else spondylolisthesis.format_txt_labels(verts, size, size))
        (root / KP_DIR / spondylolisthesis.LABELS_DIR / split / f"{stem}.{fmt}").write_text(text)
    for name in test:
        write_image(root / spondylolisthesis.TEST_DIR / name, 900, 1400, color=True)
    return {stem: (split, verts) for split, stem, fmt, verts in items}


def lateral_spine(x0=300.0, y0=150.0, w=80.0, h=55.0, gap=22.0, tilt=0.0):
    """Canonical corners of L1..L5 and the 2 superior corners of S1 (tilted 40
    degrees), stacked downwards, each vertebra tilted by ``tilt``."""
    verts = [quad(x0 + 4 * k, y0 + k * (h + gap), w, h, tilt) for k in range(5)]
    s1 = quad(x0 + 30, y0 + 5 * (h + gap) + 20, w, h, 40.0)[:2]
    return verts, s1


def write_csv(path, rows):
    """A BUU-LSPINE CSV of rows [x1, y1, x2, y2, label], coordinates written exactly."""
    Path(path).write_text(buu_lspine.format_csv_rows(rows))


def buu_tree(root, patients, width=700, height=1000):
    """Write AP/ and LA/ for each patient id (4-digit string), the spine of
    :func:`lateral_spine` in each, labels 0; returns {stem: rows} of every CSV written."""
    root = Path(root)
    out = {}
    for k, pid in enumerate(patients):
        for view in ("lateral", "ap"):
            folder, digit, _ = buu_lspine.VIEW_LAYOUT[view]
            stem = buu_lspine.format_name(pid, "FM"[k % 2], 40 + k % 50, digit)
            write_image(root / folder / f"{stem}.jpg", width, height)
            verts, s1 = lateral_spine(y0=150 + k % 7)
            rows = buu_lspine.rows_from_corners([*verts, s1] if view == "lateral" else verts, view)
            write_csv(root / folder / f"{stem}.csv", rows)
            out[stem] = rows
    return out
