"""Where one prediction's time goes: per-stage seconds of ``VertebraPredictor.__call__``.

The stages (:data:`STAGES`), in the order they run:

* ``read``: decoding the file (``VertebraPredictor.load``) and the test mapper's input;
* ``preprocess``: normalising and padding (``GeneralizedRCNN.preprocess_image``);
* ``backbone``: the bottom-up network (ResNet or HRNet), ``fpn``: the feature pyramid on top;
* ``rpn``: the proposal generator (its head, anchors, decoding, NMS, top-k);
* ``box_roialign``, ``box_head``, ``box_predictor``: ROIAlign over the proposals, the two FC
  layers, the class and box-delta layers;
* ``keypoint_roialign``, ``keypoint_head``: ROIAlign over the detections, and the head's
  convolutions and deconvolution;
* ``keypoint_decode``: the head's 2x upsampling and heatmaps to corners (detectron2's bicubic
  upsampling per detection, and the sub-pixel refinement);
* ``model_other``: the rest of the model call (box inference and NMS, rescaling to the
  image; with TTA the mirroring and the fusion);
* ``grading``: corners to vertebrae, pairs, slips, grades and flags
  (``VertebraPredictor.to_prediction``).

Timing uses module hooks and wrapped methods on one predictor (their overhead is a few
microseconds per call); ``total`` is the whole call, timed around it. Seconds are per image,
medians over the timed images (so the stages need not add up to the median total exactly).
"""
from __future__ import annotations

import time
from collections import defaultdict
from contextlib import contextmanager
from typing import Dict, Iterator, List, Sequence

import numpy as np

__all__ = ["STAGES", "profile_predictor"]

STAGES = ("read", "preprocess", "backbone", "fpn", "rpn", "box_roialign", "box_head", "box_predictor",
          "keypoint_roialign", "keypoint_head", "keypoint_decode", "model_other", "grading")


class _Clock:
    """Seconds per named span, summed over the calls of one image."""

    def __init__(self):
        self.spent: Dict[str, float] = defaultdict(float)
        self._start: Dict[int, float] = {}

    def wrap(self, name: str, fn):
        def timed(*args, **kwargs):
            t0 = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self.spent[name] += time.perf_counter() - t0
        return timed

    def hook(self, name: str, module) -> list:
        key = id(module)

        def pre(*_):
            self._start[key] = time.perf_counter()

        def post(*_):
            self.spent[name] += time.perf_counter() - self._start.pop(key)

        return [module.register_forward_pre_hook(pre), module.register_forward_hook(post)]


@contextmanager
def _instrumented(predictor, clock: _Clock) -> Iterator[None]:
    """Hooks and wrapped methods on ``predictor`` for the duration; removed after."""
    model = predictor.model
    heads = model.roi_heads
    handles = []
    for name, module in (("backbone_and_fpn", model.backbone), ("backbone", model.backbone.bottom_up),
                         ("rpn", model.proposal_generator), ("box_roialign", heads.box_pooler),
                         ("box_head", heads.box_head), ("box_predictor", heads.box_predictor),
                         ("keypoint_roialign", heads.keypoint_pooler), ("keypoint_all", heads.keypoint_head)):
        handles += clock.hook(name, module)
    for layer in heads.keypoint_head.children():  # its convolutions and deconvolution, not the decoding
        handles += clock.hook("keypoint_head", layer)
    wrapped = [(model, "preprocess_image", "preprocess"), (predictor, "load", "read"), (predictor, "prepare", "read"),
               (predictor, "to_prediction", "grading"), (predictor, "run_model", "model")]  # (owner, method, span)
    for owner, attr, name in wrapped:
        setattr(owner, attr, clock.wrap(name, getattr(owner, attr)))
    try:
        yield
    finally:
        for h in handles:
            h.remove()
        for owner, attr, _ in wrapped:
            delattr(owner, attr)  # back to the class's method


def _stages(spent: Dict[str, float]) -> Dict[str, float]:
    """The :data:`STAGES` of one image's raw spans (the layers inside the keypoint head's
    call are ``keypoint_head``; the rest of that call is the decoding)."""
    out = {k: spent.get(k, 0.0) for k in STAGES}
    out["fpn"] = spent.get("backbone_and_fpn", 0.0) - spent.get("backbone", 0.0)
    out["keypoint_decode"] = spent.get("keypoint_all", 0.0) - spent.get("keypoint_head", 0.0)
    inside = sum(out[k] for k in STAGES if k not in ("read", "grading", "model_other"))
    out["model_other"] = spent.get("model", 0.0) - inside
    return out


def profile_predictor(predictor, paths: Sequence[str], warmup: int = 1) -> Dict[str, dict]:
    """Per-stage seconds of ``predictor(path)`` over ``paths``, after ``warmup`` untimed calls.

    Returns:
        {"stages": {stage: median s}, "total_median_s", "share": {stage: fraction of the
        summed medians}, "images": n}.
    """
    for k in range(warmup):
        predictor(paths[k % len(paths)])
    per_image: List[Dict[str, float]] = []
    totals = []
    for path in paths:
        clock = _Clock()
        with _instrumented(predictor, clock):
            t0 = time.perf_counter()
            predictor(path)
            totals.append(time.perf_counter() - t0)
        per_image.append(_stages(clock.spent))
    stages = {k: float(np.median([s[k] for s in per_image])) for k in STAGES}
    summed = sum(stages.values()) or 1.0
    return {"stages": stages, "total_median_s": float(np.median(totals)),
            "share": {k: v / summed for k, v in stages.items()}, "images": len(paths)}
