"""BUU-LSPINE (Klinwichit et al., Applied Sciences 2023, 13(15):8646): one AP and one lateral
image per patient.

    layout    the folders and file names (VIEW_LAYOUT, parse_name, format_name, find_buu_root)
    labels    the CSV label format, each reader beside its writer
    convert   convert_buu_lspine: one view of a folder to vertkp COCO files, split by patient
    phantoms  write_buu: phantoms in this layout (``vertkp phantoms``)

``SPEC`` is what the commands know of it. What the real folders hold, and what vertkp does
with them: ``datasets/README.md``.
"""
from ..spec import DatasetSpec
from .convert import convert_buu_lspine, split_patients
from .labels import facing_from_rows, format_csv_rows, read_csv_rows, row_names, rows_from_corners, vertebrae_from_rows
from .phantoms import write_buu
from .layout import BUU_LEVELS, VIEW_LAYOUT, BuuName, find_buu_root, format_name, parse_name

__all__ = [
    "SPEC", "convert_buu_lspine", "split_patients", "facing_from_rows", "format_csv_rows", "read_csv_rows",
    "row_names", "rows_from_corners", "vertebrae_from_rows", "BUU_LEVELS", "VIEW_LAYOUT", "BuuName",
    "find_buu_root", "format_name", "parse_name",
]

_SPLITS = ("train", "val")
SPEC = DatasetSpec(
    name="buu-lspine",
    title="the Burapha University lumbar spine dataset",
    folder="buu_lspine",
    published=None,  # it needs the authors' permission
    access="BUU-LSPINE has no public download: it needs the authors' permission (Klinwichit et al., "
           "Applied Sciences 2023, 13(15):8646; ask Burapha University for access). Once you have it "
           "(a zip of its AP/ and LA/ folders, or the folder), convert it with:\n"
           "  vertkp convert --dataset buu-lspine --root <zip or folder>",
    find_root=find_buu_root,
    convert=convert_buu_lspine,
    options=("view", "val_fraction", "seed", "pixel_spacing"),
    coco_folder="coco/{view}",
    splits=_SPLITS,
    registered={f"buu_lspine_{view}_{split}": (f"coco/{view}/{split}.json", ("--view", view))
                for view in VIEW_LAYOUT for split in _SPLITS},
    phantom_writer=write_buu,
    phantom_image_size=1024,
    phantom_original_sizes=True,
    phantom_archive_folder="BUU-LSPINE_400",
    phantom_nested_folder=None,
)
