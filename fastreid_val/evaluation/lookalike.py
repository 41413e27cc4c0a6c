"""How often a wrong first match is a look-alike: a vehicle of the query's model and colour.

Shape legend: Q queries, G gallery images.

The paper's second challenge is "similar appearance": different vehicles of one model and colour.
On a dataset that knows each identity's look-alike group (SynthVeRi's ``attributes.txt``), this
measures it: among the queries whose Rank-1 gallery image (FastReID's protocol: same identity *and*
camera ignored) is another identity, the share whose Rank-1 image is of the query's group. Random
features give the chance level, the share of other identities' images that are look-alikes.
"""
import numpy as np

from .cross_view import stock_mask

__all__ = ["group_arrays", "lookalike_counts", "lookalike_metrics", "lookalike_results"]


def group_arrays(q_pids, g_pids, groups):
    """([Q], [G]) look-alike group of each query and gallery image; ValueError naming identities without one."""
    missing = sorted({int(p) for p in np.concatenate([q_pids, g_pids])} - set(groups))
    if missing:
        raise ValueError(f"identities without a look-alike group: {missing[:5]}")
    return np.array([groups[int(p)] for p in q_pids]), np.array([groups[int(p)] for p in g_pids])


def lookalike_counts(dist, q_pids, g_pids, q_camids, g_camids, q_groups, g_groups):
    """(wrong Rank-1 matches, of which in the query's group) for a chunk of queries ([Q, G] ``dist``)."""
    dist = np.where(stock_mask(q_pids, g_pids, q_camids, g_camids), np.asarray(dist, dtype=np.float64), np.inf)
    first = dist.argmin(axis=1)  # [Q]
    wrong = g_pids[first] != q_pids
    return int(wrong.sum()), int((g_groups[first] == q_groups)[wrong].sum())


def lookalike_results(wrong, same_group):
    """{"lookalike-wrong-Rank-1": %, "wrong-Rank-1-queries": n} from summed :func:`lookalike_counts`."""
    share = float(np.float64(same_group) / wrong * 100) if wrong else float("nan")
    return {"lookalike-wrong-Rank-1": share, "wrong-Rank-1-queries": wrong}


def lookalike_metrics(dist, q_pids, g_pids, q_camids, g_camids, groups):
    """{"lookalike-wrong-Rank-1": % of wrong Rank-1 matches in the query's group, "wrong-Rank-1-queries": n}.

    Args:
        dist: [Q, G] distances. q_pids/g_pids, q_camids/g_camids: [Q]/[G].
        groups: {identity: group} covering every query and gallery identity.
    """
    q_groups, g_groups = group_arrays(q_pids, g_pids, groups)
    return lookalike_results(*lookalike_counts(dist, q_pids, g_pids, q_camids, g_camids, q_groups, g_groups))
