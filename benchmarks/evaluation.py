#!/usr/bin/env python
"""Evaluation at VeRi-776's test size (1,678 queries x 11,579 gallery, 2048-d): FastReID's compiled vs
Python rank evaluation, and re-ranked evaluation, FastReID's (faiss-CPU k-reciprocal re-ranking, its
compiled rank evaluation) vs ours (torch re-ranking and counted ranks, on --device), side by side in
one run. Time and peak memory, each case in its own process (peak RSS is its own; "base" is the RSS
after imports and features, before the evaluation)."""
import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

CASES = ("compiled", "python", "fastreid rerank", "val rerank")


def features(nq, ng, d, ids, noise, seed=0):
    import torch

    g = torch.Generator().manual_seed(seed)
    centers = torch.randn(ids, d, generator=g)
    pids = torch.randint(0, ids, (nq + ng,), generator=g)
    feats = centers[pids] + noise * torch.randn(nq + ng, d, generator=g)
    cams = torch.randint(0, 20, (nq + ng,), generator=g)
    return feats, pids.numpy(), cams.numpy()


def _sync(device):
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def one(case, nq, ng, d, ids, noise, device, save):
    import fastreid_val  # noqa: F401
    import numpy as np
    import torch
    import torch.nn.functional as F
    from fastreid.evaluation.rank import evaluate_rank
    from fastreid.utils import compute_dist

    from fastreid_val.evaluation.rerank import k_reciprocal_jaccard

    device = torch.device(device if case == "val rerank" else "cpu")  # FastReID's path is faiss-CPU
    feats, pids, cams = features(nq, ng, d, ids, noise)
    feats = feats.to(device)
    base_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    _sync(device)
    start = time.perf_counter()
    dist = compute_dist.build_dist(feats[:nq], feats[nq:], "cosine")
    if case.endswith("rerank"):
        normed = F.normalize(feats, dim=1)
        if case == "fastreid rerank":
            jac = compute_dist.compute_jaccard_distance(normed, k1=20, k2=6, search_option=3)[:nq, nq:]
        else:
            jac = k_reciprocal_jaccard(normed[:nq], normed[nq:], k1=20, k2=6).cpu().numpy()
        _sync(device)
        np.save(save, jac[:200])
        dist = jac * 0.7 + dist * 0.3
    t_dist = time.perf_counter() - start
    if case == "val rerank":  # our evaluator's ranks (fastreid_val.evaluation.ranks), on the device
        from fastreid_val.evaluation.chunked import chunk_size, chunked_metrics

        dist = torch.from_numpy(dist)
        q = {"pids": pids[:nq], "camids": cams[:nq], "views": np.full(nq, -1)}
        g = {"pids": pids[nq:], "camids": cams[nq:], "views": np.full(ng, -1)}
        cmc, ap, _, _, _ = chunked_metrics(lambda r: dist[r.start:r.stop].to(device), q, g, chunk_size(ng, device),
                                           device)
        _sync(device)
    else:
        cmc, ap, _ = evaluate_rank(dist, pids[:nq], pids[nq:], cams[:nq], cams[nq:], use_cython=case != "python")
    total = time.perf_counter() - start
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"case": case, "device": str(device), "distance_s": t_dist, "rank_s": total - t_dist, "total_s": total,
            "base_mb": base_mb, "peak_rss_mb": peak_mb, "mAP": float(np.mean(ap)) * 100,
            "Rank-1": float(cmc[0]) * 100}


def main():
    import torch

    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--queries", type=int, default=1678)
    p.add_argument("--gallery", type=int, default=11579)
    p.add_argument("--dim", type=int, default=2048)
    p.add_argument("--ids", type=int, default=200)
    p.add_argument("--noise", type=float, default=4.0,
                   help="feature noise relative to the identity centers (4.0 gives a mAP far from 0 and 100)")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu",
                   help="device of our re-ranking (FastReID's faiss-CPU path always runs on the CPU)")
    p.add_argument("--cases", nargs="+", choices=CASES, default=list(CASES))
    p.add_argument("--case", choices=CASES, help=argparse.SUPPRESS)
    p.add_argument("--save", help=argparse.SUPPRESS)
    a = p.parse_args()
    sizes = ["--queries", str(a.queries), "--gallery", str(a.gallery), "--dim", str(a.dim), "--ids", str(a.ids),
             "--noise", str(a.noise), "--device", a.device]
    if a.case:
        print(json.dumps(one(a.case, a.queries, a.gallery, a.dim, a.ids, a.noise, a.device, a.save)))
        return
    import numpy as np

    from fastreid_val.experiments.timing import machine

    rows, saved = [], {}
    with tempfile.TemporaryDirectory() as tmp:
        for case in a.cases:
            saved[case] = os.path.join(tmp, case.replace(" ", "_") + ".npy")
            out = subprocess.run([sys.executable, __file__, "--case", case, "--save", saved[case], *sizes],
                                 capture_output=True, text=True, check=True)
            rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
        jac = {c: np.load(f) for c, f in saved.items() if os.path.exists(f)}
    print(f"evaluation, {a.queries} x {a.gallery} x {a.dim}-d, re-ranking k1=20 k2=6 lambda=0.3; "
          f"machine: {machine()}; torch threads: {torch.get_num_threads()}")
    print(f"  {'case':16s} {'device':7s} {'distance s':>10s} {'rank s':>7s} {'total s':>8s} {'base MB':>8s} "
          f"{'peak RSS MB':>11s} {'mAP':>7s} {'Rank-1':>7s}")
    for r in rows:
        print(f"  {r['case']:16s} {r['device']:7s} {r['distance_s']:10.2f} {r['rank_s']:7.2f} {r['total_s']:8.2f} "
              f"{r['base_mb']:8.0f} {r['peak_rss_mb']:11.0f} {r['mAP']:7.3f} {r['Rank-1']:7.3f}")
    by = {r["case"]: r for r in rows}
    if {"python", "compiled"} <= set(by):
        print(f"rank evaluation, Python / compiled: {by['python']['rank_s'] / by['compiled']['rank_s']:.1f}x "
              f"(identical mAP: {abs(by['python']['mAP'] - by['compiled']['mAP']) < 1e-6})")
    if {"fastreid rerank", "val rerank"} <= set(by):
        f, v = by["fastreid rerank"], by["val rerank"]
        diff = float(np.abs(jac["fastreid rerank"] - jac["val rerank"]).max())
        print(f"re-ranked evaluation, FastReID faiss-CPU / ours on {v['device']}: {f['total_s'] / v['total_s']:.1f}x "
              f"faster, peak RSS {f['peak_rss_mb'] / v['peak_rss_mb']:.2f}x lower "
              f"({f['peak_rss_mb'] - f['base_mb']:.0f} MB vs {v['peak_rss_mb'] - v['base_mb']:.0f} MB above base); "
              f"max |Jaccard difference| over the first 200 queries {diff:.1e}; "
              f"mAP {f['mAP']:.3f} vs {v['mAP']:.3f}, Rank-1 {f['Rank-1']:.3f} vs {v['Rank-1']:.3f}")


if __name__ == "__main__":
    main()
