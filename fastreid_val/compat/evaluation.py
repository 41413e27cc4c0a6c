"""S4, S5: FastReID's evaluator (compiled rank evaluation, re-ranking without faiss). See :mod:`fastreid_val.compat`.
"""
import logging

import torch

logger = logging.getLogger(__name__)

_rank_warning_done = False


def rank_cylib_available() -> bool:
    try:
        from fastreid.evaluation.rank_cylib.rank_cy import evaluate_cy  # noqa: F401
    except ImportError:
        return False
    return True


def _checked_compile_dependencies(self):
    """S4: never compile inside site-packages at run time, never exit the process."""
    global _rank_warning_done
    if not rank_cylib_available() and not _rank_warning_done:
        logger.warning(
            "FastReID's compiled rank evaluator is not built; FastReID's own ReidEvaluator falls back to its "
            "(much slower) Python implementation (ViewpointReidEvaluator does not use it). Build it with "
            "`python tools/build_rank_cylib.py`."
        )
        _rank_warning_done = True


def _patch_evaluator():
    from fastreid.evaluation import reid_evaluation

    reid_evaluation.ReidEvaluator._compile_dependencies = _checked_compile_dependencies
    reid_evaluation.build_dist = build_dist


def build_dist(feat_1, feat_2, metric="euclidean", **kwargs):
    """S5: ``fastreid.utils.compute_dist.build_dist``, with ``metric="jaccard"`` computed by
    :func:`fastreid_val.evaluation.rerank.k_reciprocal_jaccard` (torch, on the features' device; no
    faiss) instead of upstream's faiss-GPU search. Same [Q, G] float32 array as upstream returns."""
    from fastreid.utils import compute_dist

    if metric != "jaccard":
        return compute_dist.build_dist(feat_1, feat_2, metric, **kwargs)
    from ..evaluation.rerank import k_reciprocal_jaccard

    return k_reciprocal_jaccard(feat_1, feat_2, k1=kwargs["k1"], k2=kwargs["k2"]).cpu().numpy()
