"""Exact evaluation of any gallery size in bounded memory: queries are processed a chunk at a time.

Shape legend: Q queries, G gallery images, d feature dim, c queries in a chunk, N = Q + G.

Every metric is a per-query quantity (CMC hit, AP, INP, Rank-1 identity, ROC scores), so a chunk of
queries needs only its [c, G] distances and the results are combined by sums and counts (never by
averaging averages): the numbers are those of the whole [Q, G] matrix, and peak memory is
O(c G) besides the features, instead of FastReID's [Q, G] distances and [Q, G] int64 argsort.
``c`` is chosen so that a chunk holds about :data:`CHUNK_ELEMENTS` distances.
"""
import numpy as np
import torch
import torch.nn.functional as F
from fastreid.evaluation.rank import evaluate_rank

from .cross_view import view_results, view_sums
from .lookalike import group_arrays, lookalike_counts, lookalike_results
from .rerank import check_rerank_size, encode, jaccard_distance

__all__ = ["CHUNK_ELEMENTS", "chunk_size", "distance_rows", "rerank_device", "stock_sums", "stock_results", "chunked_metrics"]

CHUNK_ELEMENTS = 1 << 22  # distances per chunk (~4 M: with the metrics' temporaries, ~0.4 GB)


def chunk_size(num_gallery, elements=CHUNK_ELEMENTS):
    """Queries per chunk: c = max(1, elements // G)."""
    return max(1, elements // max(1, num_gallery))


def rerank_device(cfg):
    """Where re-ranking runs: ``MODEL.DEVICE`` (the model's device; FastReID's evaluator keeps the
    features on the CPU), the CPU when that names CUDA on a machine without it."""
    device = torch.device(cfg.MODEL.DEVICE)
    return device if device.type != "cuda" or torch.cuda.is_available() else torch.device("cpu")


def distance_rows(query, gallery, cfg):
    """A function ``rows -> [c, G] float32 array``: ``TEST.METRIC`` distances of queries ``rows`` (a range),
    mixed with the k-reciprocal Jaccard distance when ``TEST.RERANK.ENABLED`` (Eq. 12 of Zhong et al.).

    The same numbers as FastReID's ``build_dist`` and ``ReidEvaluator``: the gallery's normalisation or
    squared norms are computed once, and each chunk runs upstream's formula on them (on the CPU, as
    upstream). Re-ranking runs on :func:`rerank_device`; its rows come back to the CPU.

    Args:
        query: [Q, d], gallery: [G, d] float tensors (after AQE when enabled).
    """
    if cfg.TEST.RERANK.ENABLED:  # before any work
        check_rerank_size(query.size(0), gallery.size(0), cfg.TEST.RERANK.K1, cfg.TEST.RERANK.K2)
    metric = cfg.TEST.METRIC
    if metric == "cosine":
        g = F.normalize(gallery, p=2, dim=1)

        def original(q):  # fastreid/utils/compute_dist.py compute_cosine_distance
            return 1 - torch.mm(F.normalize(q, p=2, dim=1), g.t())
    elif metric == "euclidean":
        g_sq = torch.pow(gallery, 2).sum(dim=1, keepdim=True)  # [G, 1]

        def original(q):  # compute_euclidean_distance
            m, n = q.size(0), gallery.size(0)
            d = torch.pow(q, 2).sum(dim=1, keepdim=True).expand(m, n) + g_sq.expand(n, m).t()
            return d.addmm_(q, gallery.t(), beta=1, alpha=-2)
    else:
        raise ValueError(f"TEST.METRIC {metric!r}: expected cosine or euclidean")
    enc = None
    if cfg.TEST.RERANK.ENABLED:
        k1, k2, lam = cfg.TEST.RERANK.K1, cfg.TEST.RERANK.K2, cfg.TEST.RERANK.LAMBDA
        feats = torch.cat((query, gallery)).to(rerank_device(cfg))
        if metric == "cosine":
            feats = F.normalize(feats, dim=1)
        enc = encode(feats, k1, k2)
        del feats
    nq, n = query.size(0), query.size(0) + gallery.size(0)

    @torch.no_grad()
    def rows(r):
        dist = original(query[r.start:r.stop]).cpu().numpy()
        if enc is not None:
            jac = jaccard_distance(enc, r, range(nq, n)).cpu().numpy()
            dist = jac * (1 - lam) + dist * lam
        return dist

    return rows


def stock_sums(dist, q_pids, g_pids, q_camids, g_camids, max_rank=50):
    """FastReID's ``evaluate_rank`` (compiled when built) on a chunk: (cmc hits [R] int64, AP [n], INP [n]).

    Queries without a positive (same identity, another camera) are dropped first, as FastReID skips
    them, so a chunk with none does not trip its assertion. R = min(max_rank, G), as upstream truncates.
    """
    valid = ((g_pids[None, :] == q_pids[:, None]) & (g_camids[None, :] != q_camids[:, None])).any(axis=1)
    r = min(max_rank, len(g_pids))
    if not valid.any():
        return np.zeros(r, dtype=np.int64), np.zeros(0, np.float32), np.zeros(0, np.float32)
    cmc, ap, inp = evaluate_rank(np.ascontiguousarray(dist[valid]), q_pids[valid], g_pids, q_camids[valid],
                                 g_camids, max_rank=max_rank)
    n = int(valid.sum())
    return np.rint(np.asarray(cmc, dtype=np.float64) * n).astype(np.int64), np.asarray(ap), np.asarray(inp)


def stock_results(parts):
    """(cmc [R] float32, all AP, all INP) of the whole query set from chunks' :func:`stock_sums`, as
    ``evaluate_rank`` returns them for the whole matrix (hits summed, then divided in float32)."""
    ap = np.concatenate([p[1] for p in parts])
    inp = np.concatenate([p[2] for p in parts])
    assert len(ap) > 0, "Error: all query identities do not appear in gallery"  # FastReID's own check
    hits = np.sum([p[0] for p in parts], axis=0)
    return hits.astype(np.float32) / np.float32(len(ap)), ap, inp


def chunked_metrics(rows, q, g, chunk, views=False, groups=None, roc=False):
    """Every metric of :class:`ViewpointReidEvaluator`, a chunk of queries at a time.

    Args:
        rows: :func:`distance_rows`. q, g: dicts of [Q] / [G] arrays "pids", "camids", "views".
        chunk: queries per chunk. views: report the view metrics. groups: {identity: look-alike group}
            or None. roc: collect FastReID's ROC scores (these are O(Q G) by nature).
    Returns:
        (cmc [R], all AP, all INP, extra results dict, roc (scores, labels) or None).
    """
    nq = len(q["pids"])
    stock, view_parts, wrong, same, pos, neg = [], [], 0, 0, [], []
    if groups:
        q_groups, g_groups = group_arrays(q["pids"], g["pids"], groups)
    for s in range(0, nq, chunk):
        e = min(s + chunk, nq)
        dist = rows(range(s, e))
        qp, qc = q["pids"][s:e], q["camids"][s:e]
        stock.append(stock_sums(dist, qp, g["pids"], qc, g["camids"]))
        if roc:
            from fastreid.evaluation.roc import evaluate_roc

            scores, labels = evaluate_roc(dist, qp, g["pids"], qc, g["camids"])
            pos.append(scores[labels == 0])
            neg.append(scores[labels == 1])
        if views:
            view_parts.append(view_sums(dist, qp, g["pids"], qc, g["camids"], q["views"][s:e], g["views"]))
        if groups:
            w, m = lookalike_counts(dist, qp, g["pids"], qc, g["camids"], q_groups[s:e], g_groups)
            wrong, same = wrong + w, same + m
    cmc, ap, inp = stock_results(stock)
    extra = {}
    if views:
        extra.update(view_results(view_parts))
    if groups:
        extra.update(lookalike_results(wrong, same))
    curve = None
    if roc:
        pos, neg = np.concatenate(pos), np.concatenate(neg)
        curve = (np.hstack((pos, neg)), np.hstack((np.zeros(len(pos), np.float32), np.ones(len(neg), np.float32))))
    return cmc, ap, inp, extra, curve
