"""Cross-view and same-view retrieval: rank metrics with some of the query's positives left out.

Shape legend: Q queries, G gallery images, c queries in a chunk, M same-identity gallery images.

* stock: FastReID's protocol, gallery images of the query's identity *and* camera are ignored.
* cross-view: additionally, positives seen from the query's own viewpoint are ignored, so only
  matches across viewpoints count (what VAL claims to improve).
* same-view: additionally, positives seen from another viewpoint are ignored.
Positives whose viewpoint, or whose query's viewpoint, is unknown (-1) count in neither view
metric. Queries left with no positive are skipped, as in FastReID.

Each view's list is the stock list less some positives, so its ranks follow from the stock ranks
(:func:`~.ranks.list_ranks`): no list is sorted again. AP is computed in float64.

The viewpoints are always front / rear (the V=2 mapping of the annotation, see
``data.build.EVALUATION_VIEWPOINTS``), whatever V the model trains with, so that ``xview-*`` and
``sview-*`` of a V=4 or V=8 run (Table 2) are the same quantities as for V=2.
"""
import numpy as np
import torch

from .ranks import list_ranks
from .stock import hits_at

__all__ = ["VIEWS", "stock_mask", "view_masks", "view_members", "view_sums", "view_results", "view_metrics"]

VIEWS = ("xview", "sview")  # cross-view, same-view
VIEW_RANKS = 10  # CMC ranks kept for the view metrics (Rank-1 and Rank-5 are reported)


def stock_mask(q_pids, g_pids, q_camids, g_camids):
    """Keep-mask [Q, G] of FastReID's protocol: a gallery image of the query's identity *and* camera is ignored."""
    return ~((q_pids[:, None] == g_pids[None, :]) & (q_camids[:, None] == g_camids[None, :]))


def view_masks(q_pids, g_pids, q_camids, g_camids, q_views, g_views):
    """Keep-masks [Q, G] for the stock, cross-view and same-view protocols (the definition; the
    evaluator applies it per image with :func:`view_members`)."""
    positive = q_pids[:, None] == g_pids[None, :]
    stock = stock_mask(q_pids, g_pids, q_camids, g_camids)
    known = (q_views[:, None] >= 0) & (g_views[None, :] >= 0)
    same_view = q_views[:, None] == g_views[None, :]
    cross = stock & ~(positive & ~(known & ~same_view))
    same = stock & ~(positive & ~(known & same_view))
    return stock, cross, same


def view_members(positive, q_views, image_views):
    """{"xview": [c, M] bool, "sview": ...}: the positives each view metric keeps.

    Args:
        positive: [c, M] bool, FastReID's positives among the same-identity images.
        q_views: [c] query viewpoints; image_views: [c, M] viewpoints of the same-identity images.
    """
    known = positive & (q_views[:, None] >= 0) & (image_views >= 0)
    same = image_views == q_views[:, None]
    return {"xview": known & ~same, "sview": known & same}


def view_sums(ahead, real, members):
    """{view: (hits [VIEW_RANKS], AP [c] float64, valid [c] bool)} of a chunk, on its device.

    Args:
        ahead, real: :class:`~.ranks.ChunkRanks` fields; members: :func:`view_members`.
    """
    sums = {}
    for view, member in members.items():
        rank = list_ranks(ahead, real, member)
        n = member.sum(dim=1)
        valid = n > 0
        first = torch.where(member, rank, torch.iinfo(torch.int64).max).amin(dim=1)
        precision = torch.where(member, member.cumsum(dim=1).double() / rank.double(), 0.0)
        sums[view] = (hits_at(first, valid, VIEW_RANKS), precision.sum(dim=1) / n.double(), valid)
    return sums


def view_results(parts):
    """{"xview-Rank-1", "xview-Rank-5", "xview-mAP", "xview-queries", "sview-...": ...} in percent from
    chunks' :func:`view_sums` (sums and counts added, never averages averaged); NaNs when no query
    is valid."""
    results = {}
    for view in VIEWS:
        hits = torch.stack([p[view][0] for p in parts]).sum(dim=0).cpu().numpy()
        ap, valid = (torch.cat([p[view][i] for p in parts]).cpu().numpy() for i in (1, 2))
        ap = ap[valid]
        n = len(ap)
        cmc = hits.astype(np.float64) / n if n else np.full(VIEW_RANKS, np.nan)
        results[f"{view}-Rank-1"] = cmc[0] * 100
        results[f"{view}-Rank-5"] = cmc[4] * 100
        results[f"{view}-mAP"] = float(np.mean(ap)) * 100 if n else float("nan")
        results[f"{view}-queries"] = n
    return results


def view_metrics(dist, q_pids, g_pids, q_camids, g_camids, q_views, g_views):
    """{"xview-Rank-1", "xview-mAP", "sview-Rank-1", "sview-mAP", ...} in percent of a whole [Q, G]
    distance matrix (numpy arrays)."""
    from .ranks import chunk_ranks, identity_lists

    dist = torch.as_tensor(np.asarray(dist, dtype=np.float32))
    ranks = chunk_ranks(dist, identity_lists(q_pids, g_pids, dist.device), range(0, len(q_pids)))
    index = ranks.index.numpy()
    positive = ranks.real & torch.as_tensor(g_camids[index] != q_camids[:, None])
    members = view_members(positive, torch.as_tensor(q_views), torch.as_tensor(g_views[index]))
    return view_results([view_sums(ranks.ahead, ranks.real, members)])
