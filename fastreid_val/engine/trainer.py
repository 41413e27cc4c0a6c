"""``ViewpointTrainer``: FastReID's ``DefaultTrainer`` with loaders that carry viewpoints.

What it changes, and nothing else (the loop, hooks, scheduler and writers are FastReID's):
* data loaders and evaluator carry viewpoints (:mod:`fastreid_val.data`, :mod:`fastreid_val.evaluation`);
* checkpoints are written atomically (:class:`AtomicCheckpointer`) and checked before loading;
* a resumed run continues the identity sampler's stream where the checkpoint left it, so with
  deterministic settings an interrupted-and-resumed run equals an uninterrupted one;
* a non-finite loss stops training with the iteration and the loss term named (:class:`NonFiniteLossCheck`);
* the console/JSON/TensorBoard write period is ``RUN.LOG_PERIOD``.
"""
import logging

from fastreid.engine import DefaultTrainer, hooks

from ..data.build import ResumableSampler, build_viewpoint_test_loader, build_viewpoint_train_loader
from ..evaluation import ViewpointReidEvaluator
from ..errors import NonFiniteLossError  # re-exported: raised by NonFiniteLossCheck
from .checkpoint import AtomicCheckpointer, check_checkpoint_compatible
from .hooks import NonFiniteLossCheck

logger = logging.getLogger(__name__)

__all__ = ["ViewpointTrainer", "NonFiniteLossError"]


class ViewpointTrainer(DefaultTrainer):
    @classmethod
    def build_train_loader(cls, cfg):
        logger.info("Prepare training set")
        return build_viewpoint_train_loader(cfg)

    @classmethod
    def build_test_loader(cls, cfg, dataset_name):
        return build_viewpoint_test_loader(cfg, dataset_name)

    @classmethod
    def build_evaluator(cls, cfg, dataset_name, output_dir=None):
        data_loader, num_query = cls.build_test_loader(cfg, dataset_name)
        return data_loader, ViewpointReidEvaluator(cfg, num_query, output_dir)

    @classmethod
    def test(cls, cfg, model):
        """FastReID's test; with ``DATASETS.VIEWPOINT.NUM_SPLITS`` > 1 (VehicleID protocol), the mean
        over that many seeded query/gallery splits (``SPLIT_SEED``, ``SPLIT_SEED + 1``, ...)."""
        n = cfg.DATASETS.VIEWPOINT.NUM_SPLITS
        if n <= 1:
            return super().test(cfg, model)
        runs = []
        for k in range(n):
            split_cfg = cfg.clone()
            split_cfg.defrost()
            split_cfg.DATASETS.VIEWPOINT.SPLIT_SEED = cfg.DATASETS.VIEWPOINT.SPLIT_SEED + k
            split_cfg.freeze()
            logger.info("Query/gallery split %d of %d (seed %d)", k + 1, n, split_cfg.DATASETS.VIEWPOINT.SPLIT_SEED)
            runs.append(super().test(split_cfg, model))
        return _mean_results(runs)

    def build_hooks(self):
        """FastReID's hooks, saving with an :class:`AtomicCheckpointer`, writing events every
        ``RUN.LOG_PERIOD`` iterations, and with a :class:`NonFiniteLossCheck` first.

        ``DefaultTrainer.__init__`` creates ``self.checkpointer`` (fastreid/engine/defaults.py:223) right
        before it calls this method: the atomic checkpointer takes its place here, over the same model,
        folder and checkpointables, so that upstream's ``PeriodicCheckpointer`` and ``resume_or_load``
        use it. Upstream's ``PeriodicWriter`` has a fixed period of 200 (defaults.py:313); it is rebuilt
        with ``RUN.LOG_PERIOD`` around the writers :meth:`build_writers` made for it.
        """
        self.checkpointer = AtomicCheckpointer.replacing(self.checkpointer)
        ret = [NonFiniteLossCheck(), *super().build_hooks()]
        return [hooks.PeriodicWriter(self._writers, self.cfg.RUN.LOG_PERIOD) if isinstance(h, hooks.PeriodicWriter)
                else h for h in ret]

    def build_writers(self):
        """FastReID's writers, kept for :meth:`build_hooks`."""
        self._writers = super().build_writers()
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
            self._trainer._data_loader_iter = iter(self.data_loader)
            logger.info("Resumed at epoch %d: the sampler continues after %d images", self.start_epoch, sampler.skip)


def _mean_results(runs):
    """Element-wise mean of (possibly nested) results dicts; non-numbers are taken from the first."""
    first = runs[0]
    if isinstance(first, dict):
        return type(first)((k, _mean_results([r[k] for r in runs])) for k in first)
    try:
        return sum(float(r) for r in runs) / len(runs)
    except (TypeError, ValueError):
        return first
