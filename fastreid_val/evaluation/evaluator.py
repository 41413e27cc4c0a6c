"""``ViewpointReidEvaluator``: FastReID's ReID evaluation plus cross-view and same-view metrics."""
import copy
import itertools
import json
import os
import logging
from collections import OrderedDict

import numpy as np
import torch
import torch.nn.functional as F
from fastreid.evaluation.query_expansion import aqe
from fastreid.evaluation.rank import evaluate_rank
from fastreid.evaluation.reid_evaluation import ReidEvaluator
from fastreid.utils import comm

from ..compat import build_dist
from .cross_view import view_metrics
from .lookalike import lookalike_metrics

logger = logging.getLogger(__name__)

__all__ = ["ViewpointReidEvaluator"]


class ViewpointReidEvaluator(ReidEvaluator):
    """Same distances (AQE, re-ranking) and stock metrics as ``ReidEvaluator``, computed once, plus
    the view metrics of :mod:`fastreid_val.evaluation.cross_view` when test images have viewpoints.

    ``evaluate_rank`` is FastReID's (compiled when built). The results dict reaches FastReID's log,
    ``metrics.json`` and TensorBoard like the stock metrics. With ``identity_groups`` (a dataset's
    look-alike group of each identity) it also reports :func:`lookalike_metrics`. ``dataset_name``
    names this test set's CMC in ``cmc.json``.
    """

    def __init__(self, cfg, num_query, output_dir=None, identity_groups=None, dataset_name=""):
        super().__init__(cfg, num_query, output_dir)
        self.identity_groups = identity_groups
        self.dataset_name = dataset_name

    def process(self, inputs, outputs):
        super().process(inputs, outputs)
        views = inputs.get("viewpoints")
        if views is None:
            views = torch.full_like(inputs["targets"], -1)
        self._predictions[-1]["viewpoints"] = views.cpu()

    def distance(self, query_features, gallery_features):
        cfg = self.cfg
        if cfg.TEST.AQE.ENABLED:
            query_features, gallery_features = aqe(query_features, gallery_features, cfg.TEST.AQE.QE_TIME,
                                                   cfg.TEST.AQE.QE_K, cfg.TEST.AQE.ALPHA)
        dist = build_dist(query_features, gallery_features, cfg.TEST.METRIC)
        if cfg.TEST.RERANK.ENABLED:
            if cfg.TEST.METRIC == "cosine":
                query_features = F.normalize(query_features, dim=1)
                gallery_features = F.normalize(gallery_features, dim=1)
            rerank = build_dist(query_features, gallery_features, metric="jaccard",
                                k1=cfg.TEST.RERANK.K1, k2=cfg.TEST.RERANK.K2)
            lam = cfg.TEST.RERANK.LAMBDA
            dist = rerank * (1 - lam) + dist * lam
        return dist

    def evaluate(self):
        predictions = self._predictions
        if comm.get_world_size() > 1:
            comm.synchronize()
            predictions = list(itertools.chain(*comm.gather(self._predictions, dst=0)))
            if not comm.is_main_process():
                return {}
        cat = {k: torch.cat([p[k] for p in predictions], dim=0) for k in ("feats", "pids", "camids", "viewpoints")}
        nq = self._num_query
        feats = cat["feats"]
        pids, camids, views = (cat[k].numpy() for k in ("pids", "camids", "viewpoints"))
        dist = self.distance(feats[:nq], feats[nq:])

        cmc, all_ap, all_inp = evaluate_rank(dist, pids[:nq], pids[nq:], camids[:nq], camids[nq:])
        self._cmc = [float(c) for c in cmc[:50]]
        results = OrderedDict()
        for r in (1, 5, 10):  # a gallery smaller than r has no Rank-r (FastReID truncates the CMC)
            results[f"Rank-{r}"] = cmc[min(r, len(cmc)) - 1] * 100
        results["mAP"] = np.mean(all_ap) * 100
        results["mINP"] = np.mean(all_inp) * 100
        results["metric"] = (results["mAP"] + results["Rank-1"]) / 2
        if self.cfg.TEST.ROC.ENABLED:
            results.update(roc_metrics(dist, pids[:nq], pids[nq:], camids[:nq], camids[nq:]))
        if (views >= 0).any() and len(np.unique(views[views >= 0])) > 1:
            results.update(view_metrics(dist, pids[:nq], pids[nq:], camids[:nq], camids[nq:], views[:nq], views[nq:]))
        if self.identity_groups:
            results.update(lookalike_metrics(dist, pids[:nq], pids[nq:], camids[:nq], camids[nq:], self.identity_groups))
        self._results = results
        return copy.deepcopy(results)

    def cmc(self):
        """The last evaluation's CMC (first 50 ranks), for ``cmc.json``."""
        return self._cmc


def roc_metrics(dist, q_pids, g_pids, q_camids, g_camids):
    """``TPR@FPR=1e-04/1e-03/1e-02`` as FastReID's ``ReidEvaluator`` reports them with ``TEST.ROC.ENABLED``."""
    from fastreid.evaluation.roc import evaluate_roc
    from sklearn import metrics

    scores, labels = evaluate_roc(dist, q_pids, g_pids, q_camids, g_camids)
    fprs, tprs, _ = metrics.roc_curve(labels, scores)
    return OrderedDict((f"TPR@FPR={fpr:.0e}", tprs[np.argmin(np.abs(fprs - fpr))]) for fpr in (1e-4, 1e-3, 1e-2))
