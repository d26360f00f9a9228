"""``VertebraPredictor``: a trained Keypoint R-CNN plus the grading, image in, graded spine out.

    from vertkp.inference import VertebraPredictor
    predictor = VertebraPredictor("configs/kprcnn_r50.yaml", "output/kprcnn_r50/model_best.pth")
    result = predictor("xray.png")            # path or array; grey or colour; 8 or 16 bit
    for pair in result.pairs:
        print(pair.name, pair.slip_pct, pair.grade_name, pair.flags)

The network sees exactly what it saw at evaluation time during training: the
image from vertkp's one decoder (``vertkp.data.imaging.images``) and the test mapper's
input (``VertebraDatasetMapper.image_input``: grey replicated to 3 channels, the
config's one test-time resize). Everything after the network is
``vertkp.inference.result``.
"""
from __future__ import annotations

import logging
import os
from dataclasses import replace
from typing import List, Optional, Sequence, Tuple

import numpy as np
import torch
from detectron2.modeling import build_model

from ..config import build_cfg
from ..data.imaging.images import ImageRecord, load_image, to_gray8
from ..data.loading.mapper import VertebraDatasetMapper
from ..evaluation.matching import DEFAULT_SCORE_THRESHOLD
from ..grading import DEFAULT_GAP_FACTOR, DEFAULT_NO_SLIP_PCT
from ..modeling.batch_norm import fold_batch_norm
from ..modeling.outputs import predictions_from_instances
from ..modeling.test_time_augmentation import KeypointRCNNWithTTA, set_tta_mode, tta_mode
from ..modeling.weights import load_trained_weights
from .result import FlagThresholds, SpinePrediction, build_prediction
from ..review import OPERATING_POINTS, CornerUncertainty

__all__ = ["VertebraPredictor"]


class VertebraPredictor:
    """A trained vertkp model that returns :class:`SpinePrediction` per image.

    Args:
        config_file: a vertkp config (``configs/*.yaml``).
        weights: checkpoint path or URL; None: the config's ``MODEL.WEIGHTS``;
            "": random initialisation (speed measurements only). A file that is not a
            checkpoint, or one that leaves tensors of the config's model unloaded (another
            config's), raises ValueError. Once loaded, batch norms are folded into their
            convolutions (``vertkp.modeling.batch_norm``).
        opts: extra ``KEY VALUE`` config overrides.
        device: "cpu", "cuda", "cuda:1"; None: CUDA when available, else the CPU.
        score_threshold: detections under this score are dropped, in [0, 1].
        view: "lateral" or "ap" (what the pair measures are).
        facing: "left", "right" or "auto" (estimated per image).
        pixel_spacing: mm per pixel for every image, over a DICOM file's own (per image: the call's
            argument, over both; ``vertkp.data.imaging.images.ImageRecord``); None: a DICOM file's own, else none.
        bottom_level: "auto" (default): levels named where S1 is recognised at the bottom
            (``vertkp.grading.levels``); a level ("S1"): the most caudal vertebra in view is it;
            None: names by position.
        no_slip_pct, gap_factor: as for ``vertkp.grading.grade_spine``.
        thresholds: when to flag (:class:`FlagThresholds`); None: the calibrated defaults of
            the predictor's TTA mode (``vertkp.review.OPERATING_POINTS``).
        keep_dicom_ids: record a DICOM file's patient and study identifiers in its
            result (``SpinePrediction.dicom_ids``); by default none is read.
        tta: test-time augmentation, "none", "flip" or "flip,scale"
            (``vertkp.modeling.test_time_augmentation.set_tta_mode``); None: the config's
            ``TEST.AUG`` keys.
        uncertainty: the corner error model of the slip intervals
            (``vertkp.review.CornerUncertainty``); None: the one fitted for the
            predictor's TTA mode (``vertkp.review.OPERATING_POINTS``).
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
               facing: str = "auto", pixel_spacing: Optional[float] = None, bottom_level: Optional[str] = "auto",
               no_slip_pct: float = DEFAULT_NO_SLIP_PCT, gap_factor: float = DEFAULT_GAP_FACTOR,
               thresholds: Optional[FlagThresholds] = None, keep_dicom_ids: bool = False,
               tta: Optional[str] = None, uncertainty: Optional[CornerUncertainty] = None):
        if not 0.0 <= score_threshold <= 1.0:
            raise ValueError(f"score_threshold must be in [0, 1], got {score_threshold}")
        cfg.defrost()
        if tta is not None:
            set_tta_mode(cfg, tta)
        # The box head drops the rest. With TTA each pass keeps what scores 0.05 (detectron2's
        # default), so that a vertebra one pass scores under the threshold still counts in the
        # fused score, which the threshold is applied to (to_prediction).
        self.tta = tta_mode(cfg)
        tta_on = self.tta != "none"
        cfg.MODEL.ROI_HEADS.SCORE_THRESH_TEST = min(score_threshold, 0.05) if tta_on else score_threshold
        cfg.freeze()
        self.cfg = cfg
        self.model = build_model(cfg).eval()
        if cfg.MODEL.WEIGHTS:
            load_trained_weights(self.model, cfg.MODEL.WEIGHTS)
            fold_batch_norm(self.model)  # the trained model's answers, for less work
        else:
            logging.getLogger(__name__).warning("no weights given: the model is randomly initialised")
        # what run_model calls: the model, or the model inside test-time augmentation
        self.network = KeypointRCNNWithTTA(cfg, self.model).eval() if tta_on else self.model
        self.uncertainty = OPERATING_POINTS[self.tta].uncertainty if uncertainty is None else uncertainty
        thresholds = OPERATING_POINTS[self.tta].thresholds if thresholds is None else thresholds
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
    def load(self, source) -> Tuple[np.ndarray, ImageRecord]:
        """(decoded image in ``INPUT.FORMAT``, its record) of a path or an array
        (``vertkp.data.imaging.images.load_image``: a DICOM file's pixel spacing and, with ``keep_dicom_ids``,
        its identifiers; the predictor's pixel spacing, when it has one, over the file's).

        Raises:
            vertkp.data.imaging.images.ImageReadError: an unreadable file.
        """
        image, record = load_image(source, self.input_format, self.keep_dicom_ids)
        return image, record.given(ImageRecord(self.grading["pixel_spacing"]))

    def prepare(self, image: np.ndarray) -> dict:
        """Model input of a decoded image (the test mapper's :meth:`~VertebraDatasetMapper.image_input`)."""
        return self.mapper.image_input(image)

    def run_model(self, inputs: List[dict]) -> list:
        """detectron2 ``Instances`` (on the CPU, in input-image pixels) for model inputs."""
        with torch.inference_mode():
            outputs = self.network(inputs)
        return [o["instances"].to("cpu") for o in outputs]

    # ---- image in, graded spine out ------------------------------------------------------
    def to_prediction(self, instances, *, name: str, height: int, width: int,
                      record: ImageRecord = ImageRecord()) -> SpinePrediction:
        """Grade one image's ``Instances`` (``build_prediction``) with the predictor's settings, but
        for what ``record`` knows of the image (its pixel spacing with its source, view, facing);
        its notes are added to the result's, its ``dicom_ids`` set on it."""
        p = predictions_from_instances(instances[instances.scores >= self.score_threshold])
        conf = p.corner_confidence  # None: no heatmaps, no corner confidence to flag on
        conf = np.full((len(p.scores), 4), np.nan) if conf is None else conf
        settings = dict(self.grading, view=record.view or self.grading["view"], data_facing=record.data_facing)
        if record.pixel_spacing is not None:
            settings.update(pixel_spacing=record.pixel_spacing, pixel_spacing_source=record.pixel_spacing_source)
        pred = build_prediction(p.corners, conf, p.scores, p.boxes, image=name, height=height, width=width,
                                corner_spread=p.corner_spread,
                                uncertainty=self.uncertainty, **settings)
        pred.notes.extend(record.notes)
        pred.dicom_ids = record.dicom_ids
        return pred

    def __call__(self, image, *, name: Optional[str] = None, **given) -> SpinePrediction:
        """Predict one image: a path or an array (grey [H, W], colour [H, W, 3]
        in ``INPUT.FORMAT`` order, uint8 or deeper). ``given``: what is known of it, as
        ``ImageRecord`` fields (``pixel_spacing=0.14``, ``view``, ``data_facing``); see :meth:`predict_batch`."""
        return self.predict_batch([image], names=[name] if name else None, records=[ImageRecord(**given)])[0]

    def predict_batch(self, images: Sequence, *, batch_size: int = 1, names: Optional[Sequence[str]] = None,
                      records: Optional[Sequence[Optional[ImageRecord]]] = None) -> List[SpinePrediction]:
        """Predict many images, ``batch_size`` per forward pass.

        Args:
            images: paths or arrays.
            names: per image, the name in the result (default: the path, or "<array k>").
            records: per image, what is known of it (``vertkp.data.imaging.images.ImageRecord``, e.g.
                ``ImageRecord(pixel_spacing=0.14)``; None: nothing); what it knows wins over the
                predictor's settings and what the file says of itself (:meth:`load`,
                ``ImageRecord.given``).

        Raises:
            vertkp.data.imaging.images.ImageReadError: an unreadable file (nothing is returned).
        """
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        results = []
        for start in range(0, len(images), batch_size):
            decoded, chunk_names, chunk_records = [], [], []
            for k, src in enumerate(images[start:start + batch_size], start):
                image, record = self.load(src)
                decoded.append(image)
                given = names[k] if names is not None else None
                chunk_names.append(given or (str(src) if isinstance(src, (str, os.PathLike)) else f"<array {k}>"))
                known = records[k] if records is not None else None
                chunk_records.append(record.given(known) if known is not None else record)
            results += self.predict_decoded(decoded, chunk_names, chunk_records)
        return results

    def predict_decoded(self, images: Sequence[np.ndarray], names: Sequence[str],
                        records: Optional[Sequence[ImageRecord]] = None) -> List[SpinePrediction]:
        """One forward pass over decoded images (:meth:`load`), graded with their records."""
        outputs = self.run_model([self.prepare(im) for im in images])
        records = records if records is not None else [ImageRecord()] * len(images)
        return [self.to_prediction(inst, name=nm, height=image.shape[0], width=image.shape[1], record=record)
                for image, inst, nm, record in zip(images, outputs, names, records)]

    def gray(self, image: np.ndarray) -> np.ndarray:
        """uint8 grey [H, W] of a decoded image (what overlays are drawn on)."""
        return to_gray8(image, self.input_format)
