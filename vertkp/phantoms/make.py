"""The entry points: ``make_phantoms`` writes a phantom set, ``ensure_phantoms`` keeps one."""
from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path

from vertkp.data.datasets import SPECS
from vertkp.files import read_json, write_json
from vertkp.grading import DEFAULT_NO_SLIP_PCT

from .archive import pack
from .difficulty import DEFAULT_DIFFICULTY, get_difficulty
from .truth import TRUTH_FILE, summarize

__all__ = ["make_phantoms", "ensure_phantoms"]


def _check_out_dir(out_dir: Path) -> None:
    if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())):
        raise FileExistsError(
            f"{out_dir} exists and is not empty; phantoms are only written into a new or empty "
            "directory (delete it or pass another --output)"
        )


def make_phantoms(layout: str, out_dir, num_images: int, seed: int, image_size: int | None = None,
                  progress: bool = True, archive: bool = False, difficulty: str = DEFAULT_DIFFICULTY,
                  label_noise: float | None = None) -> dict:
    """Write a synthetic dataset in one of the raw layouts of ``datasets/README.md``.

    With the real archives' quirks: Mendeley images each have a JSON label, some a
    YOLO-TXT twin too (one of them off by a few px), among archive/OS junk; BUU's
    ``LA/`` holds a stray duplicate. ``phantom_truth.json`` lists them, with the
    exact and the labelled corners of every vertebra.

    Args:
        layout: a dataset's name (``vertkp.data.datasets.SPECS``): "spondylolisthesis" (Mendeley
            landmark dataset) or "buu-lspine"; its spec names the writer of its layout.
        out_dir: new or empty directory to write into; with ``archive``, the .zip
            to write instead, packed as the real download is (``archive.pack``).
        num_images: spondylolisthesis: labelled images (train + val, about
            70/30), plus max(1, n // 10) unlabelled test images; buu-lspine:
            images, i.e. n // 2 patients with one AP and one LA image each.
        seed: same seed, same bytes in every file.
        image_size: spondylolisthesis: side of the square train/val images
            (default 640; test images are 1.6-2x taller, portrait);
            buu-lspine: image height (width 0.6-0.8 of it; default: the
            originals' sizes, 1434-3408 px high, or 1024 at ``clean``).
        progress: show a tqdm progress bar.
        archive: pack the set as the real download is.
        difficulty: "clean", "realistic" or "hard" (``vertkp.phantoms.difficulty``).
        label_noise: SD per coordinate of the annotators' jitter, px (0: labels equal
            the exact corners; None: the difficulty's, relative to each vertebra's width).

    Returns:
        summary dict: layout, out_dir, seed, images per split (or per view),
        patients (buu), vertebrae, pair counts per grade name, seconds.

    Raises:
        ValueError: unknown layout or difficulty, too few images, image_size < 128, or a
            negative label noise.
        FileExistsError: ``out_dir`` exists and is not empty (or, with ``archive``, exists).
    """
    if layout not in SPECS:
        raise ValueError(f"layout must be one of {tuple(SPECS)}, got {layout!r}")
    spec = SPECS[layout]
    if num_images < 1:
        raise ValueError(f"num_images must be >= 1, got {num_images}")
    knobs = get_difficulty(difficulty)
    if label_noise is not None and label_noise < 0:
        raise ValueError(f"label_noise must be >= 0 px, got {label_noise}")
    original_sizes = spec.phantom_original_sizes and image_size is None and not knobs.clean
    size = None if original_sizes else int(image_size or spec.phantom_image_size)
    if size is not None and size < 128:
        raise ValueError(f"image_size must be >= 128 px, got {size}")
    out = Path(out_dir)
    if archive:
        if out.suffix.lower() != ".zip":
            raise ValueError(f"with --archive, --output is the .zip to write, got {out}")
        if out.exists():
            raise FileExistsError(f"{out} exists; phantoms are only packed into a new archive (delete it or pass "
                                  "another --output)")
        out.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix=".phantoms_", dir=out.parent) as tmp:
            summary = make_phantoms(layout, Path(tmp) / "set", num_images, seed, image_size, progress,
                                    difficulty=difficulty, label_noise=label_noise)
            pack(Path(tmp) / "set", spec, out)
        return dict(summary, out_dir=str(out))
    _check_out_dir(out)
    start = time.perf_counter()
    result = spec.phantom_writer(out, num_images, seed, size, progress, knobs, label_noise)
    truth = {
        "layout": layout,
        "seed": int(seed),
        "difficulty": knobs.name,
        "label_noise": {"px": label_noise} if label_noise is not None else
        {"fraction_of_width": knobs.label_noise_frac, "osteophyte_tip_share": knobs.osteophyte_tip_share},
        "image_size": size,
        "no_slip_pct": DEFAULT_NO_SLIP_PCT,
        "corner_order": ["TL", "TR", "BL", "BR"],
        "coordinates": "pixels, x right, y down, integer values at pixel centres",
        "label_codes": result.get("label_codes"),
        "lateral_displacement_pct_definition": result.get("lateral_displacement_pct_definition"),
        "images": sorted(result["images"], key=lambda r: r["file_name"]),
        "junk": result.get("junk", []),
        "strays": result.get("strays", []),
    }
    write_json(out / TRUTH_FILE, truth, nan="error")
    return summarize(truth, out, time.perf_counter() - start, result.get("patients"))


def ensure_phantoms(layout: str, out_dir, num_images: int, seed: int, image_size: int | None = None,
                    progress: bool = True, archive: bool = False, difficulty: str = DEFAULT_DIFFICULTY,
                    label_noise: float | None = None) -> dict | None:
    """:func:`make_phantoms` into ``out_dir`` unless the same phantoms are already there.

    "The same" is recorded in ``<out_dir>.json`` next to the folder (or the archive:
    layout, number, seed, image size, archive, difficulty, label noise), written once the phantoms are
    complete; a folder or archive without it, or made with other settings, is
    removed and made again.

    Returns:
        ``make_phantoms``'s summary, or None when the existing phantoms were kept.
    """
    out_dir = Path(out_dir)
    record = out_dir.parent / f"{out_dir.name}.json"
    want = {"layout": layout, "num_images": num_images, "seed": seed, "image_size": image_size,
            "difficulty": difficulty, "label_noise": label_noise}
    if archive:
        want["archive"] = True
    if record.is_file() and read_json(record) == want and out_dir.exists():
        return None
    if out_dir.is_dir():
        shutil.rmtree(out_dir)
    elif out_dir.exists():
        out_dir.unlink()
    summary = make_phantoms(layout, out_dir, num_images, seed, image_size=image_size, progress=progress,
                            archive=archive, difficulty=difficulty, label_noise=label_noise)
    write_json(record, want, nan="error")
    return summary
