"""Ranks counted without sorting (``fastreid_val.evaluation.ranks``) against a stable argsort, and the
metrics built on them against FastReID's compiled ``evaluate_rank`` and the argsort references
(``naive_ranks``): chunks of 1, 7 and all queries, equal distances, queries without a positive."""
import numpy as np
import pytest
import torch
from fastreid.evaluation.rank import evaluate_rank

from fastreid_val.evaluation.chunked import chunked_metrics
from fastreid_val.evaluation.ranks import chunk_ranks, identity_lists

from .naive_ranks import naive_lookalike_metrics, naive_view_metrics


def _positions(dist):
    """[Q, G] 0-based place of each entry in its row's stable argsort (ties by gallery index)."""
    order = np.argsort(dist, axis=1, kind="stable")
    pos = np.empty_like(order)
    np.put_along_axis(pos, order, np.broadcast_to(np.arange(dist.shape[1]), dist.shape), axis=1)
    return pos


def _problem(seed, nq=40, ng=130, ids=10, levels=None):
    """Distances (``levels`` distinct values when given: many ties), identities, cameras, viewpoints;
    queries 0-2 have no positive (identity absent; identity only under the query's camera)."""
    rng = np.random.default_rng(seed)
    qp, gp = rng.integers(0, ids, nq), rng.integers(0, ids, ng)
    qc, gc = rng.integers(0, 4, nq), rng.integers(0, 4, ng)
    qp[0] = 99
    qp[1:3], qc[1:3] = 98, 0
    gp[:3], gc[:3] = 98, 0
    if levels:
        dist = (rng.integers(-2, levels, (nq, ng)) / levels).astype(np.float32)
        dist[dist == 0] = -0.0 if seed % 2 else 0.0  # signed zeros are equal distances
    else:
        dist = rng.standard_normal((nq, ng)).astype(np.float32) ** 2
    views = rng.integers(-1, 2, nq), rng.integers(-1, 2, ng)
    return dist, qp, gp, qc, gc, views


@pytest.mark.parametrize("seed", range(6))
def test_counted_ranks_are_the_stable_argsort_places(seed):
    dist, qp, gp, *_ = _problem(seed, nq=25, ng=70, ids=6, levels=[1, 3, 7, 40, 2, 5][seed])
    pos = _positions(dist)
    ranks = chunk_ranks(torch.from_numpy(dist), identity_lists(qp, gp, "cpu"), range(0, len(qp)))
    for q in range(len(qp)):
        real = ranks.real[q].numpy()
        index = ranks.index[q].numpy()[real]
        assert sorted(index) == list(np.flatnonzero(gp == qp[q]))  # the query's identity, each image once
        assert ranks.ahead[q].numpy()[real].tolist() == pos[q, index].tolist() == sorted(pos[q, index])


def test_hand_worked_ties():
    """Query of identity 1. Row 0: its images 0 and 2 at 0.5, no other entry there: image 2 has the
    entry at 0.2 and image 0 ahead. Row 1: entries 1 and 3 (other identities) at its images' 0.5,
    image 0 after entry 0.25 only, image 2 after 0.25, image 0 and entry 1."""
    dist = torch.tensor([[0.5, 0.2, 0.5, 0.9, 0.7], [0.5, 0.5, 0.5, 0.5, 0.25]])
    lists = identity_lists(np.array([1, 1]), np.array([1, 2, 1, 3, 4]), "cpu")
    ranks = chunk_ranks(dist, lists, range(0, 2))
    assert ranks.index.tolist() == [[0, 2], [0, 2]] and ranks.ahead.tolist() == [[1, 2], [1, 3]]


def _metrics(dist, qp, gp, qc, gc, views, chunk, groups=None):
    rows = lambda r: torch.from_numpy(dist[r.start:r.stop].copy())  # noqa: E731
    q = {"pids": qp, "camids": qc, "views": views[0]}
    g = {"pids": gp, "camids": gc, "views": views[1]}
    return chunked_metrics(rows, q, g, chunk or len(qp), views=True, groups=groups)


@pytest.mark.parametrize("chunk", [1, 7, None])
@pytest.mark.parametrize("levels", [None, 3, 30])
def test_stock_metrics_are_fastreids_to_the_bit(chunk, levels):
    """CMC, every AP and every INP equal FastReID's compiled evaluate_rank bit for bit. With equal
    distances the reference ranks the stable argsort's places (FastReID's own argsort leaves the order
    of equal distances unspecified), the order counted here."""
    dist, qp, gp, qc, gc, views = _problem(7 + (levels or 0), levels=levels)
    reference = _positions(dist).astype(np.float32) if levels else dist
    ref_cmc, ref_ap, ref_inp = evaluate_rank(reference, qp, gp, qc, gc)
    cmc, ap, inp, _, _ = _metrics(dist, qp, gp, qc, gc, views, chunk)
    assert len(ap) == len(qp) - 3  # the three queries without a positive are skipped
    assert cmc.dtype == ref_cmc.dtype and np.array_equal(cmc, ref_cmc)
    assert ap.dtype == ref_ap.dtype and np.array_equal(ap, ref_ap)
    assert np.array_equal(inp, ref_inp)
    assert np.mean(ap) == np.mean(ref_ap)


@pytest.mark.parametrize("chunk", [1, 7, None])
@pytest.mark.parametrize("levels", [None, 4])
def test_view_and_lookalike_metrics_equal_the_argsort_references(chunk, levels):
    dist, qp, gp, qc, gc, views = _problem(20 + (levels or 0), levels=levels)
    groups = {p: p % 3 for p in range(100)}
    _, _, _, extra, _ = _metrics(dist, qp, gp, qc, gc, views, chunk, groups)
    ref = naive_view_metrics(dist, qp, gp, qc, gc, *views)
    ref.update(naive_lookalike_metrics(dist, qp, gp, qc, gc, groups))
    assert ref["xview-queries"] > 5 and ref["sview-queries"] > 5 and ref["wrong-Rank-1-queries"] > 5
    assert set(extra) == set(ref)
    for k in ref:
        tol = 1e-12 * abs(ref[k]) if k.endswith("mAP") else 0  # float64 sums in another order
        assert abs(extra[k] - ref[k]) <= tol, (k, extra[k], ref[k])


def test_a_chunk_whose_queries_have_no_identity_in_the_gallery():
    """Rows without a same-identity image: a column of pads, nothing counted, nothing valid."""
    dist = np.random.default_rng(0).random((3, 9)).astype(np.float32)
    ranks = chunk_ranks(torch.from_numpy(dist), identity_lists(np.array([5, 6, 7]), np.zeros(9, int), "cpu"),
                        range(0, 3))
    assert ranks.real.shape == (3, 1) and not ranks.real.any()
    with pytest.raises(AssertionError, match="all query identities do not appear"):  # FastReID's own check
        _metrics(dist, np.array([5, 6, 7]), np.zeros(9, int), np.zeros(3, int), np.ones(9, int),
                 (np.zeros(3, int), np.zeros(9, int)), 2)


def test_distances_of_zero_and_their_ties():
    """Entries at distance 0 (a gallery image identical to the query), signed or not, are ties of an image at
    0, and so is a positive denormal distance: the float above 0 is a denormal, which a thread that
    flushes them (this process's, tests/conftest.py, as a CPU training's) takes for 0. Query of identity
    1, its images 1 and 3: image 1 at 0 after entry 0 (at -0.0, smaller index); image 3 at 0.5 after
    entries 0, 1 and 2."""
    lists = identity_lists(np.array([1]), np.array([7, 1, 8, 1, 9]), "cpu")
    for near in (0.0, 1e-40):  # image 1 at 0, or at a denormal distance
        dist = torch.tensor([[-0.0, near, 0.0, 0.5, 1.0]])
        ranks = chunk_ranks(dist, lists, range(0, 1))
        assert ranks.index.tolist() == [[1, 3]] and ranks.ahead.tolist() == [[1, 3]], near


# The checks above in a process of their own (this one flushes denormal floats from its start,
# tests/conftest.py) of 2 threads: "kept", every thread keeps them (a GPU; RUN.FLUSH_DENORMAL False);
# "mixed", torch's thread flushes them and the calling thread keeps them, as onnxruntime's first session
# leaves a process that flushed from its start (it sets the calling thread's mode to its own option, off).
MODES = """
import sys
import torch
import fastreid_val  # FastReID's repairs, as in every process of the project
torch.set_num_threads(2)
torch.set_flush_denormal(sys.argv[1] == "mixed")
torch.ones(1 << 20).mul_(2)  # torch's thread starts, copying the mode
torch.set_flush_denormal(False)
kept = int((torch.full((1 << 20,), 1e-30) * 1e-10).count_nonzero())
assert kept == 1 << 20 if sys.argv[1] == "kept" else 0 < kept < 1 << 20, kept  # the threads as said
from tests import test_ranks as t
for seed in range(6):
    t.test_counted_ranks_are_the_stable_argsort_places(seed)
for chunk in (1, 7, None):
    for levels in (None, 3, 30):
        t.test_stock_metrics_are_fastreids_to_the_bit(chunk, levels)
    for levels in (None, 4):
        t.test_view_and_lookalike_metrics_equal_the_argsort_references(chunk, levels)
t.test_hand_worked_ties()
t.test_distances_of_zero_and_their_ties()
print("checked")
"""


@pytest.mark.parametrize("mode", ["kept", "mixed"])
def test_the_same_where_threads_keep_denormals(mode):
    import subprocess
    import sys

    from .test_docs import ROOT

    proc = subprocess.run([sys.executable, "-c", MODES, mode], cwd=ROOT, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0 and proc.stdout.strip() == "checked", proc.stderr[-3000:]
