"""Exact evaluation of any gallery size in bounded memory, on the model's device, a chunk of queries at a time.

Shape legend: Q queries, G gallery images, d feature dim, c queries in a chunk, M same-identity
gallery images of a query.

Every metric is a per-query quantity (CMC hit, AP, INP, Rank-1 identity, ROC scores), so a chunk of
queries needs only its [c, G] distances and the results are combined by sums and counts (never by
averaging averages): the numbers are those of the whole [Q, G] matrix, and peak memory is O(c G)
besides the features, instead of FastReID's [Q, G] distances and [Q, G] int64 argsort.

Distances, ranks (:mod:`.ranks`, one counting pass per chunk shared by every metric) and the metric
sums run on :func:`evaluation_device`: ``MODEL.DEVICE`` when it is available (FastReID's evaluator
moves the features to the CPU and ranks there while the GPU waits). The per-query sums stay on the
device until the last chunk; then they come back in one copy. ``c`` is :func:`chunk_size`.
"""
import numpy as np
import torch
import torch.nn.functional as F

from .cross_view import view_members, view_results, view_sums
from .lookalike import group_arrays, lookalike_counts, lookalike_results
from .ranks import chunk_ranks, identity_lists
from .rerank import check_rerank_size, encode, jaccard_distance
from .stock import stock_results, stock_sums

__all__ = ["CHUNK_ELEMENTS", "DEVICE_BYTES_PER_DISTANCE", "chunk_size", "evaluation_device", "distance_rows",
           "chunked_metrics"]

CHUNK_ELEMENTS = 1 << 24  # CPU: distances per chunk (~16 M: with the ranking's temporaries, ~0.4 GB; GEMMs of
# a few hundred rows run ~20% faster than of ~100)
DEVICE_BYTES_PER_DISTANCE = 64  # CUDA: device memory a chunk takes per distance (float32 distances, int64
# places, masks, re-ranking rows, with room to spare); chunks use half of the free memory


def evaluation_device(cfg):
    """Where the evaluation runs: ``MODEL.DEVICE`` (the model's device), the CPU when that names CUDA on
    a machine without it."""
    device = torch.device(cfg.MODEL.DEVICE)
    return device if device.type != "cuda" or torch.cuda.is_available() else torch.device("cpu")


def chunk_size(num_gallery, device=torch.device("cpu"), elements=CHUNK_ELEMENTS):
    """Queries per chunk: on the CPU c = max(1, elements // G); on CUDA as many as half the device's
    free memory holds at :data:`DEVICE_BYTES_PER_DISTANCE` bytes per distance."""
    device = torch.device(device)
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        elements = free // 2 // DEVICE_BYTES_PER_DISTANCE
    return max(1, elements // max(1, num_gallery))


def distance_rows(query, gallery, cfg):
    """A function ``rows -> [c, G] float32 tensor``: ``TEST.METRIC`` distances of queries ``rows`` (a range),
    mixed with the k-reciprocal Jaccard distance when ``TEST.RERANK.ENABLED`` (Eq. 12 of Zhong et al.).

    The same numbers as FastReID's ``build_dist`` and ``ReidEvaluator``: the gallery's normalisation or
    squared norms are computed once, and each chunk runs upstream's formula on them, on the features'
    device (re-ranking's encoding too).

    Args:
        query: [Q, d], gallery: [G, d] float tensors on the evaluation device (after AQE when enabled).
    """
    if cfg.TEST.RERANK.ENABLED:  # before any work
        check_rerank_size(query.size(0), gallery.size(0), cfg.TEST.RERANK.K1, cfg.TEST.RERANK.K2)
    metric = cfg.TEST.METRIC
    if metric == "cosine":
        g = F.normalize(gallery, p=2, dim=1)
        one = g.new_ones(())

        def original(q):  # fastreid/utils/compute_dist.py compute_cosine_distance: 1 - q g^T, in place
            sim = torch.mm(F.normalize(q, p=2, dim=1), g.t())
            return torch.sub(one, sim, out=sim)
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
        feats = torch.cat((query, gallery))
        if metric == "cosine":
            feats = F.normalize(feats, dim=1)
        enc = encode(feats, k1, k2)
        del feats
    nq, n = query.size(0), query.size(0) + gallery.size(0)

    @torch.no_grad()
    def rows(r):
        dist = original(query[r.start:r.stop])
        if enc is not None:
            dist = jaccard_distance(enc, r, range(nq, n)).to(dist.device) * (1 - lam) + dist * lam
        return dist

    return rows


@torch.no_grad()
def chunked_metrics(rows, q, g, chunk, device=torch.device("cpu"), views=False, groups=None, roc=False):
    """Every metric of :class:`ViewpointReidEvaluator`, a chunk of queries at a time, on ``device``.

    Args:
        rows: :func:`distance_rows` (its tensors on ``device``). q, g: dicts of [Q] / [G] numpy arrays
            "pids", "camids", "views". chunk: queries per chunk. views: report the view metrics.
            groups: {identity: look-alike group} or None. roc: collect FastReID's ROC scores (these
            are O(Q G) by nature, and come to the host a chunk at a time).
    Returns:
        (cmc [R], all AP, all INP, extra results dict, roc (scores, labels) or None), R = min(50, G).
    """
    nq, ng = len(q["pids"]), len(g["pids"])
    lists = identity_lists(q["pids"], g["pids"], device)
    qt, gt = ({k: torch.as_tensor(v, device=device) for k, v in a.items()} for a in (q, g))
    stock, view_parts, lookalike, pos, neg = [], [], [], [], []
    if groups:
        qt["groups"], gt["groups"] = (torch.as_tensor(a, device=device) for a in group_arrays(q["pids"], g["pids"], groups))
    for s in range(0, nq, chunk):
        r = range(s, min(s + chunk, nq))
        dist = rows(r)
        ranks = chunk_ranks(dist, lists, r)
        positive = ranks.real & (gt["camids"][ranks.index] != qt["camids"][s:r.stop, None])
        stock.append(stock_sums(ranks.ahead, ranks.real, positive, min(50, ng)))
        if roc:  # FastReID's scores: distances to the kept positives, then to the other identities
            none = ~ranks.real.any(dim=1, keepdim=True)  # a row without same-identity images: pads keep index 0
            other = torch.ones_like(dist, dtype=torch.bool).scatter_(1, ranks.index, none.expand_as(ranks.index))
            pos.append(dist.gather(1, ranks.index)[positive].cpu())
            neg.append(dist[other].cpu())
        if views:
            members = view_members(positive, qt["views"][s:r.stop], gt["views"][ranks.index])
            view_parts.append(view_sums(ranks.ahead, ranks.real, members))
        if groups:
            lookalike.append(lookalike_counts(dist, ranks.index, ranks.real, stock[-1].first, qt["pids"][s:r.stop],
                                              gt["pids"], qt["groups"][s:r.stop], gt["groups"]))
    cmc, ap, inp = stock_results(stock)
    extra = {}
    if views:
        extra.update(view_results(view_parts))
    if groups:
        extra.update(lookalike_results(*torch.stack([torch.stack(c) for c in lookalike]).sum(dim=0).tolist()))
    curve = None
    if roc:
        pos, neg = torch.cat(pos).numpy(), torch.cat(neg).numpy()
        curve = (np.hstack((pos, neg)), np.hstack((np.zeros(len(pos), np.float32), np.ones(len(neg), np.float32))))
    return cmc, ap, inp, extra, curve
