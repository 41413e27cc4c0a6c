"""Cross-view and same-view metrics on a hand-worked example, the evaluator against FastReID's, and
chunked evaluation against the whole matrix. The references are FastReID's ``evaluate_rank`` and,
for the view and look-alike metrics, the argsort-based implementation they had before ranks were
counted (:mod:`tests.naive_ranks`)."""
import numpy as np
import pytest
from fastreid.evaluation.rank import evaluate_rank

from fastreid_val.evaluation.cross_view import view_masks, view_metrics

from .naive_ranks import naive_lookalike_metrics, naive_rank_metrics, naive_view_metrics


def test_hand_worked_cross_view():
    # One query (identity 1, camera 0, front). Gallery sorted by distance:
    #   g0 id1 cam1 front, g1 id2 cam1 rear, g2 id1 cam2 rear, g3 id1 cam0 rear (same camera: ignored)
    dist = np.array([[0.1, 0.2, 0.3, 0.05]])
    q = dict(q_pids=np.array([1]), q_camids=np.array([0]), q_views=np.array([0]))
    g = dict(g_pids=np.array([1, 2, 1, 1]), g_camids=np.array([1, 1, 2, 0]), g_views=np.array([0, 1, 1, 1]))
    res = view_metrics(dist, q["q_pids"], g["g_pids"], q["q_camids"], g["g_camids"], q["q_views"], g["g_views"])
    # cross-view: only g2 is a positive; kept list g0 is ignored -> [g1, g2]: rank 2, AP = 1/2
    assert res["xview-Rank-1"] == 0 and res["xview-Rank-5"] == 100 and res["xview-mAP"] == pytest.approx(50)
    # same-view: only g0 counts, at rank 1: AP = 1
    assert res["sview-Rank-1"] == 100 and res["sview-mAP"] == pytest.approx(100)


def test_naive_reference_with_the_stock_mask_is_fastreid():
    rng = np.random.default_rng(0)
    dist = rng.random((20, 50)).astype(np.float32)
    qp, gp = rng.integers(0, 6, 20), rng.integers(0, 6, 50)
    qc, gc = rng.integers(0, 3, 20), rng.integers(0, 3, 50)
    stock, _, _ = view_masks(qp, gp, qc, gc, np.zeros(20, int), np.zeros(50, int))
    cmc, m_ap, m_inp, _ = naive_rank_metrics(dist, qp, gp, stock)
    ref_cmc, ref_ap, ref_inp = evaluate_rank(dist, qp, gp, qc, gc, max_rank=10, use_cython=False)
    assert np.allclose(cmc, ref_cmc[:10]) and m_ap == pytest.approx(np.mean(ref_ap)) and m_inp == pytest.approx(np.mean(ref_inp))


@pytest.mark.parametrize("opts", [[], ["TEST.ROC.ENABLED", "True"], ["TEST.RERANK.ENABLED", "True"],
                                  ["TEST.AQE.ENABLED", "True"]])
def test_evaluator_reports_what_fastreids_reports(tmp_path, opts):
    """Same stock keys and values as FastReID's ReidEvaluator (ROC, re-ranking, AQE included), plus view metrics."""
    import torch
    from fastreid.evaluation.reid_evaluation import ReidEvaluator

    from fastreid_val.engine import build_config
    from fastreid_val.evaluation import ViewpointReidEvaluator

    cfg = build_config("", ["OUTPUT_DIR", str(tmp_path), "TEST.RERANK.K1", "6", "TEST.RERANK.K2", "2", *opts])
    g = torch.Generator().manual_seed(0)
    pids = torch.randint(0, 8, (60,), generator=g)
    feats = torch.randn(8, 32, generator=g)[pids] + 1.2 * torch.randn(60, 32, generator=g)
    batch = {"targets": pids, "camids": torch.randint(0, 4, (60,), generator=g),
             "viewpoints": torch.randint(0, 2, (60,), generator=g)}
    ours, stock = ViewpointReidEvaluator(cfg, 20), ReidEvaluator(cfg, 20)
    for ev in (ours, stock):
        ev.reset()
        ev.process(batch, feats)
    got, ref = ours.evaluate(), stock.evaluate()
    assert set(ref) <= set(got) and {"xview-mAP", "sview-mAP"} <= set(got)
    assert ("TPR@FPR=1e-02" in got) == ("TEST.ROC.ENABLED" in opts)
    for k in ref:
        assert got[k] == pytest.approx(ref[k], rel=1e-5, abs=1e-6), k


def test_pair_kinds_and_closer_share():
    from fastreid_val.experiments.analyze import PAIRS, closer_share, distance_stats, pair_distances

    # identities 1, 1, 2, 3: 1 and 2 share a model and colour; image 0 front, 1 rear, 2 front, 3 front
    feats = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0], [-1.0, 0.0]])
    pairs = pair_distances(feats, np.array([1, 1, 2, 3]), np.array([0, 1, 0, 0]), {1: "a", 2: "a", 3: "b"})
    assert pairs[PAIRS[0]].tolist() == []  # no pair of one identity from one viewpoint
    assert pairs[PAIRS[1]].tolist() == [1.0]  # images 0 and 1, orthogonal
    assert sorted(pairs[PAIRS[2]].tolist()) == [0.0, 1.0]  # (0, 2) identical, (1, 2) orthogonal
    assert sorted(pairs[PAIRS[3]].tolist()) == [1.0, 2.0, 2.0]
    assert closer_share(np.array([1.0]), np.array([0.0, 1.0])) == 0.5  # only the identical pair is closer
    stats = distance_stats(pairs)
    assert stats["look-alike closer than same identity across viewpoints"] == 0.5
    assert stats["other identity closer than same identity across viewpoints"] == 0.0
    assert PAIRS[2] not in pair_distances(feats, np.array([1, 1, 2, 3]), np.array([0, 1, 0, 0]))  # no groups


def test_pair_distances_do_not_gather_the_features_of_every_pair():
    """600 images at d=512: the pairs' features would be 2 x 179,700 x 512 floats (736 MB); the Gram
    matrix is 1.4 MB. The distances are those of the rows themselves."""
    import tracemalloc

    from fastreid_val.experiments.analyze import PAIRS, pair_distances

    rng = np.random.default_rng(0)
    feats = rng.standard_normal((600, 512)).astype(np.float32)
    feats /= np.linalg.norm(feats, axis=1, keepdims=True)
    pids, views = np.repeat(np.arange(150), 4), np.tile([0, 0, 1, 1], 150)
    tracemalloc.start()
    try:
        pairs = pair_distances(feats, pids, views, max_pairs=10 ** 6)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 50 * 2 ** 20, f"peak {peak / 2 ** 20:.0f} MB"
    assert len(pairs[PAIRS[1]]) == 150 * 4  # each identity: 2 fronts x 2 rears
    assert pairs[PAIRS[1]][0] == pytest.approx(1.0 - float(feats[0] @ feats[2]), abs=1e-6)  # images 0 and 2


def test_lookalike_share_of_wrong_first_matches():
    from fastreid_val.evaluation.lookalike import lookalike_metrics

    # 3 queries (identities 1, 2, 3; camera 0); gallery: identity 1 from camera 0 (ignored: same
    # identity and camera), identity 4 (group of 1), identity 5 (another group), identity 2, identity 3.
    q_pids, q_cams = np.array([1, 2, 3]), np.array([0, 0, 0])
    g_pids, g_cams = np.array([1, 4, 5, 2, 3]), np.array([0, 1, 1, 1, 1])
    groups = {1: "a", 4: "a", 2: "b", 5: "c", 3: "c"}
    dist = np.array([[0.0, 0.1, 0.5, 0.9, 0.9],   # first kept match: identity 4, a look-alike -> wrong, same group
                     [0.9, 0.9, 0.2, 0.1, 0.9],   # first match: identity 2 itself -> right
                     [0.9, 0.3, 0.9, 0.9, 0.4]])  # first match: identity 4, group a (query group c) -> wrong, other group
    res = lookalike_metrics(dist, q_pids, g_pids, q_cams, g_cams, groups)
    assert res == {"lookalike-wrong-Rank-1": 50.0, "wrong-Rank-1-queries": 2}
    with pytest.raises(ValueError, match="without a look-alike group"):
        lookalike_metrics(dist, q_pids, g_pids, q_cams, g_cams, {1: "a"})


def _whole_matrix_results(cfg, feats, pids, cams, views, nq, groups):
    """The evaluator before chunking: one [Q, G] matrix, FastReID's evaluate_rank and ROC on it."""
    import torch.nn.functional as F
    from fastreid.evaluation.roc import evaluate_roc
    from sklearn import metrics

    from fastreid_val.compat import build_dist

    q, g = feats[:nq], feats[nq:]
    dist = build_dist(q, g, cfg.TEST.METRIC)
    if cfg.TEST.RERANK.ENABLED:
        if cfg.TEST.METRIC == "cosine":
            q, g = F.normalize(q, dim=1), F.normalize(g, dim=1)
        lam = cfg.TEST.RERANK.LAMBDA
        dist = build_dist(q, g, "jaccard", k1=cfg.TEST.RERANK.K1, k2=cfg.TEST.RERANK.K2) * (1 - lam) + dist * lam
    a = (pids[:nq], pids[nq:], cams[:nq], cams[nq:])
    cmc, ap, inp = evaluate_rank(dist, *a)
    res = {"Rank-1": cmc[0] * 100, "Rank-5": cmc[4] * 100, "Rank-10": cmc[9] * 100, "mAP": np.mean(ap) * 100,
           "mINP": np.mean(inp) * 100}
    res["metric"] = (res["mAP"] + res["Rank-1"]) / 2
    if cfg.TEST.ROC.ENABLED:
        scores, labels = evaluate_roc(dist, *a)
        fprs, tprs, _ = metrics.roc_curve(labels, scores)
        res.update({f"TPR@FPR={f:.0e}": tprs[np.argmin(np.abs(fprs - f))] for f in (1e-4, 1e-3, 1e-2)})
    res.update(naive_view_metrics(dist, *a, views[:nq], views[nq:]))
    res.update(naive_lookalike_metrics(dist, *a, groups))
    return res, cmc


@pytest.mark.parametrize("opts", [[], ["TEST.METRIC", "euclidean", "TEST.ROC.ENABLED", "True"],
                                  ["TEST.RERANK.ENABLED", "True"]])
@pytest.mark.parametrize("chunk", [1, 7, None])
def test_chunked_evaluation_equals_the_whole_matrix(tmp_path, opts, chunk):
    """Queries a chunk at a time (1, 7, or the default: all at once here): every result identical,
    bit for bit, to the whole-matrix evaluation; chunks 1 and 7 include chunks without a valid query."""
    import torch

    from fastreid_val.engine import build_config
    from fastreid_val.evaluation import ViewpointReidEvaluator

    cfg = build_config("", ["OUTPUT_DIR", str(tmp_path), "TEST.RERANK.K1", "6", "TEST.RERANK.K2", "2", *opts])
    g = torch.Generator().manual_seed(3)
    pids = torch.randint(0, 12, (90,), generator=g)
    pids[:3] = 100  # three queries whose identity is not in the gallery: with chunk 1, chunks without a valid query
    feats = torch.randn(101, 16, generator=g)[pids] + 1.5 * torch.randn(90, 16, generator=g)
    cams, views = torch.randint(0, 3, (90,), generator=g), torch.randint(-1, 2, (90,), generator=g)
    groups = {int(p): int(p) % 4 for p in pids}
    ev = ViewpointReidEvaluator(cfg, 30, identity_groups=groups, chunk=chunk)
    for s in range(0, 90, 16):  # in batches, as inference gives them
        ev.process({"targets": pids[s:s + 16], "camids": cams[s:s + 16], "viewpoints": views[s:s + 16]},
                   feats[s:s + 16])
    got = ev.evaluate()
    ref, ref_cmc = _whole_matrix_results(cfg, feats, pids.numpy(), cams.numpy(), views.numpy(), 30, groups)
    assert set(ref) <= set(got)
    for k in ref:  # FastReID's metrics to the bit; the view mAPs are float64 sums in another order
        tol = 1e-12 * abs(ref[k]) if k.endswith("view-mAP") else 0
        assert abs(got[k] - ref[k]) <= tol or (np.isnan(got[k]) and np.isnan(ref[k])), (k, got[k], ref[k])
    assert ev.cmc() == [float(c) for c in ref_cmc[:50]]
    assert ev.evaluate() == got  # again, from the concatenated features it keeps


def _stock(dist, qp, gp, qc, gc, rows):
    """:func:`stock_sums` of queries ``rows`` of a numpy [Q, G] distance matrix."""
    import torch

    from fastreid_val.evaluation.ranks import chunk_ranks, identity_lists
    from fastreid_val.evaluation.stock import stock_sums

    ranks = chunk_ranks(torch.from_numpy(dist[rows.start:rows.stop]), identity_lists(qp, gp, "cpu"), rows)
    positive = ranks.real & torch.as_tensor(gc[ranks.index.numpy()] != qc[rows.start:rows.stop, None])
    return stock_sums(ranks.ahead, ranks.real, positive, min(50, len(gp)))


def test_stock_sums_combine_by_counts_not_averages():
    """Two chunks of unequal valid counts: hits and APs are summed; averaging the chunks' CMC would differ."""
    from fastreid_val.evaluation.stock import stock_results

    rng = np.random.default_rng(5)
    dist = rng.random((40, 60)).astype(np.float32)
    qp, gp, qc, gc = rng.integers(0, 8, 40), rng.integers(0, 8, 60), rng.integers(0, 3, 40), rng.integers(0, 3, 60)
    qp[:9] = 50  # chunk 0 (rows 0-9) has one valid query
    whole = evaluate_rank(dist, qp, gp, qc, gc)
    cmc, ap, inp = stock_results([_stock(dist, qp, gp, qc, gc, range(s, e)) for s, e in ((0, 10), (10, 40))])
    assert np.array_equal(cmc, whole[0]) and cmc.dtype == whole[0].dtype
    assert np.array_equal(ap, whole[1]) and np.array_equal(inp, whole[2])
    averaged = (evaluate_rank(dist[:10], qp[:10], gp, qc[:10], gc)[0] + evaluate_rank(dist[10:], qp[10:], gp, qc[10:], gc)[0]) / 2
    assert not np.allclose(averaged, whole[0])


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_non_finite_features_are_refused_not_ranked(tmp_path, bad):
    """A diverged model's features are refused with the count of images, not turned into metrics."""
    import torch

    from fastreid_val.engine import build_config
    from fastreid_val.errors import NonFiniteFeaturesError, UserInputError
    from fastreid_val.evaluation import ViewpointReidEvaluator

    cfg = build_config("", ["OUTPUT_DIR", str(tmp_path)])
    g = torch.Generator().manual_seed(0)
    pids = torch.randint(0, 4, (30,), generator=g)
    feats = torch.randn(30, 8, generator=g)
    feats[[3, 17], 5] = bad
    ev = ViewpointReidEvaluator(cfg, 10, dataset_name="VeRi")
    ev.reset()
    ev.process({"targets": pids, "camids": torch.randint(0, 3, (30,), generator=g)}, feats)
    with pytest.raises(NonFiniteFeaturesError, match="2 of 30 test images of VeRi") as e:
        ev.evaluate()
    assert isinstance(e.value, UserInputError)
    feats[[3, 17], 5] = 0.0
    ev.reset()
    ev.process({"targets": pids, "camids": torch.randint(0, 3, (30,), generator=g)}, feats)
    assert "mAP" in ev.evaluate()
