#!/usr/bin/env python
"""Evaluation at VERI-Wild large size (10,000 queries x 128,517 gallery, 2048-d synthetic features of
the kind benchmarks/evaluation.py makes, with viewpoints and look-alike groups), fed to the evaluator
in batches of 512 as inference hands them over. Each case runs in its own process (time and peak RSS
are its own), the cases interleaved, ``--runs`` rounds; median and spread are printed:

* ``stock``: our ``ViewpointReidEvaluator`` with FastReID's metrics only (Rank-k, mAP, mINP: every
  viewpoint unknown, no look-alike groups);
* ``all``: ours with every metric (also the cross-/same-view and look-alike metrics);
* ``fastreid`` (``--fastreid``): FastReID's ``ReidEvaluator`` (whole [Q, G] matrix, its three
  metrics) on the same features, where it fits in memory;
* ``distances`` (``--floor``): only what no evaluation avoids: the features gathered, the gallery
  normalised and the [Q, G] distances computed chunk by chunk (the GEMM), nothing ranked;
* ``rerank``: ours with ``TEST.RERANK.ENABLED``, which the evaluator refuses at the large size (one line).

``--device`` is MODEL.DEVICE (ours evaluates there; FastReID's evaluator always on the CPU); the clock
is read after ``torch.cuda.synchronize`` on CUDA."""
import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time

CASES = ("rerank", "stock", "all", "fastreid", "distances")


def batches(nq, ng, d, ids, noise, cameras, seed=0, batch=512):
    """(features [b, d], ids, cameras, viewpoints) batches, made one at a time as inference hands them
    over (no second copy of the N x d features exists)."""
    import torch

    g = torch.Generator().manual_seed(seed)
    centers = torch.randn(ids, d, generator=g)
    n = nq + ng
    pids = torch.cat((torch.arange(nq) % ids, torch.randint(0, ids, (ng,), generator=g)))
    cams = torch.randint(0, cameras, (n,), generator=g)  # VERI-Wild: 174 cameras
    views = torch.randint(0, 2, (n,), generator=g)
    for s in range(0, n, batch):
        e = min(s + batch, n)
        yield centers[pids[s:e]] + noise * torch.randn(e - s, d, generator=g), pids[s:e], cams[s:e], views[s:e]


def _sync(device):
    import torch

    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


def _distances_only(ev):
    """The evaluator's path up to the distances: gather, check, move, normalise, GEMM a chunk at a time."""
    from fastreid_val.evaluation.chunked import chunk_size, distance_rows
    from fastreid_val.evaluation.evaluator import check_finite

    feats = ev._concatenated(ev._predictions)["feats"]
    check_finite(feats)
    nq = ev._num_query
    query, gallery = ev._features(feats[:nq], feats[nq:])
    rows = distance_rows(query, gallery, ev.cfg)
    chunk = chunk_size(len(gallery), query.device)
    for s in range(0, nq, chunk):
        rows(range(s, min(s + chunk, nq)))
    return {}


def one(case, a):
    import torch

    import fastreid_val  # noqa: F401
    from fastreid_val.engine import build_config
    from fastreid_val.evaluation import ViewpointReidEvaluator

    cfg = build_config("", ["TEST.RERANK.ENABLED", str(case == "rerank"), "MODEL.DEVICE", a.device])
    groups = {i: i % 500 for i in range(a.ids)}  # 500 look-alike groups (model and colour)
    if case == "fastreid":
        from fastreid.evaluation.reid_evaluation import ReidEvaluator

        ev = ReidEvaluator(cfg, a.queries)
    else:
        ev = ViewpointReidEvaluator(cfg, a.queries, identity_groups=groups if case == "all" else None)
    for feats, pids, cams, views in batches(a.queries, a.gallery, a.dim, a.ids, a.noise, a.cameras):
        ev.process({"targets": pids, "camids": cams, "viewpoints": views if case == "all" else -torch.ones_like(views)},
                   feats)
    base_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    _sync(cfg.MODEL.DEVICE)
    start = time.perf_counter()
    try:
        res = _distances_only(ev) if case == "distances" else ev.evaluate()
        _sync(cfg.MODEL.DEVICE)
    except Exception as e:  # the re-ranking refusal
        return {"case": case, "error": f"{type(e).__name__}: {e}", "seconds": time.perf_counter() - start}
    seconds = time.perf_counter() - start
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    keys = [k for k in ("Rank-1", "mAP", "mINP", "xview-mAP", "sview-mAP", "lookalike-wrong-Rank-1") if k in res]
    return {"case": case, "seconds": seconds, "base_mb": base_mb, "peak_rss_mb": peak_mb,
            "results": {k: float(res[k]) for k in keys}}


def _spread(values, fmt):
    """"median (min-max)" of a list."""
    med = statistics.median(values)
    return f"{fmt.format(med)} ({fmt.format(min(values))}-{fmt.format(max(values))})" if len(values) > 1 else fmt.format(med)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--queries", type=int, default=10000)
    p.add_argument("--gallery", type=int, default=128517)
    p.add_argument("--dim", type=int, default=2048)
    p.add_argument("--ids", type=int, default=10000)
    p.add_argument("--cameras", type=int, default=174)
    p.add_argument("--noise", type=float, default=4.0)
    p.add_argument("--metrics", nargs="+", choices=("stock", "all"), default=["stock", "all"],
                   help="our evaluator with FastReID's metrics only, with every metric, or both")
    p.add_argument("--fastreid", action="store_true", help="also run FastReID's whole-matrix ReidEvaluator")
    p.add_argument("--floor", action="store_true", help="also time the distances alone (what no evaluation avoids)")
    p.add_argument("--no-rerank", action="store_true", help="skip the re-ranking case")
    p.add_argument("--runs", type=int, default=1, help="rounds of every case, interleaved; median and spread")
    p.add_argument("--device", default=None, help="MODEL.DEVICE of ours (default: cuda when present, else cpu)")
    p.add_argument("--case", choices=CASES, help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.device is None:
        import torch

        a.device = "cuda" if torch.cuda.is_available() else "cpu"
    if a.case:
        print(json.dumps(one(a.case, a)))
        return
    from fastreid_val.evaluation.chunked import chunk_size
    from fastreid_val.experiments.timing import device_name, machine

    sizes = ["--queries", str(a.queries), "--gallery", str(a.gallery), "--dim", str(a.dim), "--ids", str(a.ids),
             "--cameras", str(a.cameras), "--noise", str(a.noise), "--device", a.device]
    cases = (() if a.no_rerank else ("rerank",)) + tuple(m for m in ("stock", "all") if m in a.metrics) \
        + (("fastreid",) if a.fastreid else ()) + (("distances",) if a.floor else ())
    runs = {case: [] for case in cases}
    for r in range(a.runs):
        for case in cases:
            if case == "rerank" and r > 0:
                continue
            load = os.getloadavg()[0]
            out = subprocess.run([sys.executable, __file__, "--case", case, *sizes], capture_output=True, text=True)
            if out.returncode != 0:  # e.g. killed for memory
                row = {"case": case, "error": f"exit status {out.returncode}: {out.stderr.strip()[-300:]}"}
            else:
                row = json.loads(out.stdout.strip().splitlines()[-1])
            row["load"] = load
            runs[case].append(row)
    chunk = chunk_size(a.gallery, a.device) if a.device == "cpu" else "free-memory"
    print(f"evaluation, {a.queries:,} x {a.gallery:,} x {a.dim}-d ({a.ids:,} identities, {a.cameras} cameras), "
          f"ours on {device_name(a.device)}, {chunk} queries per chunk; {a.runs} run(s) per case, median (min-max); "
          f"machine: {machine()}")
    print(f"  features alone: {(a.queries + a.gallery) * a.dim * 4 / 2 ** 20:.0f} MB")
    for case, rows in runs.items():
        ok = [r for r in rows if "error" not in r]
        loads = _spread([r["load"] for r in rows], "{:.1f}")
        if not ok:
            print(f"  {case:9s} {rows[0]['error']}   (load before: {loads})")
            continue
        print(f"  {case:9s} {_spread([r['seconds'] for r in ok], '{:.2f}')} s   peak RSS "
              f"{_spread([r['peak_rss_mb'] for r in ok], '{:.0f}')} MB (base {ok[0]['base_mb']:.0f} MB after features)"
              f"   load before {loads}   {ok[0]['results']}")
    ok = {case: [r for r in rows if "error" not in r] for case, rows in runs.items()}
    if ok.get("fastreid"):
        for case in ("stock", "all"):
            if ok.get(case) and len(ok[case]) == len(ok["fastreid"]):  # paired by round
                ratios = [f["seconds"] / v["seconds"] for f, v in zip(ok["fastreid"], ok[case])]
                print(f"FastReID (its three metrics) / ours ({case}): speed {_spread(ratios, '{:.2f}')}x, peak RSS "
                      f"{statistics.median(f['peak_rss_mb'] for f in ok['fastreid']) / statistics.median(v['peak_rss_mb'] for v in ok[case]):.2f}x lower")
    if ok.get("distances"):
        floor = statistics.median(r["seconds"] for r in ok["distances"])
        for case in ("stock", "all", "fastreid"):
            if ok.get(case):
                t = statistics.median(r["seconds"] for r in ok[case])
                print(f"{case}: {t:.2f} s = distances {floor:.2f} s (the floor: GEMM and what feeds it) "
                      f"+ {t - floor:.2f} s ranking and metric sums")


if __name__ == "__main__":
    main()
