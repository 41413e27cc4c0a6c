#!/usr/bin/env python
"""Evaluation at VeRi-776's test size (1,678 queries x 11,579 gallery, 2048-d): FastReID's compiled
vs Python rank evaluation, without and with re-ranking (faiss on CPU without a GPU). Time and peak
memory (each case in its own process, so peak RSS is its own)."""
import argparse
import json
import resource
import subprocess
import sys
import time

CASES = ("compiled", "python", "compiled+rerank", "python+rerank")


def features(nq, ng, d, ids, noise, seed=0):
    import torch

    g = torch.Generator().manual_seed(seed)
    centers = torch.randn(ids, d, generator=g)
    pids = torch.randint(0, ids, (nq + ng,), generator=g)
    feats = centers[pids] + noise * torch.randn(nq + ng, d, generator=g)
    cams = torch.randint(0, 20, (nq + ng,), generator=g)
    return feats, pids.numpy(), cams.numpy()


def one(case, nq, ng, d, ids, noise):
    import fastreid_val  # noqa: F401
    import numpy as np
    from fastreid.evaluation.rank import evaluate_rank
    from fastreid_val.compat import build_dist

    feats, pids, cams = features(nq, ng, d, ids, noise)
    start = time.perf_counter()
    dist = build_dist(feats[:nq], feats[nq:], "cosine")
    if case.endswith("rerank"):
        import torch.nn.functional as F

        q, g = F.normalize(feats[:nq], dim=1), F.normalize(feats[nq:], dim=1)
        dist = build_dist(q, g, "jaccard", k1=20, k2=6) * 0.7 + dist * 0.3
    t_dist = time.perf_counter() - start
    cmc, ap, _ = evaluate_rank(dist, pids[:nq], pids[nq:], cams[:nq], cams[nq:], use_cython=not case.startswith("python"))
    total = time.perf_counter() - start
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"case": case, "distance_s": t_dist, "rank_s": total - t_dist, "total_s": total, "peak_rss_mb": peak_mb,
            "mAP": float(np.mean(ap)) * 100}


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--queries", type=int, default=1678)
    p.add_argument("--gallery", type=int, default=11579)
    p.add_argument("--dim", type=int, default=2048)
    p.add_argument("--ids", type=int, default=200)
    p.add_argument("--noise", type=float, default=4.0,
                   help="feature noise relative to the identity centers (4.0 gives a mAP far from 0 and 100)")
    p.add_argument("--case", choices=CASES, help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.case:
        print(json.dumps(one(a.case, a.queries, a.gallery, a.dim, a.ids, a.noise)))
        return
    from fastreid_val.experiments.timing import machine

    rows = []
    for case in CASES:
        out = subprocess.run([sys.executable, __file__, "--case", case, "--queries", str(a.queries), "--gallery",
                              str(a.gallery), "--dim", str(a.dim), "--ids", str(a.ids), "--noise", str(a.noise)],
                             capture_output=True, text=True, check=True)
        rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
    print(f"evaluation, {a.queries} x {a.gallery} x {a.dim}-d; machine: {machine()}")
    print(f"  {'case':18s} {'distance s':>10s} {'rank s':>8s} {'total s':>8s} {'peak RSS MB':>12s} {'mAP':>6s}")
    for r in rows:
        print(f"  {r['case']:18s} {r['distance_s']:10.2f} {r['rank_s']:8.2f} {r['total_s']:8.2f} {r['peak_rss_mb']:12.0f} {r['mAP']:6.2f}")
    by = {r["case"]: r for r in rows}
    print(f"rank evaluation, Python / compiled: {by['python']['rank_s'] / by['compiled']['rank_s']:.1f}x "
          f"(identical mAP: {abs(by['python']['mAP'] - by['compiled']['mAP']) < 1e-6})")


if __name__ == "__main__":
    main()
