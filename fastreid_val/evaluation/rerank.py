"""k-reciprocal re-ranking (Zhong et al., "Re-ranking Person Re-identification with k-reciprocal
Encoding", CVPR 2017) in torch, on the features' device (CPU or GPU), with sparse storage.

Shape legend: N = Q + G images (queries first), d feature dim, K forward neighbours, Kh neighbours of
the half set, W expansion-set width (at most K + K*Kh), E non-zeros of the encoding.

The steps, with FastReID 1.4.0's semantics (``compute_jaccard_distance``, ``fastreid/utils/compute_dist.py:63``):

1. initial ranking: the K nearest images of each image among all N (Eq. 1-2), :mod:`.neighbours`.
2. k-reciprocal set R(p, k1): the neighbours g of p that have p among their own K nearest (Eq. 3).
3. expansion R*(p, k1): R(p, k1) plus R(q, k1/2) of each q in R(p, k1) whose half set shares
   *more than* 2/3 of its members with R(p, k1) (Eq. 4; the paper writes >=, FastReID >; we keep >).
4. encoding V_p: Gaussian-kernel weights over R*(p), normalised: softmax(-d(p, g)) with d the raw
   squared Euclidean distance (Eq. 7; FastReID does not scale d by its maximum as ``rerank.py`` does).
5. local query expansion: V_p <- mean of V_g over p's k2 nearest images, p included (Eq. 11).
6. Jaccard distance d_J(p, g) = 1 - sum(min(V_p, V_g)) / sum(max(V_p, V_g)) (Eq. 10); rows of V sum to
   1, so sum(max) = 2 - sum(min). Negative values (rounding) are set to 0, as upstream does.

The caller mixes d* = (1 - lambda) d_J + lambda d (Eq. 12, ``TEST.RERANK.LAMBDA``).

Neighbour count (FastReID issue #446): upstream's faiss search returns k1 neighbours with the image
itself first, then slices ``[:k1 + 1]``, which holds only those k1; the paper (and FastReID's own
``evaluation/rerank.py``) use k1 + 1 (the image and k1 others). Default ``K = k1`` keeps upstream's
results; ``paper_k1=True`` uses K = k1 + 1. The half set uses Kh = round(k1 / 2) + 1, capped at K as
upstream's slice is; k2 is capped at K likewise.

Memory: the encoding is sparse (E <= N * min(N, k2 * W) entries; about 70 per image at k1 = 20,
k2 = 6 on VeRi-776-sized features) and only
the requested Jaccard rows are dense, so it grows with N k, not N^2. Time is dominated by the kNN
search, O(N^2 d). :func:`rerank_memory_bytes` bounds the worst case; the evaluator refuses beyond
:data:`RERANK_MEMORY_LIMIT` (:func:`check_rerank_size`).
"""
from typing import NamedTuple

import torch

from ..errors import RerankTooLargeError
from .neighbours import nearest_neighbours

__all__ = ["Encoding", "RERANK_MEMORY_LIMIT", "check_rerank_size", "encode", "jaccard_distance",
           "k_reciprocal_jaccard", "neighbour_counts", "rerank_memory_bytes"]

RERANK_MEMORY_LIMIT = 4 * 1024 ** 3  # bytes: the evaluation's memory budget on the 2-core reference machine
_NEAR = 1  # the kNN search keeps M = _NEAR * K distances; the members of R*(i) beyond them are computed
_ROWS = 1024  # rows at a time in the [rows, K, K] reciprocity test and the [rows, W, M] distance look-up
_PAIRS = 1 << 21  # (row, column) pairs expanded at once in query expansion and Jaccard (~80 MB)


class Encoding(NamedTuple):
    """The sparse k-reciprocal encoding V (after local query expansion), by rows and by columns.

    ``crow`` [N + 1], ``col`` [E], ``val`` [E]: CSR, columns ascending in each row. ``ccol`` [N + 1],
    ``row`` [E], ``cval`` [E]: the same entries by column (CSC).
    """
    crow: torch.Tensor
    col: torch.Tensor
    val: torch.Tensor
    ccol: torch.Tensor
    row: torch.Tensor
    cval: torch.Tensor


def neighbour_counts(k1, k2, paper_k1=False):
    """(K, Kh, k2'): forward neighbours, half-set neighbours and query-expansion neighbours used."""
    k = k1 + 1 if paper_k1 else k1
    return k, min(round(k1 / 2) + 1, k), min(k2, k)


def rerank_memory_bytes(n, k1, k2, paper_k1=False):
    """Worst-case bytes of :func:`encode` for N images (features and the kNN blocks not counted).

    * expansion sets, padded to W = K + K*Kh (the widest R* possible): int64 index, float32 distance
      and weight, 16 B x N x W;
    * the expanded encoding, N x min(N, k2' W) entries at most, at its construction peak: int64 row
      and column, float32 value, the column sort's int64 key and permutation, the CSC copies (int64
      row, float32 value), 56 B per entry.
    """
    k, kh, k2 = neighbour_counts(k1, k2, paper_k1)
    w = min(n, k + k * kh)
    e = min(n, k2 * w) if k2 > 1 else w
    return n * (16 * w + 56 * e)


def check_rerank_size(num_query, num_gallery, k1, k2, limit=None):
    """Raise :class:`RerankTooLargeError` when re-ranking Q + G images may need more than ``limit`` bytes
    (default :data:`RERANK_MEMORY_LIMIT`)."""
    limit = RERANK_MEMORY_LIMIT if limit is None else limit
    n = num_query + num_gallery
    need = rerank_memory_bytes(n, k1, k2)
    if need > limit:
        per_image = need / n
        raise RerankTooLargeError(
            f"re-ranking {n:,} images ({num_query:,} queries + {num_gallery:,} gallery) with TEST.RERANK.K1={k1}, "
            f"K2={k2} may need up to {need / 1e9:.1f} GB for its k-reciprocal graph, over the {limit / 1e9:.1f} GB "
            f"limit (about {int(limit / per_image):,} images); set TEST.RERANK.ENABLED False, or lower K1/K2")


def _reciprocal(rank, k):
    """[N, k] bool: rank[i, a] is a k-reciprocal neighbour of i, i.e. i is among rank[rank[i, a], :k] (Eq. 3)."""
    r = rank[:, :k]
    out = []
    for s in range(0, r.size(0), _ROWS):
        own = torch.arange(s, min(s + _ROWS, r.size(0)), device=r.device)[:, None, None]
        out.append((r[r[s:s + _ROWS]] == own).any(dim=-1))
    return torch.cat(out)


def _rows_per_chunk(n):
    return max(1, min(_ROWS, (1 << 24) // n))  # a [rows, N] bitmap of at most 16 M entries


def _padded(member, n):
    """[c, N] bool bitmap -> [c, W] int64 members, ascending, padded with N."""
    i, j = member.nonzero(as_tuple=True)  # row-major: j ascending in each row
    count = torch.bincount(i, minlength=member.size(0))
    out = torch.full((member.size(0), max(int(count.max()), 1)), n, dtype=torch.long, device=member.device)
    out[i, torch.arange(i.numel(), device=i.device) - (count.cumsum(0) - count)[i]] = j
    return out


def _expansion_sets(rank, k, kh):
    """[N, W] int64: R*(i, k1) of each row (Eq. 4), ascending, padded with N."""
    n = rank.size(0)
    recip, half = _reciprocal(rank, k), _reciprocal(rank, kh)  # [N, K], [N, Kh]
    half_size = half.sum(dim=1).double()
    sets = []
    step = _rows_per_chunk(n)
    for s in range(0, n, step):
        r, m = rank[s:s + step, :k], recip[s:s + step]  # [c, K]
        local = torch.arange(r.size(0), device=r.device)[:, None]
        member = torch.zeros((r.size(0), n), dtype=torch.bool, device=r.device)
        member[local.expand_as(r)[m], r[m]] = True  # R(i, k1)
        cand, cand_ok = rank[r, :kh], half[r]  # [c, K, Kh]: R(q, k1/2) of each neighbour q
        at = local[:, :, None].expand_as(cand)
        shared = (member[at, cand] & cand_ok).sum(dim=-1).double()  # |R(q, k1/2) & R(i, k1)|
        take = (m[..., None] & (shared > 2 / 3 * half_size[r])[..., None] & cand_ok)  # [c, K, Kh]
        member[at[take], cand[take]] = True
        sets.append(_padded(member, n))
    width = max(p.size(1) for p in sets)
    return torch.cat([torch.nn.functional.pad(p, (0, width - p.size(1)), value=n) for p in sets])


def _weights(features, sets, near_d, near_i):
    """[N, W] float: softmax(-squared distance) of each row over its set (Eq. 7), 0 on padding.

    Distances come from the kNN search (``near_d``/``near_i``: [N, M]) where the member is among the
    M nearest, and are computed for the few others.
    """
    n = features.size(0)
    valid = sets < n
    dist = features.new_full(sets.shape, float("nan"))
    for s in range(0, n, _ROWS):
        hit = sets[s:s + _ROWS, :, None] == near_i[s:s + _ROWS, None, :]  # [c, W, M]
        found = near_d[s:s + _ROWS].gather(1, hit.int().argmax(dim=-1))  # [c, W]
        dist[s:s + _ROWS] = torch.where(hit.any(dim=-1), found, dist[s:s + _ROWS])
    rows, slots = (valid & dist.isnan()).nonzero(as_tuple=True)
    cols = sets[rows, slots]
    sq = features.pow(2).sum(dim=1)
    step = max(1, (1 << 23) // max(1, features.size(1)))  # two gathered [step, d] blocks: ~100 MB
    for s in range(0, rows.numel(), step):
        i, j = rows[s:s + step], cols[s:s + step]
        dist[i, slots[s:s + step]] = (sq[i] + sq[j]) - 2 * (features[i] * features[j]).sum(dim=1)
    dist = dist.masked_fill(~valid, float("inf"))
    return torch.where(valid, torch.softmax(-dist, dim=1), torch.zeros((), device=dist.device, dtype=dist.dtype))


def _expand(sets, weights, rank, k2):
    """(row, col, val) of V after local query expansion (Eq. 11), sorted by (row, col)."""
    n = sets.size(0)
    parts = []
    step = max(1, _PAIRS // max(1, k2 * sets.size(1)))
    for s in range(0, n, step):
        e = min(s + step, n)
        nb = rank[s:e, :k2] if k2 > 1 else torch.arange(s, e, device=rank.device)[:, None]
        cols, vals = sets[nb], weights[nb]  # [c, k2, W]
        own = torch.arange(s, e, device=sets.device)[:, None, None]
        keep = cols < n
        key = (own * n + cols)[keep]  # order (row, t, slot): each sum runs over t as upstream's mean
        uniq, inverse = torch.unique(key, sorted=True, return_inverse=True)
        total = vals.new_zeros(uniq.numel()).scatter_add_(0, inverse, vals[keep])
        parts.append((uniq, total / k2 if k2 > 1 else total))
    key, val = torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])
    del parts
    return key // n, key % n, val


def _pointers(index, n):
    return torch.cat((index.new_zeros(1), torch.bincount(index, minlength=n).cumsum(0)))


@torch.no_grad()
def encode(features, k1=20, k2=6, paper_k1=False):
    """The k-reciprocal encoding of every image (steps 1-5).

    Args:
        features: [N, d] float tensor (queries then gallery), on any device; FastReID normalises them
            first when ``TEST.METRIC`` is cosine.
        k1, k2: ``TEST.RERANK.K1``, ``TEST.RERANK.K2``. paper_k1: K = k1 + 1 (see the module notes).
    Returns:
        :class:`Encoding` on ``features.device``.
    """
    n = features.size(0)
    k, kh, k2 = neighbour_counts(k1, k2, paper_k1)
    features = features.float()
    near_d, near_i = nearest_neighbours(features, _NEAR * k)  # [N, M]: most of R*(i) lies in there
    rank = near_i[:, :k]  # [N, K]
    sets = _expansion_sets(rank, rank.size(1), min(kh, rank.size(1)))
    weights = _weights(features, sets, near_d, near_i)
    row, col, val = _expand(sets, weights, rank, min(k2, rank.size(1)))
    by_col = torch.argsort(col * n + row)
    return Encoding(_pointers(row, n), col, val, _pointers(col, n), row[by_col], val[by_col])


@torch.no_grad()
def jaccard_distance(enc, rows, cols):
    """d_J (step 6) of images ``rows`` (a range) against images ``cols`` (a range).

    Args:
        enc: :class:`Encoding` of N images. rows, cols: ``range`` objects (or slices with a step of 1).
    Returns:
        [len(rows), len(cols)] float32 tensor on the encoding's device, in [0, 1].
    """
    n = enc.crow.numel() - 1
    r0, r1 = rows.start, rows.stop
    out = enc.val.new_zeros((r1 - r0, n))
    ccount = enc.ccol[1:] - enc.ccol[:-1]  # [N] entries per column
    a = r0
    while a < r1:  # groups of rows whose pairs fit in _PAIRS
        lo = int(enc.crow[a])
        per_row = torch.zeros(r1 - a, dtype=torch.long, device=out.device).index_add_(
            0, torch.repeat_interleave(torch.arange(r1 - a, device=out.device), enc.crow[a + 1:r1 + 1] - enc.crow[a:r1]),
            ccount[enc.col[lo:int(enc.crow[r1])]])
        b = a + max(1, int((per_row.cumsum(0) <= _PAIRS).sum()))
        hi = int(enc.crow[b])
        e_row = torch.repeat_interleave(torch.arange(a - r0, b - r0, device=out.device), enc.crow[a + 1:b + 1] - enc.crow[a:b])
        e_col, e_val = enc.col[lo:hi], enc.val[lo:hi]
        count = ccount[e_col]
        rep = torch.repeat_interleave(torch.arange(hi - lo, device=out.device), count)
        first = count.cumsum(0) - count
        pos = enc.ccol[e_col][rep] + torch.arange(rep.numel(), device=out.device) - first[rep]
        shared = torch.minimum(e_val[rep], enc.cval[pos])  # min(V_p, V_g) on each shared column
        out.view(-1).scatter_add_(0, e_row[rep] * n + enc.row[pos], shared)
        a = b
    t = out[:, cols.start:cols.stop]
    return (1 - t / (2 - t)).clamp_(min=0)


def k_reciprocal_jaccard(query, gallery, k1=20, k2=6, paper_k1=False):
    """[Q, G] Jaccard distances of FastReID's ``build_dist(metric="jaccard")``, on the features' device.

    Args:
        query: [Q, d], gallery: [G, d] float tensors on one device.
    """
    nq, ng = query.size(0), gallery.size(0)
    enc = encode(torch.cat((query, gallery)), k1, k2, paper_k1)
    return jaccard_distance(enc, range(0, nq), range(nq, nq + ng))
