"""Where each query's same-identity gallery images land in its ranked list: counted, not sorted.

Shape legend: Q queries, G gallery images, c queries in a chunk, M same-identity gallery images of
a query (padded to the chunk's largest), T gallery entries whose distance equals one of theirs.

Every metric of the evaluator is a function of these places: CMC, AP and INP of the ranks of the
query's positives, the view metrics of the same ranks with some positives left out, the look-alike
metric of the list's first entry. FastReID argsorts each row of the [Q, G] distances (O(G log G) per
query, single-threaded); here the rank of a same-identity image is the number of gallery entries
ahead of it, counted in one pass over the row: its M distances are sorted, a binary search places
every gallery entry between them, and a histogram of the places gives the counts (O(G log M)).

The order is FastReID's, with ties broken as a stable sort breaks them: entry j is ahead of entry i
when (d_j, j) < (d_i, i), distance first, then gallery index. Entries at exactly a same-identity
image's distance are rare but not negligible (float32 distances of 10^5 images collide), so they are
found and counted separately (T of them per chunk, besides the M images themselves).

All on the device the distances are on; the lists come from host arrays once per evaluation.
"""
from typing import NamedTuple

import numpy as np
import torch

__all__ = ["IdentityLists", "ChunkRanks", "identity_lists", "chunk_ranks", "list_ranks"]


class IdentityLists(NamedTuple):
    """The gallery images of each query's identity: ``order[start[q]:start[q] + count[q]]``."""
    order: torch.Tensor  # [G] int64: gallery indices grouped by identity, ascending within each
    start: torch.Tensor  # [Q] int64
    count: np.ndarray  # [Q] int64, on the host: a chunk's width M is known without reading the device


def identity_lists(q_pids, g_pids, device):
    """:class:`IdentityLists` of numpy ``q_pids`` [Q] and ``g_pids`` [G], its tensors on ``device``."""
    order = np.argsort(g_pids, kind="stable")
    grouped = g_pids[order]
    start = np.searchsorted(grouped, q_pids, side="left")
    count = np.searchsorted(grouped, q_pids, side="right") - start
    return IdentityLists(torch.as_tensor(order, device=device), torch.as_tensor(start, device=device), count)


class ChunkRanks(NamedTuple):
    """A chunk's same-identity gallery images, each row in ranked order (pads last)."""
    index: torch.Tensor  # [c, M] int64 gallery index; a pad repeats the row's first index (0 if none)
    real: torch.Tensor  # [c, M] bool: not a pad
    ahead: torch.Tensor  # [c, M] int64: gallery entries (all G) ahead of it, by (distance, index)


def _lexical_ties(dist, s_d, s_index, places):
    """[c, M] int64: for each same-identity image, the entries at exactly its distance with a smaller
    gallery index (its own distance counts only strictly smaller ones).

    ``places`` [c, G]: how many of the row's sorted ``s_d`` are <= each entry's distance. An entry ties
    with the run of equal distances that ends at place - 1; within a run (sorted by index) the images
    whose index exceeds the entry's have it ahead. Each tie adds 1 over a range of the row's places,
    written as a difference array: +1 where the range starts, -1 where it ends.
    """
    c, m = s_d.shape
    before = torch.cat((s_d.new_full((c, 1), float("nan")), s_d), dim=1)  # before[:, p] = s_d[:, p - 1]
    rows, cols = (before.gather(1, places) == dist).nonzero(as_tuple=True)  # T ties (each image with itself too)
    end = places[rows, cols]  # the run ends at place end - 1 (exclusive end)
    run_start = torch.searchsorted(s_d, s_d, right=False)  # [c, M]: first place of each image's run
    start = run_start[rows, end - 1]
    g = dist.size(1) + 1
    # lexical keys (row, run start, index) of the images, ascending across the flattened chunk; pads last
    base = torch.arange(c, device=dist.device)[:, None] * (m + 1)
    keys = ((base + run_start) * g + s_index).flatten()
    first_after = torch.searchsorted(keys, ((rows * (m + 1) + start) * g + cols), right=True) - rows * m
    diff = torch.zeros((c, m + 1), dtype=torch.int64, device=dist.device)
    ones = torch.ones_like(rows)
    diff.index_put_((rows, first_after), ones, accumulate=True)
    diff.index_put_((rows, end), -ones, accumulate=True)
    return diff.cumsum(dim=1)[:, :m]


def chunk_ranks(dist, lists, rows):
    """:class:`ChunkRanks` of queries ``rows`` (a range) from their [c, G] distances.

    Args:
        dist: [c, G] float distances (smaller is closer), on any device.
        lists: :func:`identity_lists` of all queries.
    """
    c, g = dist.shape
    device = dist.device
    count = lists.count[rows.start:rows.stop]
    m = max(1, int(count.max()) if len(count) else 0)  # a column of pads when no query has any
    slot = torch.arange(m, device=device)
    real = slot[None, :] < torch.as_tensor(count, device=device)[:, None]  # [c, M]
    at = (lists.start[rows.start:rows.stop, None] + slot).clamp_(max=max(g - 1, 0))
    index = torch.where(real, lists.order[at], 0)
    s_d = torch.where(real, dist.gather(1, index), float("inf"))
    s_d, perm = s_d.sort(dim=1, stable=True)  # lists are in index order: now (distance, index) order
    index = index.gather(1, perm)  # pads (+inf) stay last: ``real`` is unchanged
    # places[c, j]: images at or below entry j's distance; entries strictly below image p: places <= p
    places = torch.searchsorted(s_d, dist, right=True)
    hist = torch.zeros((c, m + 1), dtype=torch.int64, device=device)
    hist.scatter_add_(1, places, torch.ones((1, 1), dtype=torch.int64, device=device).expand_as(places))
    ahead = hist.cumsum(dim=1)[:, :m] + _lexical_ties(dist, s_d, torch.where(real, index, g), places)
    index = torch.where(real, index, index[:, :1])
    return ChunkRanks(index, real, ahead)


def list_ranks(ahead, real, member):
    """[c, M] int64 1-based ranks of the ``member`` images in a list that leaves out the row's other
    same-identity images (``real & ~member``; every other gallery entry stays): FastReID's list leaves
    out the query's camera, a view metric's list also the positives seen from the other viewpoint.
    Only the images ahead of an image are subtracted, so the ranks of members are exact; the values
    at other places mean nothing."""
    left_out = (real & ~member).to(torch.int64)
    return ahead - (left_out.cumsum(dim=1) - left_out) + 1
