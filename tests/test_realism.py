"""The default phantoms measure like the real Mendeley archive (vertkp.phantoms.realism);
the clean ones do not."""
import numpy as np
import pytest

from vertkp.files import read_json
from vertkp.phantoms import TRUTH_FILE
from vertkp.phantoms.make import make_phantoms
from vertkp.phantoms.realism import ARCHIVE, compare, format_comparison, measure


def _record(corners, pairs=(), width=640, height=640, split="train"):
    vertebrae = [{"level": f"L{k + 1}", "corners": c.tolist()} for k, c in enumerate(np.asarray(corners, float))]
    return {"split": split, "label_file": "x.json", "view": "lateral", "width": width, "height": height,
            "vertebrae": vertebrae, "pairs": [{"slip_pct": s} for s in pairs]}


def test_measure_on_hand_built_records():
    a = [[[100, 0], [200, 10], [100, 50], [200, 60]],      # 100 x 60 box at y 0..60: touches the top
         [[110, 80], [190, 80], [110, 120], [190, 120]]]   # 80 x 40 box, centre y 100
    b = [[[50, 100], [150, 100], [50, 150], [150, 150]]]   # a 320 px image: scaled x2 -> 200 x 100, centre 250
    m = measure({"images": [_record(a, pairs=[-12.0]), _record(b, width=320, height=320),
                            _record(a, split="test")]})
    assert m["n_images"] == 2 and m["n_vertebrae"] == 3
    assert m["width_px"][50] == 100.0 and m["height_px"][50] == 60.0
    assert m["centre_y_px"][50] == 100.0 and m["centre_y_px"][95] == pytest.approx(235.0)  # 100 + 0.9 * 150
    assert m["aspect"][5] == pytest.approx(100 / 60 + 0.1 * (2 - 100 / 60)) and m["aspect"][50] == 2.0
    assert m["vertebrae_per_image"] == {1: 1, 2: 1} and m["mean_vertebrae_per_image"] == 1.5
    assert m["border_share"] == pytest.approx(1 / 3)
    assert m["median_abs_slip_pct"] == 12.0
    with pytest.raises(ValueError, match="no labelled lateral image"):
        measure({"images": [_record(a, split="test")]})


def _compare(tmp_path, difficulty):
    root = tmp_path / difficulty
    # 320 px: the geometry is that of 640 px images (measure scales to 640), four times faster to render
    make_phantoms("spondylolisthesis", root, 120, seed=0, image_size=320, progress=False, difficulty=difficulty)
    return compare(measure(read_json(root / TRUTH_FILE)))


def test_realistic_phantoms_measure_like_the_archive(tmp_path):
    rows = _compare(tmp_path, "realistic")
    assert len(rows) == 5 + 5 + 3 + 3 + 3  # percentiles of width, height, aspect, centre y; 3 scalars
    assert all(r["ok"] for r in rows), "\n" + format_comparison(rows)


def test_clean_phantoms_do_not(tmp_path):
    bad = {r["statistic"] for r in _compare(tmp_path, "clean") if not r["ok"]}
    assert {"width_px p50", "height_px p50", "centre_y_px p95"} <= bad  # 1.6 times too big, filling the image


def test_archive_counts_are_the_published_histogram():
    assert sum(ARCHIVE["vertebrae_per_image"].values()) == 698
    assert sum(k * v for k, v in ARCHIVE["vertebrae_per_image"].items()) == 4600
