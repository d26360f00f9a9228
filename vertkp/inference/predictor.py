"""``VertebraPredictor``: a trained Keypoint R-CNN plus the grading, image in, graded spine out.

    from vertkp.inference import VertebraPredictor
    predictor = VertebraPredictor("configs/kprcnn_r50.yaml", "output/kprcnn_r50/model_best.pth")
    result = predictor("xray.png")            # path or array; grey or colour; 8 or 16 bit
    for pair in result.pairs:
        print(pair.name, pair.slip_pct, pair.grade_name, pair.flags)

The network sees exactly what it saw at evaluation time during training: the
image from vertkp's one decoder (``vertkp.data.images``) and the test mapper's
input (``VertebraDatasetMapper.image_input``: grey replicated to 3 channels, the
config's one test-time resize). Everything after the network is
``vertkp.inference.result``.
"""
from __future__ import annotations

import logging
from dataclasses import replace
from typing import List, Optional, Sequence, Tuple

import numpy as np
import torch
from detectron2.modeling import build_model

from ..config import build_cfg
from ..data.imaging.images import load_image, to_gray8
from ..data.loading.mapper import VertebraDatasetMapper
from ..evaluation.matching import DEFAULT_SCORE_THRESHOLD
from ..grading import DEFAULT_GAP_FACTOR, DEFAULT_NO_SLIP_PCT
from ..keypoints import DETECTRON2_KEYPOINT_OFFSET
from ..modeling.weights import load_trained_weights
from .result import SPACING_OPTIONS, FlagThresholds, SpinePrediction, build_prediction, file_options, merge_options
from .backends import BACKENDS, DEFAULT_BACKEND
from .fast import prepare_fast_model, task_sized_cfg
from .tta import VertebraTTA, instances_corner_signals, uses_tta
from ..flags import default_thresholds
from ..grading.uncertainty import CornerUncertainty, default_uncertainty

__all__ = ["VertebraPredictor"]


class VertebraPredictor:
    """A trained vertkp model that returns :class:`SpinePrediction` per image.

    Args:
        config_file: a vertkp config (``configs/*.yaml``).
        weights: checkpoint path or URL; None: the config's ``MODEL.WEIGHTS``;
            "": random initialisation (speed measurements only). A file that is not a
            checkpoint, or one that leaves tensors of the config's model unloaded (another
            config's), raises ValueError.
        opts: extra ``KEY VALUE`` config overrides.
        device: "cpu", "cuda", "cuda:1"; None: CUDA when available, else the CPU.
        score_threshold: detections under this score are dropped, in [0, 1].
        view: "lateral" or "ap" (what the pair measures are).
        facing: "left", "right" or "auto" (estimated per image).
        pixel_spacing: mm per pixel for every image (per image: the call's argument); None:
            a DICOM file's own (``vertkp.inference.result.file_options``), else none.
        bottom_level: the level of the most caudal vertebra in view ("S1"),
            to name vertebrae by level; None names them by position.
        no_slip_pct, gap_factor: as for ``vertkp.grading.grade_spine``.
        thresholds: when to flag (:class:`FlagThresholds`); None: the calibrated defaults of
            the predictor's mode (``vertkp.flags.default_thresholds``, with or without TTA).
        keep_dicom_ids: record a DICOM file's patient and study identifiers in its
            result (``SpinePrediction.dicom_ids``); by default none is read.
        tta: test-time augmentation, "none", "flip" or "flip,scale"
            (``vertkp.inference.tta``); None: the config's ``VERTKP.TTA``.
        uncertainty: the corner error model of the slip intervals
            (``vertkp.grading.uncertainty.CornerUncertainty``); None: the one fitted for the
            predictor's mode (``default_uncertainty``).
        backend: "fast" (``vertkp.inference.fast``: the same corners and detections for less
            work) or "eager" (the model exactly as detectron2 runs it at evaluation).
    """

    def __init__(self, config_file: str, weights: Optional[str] = None, *, opts: Sequence[str] = (),
                 device: Optional[str] = None, **kwargs):
        overrides = ["SOLVER.AMP.ENABLED", "False", *opts]  # a training setting: no warning about it here
        if weights is not None:
            overrides += ["MODEL.WEIGHTS", weights]
        if device is not None:
            overrides += ["MODEL.DEVICE", device]
        cfg = build_cfg(config_file, overrides, freeze=False)
        if device is None and cfg.MODEL.DEVICE == "cpu" and torch.cuda.is_available():
            cfg.MODEL.DEVICE = "cuda"
        self._setup(cfg, **kwargs)

    @classmethod
    def from_cfg(cls, cfg, **kwargs) -> "VertebraPredictor":
        """A predictor from a built detectron2 config (``vertkp.config.build_cfg``);
        weights from ``cfg.MODEL.WEIGHTS``."""
        self = cls.__new__(cls)
        self._setup(cfg.clone(), **kwargs)
        return self

    def _setup(self, cfg, *, score_threshold: float = DEFAULT_SCORE_THRESHOLD, view: str = "lateral",
               facing: str = "auto", pixel_spacing: Optional[float] = None, bottom_level: Optional[str] = None,
               no_slip_pct: float = DEFAULT_NO_SLIP_PCT, gap_factor: float = DEFAULT_GAP_FACTOR,
               thresholds: Optional[FlagThresholds] = None, keep_dicom_ids: bool = False,
               tta: Optional[str] = None, uncertainty: Optional[CornerUncertainty] = None,
               backend: str = DEFAULT_BACKEND):
        if not 0.0 <= score_threshold <= 1.0:
            raise ValueError(f"score_threshold must be in [0, 1], got {score_threshold}")
        if backend not in BACKENDS:
            raise ValueError(f"backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
        cfg.defrost()
        if backend == "fast":
            task_sized_cfg(cfg)
        if tta is not None:
            cfg.VERTKP.TTA = tta
        # The box head drops the rest. With TTA each pass keeps what scores 0.05 (detectron2's
        # default), so that a vertebra one pass scores under the threshold still counts in the
        # fused score, which the threshold is applied to (to_prediction).
        tta_on = uses_tta(cfg)
        cfg.MODEL.ROI_HEADS.SCORE_THRESH_TEST = min(score_threshold, 0.05) if tta_on else score_threshold
        cfg.freeze()
        self.cfg = cfg
        self.model = build_model(cfg).eval()
        if cfg.MODEL.WEIGHTS:
            load_trained_weights(self.model, cfg.MODEL.WEIGHTS)
        else:
            logging.getLogger(__name__).warning("no weights given: the model is randomly initialised")
        if backend == "fast":
            prepare_fast_model(self.model)
        # what run_model calls: the model, or the model inside test-time augmentation (fast: the
        # keypoint head only on the detections of vertebrae that can reach the score threshold;
        # a hair under it, so that the threshold itself decides on the float32 scores, as eager)
        min_score = score_threshold - 1e-6 if backend == "fast" else None
        self.network = VertebraTTA.from_cfg(cfg, self.model, min_score).eval() if tta_on else self.model
        self.tta = tta_on
        self.backend = backend
        self.uncertainty = default_uncertainty(tta_on) if uncertainty is None else uncertainty
        thresholds = default_thresholds(tta_on) if thresholds is None else thresholds
        self.mapper = VertebraDatasetMapper(cfg, is_train=False)
        self.input_format = cfg.INPUT.FORMAT
        self.device = torch.device(cfg.MODEL.DEVICE)
        self.score_threshold = float(score_threshold)
        self.keep_dicom_ids = bool(keep_dicom_ids)
        self.grading = dict(view=view, facing=facing, pixel_spacing=pixel_spacing, bottom_level=bottom_level,
                            no_slip_pct=no_slip_pct, gap_factor=gap_factor, thresholds=thresholds,
                            pixel_spacing_source="given" if pixel_spacing is not None else None)

    def set_thresholds(self, **overrides) -> FlagThresholds:
        """Replace some flag thresholds (``FlagThresholds`` fields; None values are ignored);
        returns the thresholds now used."""
        given = {k: float(v) for k, v in overrides.items() if v is not None}
        self.grading["thresholds"] = replace(self.grading["thresholds"], **given)
        return self.grading["thresholds"]

    # ---- the network alone -------------------------------------------------------------
    def load(self, source) -> Tuple[np.ndarray, str]:
        """(decoded image in ``INPUT.FORMAT``, name) of a path or an array (``vertkp.data.images.load_image``).

        Raises:
            vertkp.data.images.ImageReadError: an unreadable file.
        """
        return load_image(source, self.input_format)

    def prepare(self, image: np.ndarray) -> dict:
        """Model input of a decoded image (the test mapper's :meth:`~VertebraDatasetMapper.image_input`)."""
        return self.mapper.image_input(image)

    def run_model(self, inputs: List[dict]) -> list:
        """detectron2 ``Instances`` (on the CPU, in input-image pixels) for model inputs."""
        with torch.inference_mode():
            outputs = self.network(inputs)
        return [o["instances"].to("cpu") for o in outputs]

    # ---- image in, graded spine out ------------------------------------------------------
    def to_prediction(self, instances, *, name: str, height: int, width: int, **overrides) -> SpinePrediction:
        """Grade one image's ``Instances`` (``build_prediction``); ``overrides``
        replace the predictor's grading settings (pixel_spacing with its pixel_spacing_source,
        facing, data_facing, view, ...); ``notes`` are added to the result's, ``dicom_ids`` set on it."""
        inst = instances[instances.scores >= self.score_threshold]
        conf, spread = instances_corner_signals(inst)
        if conf is None:  # no heatmaps: no corner confidence to flag on
            conf = np.full((len(inst), 4), np.nan)
        if len(inst):
            kps = inst.pred_keypoints.numpy().astype(np.float64)
            corners = kps[:, :, :2] - DETECTRON2_KEYPOINT_OFFSET
            boxes = inst.pred_boxes.tensor.numpy().astype(np.float64)
            scores = inst.scores.numpy().astype(np.float64)
        else:
            corners, boxes, scores = np.zeros((0, 4, 2)), np.zeros((0, 4)), np.zeros(0)
        settings = dict(self.grading)
        given = {k: v for k, v in overrides.items() if v is not None}
        source = given.pop("pixel_spacing_source", None)
        if "pixel_spacing" in given:
            settings["pixel_spacing_source"] = source or "given"
        notes, ids = given.pop("notes", ()), given.pop("dicom_ids", None)
        settings.update(given)
        pred = build_prediction(corners, conf, scores, boxes, image=name, height=height, width=width,
                                corner_spread=spread,
                                uncertainty=self.uncertainty, **settings)
        pred.notes.extend(notes)
        pred.dicom_ids = ids
        return pred

    def file_options(self, source) -> dict:
        """Per-image options a file carries itself (``vertkp.inference.result.file_options``: a
        DICOM file's pixel spacing, and its identifiers with ``keep_dicom_ids``); its spacing
        only when the predictor was given none."""
        own = file_options(source, self.keep_dicom_ids)
        if self.grading["pixel_spacing"] is not None:  # the predictor's spacing wins over the file's
            own = {k: v for k, v in own.items() if k not in SPACING_OPTIONS}
        return own

    def __call__(self, image, *, name: Optional[str] = None, **overrides) -> SpinePrediction:
        """Predict one image: a path or an array (grey [H, W], colour [H, W, 3]
        in ``INPUT.FORMAT`` order, uint8 or deeper). ``overrides``: see :meth:`to_prediction`."""
        return self.predict_batch([image], names=[name] if name else None, options=[overrides])[0]

    def predict_batch(self, images: Sequence, *, batch_size: int = 1, names: Optional[Sequence[str]] = None,
                      options: Optional[Sequence[dict]] = None) -> List[SpinePrediction]:
        """Predict many images, ``batch_size`` per forward pass.

        Args:
            images: paths or arrays.
            names: per image, the name in the result (default: the path, or "<array k>").
            options: per image, grading overrides (e.g. ``{"pixel_spacing": 0.14}``); they win
                over what the file says of itself (:meth:`file_options`).

        Raises:
            vertkp.data.images.ImageReadError: an unreadable file (nothing is returned).
        """
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        results = []
        for start in range(0, len(images), batch_size):
            decoded, chunk_names, chunk_options = [], [], []
            for k, src in enumerate(images[start:start + batch_size], start):
                image, default = self.load(src)
                decoded.append(image)
                given = names[k] if names is not None else None
                chunk_names.append(given or (default if default != "<array>" else f"<array {k}>"))
                chunk_options.append(merge_options(self.file_options(src),
                                                   options[k] if options is not None else None))
            results += self.predict_decoded(decoded, chunk_names, chunk_options)
        return results

    def predict_decoded(self, images: Sequence[np.ndarray], names: Sequence[str],
                        options: Optional[Sequence[dict]] = None) -> List[SpinePrediction]:
        """One forward pass over decoded images (:meth:`load`), graded."""
        outputs = self.run_model([self.prepare(im) for im in images])
        results = []
        for k, (image, inst, nm) in enumerate(zip(images, outputs, names)):
            opts = dict(options[k]) if options is not None and options[k] else {}
            results.append(self.to_prediction(inst, name=nm, height=image.shape[0], width=image.shape[1], **opts))
        return results

    def gray(self, image: np.ndarray) -> np.ndarray:
        """uint8 grey [H, W] of a decoded image (what overlays are drawn on)."""
        return to_gray8(image, self.input_format)
