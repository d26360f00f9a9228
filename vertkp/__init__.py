"""vertkp: lumbar vertebra corners and spondylolisthesis grading with Detectron2.

Importing vertkp registers its datasets in detectron2's catalogs (see
``vertkp.data.registration``) when detectron2 is installed. Registration is
lazy twice over: it happens right after ``detectron2.data`` is imported (so
``import vertkp`` alone does not pay detectron2's and torch's import time,
and the converters run without either), and no dataset file is read until
the dataset is used.
"""
import importlib.abc
import importlib.util
import sys

__version__ = "0.1.0"



def _installed(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


HAS_DETECTRON2 = _installed("detectron2")


def _register():
    from .data.registration import register_all

    register_all()


class _RegisterAfterImport(importlib.abc.MetaPathFinder):
    """Runs ``_register`` once, right after ``detectron2.data`` is executed."""

    def find_spec(self, fullname, path, target=None):
        if fullname != "detectron2.data":
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(fullname)
        if spec is None or spec.loader is None:
            return spec
        exec_module = spec.loader.exec_module

        def exec_then_register(module):
            exec_module(module)
            _register()

        spec.loader.exec_module = exec_then_register
        return spec


if HAS_DETECTRON2:
    if "detectron2.data" in sys.modules:
        _register()
    else:
        sys.meta_path.insert(0, _RegisterAfterImport())
