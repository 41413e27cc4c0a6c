"""The argsort-based references: each query's list sorted by distance (stable: ties by gallery index),
then the metrics read off the sorted list. The evaluator counted ranks this way before it counted them
without sorting (``fastreid_val.evaluation.ranks``); the tests compare the two."""
import numpy as np

from fastreid_val.evaluation.cross_view import stock_mask, view_masks


def naive_rank_sums(dist, q_pids, g_pids, keep, max_rank=10):
    """(cmc hits [max_rank], AP list, INP list) over the kept gallery entries ([Q, G] bool ``keep``)."""
    order = np.argsort(dist, axis=1, kind="stable")
    rows = np.arange(dist.shape[0])[:, None]
    kept = keep[rows, order]
    match = (g_pids[order] == q_pids[:, None]) & kept
    rank = np.cumsum(kept, axis=1)  # 1-based rank among kept entries
    hits = np.cumsum(match, axis=1)
    n_pos = hits[:, -1]
    valid = n_pos > 0
    cmc = np.zeros(max_rank, dtype=np.int64)
    if not valid.any():
        return cmc, [], []
    first = np.where(match, rank, np.iinfo(np.int64).max).min(axis=1)
    last = np.where(match, rank, 0).max(axis=1)
    precision = np.where(match, hits / np.maximum(rank, 1), 0.0).sum(axis=1)
    for r in range(max_rank):
        cmc[r] += np.sum(first[valid] <= r + 1)
    return cmc, (precision[valid] / n_pos[valid]).tolist(), (n_pos[valid] / last[valid]).tolist()


def naive_rank_metrics(dist, q_pids, g_pids, keep, max_rank=10):
    """(cmc [max_rank], mAP, mINP, number of valid queries); NaNs when no query is valid."""
    cmc, ap, inp = naive_rank_sums(dist, q_pids, g_pids, keep, max_rank)
    if not ap:
        return np.full(max_rank, np.nan), float("nan"), float("nan"), 0
    return cmc.astype(np.float64) / len(ap), float(np.mean(ap)), float(np.mean(inp)), len(ap)


def naive_view_metrics(dist, q_pids, g_pids, q_camids, g_camids, q_views, g_views):
    """{"xview-Rank-1", "xview-Rank-5", "xview-mAP", "xview-queries", "sview-...": ...} in percent."""
    _, cross, same = view_masks(q_pids, g_pids, q_camids, g_camids, q_views, g_views)
    results = {}
    for prefix, keep in (("xview", cross), ("sview", same)):
        cmc, m_ap, _, n = naive_rank_metrics(dist, q_pids, g_pids, keep)
        results.update({f"{prefix}-Rank-1": cmc[0] * 100, f"{prefix}-Rank-5": cmc[4] * 100,
                        f"{prefix}-mAP": m_ap * 100, f"{prefix}-queries": n})
    return results


def naive_lookalike_metrics(dist, q_pids, g_pids, q_camids, g_camids, groups):
    """{"lookalike-wrong-Rank-1": %, "wrong-Rank-1-queries": n}: the Rank-1 entry of each query's list."""
    masked = np.where(stock_mask(q_pids, g_pids, q_camids, g_camids), np.asarray(dist, dtype=np.float64), np.inf)
    first = masked.argmin(axis=1)  # numpy: the first of equal minima
    wrong = g_pids[first] != q_pids
    g_groups = np.array([groups[int(p)] for p in g_pids])
    q_groups = np.array([groups[int(p)] for p in q_pids])
    n, same = int(wrong.sum()), int((g_groups[first] == q_groups)[wrong].sum())
    return {"lookalike-wrong-Rank-1": float(np.float64(same) / n * 100) if n else float("nan"),
            "wrong-Rank-1-queries": n}
