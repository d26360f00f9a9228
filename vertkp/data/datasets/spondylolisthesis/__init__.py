"""The Mendeley "Spondylolisthesis Vertebral Landmark Dataset" (DOI 10.17632/5jdfdgp762.1).

    layout    the archive's folders and file names (KEYPOINTRCNN_DIR, TEST_DIR, source_stem, ...)
    labels    the JSON and YOLO-TXT label formats, each reader beside its writer; twins compared
    convert   convert_spondylolisthesis: a folder to vertkp COCO files
    phantoms  write_spondylolisthesis: phantoms in this layout (``vertkp phantoms``)

``SPEC`` is what the commands know of it. What the real archive holds, and what vertkp does
with it: ``datasets/README.md``.
"""
from pathlib import Path

from ..spec import DatasetSpec, PublishedArchive
from .convert import convert_spondylolisthesis
from .phantoms import write_spondylolisthesis
from .labels import (
    JSON_ORDER,
    JSON_SUPERIOR,
    TXT_ORDER,
    TXT_SUPERIOR,
    compare_twins,
    format_json_labels,
    format_txt_labels,
    read_json_labels,
    read_txt_labels,
    txt_label_corners,
)
from .layout import (
    IMAGES_DIR,
    KEYPOINTRCNN_DIR,
    LABELS_DIR,
    SPLITS,
    TEST_DIR,
    find_keypointrcnn_dir,
    find_test_images,
    roboflow_name,
    source_stem,
)

__all__ = [
    "SPEC", "convert_spondylolisthesis", "JSON_ORDER", "JSON_SUPERIOR", "TXT_ORDER", "TXT_SUPERIOR", "compare_twins",
    "format_json_labels", "format_txt_labels", "read_json_labels", "read_txt_labels", "txt_label_corners",
    "IMAGES_DIR", "KEYPOINTRCNN_DIR", "LABELS_DIR", "SPLITS", "TEST_DIR", "find_keypointrcnn_dir",
    "find_test_images", "roboflow_name", "source_stem",
]

_SPLITS = ("train", "val", "test")
SPEC = DatasetSpec(
    name="spondylolisthesis",
    title="the Mendeley dataset",
    folder="spondylolisthesis",
    published=PublishedArchive(
        url="https://data.mendeley.com/public-api/zip/5jdfdgp762/download/1",
        sha256="3a15ceb105c93716035df049b8ee8407ddee479184860fc885e71f18886859d1",
        file_name="spondylolisthesis_v1.zip",
        doi="10.17632/5jdfdgp762.1",
        version=1,
    ),
    access="",
    find_root=Path,  # the converter finds KEYPOINTRCNN_DIR itself
    convert=convert_spondylolisthesis,
    options=(),
    coco_folder="coco",
    splits=_SPLITS,
    registered={f"spondylolisthesis_{split}": (f"coco/{split}.json", ()) for split in _SPLITS},
    phantom_writer=write_spondylolisthesis,
    phantom_image_size=640,
    phantom_original_sizes=False,
    phantom_archive_folder="Spondylolisthesis Vertebral Landmark Dataset",  # the real download's is "<some folder>"
    phantom_nested_folder="Dataset",  # the download's Dataset.zip
    bottom_level="S1",  # the labels name no level; every image is labelled down to S1
)
