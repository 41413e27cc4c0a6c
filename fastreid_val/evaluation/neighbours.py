"""Exact k-nearest neighbours of every image among all images, in blocks, on the features' device.

Shape legend: N images, d feature dim, k neighbours, B block size.

The first step of k-reciprocal re-ranking (the initial ranking list, Zhong et al. CVPR 2017, Eq. 1-2).
FastReID 1.4.0 gets it from faiss (``IndexFlatL2`` on CPU, ``bruteForceKnn`` on GPU); this is the
same squared Euclidean search in torch: the N x N distances are computed B x B blocks at a time and
only each row's k best are kept, so memory is O(N k + B^2), not O(N^2). The distance is symmetric, so
only the blocks on and above the diagonal are computed; each serves its rows and its columns.
Equal distances (duplicate images) are ordered by index, as faiss's heaps order them, so that the
neighbour lists, and everything re-ranking builds on them, are faiss's.
"""
import torch

__all__ = ["nearest_neighbours"]


def _lexical_smallest(d, i, k):
    """The k smallest of each row by (distance, index): faiss's order, ties to the smaller index."""
    by_index = i.argsort(dim=1)
    d, i = d.gather(1, by_index), i.gather(1, by_index)
    pos = d.sort(dim=1, stable=True).indices[:, :k]
    return d.gather(1, pos), i.gather(1, pos)


def _block_smallest(block_d, k):
    """(distances, column indices) [r, min(k, c)] of a block's k smallest per row, by (distance, column)."""
    kk = min(k, block_d.size(1))
    d, i = block_d.topk(min(kk + 1, block_d.size(1)), dim=1, largest=False)
    tied = (d[:, kk - 1] == d[:, kk]) if d.size(1) > kk else torch.zeros_like(d[:, 0], dtype=torch.bool)
    d, i = d[:, :kk], i[:, :kk]
    if tied.any():  # a distance shared across the k-th place (duplicate images): the smaller columns win
        rows = tied.nonzero().squeeze(1)
        dd, ii = block_d[rows].sort(dim=1, stable=True)
        d[rows], i[rows] = dd[:, :kk], ii[:, :kk]
    return d, i


def _merge(best_d, best_i, start, block_d, col_start):
    """Fold a block's candidates into the running k best of rows ``start:start + len(block_d)`` (in place)."""
    rows = slice(start, start + block_d.size(0))
    d, i = _block_smallest(block_d, best_d.size(1))
    d, i = _lexical_smallest(torch.cat((best_d[rows], d), dim=1), torch.cat((best_i[rows], i + col_start), dim=1),
                             best_d.size(1))
    best_d[rows] = d
    best_i[rows] = i


@torch.no_grad()
def nearest_neighbours(features, k, block=2048):
    """Indices of each image's k nearest images (itself included), nearest first.

    Args:
        features: [N, d] float tensor, on any device.
        k: neighbours per image (capped at N).
        block: B, rows and columns of one distance block (memory B^2 floats).
    Returns:
        (distances, indices): [N, min(k, N)] float and int64 tensors on ``features.device``; row i
        sorted by squared Euclidean distance ``|x_i|^2 + |x_j|^2 - 2 x_i.x_j`` (the formula faiss and
        FastReID use), nearest first, equal distances by ascending index.
    """
    n = features.size(0)
    k = min(k, n)
    sq = features.pow(2).sum(dim=1)  # [N]
    best_d = features.new_full((n, k), float("inf"))
    best_i = torch.zeros((n, k), dtype=torch.long, device=features.device)
    for s in range(0, n, block):
        xs = features[s:s + block]
        for t in range(s, n, block):
            xt = features[t:t + block]
            d = torch.addmm(sq[s:s + block, None] + sq[None, t:t + block], xs, xt.t(), beta=1, alpha=-2)
            _merge(best_d, best_i, s, d, t)
            if t != s:
                _merge(best_d, best_i, t, d.t(), s)
    return best_d, best_i
