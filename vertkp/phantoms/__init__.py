"""Synthetic spine radiographs written in the raw layouts of the two real datasets.

``make_phantoms(layout, out_dir, num_images, seed)`` writes a Mendeley-style
("spondylolisthesis") or BUU-LSPINE-style ("buu-lspine") folder, exactly as
``datasets/README.md`` describes the real ones, plus ``phantom_truth.json`` with
every image's corners (canonical TL, TR, BL, BR, pixels), levels, facing, the
slip of every adjacent lateral pair and the lateral displacement of every AP
pair, measured with ``vertkp.grading``.

Modules, one job each:
  * ``geometry``: shapes, scenes, 2-D maths, corner orders, the framing affine;
  * ``patients``: who the patients are, their spine shapes, the planted slips;
  * ``lateral``, ``ap``: the lateral and the AP scene of a spine;
  * ``render``: image synthesis;
  * ``truth``: the truth records, the truth file's definitions, ``summarize``;
  * ``archive``: a set packed as the real download is (``--archive``);
  * ``dicom``: a set's images again as DICOM files (``vertkp phantoms --format dicom``);
  * ``make``: ``make_phantoms``, ``ensure_phantoms``; ``cli``: ``vertkp phantoms``.

Each layout is written by its dataset's writer (``vertkp.data.datasets.<dataset>.phantoms``,
its spec's ``phantom_writer``) with the dataset's own label writers and the scene and rendering
modules here, which import nothing from ``vertkp.data``; ``make``, ``archive``, ``cli`` and
``dicom`` sit above it, and this package imports none of them (import
``vertkp.phantoms.make``).
"""
from .truth import LATERAL_DISPLACEMENT_PCT_DEFINITION, TRUTH_FILE, summarize

__all__ = ["LATERAL_DISPLACEMENT_PCT_DEFINITION", "TRUTH_FILE", "summarize"]
