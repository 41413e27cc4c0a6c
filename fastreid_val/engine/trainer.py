"""``ViewpointTrainer``: FastReID's ``DefaultTrainer`` with loaders that carry viewpoints.

What it changes, and nothing else (the loop, hooks, scheduler and writers are FastReID's):
* data loaders and evaluator carry viewpoints (:mod:`fastreid_val.data`, :mod:`fastreid_val.evaluation`);
* checkpoints are written atomically (:class:`AtomicCheckpointer`) and checked before loading;
* a resumed run continues the identity sampler's stream where the checkpoint left it, so with
  deterministic settings an interrupted-and-resumed run equals an uninterrupted one;
* a non-finite loss stops training with the iteration and the loss term named (:class:`NonFiniteLossCheck`);
* the console/JSON/TensorBoard write period is ``RUN.LOG_PERIOD``, each iteration written once, and
  ``RUN.PROGRESS_FILE`` receives the progress the demo's console shows;
* ``RUN.CHANNELS_LAST`` puts the model in channels-last memory format, ``RUN.COMPILE`` and ``RUN.BF16``
  compile its backbone and train it under bfloat16 autocast (:mod:`.step_levers`, both off by default);
* every test set's metrics are kept, with the spread over VehicleID's query/gallery splits.
"""
import logging
import os
from collections import OrderedDict

import numpy as np
import torch
from fastreid.data.datasets import DATASET_REGISTRY
from fastreid.engine import DefaultTrainer, hooks
from fastreid.evaluation import inference_on_dataset, print_csv_format
from fastreid.solver import build_optimizer
from fastreid.utils import comm

from ..atomic import write_json
from ..compat.engine import restart_train_iterator
from ..config import check_cameras, check_schedule
from ..data.common import camera_number
from ..data.build import ResumableSampler, build_viewpoint_test_loader, build_viewpoint_train_loader
from ..evaluation import ViewpointReidEvaluator
from ..evaluation.splits import evaluate_further_splits
from ..errors import NonFiniteLossError  # re-exported: raised by NonFiniteLossCheck
from .checkpoint import AtomicCheckpointer, check_checkpoint_compatible
from .hooks import NonFiniteLossCheck
from .step_levers import apply_step_levers
from .writers import PeriodicWriter, ProgressWriter

logger = logging.getLogger(__name__)

__all__ = ["ViewpointTrainer", "NonFiniteLossError"]


class ViewpointTrainer(DefaultTrainer):
    @classmethod
    def build_model(cls, cfg):
        model = super().build_model(cfg)
        if cfg.RUN.CHANNELS_LAST:
            model.to(memory_format=torch.channels_last)
        return apply_step_levers(cfg, model)

    @classmethod
    def build_train_loader(cls, cfg):
        logger.info("Prepare training set")
        loader = build_viewpoint_train_loader(cfg)
        dataset = loader.dataset if hasattr(loader, "dataset") else None
        if dataset is not None and hasattr(dataset, "cam_dict"):
            check_cameras(cfg, set(dataset.cam_dict.values()), f"the training set {', '.join(cfg.DATASETS.NAMES)}")
        return loader

    @classmethod
    def build_test_loader(cls, cfg, dataset_name):
        loader, num_query = build_viewpoint_test_loader(cfg, dataset_name)
        check_cameras(cfg, {camera_number(item[2]) for item in loader.dataset.img_items}, f"the test set {dataset_name}")
        return loader, num_query

    @classmethod
    def build_evaluator(cls, cfg, dataset_name, output_dir=None):
        data_loader, num_query = cls.build_test_loader(cfg, dataset_name)
        groups = getattr(data_loader.dataset, "identity_groups", None)
        return data_loader, ViewpointReidEvaluator(cfg, num_query, output_dir, identity_groups=groups,
                                                   dataset_name=dataset_name)

    @classmethod
    def test(cls, cfg, model):
        """FastReID's test over ``DATASETS.TESTS``, keeping every test set's metrics and CMC.

        With ``DATASETS.SPLITS.NUM`` > 1 (VehicleID protocol) each test set is evaluated on that many
        seeded query/gallery splits (``SPLITS.SEED``, ``SPLITS.SEED + 1``, ...), all from one feature
        extraction (:mod:`fastreid_val.evaluation.splits`), and reports
        their mean, with the sample standard deviation as ``<metric>-std``. Returns
        ``{test set: metrics}``, or the metrics alone for one test set (as FastReID); the CMC of each
        test set (mean over splits) goes to ``<OUTPUT_DIR>/cmc.json``.
        """
        results, cmcs = OrderedDict(), {}
        n, seed = cfg.DATASETS.SPLITS.NUM, cfg.DATASETS.SPLITS.SEED
        for dataset_name in cfg.DATASETS.TESTS:
            data_loader, evaluator = cls.build_evaluator(cfg, dataset_name)
            if n > 1:
                logger.info("%s: %d query/gallery splits (seeds %d..%d) from one feature extraction", dataset_name,
                            n, seed, seed + n - 1)
            runs = [inference_on_dataset(model, data_loader, evaluator, flip_test=cfg.TEST.FLIP.ENABLED)]
            curves = [evaluator.cmc()] if comm.is_main_process() else []
            if n > 1:
                further = evaluate_further_splits(cfg, evaluator, data_loader.dataset, DATASET_REGISTRY.get(dataset_name),
                                                  dataset_name, range(seed + 1, seed + n))
                runs += [r for r, _ in further]
                curves += [e.cmc() for _, e in further] if comm.is_main_process() else []
            if not comm.is_main_process():
                continue
            results[dataset_name] = summarise_splits(runs)
            cmcs[dataset_name] = np.mean(curves, axis=0).tolist()
            logger.info("Evaluation results for %s in csv format:", dataset_name)
            print_csv_format(OrderedDict(results[dataset_name], dataset=dataset_name))
        if comm.is_main_process() and cfg.OUTPUT_DIR and os.path.isdir(cfg.OUTPUT_DIR):
            write_json(os.path.join(cfg.OUTPUT_DIR, "cmc.json"), cmcs, indent=None)
        if len(results) == 1:
            return next(iter(results.values()))
        return results

    def build_hooks(self):
        """FastReID's hooks, saving with an :class:`AtomicCheckpointer`, writing events every
        ``RUN.LOG_PERIOD`` iterations, and with a :class:`NonFiniteLossCheck` first.

        ``DefaultTrainer.__init__`` creates ``self.checkpointer`` (fastreid/engine/defaults.py:223) right
        before it calls this method: the atomic checkpointer takes its place here, over the same model,
        folder and checkpointables, so that upstream's ``PeriodicCheckpointer`` and ``resume_or_load``
        use it. Upstream's ``PeriodicWriter`` has a fixed period of 200 (defaults.py:313); it is rebuilt
        with ``RUN.LOG_PERIOD`` around the writers :meth:`build_writers` made for it, as our
        :class:`~fastreid_val.engine.writers.PeriodicWriter`, which writes each iteration once.
        """
        self.checkpointer = AtomicCheckpointer.replacing(self.checkpointer)
        ret = [NonFiniteLossCheck(), *super().build_hooks()]
        return [PeriodicWriter(self._writers, self.cfg.RUN.LOG_PERIOD) if isinstance(h, hooks.PeriodicWriter)
                else h for h in ret]

    def build_writers(self):
        """FastReID's writers, and the progress file when ``RUN.PROGRESS_FILE`` names one; kept for
        :meth:`build_hooks`."""
        self._writers = super().build_writers()
        if self.cfg.RUN.PROGRESS_FILE:
            self._writers.append(ProgressWriter(self.cfg.RUN.PROGRESS_FILE, self.max_iter))
        return self._writers

    def resume_or_load(self, resume=True):
        path = self.checkpointer.get_checkpoint_file() if resume and self.checkpointer.has_checkpoint() \
            else self.cfg.MODEL.WEIGHTS
        if path:
            check_checkpoint_compatible(self.model, path)
        super().resume_or_load(resume=resume)
        sampler = getattr(getattr(self.data_loader, "batch_sampler", None), "sampler", None)
        if self.start_epoch > 0 and isinstance(sampler, ResumableSampler):
            sampler.skip = self.start_epoch * self.iters_per_epoch * self.data_loader.batch_sampler.batch_size
            restart_train_iterator(self)
            logger.info("Resumed at epoch %d: the sampler continues after %d images", self.start_epoch, sampler.skip)

    @classmethod
    def build_lr_scheduler(cls, cfg, optimizer, iters_per_epoch):
        """FastReID's schedulers, once :func:`~fastreid_val.config.check_schedule` has seen that the
        schedule can run with this training set's iterations per epoch."""
        check_schedule(cfg, iters_per_epoch)
        return super().build_lr_scheduler(cfg, optimizer, iters_per_epoch)

    # Repairs of FastReID 1.4.0 that are ordinary overrides (see fastreid_val/compat/__init__.py): they
    # apply to this trainer only, not to FastReID's DefaultTrainer elsewhere in the process.

    @classmethod
    def build_optimizer(cls, cfg, model):
        """S11: FastReID's optimizer without its contiguous parameter buffer.

        ``DefaultTrainer.build_optimizer`` (fastreid/engine/defaults.py:380) calls
        ``build_optimizer(cfg, model)``, whose default ``contiguous=True`` (fastreid/solver/build.py:180)
        moves the parameters into one flat buffer. ``SimpleTrainer.run_step`` calls
        ``optimizer.zero_grad()``, which sets gradients to ``None`` since torch 2.0: new gradient
        tensors are allocated, the buffer's gradient stays zero and no parameter is ever updated
        (silently). The parameters stay separate here.
        """
        return build_optimizer(cfg, model, contiguous=False)

    @staticmethod
    def auto_scale_hyperparams(cfg, num_classes):
        """S8: ``DefaultTrainer.auto_scale_hyperparams`` (fastreid/engine/defaults.py:458) writes
        ``OUTPUT_DIR/config.yaml`` without creating ``OUTPUT_DIR``; it is created first."""
        if cfg.OUTPUT_DIR:
            os.makedirs(cfg.OUTPUT_DIR, exist_ok=True)
        return DefaultTrainer.auto_scale_hyperparams(cfg, num_classes)


def summarise_splits(runs):
    """One test set's metrics: the run itself, or over several splits the mean and ``<metric>-std``."""
    if len(runs) == 1:
        return OrderedDict(runs[0])
    out = OrderedDict()
    for key in runs[0]:
        values = np.array([float(r[key]) for r in runs])
        out[key] = float(values.mean())
        if not key.endswith("-queries"):
            out[f"{key}-std"] = float(values.std(ddof=1))
    return out
