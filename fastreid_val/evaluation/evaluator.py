"""``ViewpointReidEvaluator``: FastReID's ReID evaluation plus cross-view and same-view metrics."""
import copy
import itertools
import json
import os
import logging
from collections import OrderedDict

import numpy as np
import torch
from fastreid.evaluation.query_expansion import aqe
from fastreid.evaluation.reid_evaluation import ReidEvaluator
from fastreid.utils import comm

from ..errors import NonFiniteFeaturesError
from .chunked import chunk_size, chunked_metrics, distance_rows, evaluation_device

logger = logging.getLogger(__name__)

__all__ = ["ViewpointReidEvaluator"]


class ViewpointReidEvaluator(ReidEvaluator):
    """Same distances (AQE, re-ranking) and stock metrics as ``ReidEvaluator``, computed once, plus
    the view metrics of :mod:`fastreid_val.evaluation.cross_view` when test images have viewpoints.

    The stock metrics are those of FastReID's ``evaluate_rank``, to the bit, from ranks counted by
    :mod:`.ranks` (FastReID's compiled evaluator is not used). The results dict reaches FastReID's
    log, ``metrics.json`` and TensorBoard like the stock metrics. With ``identity_groups`` (a dataset's
    look-alike group of each identity) it also reports :func:`lookalike_metrics`. ``dataset_name``
    names this test set's CMC in ``cmc.json``.

    Queries are evaluated ``chunk`` at a time on ``MODEL.DEVICE`` (:mod:`.chunked`; default: about
    16 M distances a chunk on the CPU, half the free memory on CUDA), so memory is O(chunk x G) besides
    the features, whatever the gallery size; the results are those of the whole distance matrix.
    """

    def __init__(self, cfg, num_query, output_dir=None, identity_groups=None, dataset_name="", chunk=None):
        super().__init__(cfg, num_query, output_dir)
        self.identity_groups = identity_groups
        self.dataset_name = dataset_name
        self.chunk = chunk

    def _compile_dependencies(self):
        """Nothing to build: the ranks are counted in torch (FastReID's compiled evaluator is not used)."""

    def process(self, inputs, outputs):
        super().process(inputs, outputs)
        views = inputs.get("viewpoints")
        if views is None:
            views = torch.full_like(inputs["targets"], -1)
        self._predictions[-1]["viewpoints"] = views.cpu()

    def _features(self, query_features, gallery_features):
        """Query and gallery features on the evaluation device, after AQE when enabled."""
        cfg = self.cfg
        if cfg.TEST.AQE.ENABLED:  # FastReID's aqe, on the CPU (numpy), with its own (Q + G)^2 similarities: not bounded
            query_features, gallery_features = aqe(query_features, gallery_features, cfg.TEST.AQE.QE_TIME,
                                                   cfg.TEST.AQE.QE_K, cfg.TEST.AQE.ALPHA)
        device = evaluation_device(cfg)
        return query_features.to(device), gallery_features.to(device)

    def distance(self, query_features, gallery_features):
        """[Q, G] distances as FastReID's ``ReidEvaluator`` computes them (AQE, re-ranking)."""
        q, g = self._features(query_features, gallery_features)
        return distance_rows(q, g, self.cfg)(range(0, q.size(0))).cpu().numpy()

    def _concatenated(self, predictions):
        """One prediction with every batch's tensors concatenated; in a single process it replaces the
        batches, so the features are held once (the batches are freed while they are copied)."""
        keys = ("feats", "pids", "camids", "viewpoints")
        if len(predictions) == 1:
            return predictions[0]
        cat = {k: torch.cat([p[k] for p in predictions], dim=0) for k in keys[1:]}
        n = sum(len(p["feats"]) for p in predictions)
        cat["feats"] = predictions[0]["feats"].new_empty((n,) + predictions[0]["feats"].shape[1:])
        start = 0
        for p in predictions:
            cat["feats"][start:start + len(p["feats"])] = p["feats"]
            start += len(p["feats"])
            if predictions is self._predictions:
                p["feats"] = None
        if predictions is self._predictions:
            self._predictions = [cat]
        return cat

    def evaluate(self):
        predictions = self._predictions
        if comm.get_world_size() > 1:
            comm.synchronize()
            predictions = list(itertools.chain(*comm.gather(self._predictions, dst=0)))
            if not comm.is_main_process():
                return {}
        cat = self._concatenated(predictions)
        nq = self._num_query
        feats = cat["feats"]
        check_finite(feats, self.dataset_name)
        pids, camids, views = (cat[k].numpy() for k in ("pids", "camids", "viewpoints"))
        query_features, gallery_features = self._features(feats[:nq], feats[nq:])
        device = query_features.device
        rows = distance_rows(query_features, gallery_features, self.cfg)
        q = {"pids": pids[:nq], "camids": camids[:nq], "views": views[:nq]}
        g = {"pids": pids[nq:], "camids": camids[nq:], "views": views[nq:]}
        with_views = bool((views >= 0).any() and len(np.unique(views[views >= 0])) > 1)
        cmc, all_ap, all_inp, extra, roc = chunked_metrics(
            rows, q, g, self.chunk or chunk_size(len(g["pids"]), device), device, views=with_views,
            groups=self.identity_groups, roc=self.cfg.TEST.ROC.ENABLED)
        self._cmc = [float(c) for c in cmc[:50]]
        results = OrderedDict()
        for r in (1, 5, 10):  # a gallery smaller than r has no Rank-r (FastReID truncates the CMC)
            results[f"Rank-{r}"] = cmc[min(r, len(cmc)) - 1] * 100
        results["mAP"] = np.mean(all_ap) * 100
        results["mINP"] = np.mean(all_inp) * 100
        results["metric"] = (results["mAP"] + results["Rank-1"]) / 2
        if roc is not None:
            results.update(roc_metrics(*roc))
        results.update(extra)
        self._results = results
        return copy.deepcopy(results)

    def cmc(self):
        """The last evaluation's CMC (first 50 ranks), for ``cmc.json``."""
        return self._cmc


def check_finite(feats, dataset_name=""):
    """Refuse NaN or infinite features (row sums, then only the rows whose sum is not finite): FastReID's evaluation would rank
    them and report metrics that mean nothing. A model gives them when its weights or BatchNorm running
    statistics diverged, which a finite training loss does not rule out (the loss uses batch statistics)."""
    rows = feats.flatten(1)
    suspect = (~torch.isfinite(rows.sum(dim=1))).nonzero().squeeze(1)  # a row sum: one read, no [N, d] mask
    bad = (~torch.isfinite(rows[suspect])).any(dim=1)  # NaN or inf, or finite values whose sum overflowed
    if bool(bad.any()):
        n = int(bad.sum())
        raise NonFiniteFeaturesError(
            f"{n} of {len(feats)} test images{' of ' + dataset_name if dataset_name else ''} got NaN or "
            f"infinite features, so no metric is reported: the model has diverged (its weights or BatchNorm "
            f"running statistics); train again from an earlier checkpoint or with a lower SOLVER.BASE_LR")


def roc_metrics(scores, labels):
    """``TPR@FPR=1e-04/1e-03/1e-02`` as FastReID's ``ReidEvaluator`` reports them with ``TEST.ROC.ENABLED``,
    from the scores and labels of ``fastreid.evaluation.roc.evaluate_roc``."""
    from sklearn import metrics

    fprs, tprs, _ = metrics.roc_curve(labels, scores)
    return OrderedDict((f"TPR@FPR={fpr:.0e}", tprs[np.argmin(np.abs(fprs - fpr))]) for fpr in (1e-4, 1e-3, 1e-2))
