"""Datasets: formats and conversion to COCO (torch-free), the image decoder, pixel spacing;
and, for detectron2, registration (``registration``), the mapper and augmentations."""
from .buu_lspine import convert_buu_lspine
from .report import ConversionReport, InvalidInput
from .spondylolisthesis import convert_spondylolisthesis

__all__ = ["convert_buu_lspine", "convert_spondylolisthesis", "ConversionReport", "InvalidInput"]
