"""The Mendeley "Spondylolisthesis Vertebral Landmark Dataset" (DOI 10.17632/5jdfdgp762.1).

    layout    the archive's folders and file names (KEYPOINTRCNN_DIR, TEST_DIR, source_stem, ...)
    labels    the JSON and YOLO-TXT label formats, each reader beside its writer; twins compared
    convert   convert_spondylolisthesis: a folder to vertkp COCO files

What the real archive holds, and what vertkp does with it: ``datasets/README.md``.
"""
from .convert import convert_spondylolisthesis
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
    "convert_spondylolisthesis", "JSON_ORDER", "JSON_SUPERIOR", "TXT_ORDER", "TXT_SUPERIOR", "compare_twins",
    "format_json_labels", "format_txt_labels", "read_json_labels", "read_txt_labels", "txt_label_corners",
    "IMAGES_DIR", "KEYPOINTRCNN_DIR", "LABELS_DIR", "SPLITS", "TEST_DIR", "find_keypointrcnn_dir",
    "find_test_images", "roboflow_name", "source_stem",
]
