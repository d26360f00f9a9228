"""detectron2 glue: ``VertebraKeypointEvaluator``, a thin ``DatasetEvaluator``.

All arithmetic is ``vertkp.evaluation``'s, the same as ``vertkp evaluate``, and the
ground truth is read by the same loader (``load_ground_truth``) from the
registered dataset's COCO file, as COCOEvaluator does. Use it beside
detectron2's COCOEvaluator, which needs the project's sigmas passed explicitly
(it ignores cfg sigmas otherwise)::

    from detectron2.evaluation import COCOEvaluator, DatasetEvaluators
    from vertkp.keypoints import OKS_SIGMAS
    evaluator = DatasetEvaluators([
        VertebraKeypointEvaluator(name, output_dir=out),  # first: see below
        COCOEvaluator(name, output_dir=out, kpt_oks_sigmas=OKS_SIGMAS),
    ])

Order matters on the CPU: COCOEvaluator.process (``instances_to_coco_json``)
subtracts 0.5 from ``pred_keypoints`` in place, and on the CPU ``.to("cpu")``
does not copy, so an evaluator that runs after it sees every corner shifted
by (-0.5, -0.5) (0.71 px of error on a perfect prediction). This evaluator
copies the corners in ``process``, so it is safe when it comes first.

Coordinates: ``Instances.pred_keypoints`` are detectron2's, the COCO file's plus
``DETECTRON2_KEYPOINT_OFFSET``; the evaluator subtracts it, so a perfect
prediction scores 0 px.
"""
from __future__ import annotations

import itertools
import logging
import os
from pathlib import Path
from typing import Mapping, Optional, Sequence, Union

import numpy as np
from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.evaluation import DatasetEvaluator
from detectron2.utils import comm

from ..data.loading import registration  # noqa: F401  (registers vertkp's datasets, which it reads)
from ..data.conversion.coco import CATEGORY
from ..data.imaging.spacing import load_pixel_spacing
from ..keypoints import DETECTRON2_KEYPOINT_OFFSET
from ..modeling.outputs import predictions_from_instances
from ..phantoms.truth import TRUTH_FILE
from .dataset import evaluate_dataset, flat_metrics
from .exact_truth import add_truth_scores
from .ground_truth import EvaluationInputError, GroundTruth, apply_pixel_spacing, load_ground_truth
from .matching import DEFAULT_SCORE_THRESHOLD
from .report import format_summary, write_evaluation
from .scoring import DEFAULT_SDR_THRESHOLDS_MM, DEFAULT_SDR_THRESHOLDS_PX, EvaluationSettings

__all__ = ["VertebraKeypointEvaluator", "dataset_ground_truth", "coco_from_dataset_dicts",
           "phantom_truth_file"]

_IMAGE_FIELDS = ("file_name", "width", "height", "view", "facing", "pixel_spacing", "source_stem", "patient_id")


def coco_from_dataset_dicts(dicts: Sequence[Mapping]) -> dict:
    """A vertkp COCO dict of detectron2 dataset dicts (for a dataset registered without
    a COCO file): keypoints moved back by ``DETECTRON2_KEYPOINT_OFFSET`` into file
    coordinates, vertkp's image fields kept."""
    images, annotations = [], []
    for d in dicts:
        images.append({"id": d["image_id"], **{k: d.get(k) for k in _IMAGE_FIELDS}})
        for a in d.get("annotations", []) or []:
            k = np.asarray(a.get("keypoints", []), dtype=np.float64).reshape(-1, 3).copy()
            labelled = k[:, 2] > 0
            k[labelled, :2] -= DETECTRON2_KEYPOINT_OFFSET
            k[~labelled, :2] = 0.0
            annotations.append({"id": len(annotations) + 1, "image_id": d["image_id"], "category_id": CATEGORY["id"],
                                "keypoints": k.ravel().tolist(), "iscrowd": int(a.get("iscrowd", 0)),
                                "vertebra_level": a.get("vertebra_level")})
    return {"images": images, "annotations": annotations, "categories": [CATEGORY]}


def dataset_ground_truth(dataset_name: str) -> GroundTruth:
    """The ground truth of a registered dataset: its COCO file (``MetadataCatalog``'s
    ``json_file``, as COCOEvaluator reads it), else its dataset dicts."""
    json_file = getattr(MetadataCatalog.get(dataset_name), "json_file", None)
    if json_file and os.path.isfile(json_file):
        return load_ground_truth(json_file)
    return load_ground_truth(coco_from_dataset_dicts(DatasetCatalog.get(dataset_name)))


def phantom_truth_file(dataset_name: str) -> Optional[Path]:
    """The phantom truth (``phantom_truth.json``) at the image root of a registered dataset, or None
    when it is not a phantom set."""
    root = MetadataCatalog.get(dataset_name).get("image_root")
    path = Path(root) / TRUTH_FILE if root else None
    return path if path is not None and path.is_file() else None


class VertebraKeypointEvaluator(DatasetEvaluator):
    """MRE, SDR, detection P/R/F1, slip agreement (Bland-Altman, ICC) and, when asked, the
    bootstrap 95% CIs inside detectron2.

    Ground truth comes from :func:`dataset_ground_truth` by image id (the test
    mapper drops annotations). Only the images that were processed are scored. On several processes predictions are gathered to
    the main process, which alone returns results and writes files. On a phantom set
    (``phantom_truth.json`` at the dataset's image root) the scores against its exact
    corners are added (``exact_truth.add_truth_scores``: ``truth_MRE_px``, ``label_MRE_px``, ...).

    ``evaluate()`` returns ``{"vertkp": {...}}`` with flat floats
    (the scalars of metrics.json under their names, ``vertkp.evaluation.METRICS``:
    "MRE_px", "SDR_px@12", "det_F1", "slip_MAE_pp", "grade_acc", ...; NaN where
    undefined), so that detectron2 logs them and the best-checkpoint hook can
    watch "vertkp/MRE_px". With ``output_dir`` it writes the same files as
    ``vertkp evaluate``.
    """

    def __init__(self, dataset_name: str, output_dir: Optional[str] = None, *, distributed: bool = True,
                 facing: str = "auto", score_threshold: float = DEFAULT_SCORE_THRESHOLD,
                 gate_factor: Optional[float] = None, no_slip_pct: Optional[float] = None,
                 gap_factor: Optional[float] = None,
                 sdr_thresholds_px: Sequence[float] = DEFAULT_SDR_THRESHOLDS_PX,
                 sdr_thresholds_mm: Sequence[float] = DEFAULT_SDR_THRESHOLDS_MM,
                 pixel_spacing: Union[None, float, str, Mapping[str, float]] = None, plots: bool = True,
                 bootstrap: int = 0, seed: int = 0):
        """
        Args:
            dataset_name: a registered dataset whose dicts carry annotations.
            output_dir: where to write metrics.json, CSVs and plots (None: nothing is written).
            distributed: gather predictions from all processes.
            facing, score_threshold, gate_factor, no_slip_pct, gap_factor,
                sdr_thresholds_px, sdr_thresholds_mm: see ``EvaluationSettings``
                (None: its default).
            pixel_spacing: overrides the dicts' ``pixel_spacing``: mm per
                pixel, a table {name or stem: mm per pixel}, or the path of a
                CSV/.xlsx table (``load_pixel_spacing``).
            plots: write the PNG plots too.
            bootstrap: resamples for the bootstrap 95% CIs of metrics.json "ci95"
                (and the "*_ci95_low/high" results). 0, the default, turns them
                off, unlike ``vertkp evaluate`` (1000): they add nothing a
                training run watches, so its periodic evaluations stay fast.
            seed: the bootstrap's seed.
        """
        self._dataset_name = dataset_name
        self._output_dir = output_dir
        self._distributed = distributed
        extra = {k: v for k, v in dict(gate_factor=gate_factor, no_slip_pct=no_slip_pct,
                                       gap_factor=gap_factor).items() if v is not None}
        self._settings = EvaluationSettings(facing=facing, score_threshold=score_threshold,
                                            sdr_thresholds_px=sdr_thresholds_px,
                                            sdr_thresholds_mm=sdr_thresholds_mm, bootstrap=bootstrap, seed=seed,
                                            **extra)
        if isinstance(pixel_spacing, (str, os.PathLike)):
            pixel_spacing = load_pixel_spacing(pixel_spacing)
        self._pixel_spacing = pixel_spacing
        self._plots = plots
        self._logger = logging.getLogger(__name__)
        self._predictions = []

    def reset(self):
        self._predictions = []

    def process(self, inputs, outputs):
        """Keep each image's predictions (``vertkp.modeling.outputs.predictions_from_instances``)."""
        for inp, out in zip(inputs, outputs):
            inst = out.get("instances") if isinstance(out, Mapping) else None
            self._predictions.append({"image_id": inp["image_id"], "predictions": predictions_from_instances(inst)})

    def evaluate(self):
        if self._distributed:
            comm.synchronize()
            gathered = comm.gather(self._predictions, dst=0)
            predictions = list(itertools.chain(*gathered))
            if not comm.is_main_process():
                return {}
        else:
            predictions = self._predictions
        if not predictions:
            self._logger.warning("[VertebraKeypointEvaluator] did not receive valid predictions.")
            return {}
        per_image = {}
        for p in predictions:  # a padded sampler may repeat an image: keep the first
            per_image.setdefault(p["image_id"], p["predictions"])
        gt = {t.image_id: t for t in dataset_ground_truth(self._dataset_name).images}
        missing = [i for i in per_image if i not in gt]
        if missing:
            raise EvaluationInputError(
                f"predictions for image ids {missing[:5]} that dataset {self._dataset_name!r} does not have")
        truths = [gt[i] for i in per_image]
        apply_pixel_spacing(truths, self._pixel_spacing)
        result = evaluate_dataset(truths, per_image, self._settings)
        truth_file = phantom_truth_file(self._dataset_name)
        if truth_file is not None:  # a phantom set: also against its exact corners
            add_truth_scores(result.metrics, truth_file, truths, per_image, self._settings)
        if self._output_dir:
            write_evaluation(result, self._output_dir, plots=self._plots)
        self._logger.info("Evaluation results for vertkp:\n" + format_summary(result.metrics))
        return {"vertkp": flat_metrics(result.metrics)}
