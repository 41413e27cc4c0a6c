"""Several random query/gallery splits of one test set (VehicleID's protocol) from one feature extraction.

The test set's images are embedded once, for the first split; each further split only re-orders the
same features (its queries first) and evaluates them, instead of rebuilding the dataset and
re-extracting every image for each split.
"""
import itertools

import torch
from fastreid.utils import comm

from ..errors import InvalidConfigError
from .evaluator import ViewpointReidEvaluator

__all__ = ["evaluate_further_splits"]

_KEYS = ("feats", "pids", "camids", "viewpoints")


def evaluate_further_splits(cfg, evaluator, test_set, dataset_cls, dataset_name, seeds):
    """Metrics of the splits drawn with ``seeds``, from the features ``evaluator`` holds.

    Args:
        evaluator: the :class:`ViewpointReidEvaluator` that evaluated the first split (its per-batch
            predictions, in the order of ``test_set.img_items``: that split's queries, then its gallery).
        test_set: the test loader's dataset; its ``img_items`` are the whole test set.
        dataset_cls: the registered dataset class; its ``resplit(items, seed)`` returns
            ``(query, gallery)`` items.
    Returns:
        one metrics dict per seed on the main process, ``{}`` on the others (as FastReID's evaluator).
    """
    resplit = getattr(dataset_cls, "resplit", None)
    if resplit is None:
        raise InvalidConfigError(f"DATASETS.SPLITS.NUM > 1 but {dataset_cls.__name__} has one fixed query/gallery "
                                 "split: set DATASETS.SPLITS.NUM 1.")
    predictions = evaluator._predictions
    if comm.get_world_size() > 1:
        predictions = list(itertools.chain(*comm.gather(predictions, dst=0)))
    rows = None
    if comm.is_main_process():
        full = {k: torch.cat([p[k] for p in predictions], dim=0) for k in _KEYS}
        rows = {item[0]: i for i, item in enumerate(test_set.img_items)}
    runs = []
    for seed in seeds:
        query, gallery = resplit(test_set.img_items, seed)
        split = ViewpointReidEvaluator(cfg, len(query), identity_groups=evaluator.identity_groups,
                                       dataset_name=dataset_name)
        if rows is not None:
            order = torch.tensor([rows[item[0]] for item in list(query) + list(gallery)])
            split._predictions = [{k: v[order] for k, v in full.items()}]
        runs.append((split.evaluate(), split))
    return runs
