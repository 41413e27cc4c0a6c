"""Rank metrics with an arbitrary set of ignored gallery entries: cross-view and same-view retrieval.

Shape legend: Q queries, G gallery images.

* stock: FastReID's protocol, gallery images of the query's identity *and* camera are ignored.
* cross-view: additionally, positives seen from the query's own viewpoint are ignored, so only
  matches across viewpoints count (what VAL claims to improve).
* same-view: additionally, positives seen from another viewpoint are ignored.
Positives whose viewpoint, or whose query's viewpoint, is unknown (-1) count in neither view
metric. Queries left with no positive are skipped, as in FastReID.

The viewpoints are always front / rear (the V=2 mapping of the annotation, see
``data.build.EVALUATION_VIEWPOINTS``), whatever V the model trains with, so that ``xview-*`` and
``sview-*`` of a V=4 or V=8 run (Table 2) are the same quantities as for V=2.
"""
from typing import NamedTuple

import numpy as np

__all__ = ["RankSums", "combine", "rank_metrics", "rank_sums", "stock_mask", "view_masks", "view_metrics",
           "view_results", "view_sums"]


class RankSums(NamedTuple):
    """Per-query sums of one chunk of queries, combined exactly by :func:`combine`."""
    cmc: np.ndarray  # [max_rank] int64: valid queries whose first match is within rank r + 1
    ap: list  # AP of each valid query, in query order
    inp: list  # INP of each valid query


def rank_sums(dist, q_pids, g_pids, keep, max_rank=10, order=None):
    """:class:`RankSums` of a chunk of queries over the kept gallery entries.

    Args:
        dist: [Q, G] distances (smaller is closer). q_pids: [Q]; g_pids: [G].
        keep: [Q, G] bool, False for gallery entries ignored for that query.
        order: [Q, G] ``np.argsort(dist, axis=1, kind="stable")`` when the caller has it already.
    """
    if order is None:
        order = np.argsort(dist, axis=1, kind="stable")
    cmc = np.zeros(max_rank, dtype=np.int64)
    rows = np.arange(dist.shape[0])[:, None]
    kept = keep[rows, order]
    match = (g_pids[order] == q_pids[:, None]) & kept
    rank = np.cumsum(kept, axis=1)  # 1-based rank among kept entries
    hits = np.cumsum(match, axis=1)
    n_pos = hits[:, -1]
    valid = n_pos > 0
    if not valid.any():
        return RankSums(cmc, [], [])
    first = np.where(match, rank, np.iinfo(np.int64).max).min(axis=1)
    last = np.where(match, rank, 0).max(axis=1)
    precision = np.where(match, hits / np.maximum(rank, 1), 0.0).sum(axis=1)
    for r in range(max_rank):
        cmc[r] += np.sum(first[valid] <= r + 1)
    return RankSums(cmc, (precision[valid] / n_pos[valid]).tolist(), (n_pos[valid] / last[valid]).tolist())


def combine(parts, max_rank=10):
    """(cmc [max_rank], mAP, mINP, number of valid queries) of chunks' :class:`RankSums`; NaNs when no
    query is valid. Sums and counts are added, never averages averaged."""
    ap = [a for p in parts for a in p.ap]
    n = len(ap)
    if n == 0:
        return np.full(max_rank, np.nan), float("nan"), float("nan"), 0
    cmc = np.sum([p.cmc for p in parts], axis=0).astype(np.float64)
    return cmc / n, float(np.mean(ap)), float(np.mean([i for p in parts for i in p.inp])), n


def rank_metrics(dist, q_pids, g_pids, keep, max_rank=10, chunk=256):
    """CMC, mAP and mINP over the kept gallery entries.

    Args:
        dist: [Q, G] distances (smaller is closer). q_pids: [Q]; g_pids: [G].
        keep: [Q, G] bool, False for gallery entries ignored for that query.
    Returns:
        (cmc [max_rank], mAP, mINP, number of valid queries); NaNs when no query is valid.
    """
    parts = [rank_sums(dist[s:s + chunk], q_pids[s:s + chunk], g_pids, keep[s:s + chunk], max_rank)
             for s in range(0, dist.shape[0], chunk)]
    return combine(parts, max_rank)


def stock_mask(q_pids, g_pids, q_camids, g_camids):
    """Keep-mask [Q, G] of FastReID's protocol: a gallery image of the query's identity *and* camera is ignored."""
    return ~((q_pids[:, None] == g_pids[None, :]) & (q_camids[:, None] == g_camids[None, :]))


def view_masks(q_pids, g_pids, q_camids, g_camids, q_views, g_views):
    """Keep-masks [Q, G] for the stock, cross-view and same-view protocols."""
    positive = q_pids[:, None] == g_pids[None, :]
    stock = stock_mask(q_pids, g_pids, q_camids, g_camids)
    known = (q_views[:, None] >= 0) & (g_views[None, :] >= 0)
    same_view = q_views[:, None] == g_views[None, :]
    cross = stock & ~(positive & ~(known & ~same_view))
    same = stock & ~(positive & ~(known & same_view))
    return stock, cross, same


def view_sums(dist, q_pids, g_pids, q_camids, g_camids, q_views, g_views):
    """{"xview": :class:`RankSums`, "sview": ...} of a chunk of queries ([Q, G] ``dist``), one sort for both."""
    _, cross, same = view_masks(q_pids, g_pids, q_camids, g_camids, q_views, g_views)
    order = np.argsort(dist, axis=1, kind="stable")
    return {prefix: rank_sums(dist, q_pids, g_pids, keep, order=order) for prefix, keep in (("xview", cross), ("sview", same))}


def view_results(parts):
    """{"xview-Rank-1", "xview-mAP", "sview-Rank-1", "sview-mAP", ...} in percent, from chunks' :func:`view_sums`."""
    results = {}
    for prefix in ("xview", "sview"):
        cmc, m_ap, m_inp, n = combine([p[prefix] for p in parts])
        results[f"{prefix}-Rank-1"] = cmc[0] * 100
        results[f"{prefix}-Rank-5"] = cmc[4] * 100
        results[f"{prefix}-mAP"] = m_ap * 100
        results[f"{prefix}-queries"] = n
    return results


def view_metrics(dist, q_pids, g_pids, q_camids, g_camids, q_views, g_views):
    """{"xview-Rank-1", "xview-mAP", "sview-Rank-1", "sview-mAP", ...} in percent."""
    return view_results([view_sums(dist, q_pids, g_pids, q_camids, g_camids, q_views, g_views)])
