"""k-reciprocal re-ranking: equal to FastReID's own CPU implementation, on any device, refused when too large."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from fastreid.evaluation.rank import evaluate_rank
from fastreid.utils import compute_dist

from fastreid_val.errors import RerankTooLargeError, UserInputError
from fastreid_val.evaluation import rerank
from fastreid_val.evaluation.neighbours import nearest_neighbours

TOL = 1e-5  # float32 rounding: the kNN and kernel distances are summed in another order than faiss/numpy


def _features(nq, ng, d, ids=10, noise=1.0, seed=0):
    g = torch.Generator().manual_seed(seed)
    pids = torch.randint(0, ids, (nq + ng,), generator=g)
    feats = torch.randn(ids, d, generator=g)[pids] + noise * torch.randn(nq + ng, d, generator=g)
    return F.normalize(feats, dim=1), pids.numpy(), torch.randint(0, 4, (nq + ng,), generator=g).numpy()


def _upstream(feats, nq, k1, k2):
    """FastReID 1.4.0's faiss-CPU path (search_option=3), the reference."""
    return compute_dist.compute_jaccard_distance(feats, k1=k1, k2=k2, search_option=3)[:nq, nq:]


@pytest.mark.parametrize("nq, ng, d, k1, k2", [(20, 80, 16, 6, 2), (40, 260, 32, 20, 6), (30, 100, 8, 7, 1),
                                              (30, 100, 8, 5, 9), (25, 75, 12, 3, 3)])
def test_equals_fastreid_cpu_rerank(nq, ng, d, k1, k2):
    feats, pids, cams = _features(nq, ng, d, seed=nq + k1)
    ref = _upstream(feats, nq, k1, k2)
    ours = rerank.k_reciprocal_jaccard(feats[:nq], feats[nq:], k1, k2).numpy()
    assert ours.shape == ref.shape and ours.dtype == ref.dtype
    assert np.abs(ours - ref).max() < TOL
    assert (ours != 1).any()  # the test sees overlapping neighbour sets, not only the trivial distance 1
    # and the metrics after mixing with the original distance (lambda 0.3) are FastReID's
    orig = compute_dist.build_dist(feats[:nq], feats[nq:], "cosine")
    args = (pids[:nq], pids[nq:], cams[:nq], cams[nq:])
    cmc, ap, inp = evaluate_rank(0.7 * ours + 0.3 * orig, *args, max_rank=10)
    ref_cmc, ref_ap, ref_inp = evaluate_rank(0.7 * ref + 0.3 * orig, *args, max_rank=10)
    assert np.array_equal(cmc, ref_cmc) and np.mean(ap) == pytest.approx(np.mean(ref_ap), abs=1e-6)
    assert np.mean(inp) == pytest.approx(np.mean(ref_inp), abs=1e-6)


def test_unnormalised_features_euclidean():
    """TEST.METRIC euclidean: the features reach re-ranking as they are (large squared distances)."""
    g = torch.Generator().manual_seed(1)
    feats = 3 * torch.randn(120, 24, generator=g)
    ref = _upstream(feats, 30, 8, 3)
    assert np.abs(rerank.k_reciprocal_jaccard(feats[:30], feats[30:], 8, 3).numpy() - ref).max() < TOL


def test_nearest_neighbours_across_blocks():
    g = torch.Generator().manual_seed(2)
    x = torch.randn(70, 5, generator=g)
    d, i = nearest_neighbours(x, 9, block=16)  # 5 x 5 blocks, upper triangle only
    full = torch.cdist(x, x).pow(2)
    assert torch.equal(i, full.topk(9, dim=1, largest=False).indices)
    assert torch.allclose(d, full.gather(1, i), atol=1e-4) and (i[:, 0] == torch.arange(70)).all()


def test_paper_k1_uses_one_more_neighbour():
    """paper_k1=True: the image and k1 others (FastReID issue #446); upstream keeps k1 in all."""
    assert rerank.neighbour_counts(20, 6) == (20, 11, 6)
    assert rerank.neighbour_counts(20, 6, paper_k1=True) == (21, 11, 6)
    feats, _, _ = _features(20, 60, 8)
    same = rerank.k_reciprocal_jaccard(feats[:20], feats[20:], 6, 2).numpy()
    paper = rerank.k_reciprocal_jaccard(feats[:20], feats[20:], 6, 2, paper_k1=True).numpy()
    assert np.abs(paper - same).max() > 1e-3
    assert np.abs(paper - rerank.k_reciprocal_jaccard(feats[:20], feats[20:], 7, 2).numpy()).max() > 1e-3


def test_jaccard_rows_in_pieces_equal_the_whole(monkeypatch):
    """The evaluator asks for query rows a chunk at a time; small pair budgets split them further."""
    feats, _, _ = _features(30, 90, 16)
    enc = rerank.encode(feats, 6, 3)
    whole = rerank.jaccard_distance(enc, range(0, 30), range(30, 120))
    monkeypatch.setattr(rerank, "_PAIRS", 50)
    parts = torch.cat([rerank.jaccard_distance(enc, range(s, min(s + 7, 30)), range(30, 120)) for s in range(0, 30, 7)])
    assert torch.equal(whole, parts)


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(
    not torch.cuda.is_available(), reason="no GPU"))])
def test_runs_on_the_features_device(device):
    """One implementation for every device: the result lies where the features are."""
    feats, _, _ = _features(10, 40, 8)
    ref = _upstream(feats, 10, 5, 2)
    out = rerank.k_reciprocal_jaccard(feats[:10].to(device), feats[10:].to(device), 5, 2)
    assert out.device.type == device and np.abs(out.cpu().numpy() - ref).max() < TOL


def test_too_large_is_refused_with_one_line():
    # VERI-Wild large: 10,000 queries + 128,517 gallery
    with pytest.raises(RerankTooLargeError) as info:
        rerank.check_rerank_size(10000, 128517, 20, 6)
    msg = str(info.value)
    assert isinstance(info.value, UserInputError) and "\n" not in msg
    assert "138,517 images" in msg and "TEST.RERANK.ENABLED False" in msg and "4.3 GB limit" in msg
    rerank.check_rerank_size(1678, 11579, 20, 6)  # VeRi-776 passes
    # the bound: 16 B x N x W + 56 B x N x min(N, k2 W), W = K + K Kh = 20 + 20 x 11
    assert rerank.rerank_memory_bytes(1000, 20, 6) == 1000 * (16 * 240 + 56 * 1000)
    assert rerank.rerank_memory_bytes(13257, 20, 6) == 13257 * (16 * 240 + 56 * 6 * 240)


def test_evaluator_refuses_before_any_work(tmp_path, monkeypatch):
    """The evaluator checks the size first: a set over the limit stops with the one-line error."""
    from fastreid_val.engine import build_config
    from fastreid_val.evaluation import ViewpointReidEvaluator, chunked

    monkeypatch.setattr(rerank, "RERANK_MEMORY_LIMIT", rerank.rerank_memory_bytes(59, 6, 2))
    monkeypatch.setattr(chunked, "encode", lambda *a, **k: pytest.fail("encoded before the size check"))
    cfg = build_config("", ["OUTPUT_DIR", str(tmp_path), "TEST.RERANK.ENABLED", "True", "TEST.RERANK.K1", "6",
                            "TEST.RERANK.K2", "2"])
    feats, pids, cams = _features(20, 40, 8)
    ev = ViewpointReidEvaluator(cfg, 20)
    ev.process({"targets": torch.as_tensor(pids), "camids": torch.as_tensor(cams)}, feats)
    with pytest.raises(RerankTooLargeError, match=r"re-ranking 60 images \(20 queries \+ 40 gallery\)"):
        ev.evaluate()


def test_evaluator_reranks_on_the_model_device(tmp_path, monkeypatch):
    """MODEL.DEVICE decides where evaluation, re-ranking included, runs (FastReID keeps evaluation
    features on the CPU); the features handed to the encoding are on that device."""
    from fastreid_val.engine import build_config
    from fastreid_val.evaluation import chunked

    cfg = build_config("", ["OUTPUT_DIR", str(tmp_path)])
    cfg.defrost()
    cfg.MODEL.DEVICE = "cuda:0"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert chunked.evaluation_device(cfg) == torch.device("cuda:0")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert chunked.evaluation_device(cfg) == torch.device("cpu")
    cfg.MODEL.DEVICE, cfg.TEST.RERANK.ENABLED = "cpu", True
    seen = []
    real = chunked.encode
    monkeypatch.setattr(chunked, "encode", lambda f, *a: seen.append(f.device) or real(f, *a))
    feats, _, _ = _features(10, 30, 8)
    chunked.distance_rows(feats[:10], feats[10:], cfg)(range(0, 10))
    assert seen == [torch.device("cpu")]


def test_duplicate_images_are_ordered_as_faiss_orders_them():
    """Equal distances (duplicate features, as a briefly trained model gives identical images) go to
    the smaller index, as in faiss's heaps; otherwise the neighbour lists, and the Jaccard
    distances, differ from FastReID's (by 1.8e-2 on the end-to-end test's features before this)."""
    g = torch.Generator().manual_seed(4)
    base = F.normalize(torch.randn(30, 16, generator=g), dim=1)
    feats = base[torch.randint(0, 30, (120,), generator=g)]  # each vector about 4 times
    d, i = nearest_neighbours(feats, 20, block=32)
    for row in range(120):  # among equal distances, ascending index
        same = d[row, 1:] == d[row, :-1]
        assert (i[row, 1:][same] > i[row, :-1][same]).all()
    assert np.abs(rerank.k_reciprocal_jaccard(feats[:24], feats[24:], 20, 6).numpy() - _upstream(feats, 24, 20, 6)).max() < TOL
