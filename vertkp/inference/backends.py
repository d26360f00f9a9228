"""The inference backends' names (no torch here: ``vertkp predict``'s parser reads them).

* "eager": the model exactly as detectron2 runs it at evaluation time;
* "fast": the same corners and detections for less work (``vertkp.inference.fast``), the
  default of ``VertebraPredictor`` and ``vertkp predict --backend``.
"""
BACKENDS = ("eager", "fast")
DEFAULT_BACKEND = "fast"
