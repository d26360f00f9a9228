"""vertkp: lumbar vertebra corner detection and spondylolisthesis grading on Detectron2.

detectron2 is not on PyPI: install it from its upstream source after torch
(see README.md, "Install").
"""
from pathlib import Path

from setuptools import find_packages, setup

HERE = Path(__file__).parent

INSTALL_REQUIRES = [
    "torch>=2.1",
    "torchvision>=0.16",
    "numpy>=1.24",
    "scipy>=1.10",
    "pycocotools>=2.0.7",
    "opencv-python-headless>=4.8",
    "Pillow>=10.0",
    "shapely>=2.0",
    "imagehash>=4.3",
    "fvcore>=0.1.5",
    "albumentations>=1.4",
    "matplotlib>=3.7",
    "tqdm>=4.66",
    "timm>=0.9",
    "openpyxl>=3.1",
    "pydicom>=2.4",
]

EXTRAS_REQUIRE = {
    # decoders of the compressed DICOM transfer syntaxes that pydicom and Pillow do not decode
    # (JPEG-LS, lossless and 12-bit JPEG; JPEG 2000 without Pillow's OpenJPEG)
    "dicom": [
        "pylibjpeg>=2.0",
        "pylibjpeg-libjpeg>=2.1",
        "pylibjpeg-openjpeg>=2.0",
    ],
    "dev": [
        "pytest>=7.4",
        "pytest-timeout>=2.2",
        "nbformat>=5.9",
        "nbclient>=0.10",
        "ipykernel>=6.25",
    ],
}

setup(
    name="vertkp",
    version="0.1.0",
    description="Lumbar vertebra corner detection and spondylolisthesis grading with Detectron2",
    long_description=(HERE / "README.md").read_text(encoding="utf-8") if (HERE / "README.md").exists() else "",
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    python_requires=">=3.9",
    packages=find_packages(include=["vertkp", "vertkp.*"]),
    install_requires=INSTALL_REQUIRES,
    extras_require=EXTRAS_REQUIRE,
    include_package_data=True,
    entry_points={"console_scripts": ["vertkp = vertkp.cli:main"]},
)
