#!/usr/bin/env python
"""Evaluation at VERI-Wild large size (10,000 queries x 128,517 gallery, 2048-d synthetic features of
the kind benchmarks/evaluation.py makes, with viewpoints and look-alike groups): our chunked
``ViewpointReidEvaluator`` (every metric: CMC, mAP, mINP, view and look-alike metrics), time and
peak RSS, in its own process. ``--fastreid`` also runs FastReID's ``ReidEvaluator`` (whole [Q, G]
matrix) on the same features, for a side-by-side ratio at sizes where it fits in memory. Re-ranking
at this size is refused by the evaluator (one line); the script shows that line too."""
import argparse
import json
import resource
import subprocess
import sys
import time


def batches(nq, ng, d, ids, noise, seed=0, batch=512):
    """(features [b, d], ids, cameras, viewpoints) batches, made one at a time as inference hands them
    over (no second copy of the N x d features exists)."""
    import torch

    g = torch.Generator().manual_seed(seed)
    centers = torch.randn(ids, d, generator=g)
    n = nq + ng
    pids = torch.cat((torch.arange(nq) % ids, torch.randint(0, ids, (ng,), generator=g)))
    cams = torch.randint(0, 174, (n,), generator=g)  # VERI-Wild: 174 cameras
    views = torch.randint(0, 2, (n,), generator=g)
    for s in range(0, n, batch):
        e = min(s + batch, n)
        yield centers[pids[s:e]] + noise * torch.randn(e - s, d, generator=g), pids[s:e], cams[s:e], views[s:e]


def one(case, a):
    import fastreid_val  # noqa: F401
    from fastreid_val.engine import build_config
    from fastreid_val.evaluation import ViewpointReidEvaluator

    cfg = build_config("", ["TEST.RERANK.ENABLED", str(case == "rerank")])
    groups = {i: i % 500 for i in range(a.ids)}  # 500 look-alike groups (model and colour)
    if case == "fastreid":
        from fastreid.evaluation.reid_evaluation import ReidEvaluator

        ev = ReidEvaluator(cfg, a.queries)
    else:
        ev = ViewpointReidEvaluator(cfg, a.queries, identity_groups=groups)
    for feats, pids, cams, views in batches(a.queries, a.gallery, a.dim, a.ids, a.noise):
        ev.process({"targets": pids, "camids": cams, "viewpoints": views}, feats)
    base_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    start = time.perf_counter()
    try:
        res = ev.evaluate()
    except Exception as e:  # the re-ranking refusal
        return {"case": case, "error": f"{type(e).__name__}: {e}", "seconds": time.perf_counter() - start}
    seconds = time.perf_counter() - start
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    keys = [k for k in ("Rank-1", "mAP", "mINP", "xview-mAP", "sview-mAP", "lookalike-wrong-Rank-1") if k in res]
    return {"case": case, "seconds": seconds, "base_mb": base_mb, "peak_rss_mb": peak_mb,
            "results": {k: float(res[k]) for k in keys}}


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--queries", type=int, default=10000)
    p.add_argument("--gallery", type=int, default=128517)
    p.add_argument("--dim", type=int, default=2048)
    p.add_argument("--ids", type=int, default=10000)
    p.add_argument("--noise", type=float, default=4.0)
    p.add_argument("--fastreid", action="store_true", help="also run FastReID's whole-matrix ReidEvaluator")
    p.add_argument("--case", choices=("val", "fastreid", "rerank"), help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.case:
        print(json.dumps(one(a.case, a)))
        return
    from fastreid_val.evaluation.chunked import chunk_size
    from fastreid_val.experiments.timing import machine

    sizes = ["--queries", str(a.queries), "--gallery", str(a.gallery), "--dim", str(a.dim), "--ids", str(a.ids),
             "--noise", str(a.noise)]
    rows = []
    for case in ("rerank", "val") + (("fastreid",) if a.fastreid else ()):
        out = subprocess.run([sys.executable, __file__, "--case", case, *sizes], capture_output=True, text=True)
        if out.returncode != 0:  # e.g. killed for memory
            rows.append({"case": case, "error": f"exit status {out.returncode}: {out.stderr.strip()[-300:]}"})
            continue
        rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
    print(f"evaluation, {a.queries:,} x {a.gallery:,} x {a.dim}-d ({a.ids:,} identities), "
          f"{chunk_size(a.gallery)} queries per chunk; machine: {machine()}")
    features_mb = (a.queries + a.gallery) * a.dim * 4 / 2 ** 20
    print(f"  features alone: {features_mb:.0f} MB")
    for r in rows:
        if "error" in r:
            print(f"  {r['case']:8s} {r['error']}")
        else:
            print(f"  {r['case']:8s} {r['seconds']:8.1f} s   peak RSS {r['peak_rss_mb']:7.0f} MB "
                  f"(base {r['base_mb']:.0f} MB after features)   {r['results']}")
    by = {r["case"]: r for r in rows if "error" not in r}
    if {"val", "fastreid"} <= set(by):
        v, f = by["val"], by["fastreid"]
        print(f"FastReID / ours: time {f['seconds'] / v['seconds']:.2f}x, peak RSS {f['peak_rss_mb'] / v['peak_rss_mb']:.2f}x, "
              f"above base {(f['peak_rss_mb'] - f['base_mb']) / (v['peak_rss_mb'] - v['base_mb']):.1f}x")


if __name__ == "__main__":
    main()
