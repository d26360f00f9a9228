"""The Keypoint R-CNN trainer: detectron2's DefaultTrainer with vertkp's data and evaluation."""
from __future__ import annotations

import os

from detectron2.data import build_detection_test_loader, build_detection_train_loader
from detectron2.engine import DefaultTrainer, hooks
from detectron2.evaluation import COCOEvaluator, DatasetEvaluators
from detectron2.utils import comm

from ..data.loading.mapper import VertebraDatasetMapper
from ..evaluation.evaluator import VertebraKeypointEvaluator
from ..modeling.test_time_augmentation import KeypointRCNNWithTTA
from .hooks import BestCheckpointer

__all__ = ["Trainer"]


class Trainer(DefaultTrainer):
    """DefaultTrainer with:

    * the train/test loaders built on :class:`VertebraDatasetMapper`
      (augmentations of ``vertkp.data.loading.augment``);
    * evaluation by ``VertebraKeypointEvaluator`` (MRE, SDR, detection F1,
      slip and grade agreement) plus, with ``VERTKP.COCO_EVAL``, detectron2's
      COCOEvaluator with the project's OKS sigmas;
    * test-time augmentation in every evaluation with ``TEST.AUG.ENABLED``
      (``vertkp.modeling.test_time_augmentation``);
    * a :class:`BestCheckpointer` keeping the weights with the best
      ``VERTKP.BEST_METRIC`` (default: lowest ``vertkp/MRE_px``) whenever
      ``TEST.EVAL_PERIOD`` > 0.

    Gradient clipping and AMP are detectron2's (``SOLVER.CLIP_GRADIENTS``,
    ``SOLVER.AMP``).
    """

    @classmethod
    def build_train_loader(cls, cfg):
        return build_detection_train_loader(cfg, mapper=VertebraDatasetMapper(cfg, is_train=True))

    @classmethod
    def build_test_loader(cls, cfg, dataset_name):
        return build_detection_test_loader(cfg, dataset_name, mapper=VertebraDatasetMapper(cfg, is_train=False))

    @classmethod
    def build_evaluator(cls, cfg, dataset_name, output_folder=None):
        """VertebraKeypointEvaluator (+ COCOEvaluator) writing under
        ``OUTPUT_DIR/inference/<dataset_name>``."""
        output_folder = output_folder or os.path.join(cfg.OUTPUT_DIR, "inference", dataset_name)
        evaluators = [VertebraKeypointEvaluator(dataset_name, output_dir=output_folder, plots=cfg.VERTKP.EVAL_PLOTS)]
        if cfg.VERTKP.COCO_EVAL:
            evaluators.append(COCOEvaluator(dataset_name, tasks=("bbox", "keypoints"), output_dir=output_folder,
                                            kpt_oks_sigmas=list(cfg.TEST.KEYPOINT_OKS_SIGMAS)))
        return DatasetEvaluators(evaluators)

    @classmethod
    def test(cls, cfg, model, evaluators=None):
        """detectron2's test, through ``KeypointRCNNWithTTA`` with ``TEST.AUG.ENABLED`` (the
        periodic evaluations and ``--eval-only``)."""
        if cfg.TEST.AUG.ENABLED:
            model = KeypointRCNNWithTTA(cfg, model)
        return super().test(cfg, model, evaluators)

    def build_hooks(self):
        ret = super().build_hooks()
        if comm.is_main_process() and self.cfg.TEST.EVAL_PERIOD > 0 and self.cfg.DATASETS.TEST:
            best = BestCheckpointer(self.cfg.TEST.EVAL_PERIOD, self.checkpointer, self.cfg.VERTKP.BEST_METRIC,
                                    self.cfg.VERTKP.BEST_MODE, metric_prefixes=self.cfg.DATASETS.TEST)
            # right after the evaluation, before the writers
            at = next(i for i, h in enumerate(ret) if isinstance(h, hooks.EvalHook)) + 1
            ret.insert(at, best)
        return ret
