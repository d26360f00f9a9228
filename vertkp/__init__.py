"""vertkp: lumbar vertebra corners and spondylolisthesis grading with Detectron2.

The package has two parts, split by what they import:

* torch-free, usable without detectron2: ``vertkp.keypoints``, ``vertkp.anatomy``,
  ``vertkp.data`` (dataset formats, conversion to COCO, the image decoder,
  pixel spacing), ``vertkp.phantoms``, ``vertkp.grading``, ``vertkp.evaluation``
  (the scoring behind ``vertkp evaluate``) and the numpy side of
  ``vertkp.inference`` (results, flags, overlays, report files);
* the detectron2 project: ``vertkp.config`` (``add_vertkp_config``,
  ``build_cfg``), ``vertkp.modeling``, ``vertkp.engine``,
  ``vertkp.data.loading.mapper``, ``vertkp.evaluation.evaluator`` and
  ``vertkp.inference.predictor``. Importing ``vertkp.config`` (which every one
  of them does) registers vertkp's datasets in detectron2's catalogs and its
  HRNet backbone in ``BACKBONE_REGISTRY``, so a config built with
  ``add_vertkp_config`` can go straight to ``build_model``.

``import vertkp`` alone imports neither torch nor detectron2: the converters,
the phantom generator and the evaluator start in a fraction of a second.
"""
import importlib.util

__version__ = "0.1.0"


def _installed(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


# Whether detectron2 can be imported (its tests are skipped, with a reason, when it cannot).
HAS_DETECTRON2 = _installed("detectron2")
# How to install it: it is not on PyPI, it is built from its upstream source after torch
# (the Makefile's DETECTRON2_SOURCE; setuptools<81 because it still imports pkg_resources).
DETECTRON2_INSTALL = ("pip install 'setuptools<81' && "
                      "pip install --no-build-isolation 'git+https://github.com/facebookresearch/detectron2.git'")
