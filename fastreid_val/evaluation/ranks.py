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
    index: torch.Tensor  # [c, M] int64 gallery index; a pad repeats the row's first index (G - 1 if none)
    real: torch.Tensor  # [c, M] bool: not a pad
    ahead: torch.Tensor  # [c, M] int64: gallery entries (all G) ahead of it, by (distance, index)


def _without_denormals(s_d):
    """``s_d`` (the images' distances) with every distance smaller in magnitude than the smallest normal
    float set to 0.

    A CPU thread that flushes denormal floats to zero (``RUN.FLUSH_DENORMAL``, engine/denormals.py)
    compares them as 0, one that keeps them as their values, and the threads of one process can differ
    (torch's threads copy the mode when they start; onnxruntime's first session turns the calling
    thread's off). With no denormal among the images' distances and their boundaries (:func:`_bounds`),
    the ranks are the same whatever each thread's mode and on every device, for every gallery entry at
    0 or a normal distance, and at a positive denormal one, which counts as 0 in both modes. Only an
    entry at a negative denormal distance is counted ahead of the distance 0 by a thread that keeps
    denormals: features give none (an image and its copy give exact zeros), and the [c, G] pass that
    would set them to 0 costs a sixth of the count.
    """
    return torch.where(s_d.abs() < torch.finfo(s_d.dtype).tiny, s_d.new_zeros(()), s_d)


def _bounds(s_d):
    """([c, 2M] sorted boundaries, [c, M] first place of each image's distance among the images).

    For each distinct distance s of the row's images: s itself, then the next float above it, so that a
    binary search puts an entry at exactly s on an odd place (2a + 1, a the first image at s) and an
    entry between two distances on an even one. Further images at the same distance repeat the next
    float (the boundaries stay sorted). Pads (+inf) give +inf boundaries, beyond every entry.

    Above 0 the boundary is the smallest normal float, not the denormal next to 0, which a CPU thread
    that flushes denormals (:func:`_without_denormals`) takes for 0 itself.
    """
    run_start = torch.searchsorted(s_d, s_d, right=False)
    head = run_start == torch.arange(s_d.size(1), device=s_d.device)
    above = torch.where(s_d == 0, torch.finfo(s_d.dtype).tiny, torch.nextafter(s_d, s_d.new_tensor(float("inf"))))
    return torch.stack((torch.where(head, s_d, above), above), dim=2).flatten(1), run_start


def _ties(places, s_index, run_start):
    """[r, M] int64: for each image of r rows, the entries at exactly its distance with a smaller gallery
    index (the other images among them).

    An entry at exactly an image's distance has an odd place 2a + 1 (a: the first image at that
    distance). It is ahead of the images of that distance whose index exceeds its own: within a run
    (sorted by index) the run's last ones, found by a binary search of (row, a, index) keys. Each adds
    1 from the first of them to the run's end, written as a difference array.
    """
    r, m = s_index.shape
    g = places.size(1) + 1  # indices run to G (the pads'), below g
    rows, cols = (places & 1).nonzero(as_tuple=True)  # T tied entries, the images themselves among them
    start = (places[rows, cols] - 1) // 2
    keys = ((torch.arange(r, device=places.device)[:, None] * (m + 1) + run_start) * g + s_index).flatten()
    run = (rows * (m + 1) + start) * g
    offset = rows * m
    first_after = torch.searchsorted(keys, run + cols, right=True) - offset
    end = torch.searchsorted(keys, run + g - 2, right=True) - offset  # past the run's last image
    diff = torch.zeros((r, m + 1), dtype=torch.int64, device=places.device)
    ones = torch.ones_like(rows)
    diff.index_put_((rows, first_after), ones, accumulate=True)
    diff.index_put_((rows, end), -ones, accumulate=True)
    return diff.cumsum(dim=1)[:, :m]


def chunk_ranks(dist, lists, rows):
    """:class:`ChunkRanks` of queries ``rows`` (a range) from their [c, G] distances.

    One binary search of every entry among the row's boundaries (:func:`_bounds`) and a histogram of
    the places give each image the entries strictly closer; the images at its distance with a smaller
    index are ahead too, and so are other entries at exactly its distance with a smaller index: rare,
    counted (:func:`_ties`) only in the rows that have them (one host synchronisation per chunk, for
    their number).

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
    s_d = torch.where(real, _without_denormals(dist.gather(1, index)), float("inf"))
    s_d, perm = s_d.sort(dim=1, stable=True)  # lists are in index order: now (distance, index) order
    index = torch.where(real, index.gather(1, perm), g)  # pads (+inf) stay last: ``real`` is unchanged
    bounds, run_start = _bounds(s_d)
    places = torch.searchsorted(bounds, dist, right=True)  # [c, G]: boundaries at or below each entry
    hist = torch.zeros((c, 2 * m + 1), dtype=torch.int64, device=device)
    hist.scatter_add_(1, places, torch.ones((1, 1), dtype=torch.int64, device=device).expand_as(places))
    at_distance = 2 * run_start + 1  # the place of the entries at exactly an image's distance
    closer = (hist.cumsum(dim=1) - hist).gather(1, at_distance)  # entries on lower places
    ones = torch.ones_like(run_start)
    run_length = torch.zeros((c, m), dtype=torch.int64, device=device).scatter_add_(1, run_start, ones)
    others = (hist.gather(1, at_distance) > run_length.gather(1, run_start)) & real  # entries at its distance
    ties = slot - run_start  # the images at its distance before it (smaller indices)
    rows_with = others.any(dim=1).nonzero().squeeze(1)
    if len(rows_with):
        ties[rows_with] = _ties(places[rows_with], index[rows_with], run_start[rows_with])
    index = torch.where(real, index, index[:, :1].clamp(max=g - 1))
    return ChunkRanks(index, real, closer + ties)


def list_ranks(ahead, real, member):
    """[c, M] int64 1-based ranks of the ``member`` images in a list that leaves out the row's other
    same-identity images (``real & ~member``; every other gallery entry stays): FastReID's list leaves
    out the query's camera, a view metric's list also the positives seen from the other viewpoint.
    Only the images ahead of an image are subtracted, so the ranks of members are exact; the values
    at other places mean nothing."""
    left_out = (real & ~member).to(torch.int64)
    return ahead - (left_out.cumsum(dim=1) - left_out) + 1
