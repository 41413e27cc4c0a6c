"""How often a wrong first match is a look-alike: a vehicle of the query's model and colour.

Shape legend: Q queries, G gallery images.

The paper's second challenge is "similar appearance": different vehicles of one model and colour.
On a dataset that knows each identity's look-alike group (SynthVeRi's ``attributes.txt``), this
measures it: among the queries whose Rank-1 gallery image (FastReID's protocol: same identity *and*
camera ignored) is another identity, the share whose Rank-1 image is of the query's group. Random
features give the chance level, the share of other identities' images that are look-alikes.
"""
import numpy as np
import torch

__all__ = ["group_arrays", "lookalike_counts", "lookalike_metrics", "lookalike_results"]


def group_arrays(q_pids, g_pids, groups):
    """([Q], [G]) int64 code of each query's and gallery image's look-alike group (equal codes, equal
    groups); ValueError naming identities without one."""
    missing = sorted({int(p) for p in np.concatenate([q_pids, g_pids])} - set(groups))
    if missing:
        raise ValueError(f"identities without a look-alike group: {missing[:5]}")
    code = {group: i for i, group in enumerate(dict.fromkeys(groups.values()))}
    return tuple(np.array([code[groups[int(p)]] for p in pids], dtype=np.int64) for pids in (q_pids, g_pids))


def lookalike_counts(dist, index, real, first, q_pids, g_pids, q_groups, g_groups):
    """(wrong Rank-1 matches, of which in the query's group) of a chunk, as 0-d tensors on its device.

    The Rank-1 entry is a positive when the first positive's rank (``first``, FastReID's list) is 1;
    otherwise it is the closest image of another identity, by (distance, index). Overwrites the
    same-identity places of ``dist`` [c, G] (its last use).

    Args:
        index, real: :class:`~.ranks.ChunkRanks` fields. first: [c] int64. q_pids, q_groups: [c];
            g_pids, g_groups: [G] tensors on the chunk's device.
    """
    own = torch.where(real.any(dim=1, keepdim=True), float("inf"), dist.gather(1, index))  # pads: unchanged
    top = dist.scatter_(1, index, own).argmin(dim=1)  # torch: the first of equal minima, i.e. smallest index
    wrong = (first != 1) & (g_pids[top] != q_pids)
    return wrong.sum(), (wrong & (g_groups[top] == q_groups)).sum()


def lookalike_results(wrong, same_group):
    """{"lookalike-wrong-Rank-1": %, "wrong-Rank-1-queries": n} from summed :func:`lookalike_counts`."""
    wrong, same_group = int(wrong), int(same_group)
    share = float(np.float64(same_group) / wrong * 100) if wrong else float("nan")
    return {"lookalike-wrong-Rank-1": share, "wrong-Rank-1-queries": wrong}


def lookalike_metrics(dist, q_pids, g_pids, q_camids, g_camids, groups):
    """{"lookalike-wrong-Rank-1": % of wrong Rank-1 matches in the query's group, "wrong-Rank-1-queries": n}
    of a whole [Q, G] distance matrix.

    Args:
        dist: [Q, G] distances. q_pids/g_pids, q_camids/g_camids: [Q]/[G] numpy arrays.
        groups: {identity: group} covering every query and gallery identity.
    """
    from .ranks import chunk_ranks, identity_lists
    from .stock import stock_sums

    q_groups, g_groups = group_arrays(q_pids, g_pids, groups)
    dist = torch.as_tensor(np.array(dist, dtype=np.float32))
    ranks = chunk_ranks(dist, identity_lists(q_pids, g_pids, dist.device), range(0, len(q_pids)))
    positive = ranks.real & torch.as_tensor(g_camids[ranks.index.numpy()] != q_camids[:, None])
    first = stock_sums(ranks.ahead, ranks.real, positive, 1).first
    t = torch.as_tensor
    return lookalike_results(*lookalike_counts(dist, ranks.index, ranks.real, first, t(q_pids), t(g_pids),
                                               t(q_groups), t(g_groups)))
