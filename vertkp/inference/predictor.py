"""``VertebraPredictor``: a trained Keypoint R-CNN plus the grading, image in, graded spine out.

    from vertkp.inference import VertebraPredictor
    predictor = VertebraPredictor("configs/kprcnn_r50.yaml", "output/kprcnn_r50/model_best.pth")
    result = predictor("xray.png")            # path or array; grey or colour; 8 or 16 bit
    for pair in result.pairs:
        print(pair.name, pair.slip_pct, pair.grade_name, pair.flags)

The network runs as at evaluation time (the config's test size, grey images
replicated to 3 channels); everything after it is ``vertkp.inference.result``.
"""
from __future__ import annotations

import logging
from typing import List, Optional, Sequence

import numpy as np

from ..grading import DEFAULT_GAP_FACTOR, DEFAULT_NO_SLIP_PCT
from .images import load_image
from .result import FlagThresholds, SpinePrediction, build_prediction, corner_confidence

__all__ = ["DEFAULT_SCORE_THRESHOLD", "VertebraPredictor", "model_input"]

# Detections under this score are dropped (the evaluator's default too).
DEFAULT_SCORE_THRESHOLD = 0.5
# detectron2 keypoint coordinates = image pixel coordinates + 0.5 (see vertkp.evaluation.io).
_D2_OFFSET = 0.5


def model_input(gray: np.ndarray, cfg) -> dict:
    """detectron2 model input of a uint8 grey image [H, W], as at test time: resized to the
    config's test size (``INPUT.MIN_SIZE_TEST``/``MAX_SIZE_TEST``), replicated to 3 channels
    (``INPUT.FORMAT`` order is moot for grey); "height"/"width" are the input's, so outputs
    come back in its pixels."""
    import torch
    from detectron2.data import transforms as T

    h, w = gray.shape[:2]
    resize = T.ResizeShortestEdge([cfg.INPUT.MIN_SIZE_TEST] * 2, cfg.INPUT.MAX_SIZE_TEST)
    resized = resize.get_transform(gray).apply_image(gray)
    image = np.repeat(resized[:, :, None], 3, axis=2).astype(np.float32)
    return {"image": torch.as_tensor(image.transpose(2, 0, 1)), "height": h, "width": w}


class VertebraPredictor:
    """A trained vertkp model that returns :class:`SpinePrediction` per image.

    Args:
        config_file: a vertkp config (``configs/*.yaml``).
        weights: checkpoint path or URL; None: the config's ``MODEL.WEIGHTS``;
            "": random initialisation (speed measurements only).
        opts: extra ``KEY VALUE`` config overrides.
        device: "cpu", "cuda", "cuda:1"; None: CUDA when available, else the CPU.
        score_threshold: detections under this score are dropped, in [0, 1].
        view: "lateral" or "ap" (what the pair measures are).
        facing: "left", "right" or "auto" (estimated per image).
        pixel_spacing: mm per pixel for every image (per image: the call's argument).
        bottom_level: the level of the most caudal vertebra in view ("S1"),
            to name vertebrae by level; None names them by position.
        no_slip_pct, gap_factor: as for ``vertkp.grading.grade_spine``.
        thresholds: when to flag (:class:`FlagThresholds`).
    """

    def __init__(self, config_file: str, weights: Optional[str] = None, *, opts: Sequence[str] = (),
                 device: Optional[str] = None, **kwargs):
        from ..engine.defaults import build_cfg

        overrides = ["SOLVER.AMP.ENABLED", "False", *opts]  # a training setting: no warning about it here
        if weights is not None:
            overrides += ["MODEL.WEIGHTS", weights]
        if device is not None:
            overrides += ["MODEL.DEVICE", device]
        cfg = build_cfg(config_file, overrides, freeze=False)
        if device is None and cfg.MODEL.DEVICE == "cpu":
            import torch

            if torch.cuda.is_available():
                cfg.MODEL.DEVICE = "cuda"
        self._setup(cfg, **kwargs)

    @classmethod
    def from_cfg(cls, cfg, **kwargs) -> "VertebraPredictor":
        """A predictor from a built detectron2 config (``vertkp.engine.build_cfg``);
        weights from ``cfg.MODEL.WEIGHTS``."""
        self = cls.__new__(cls)
        self._setup(cfg.clone(), **kwargs)
        return self

    def _setup(self, cfg, *, score_threshold: float = DEFAULT_SCORE_THRESHOLD, view: str = "lateral",
               facing: str = "auto", pixel_spacing: Optional[float] = None, bottom_level: Optional[str] = None,
               no_slip_pct: float = DEFAULT_NO_SLIP_PCT, gap_factor: float = DEFAULT_GAP_FACTOR,
               thresholds: FlagThresholds = FlagThresholds()):
        import torch
        from detectron2.checkpoint import DetectionCheckpointer
        from detectron2.modeling import build_model

        import vertkp.modeling  # noqa: F401  (registers the HRNet backbone)

        if not 0.0 <= score_threshold <= 1.0:
            raise ValueError(f"score_threshold must be in [0, 1], got {score_threshold}")
        cfg.defrost()
        cfg.MODEL.ROI_HEADS.SCORE_THRESH_TEST = score_threshold  # the box head drops the rest
        cfg.freeze()
        self.cfg = cfg
        self.model = build_model(cfg).eval()
        if cfg.MODEL.WEIGHTS:
            DetectionCheckpointer(self.model).load(cfg.MODEL.WEIGHTS)
        else:
            logging.getLogger(__name__).warning("no weights given: the model is randomly initialised")
        self.input_format = cfg.INPUT.FORMAT
        self.device = torch.device(cfg.MODEL.DEVICE)
        self.score_threshold = float(score_threshold)
        self.grading = dict(view=view, facing=facing, pixel_spacing=pixel_spacing, bottom_level=bottom_level,
                            no_slip_pct=no_slip_pct, gap_factor=gap_factor, thresholds=thresholds)

    # ---- the network alone -------------------------------------------------------------
    def prepare(self, gray: np.ndarray) -> dict:
        """Model input of a uint8 grey image [H, W] (:func:`model_input` with this config)."""
        return model_input(gray, self.cfg)

    def run_model(self, inputs: List[dict]) -> list:
        """detectron2 ``Instances`` (on the CPU, in input-image pixels) for model inputs."""
        import torch

        with torch.inference_mode():
            outputs = self.model(inputs)
        return [o["instances"].to("cpu") for o in outputs]

    # ---- image in, graded spine out ------------------------------------------------------
    def to_prediction(self, instances, *, name: str, height: int, width: int, **overrides) -> SpinePrediction:
        """Grade one image's ``Instances`` (``build_prediction``); ``overrides``
        replace the predictor's grading settings (pixel_spacing, facing, data_facing, view, ...)."""
        keep = instances.scores >= self.score_threshold
        inst = instances[keep]
        n = len(inst)
        if n:
            kps = inst.pred_keypoints.numpy().astype(np.float64)
            corners = kps[:, :, :2] - _D2_OFFSET
            conf = corner_confidence(inst.pred_keypoint_heatmaps.float().numpy())
            boxes = inst.pred_boxes.tensor.numpy().astype(np.float64)
            scores = inst.scores.numpy().astype(np.float64)
        else:
            corners, conf, boxes, scores = np.zeros((0, 4, 2)), np.zeros((0, 4)), np.zeros((0, 4)), np.zeros(0)
        settings = dict(self.grading)
        settings.update({k: v for k, v in overrides.items() if v is not None})
        return build_prediction(corners, conf, scores, boxes, image=name, height=height, width=width, **settings)

    def __call__(self, image, *, name: Optional[str] = None, **overrides) -> SpinePrediction:
        """Predict one image: a path or an array (grey [H, W], colour [H, W, 3]
        in ``INPUT.FORMAT`` order, uint8 or uint16). ``overrides``: see :meth:`to_prediction`."""
        return self.predict_batch([image], names=[name] if name else None, options=[overrides])[0]

    def predict_batch(self, images: Sequence, *, batch_size: int = 1, names: Optional[Sequence[str]] = None,
                      options: Optional[Sequence[dict]] = None) -> List[SpinePrediction]:
        """Predict many images, ``batch_size`` per forward pass.

        Args:
            images: paths or arrays.
            names: per image, the name in the result (default: the path, or "<array k>").
            options: per image, grading overrides (e.g. ``{"pixel_spacing": 0.14}``).

        Raises:
            vertkp.inference.ImageReadError: an unreadable file (nothing is returned).
        """
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        results = []
        for start in range(0, len(images), batch_size):
            chunk = images[start:start + batch_size]
            grays, chunk_names = [], []
            for k, src in enumerate(chunk, start):
                gray, default = load_image(src, self.input_format)
                grays.append(gray)
                given = names[k] if names is not None else None
                chunk_names.append(given or (default if default != "<array>" else f"<array {k}>"))
            outputs = self.run_model([self.prepare(g) for g in grays])
            for k, (gray, inst, nm) in enumerate(zip(grays, outputs, chunk_names), start):
                opts = dict(options[k]) if options is not None and options[k] else {}
                results.append(self.to_prediction(inst, name=nm, height=gray.shape[0], width=gray.shape[1],
                                                  **opts))
        return results
