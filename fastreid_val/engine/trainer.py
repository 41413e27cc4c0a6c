"""``ViewpointTrainer``: FastReID's ``DefaultTrainer`` with loaders that carry viewpoints.

Only the data loaders and the evaluator are swapped; the loop, hooks, checkpointer and writers are
FastReID's.
"""
import logging

from fastreid.engine import DefaultTrainer, hooks

from ..data.build import build_viewpoint_test_loader, build_viewpoint_train_loader
from ..evaluation import ViewpointReidEvaluator
from .checkpoint import check_checkpoint_compatible

logger = logging.getLogger(__name__)

__all__ = ["ViewpointTrainer"]


class ViewpointTrainer(DefaultTrainer):
    @classmethod
    def build_train_loader(cls, cfg):
        logger.info("Prepare training set")
        return build_viewpoint_train_loader(cfg)

    @classmethod
    def build_test_loader(cls, cfg, dataset_name):
        loader = build_viewpoint_test_loader(cfg, dataset_name)
        return loader

    @classmethod
    def build_evaluator(cls, cfg, dataset_name, output_dir=None):
        data_loader, num_query = cls.build_test_loader(cfg, dataset_name)
        return data_loader, ViewpointReidEvaluator(cfg, num_query, output_dir)

    def build_hooks(self):
        ret = super().build_hooks()
        for hook in ret:
            if isinstance(hook, hooks.PeriodicWriter):
                hook._period = self.cfg.LOG.PERIOD
        return ret

    def resume_or_load(self, resume=True):
        path = self.checkpointer.get_checkpoint_file() if resume and self.checkpointer.has_checkpoint() \
            else self.cfg.MODEL.WEIGHTS
        if path:
            check_checkpoint_compatible(self.model, path)
        return super().resume_or_load(resume=resume)
