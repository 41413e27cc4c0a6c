"""FastReID's CMC, AP and INP from the ranks of each query's positives, in FastReID's own arithmetic.

Shape legend: c queries in a chunk, M same-identity gallery images of a query, R = min(50, G) ranks.

FastReID's compiled ``eval_market1501_cy`` (``fastreid/evaluation/rank_cylib/rank_cy.pyx``) walks
each query's sorted list, skipping the gallery images of the query's identity *and* camera. With
the list's positives at 1-based ranks r_1 < ... < r_n it computes

* CMC: 1 from rank r_1 on; summed over the valid queries in float32 and divided by their number;
* AP = (sum_k k / r_k) / n: each term k / r_k in float64, *added to a float32 sum* (the running sum is
  rounded to float32 after every positive), then a float32 division by n;
* INP = n / r_n, in float64, stored as float32.

These are reproduced operation for operation, so the values are FastReID's to the bit; the float32
sum is the one sequential loop left, over the M columns of the chunk (not over queries). A query
without a positive is not valid (FastReID skips it). One difference: where a query's list is shorter
than R (a gallery of under 50 images besides the query's camera), FastReID's CMC reads a buffer left
from the previous query past the list's end; here the CMC stays 1 there, as a list that found its
match does.
"""
from typing import NamedTuple

import numpy as np
import torch

from .ranks import list_ranks

__all__ = ["StockSums", "hits_at", "stock_sums", "stock_results"]


class StockSums(NamedTuple):
    """FastReID's per-query quantities of a chunk, on its device; AP and INP mean nothing where not valid."""
    hits: torch.Tensor  # [R] int64: valid queries whose first positive is within rank r + 1
    ap: torch.Tensor  # [c] float32
    inp: torch.Tensor  # [c] float32
    valid: torch.Tensor  # [c] bool: the query has a positive
    first: torch.Tensor  # [c] int64: rank of its first positive (a large number when none)


def _first_last(rank, member):
    """([c] smallest, [c] largest) rank of the members (a large number / 0 for a row without one)."""
    first = torch.where(member, rank, torch.iinfo(torch.int64).max).amin(dim=1)
    last = torch.where(member, rank, 0).amax(dim=1)
    return first, last


def hits_at(first, valid, max_rank):
    """[max_rank] int64: valid queries whose first match is within rank r + 1 (the CMC's numerators)."""
    ranks = torch.arange(1, max_rank + 1, device=first.device)
    return ((first[:, None] <= ranks[None, :]) & valid[:, None]).sum(dim=0)


def stock_sums(ahead, real, positive, max_rank):
    """:class:`StockSums` of a chunk.

    Args:
        ahead, real: :class:`~.ranks.ChunkRanks` fields. positive: [c, M] bool, the images FastReID
            keeps (another camera than the query's).
    """
    rank = list_ranks(ahead, real, positive)
    n = positive.sum(dim=1)
    valid = n > 0
    first, last = _first_last(rank, positive)
    k = positive.cumsum(dim=1)
    term = torch.where(positive, k.double() / rank.double(), 0.0)  # tmp_cmc[g] / (g + 1.), float64
    total = torch.zeros(len(n), dtype=torch.float32, device=n.device)
    for col in term.unbind(dim=1):  # tmp_cmc_sum += ...: a float32 sum, rounded after each term
        total = (total.double() + col).float()
    ap = total / n.float()
    inp = (n.double() / last.double()).float()  # cmc[max_pos_idx] / (max_pos_idx + 1.0)
    return StockSums(hits_at(first, valid, max_rank), ap, inp, valid, first)


def stock_results(parts):
    """(cmc [R] float32, all AP, all INP) of the whole query set from chunks' :func:`stock_sums`, as
    ``evaluate_rank`` returns them for the whole matrix (hits summed, then divided in float32). One
    copy to the host for all chunks."""
    hits = torch.stack([p.hits for p in parts]).sum(dim=0).cpu().numpy()
    ap, inp, valid = (torch.cat(t).cpu().numpy() for t in zip(*((p.ap, p.inp, p.valid) for p in parts)))
    ap, inp = ap[valid], inp[valid]
    assert len(ap) > 0, "Error: all query identities do not appear in gallery"  # FastReID's own check
    return hits.astype(np.float32) / np.float32(len(ap)), ap, inp
