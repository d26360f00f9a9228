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
  * ``mendeley``, ``buu``: the two folder layouts (with the label writers of
    ``vertkp.data.spondylolisthesis`` and ``vertkp.data.buu_lspine``);
  * ``dicom``: a set's images again as DICOM files (``vertkp phantoms --format dicom``);
  * ``make``: ``make_phantoms``, ``ensure_phantoms``; ``cli``: ``vertkp phantoms``.
"""
from .buu import BUU_LABEL_CODES, label_codes
from .make import DEFAULT_IMAGE_SIZE, LAYOUTS, ensure_phantoms, make_phantoms
from .truth import LATERAL_DISPLACEMENT_PCT_DEFINITION, TRUTH_FILE, summarize

__all__ = [
    "BUU_LABEL_CODES",
    "DEFAULT_IMAGE_SIZE",
    "LATERAL_DISPLACEMENT_PCT_DEFINITION",
    "LAYOUTS",
    "TRUTH_FILE",
    "ensure_phantoms",
    "label_codes",
    "make_phantoms",
    "summarize",
]
