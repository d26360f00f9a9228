"""Dataset formats, conversion to COCO keypoints, and detectron2 registration."""
from .buu_lspine import convert_buu_lspine  # noqa: F401
from .report import ConversionReport, InvalidInput  # noqa: F401
from .spondylolisthesis import convert_spondylolisthesis  # noqa: F401
