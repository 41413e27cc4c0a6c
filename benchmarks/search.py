#!/usr/bin/env python
"""Search on 100,000 gallery vectors of the model's dimension: exact (FAISS IndexFlatIP) vs the
approximate IVF index of ``tools/search.py --approximate`` (IndexIVFFlat), side by side in one run.

Reports single-query latency (median over queries searched one at a time, exact and IVF interleaved),
batch throughput, and the recall@10 of IVF against exact search (share of the exact top-10 that IVF
returns), for the default nprobe and a sweep of nprobe values.

Features: ReID-like clusters, not uniform noise (on which any IVF index does poorly and no ReID
model produces): 10,000 identities x 10 images, each a unit identity center plus Gaussian noise of
norm ``--noise`` (1.0: cosine ~0.5 within an identity, ~0 across), L2-normalised; queries are new
images of gallery identities.
"""
import argparse
import statistics
import time

import numpy as np


def features(n, ids, dim, noise, rng):
    centers = rng.standard_normal((ids, dim), dtype=np.float32)
    centers /= np.linalg.norm(centers, axis=1, keepdims=True)
    pids = np.arange(n) % ids  # n / ids images per identity
    x = centers[pids] + noise / np.sqrt(dim) * rng.standard_normal((n, dim), dtype=np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True), centers


def model_dim(config_file):
    import torch
    from fastreid.modeling import build_model

    import fastreid_val  # noqa: F401
    from fastreid_val.deploy.model import input_shape, preprocessing
    from fastreid_val.engine.launcher import build_config

    cfg = build_config(config_file, ["MODEL.DEVICE", "cpu", "MODEL.BACKBONE.PRETRAIN", "False"])
    with torch.no_grad():
        return int(build_model(cfg).eval()(torch.zeros(1, 3, *input_shape(preprocessing(cfg)))).shape[1])


def latency_ms(indexes, queries):
    """Median ms per single-query search for each index, searched interleaved query by query."""
    times = {name: [] for name in indexes}
    for q in queries:
        for name, index in indexes.items():
            start = time.perf_counter()
            index.search(q[None], 10)
            times[name].append(time.perf_counter() - start)
    return {name: 1000 * statistics.median(t) for name, t in times.items()}


def recall_at_10(approx, exact):
    return float(np.mean([len(set(a) & set(e)) / 10 for a, e in zip(approx, exact)]))


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config-file", default="configs/SynthVeRi/val_mnv2.yml", help="the model whose dimension is used")
    p.add_argument("--dim", type=int, help="feature dimension (default: the config's model)")
    p.add_argument("--gallery", type=int, default=100_000)
    p.add_argument("--ids", type=int, default=10_000)
    p.add_argument("--queries", type=int, default=1000)
    p.add_argument("--latency-queries", type=int, default=300)
    p.add_argument("--noise", type=float, default=1.0)
    p.add_argument("--threads", type=int, help="FAISS threads (default: FAISS's; 1 on a machine shared with other jobs)")
    a = p.parse_args()
    import faiss

    if a.threads:
        faiss.omp_set_num_threads(a.threads)

    from fastreid_val.deploy.index import GalleryIndex, default_nlist, default_nprobe
    from fastreid_val.experiments.timing import machine

    dim = a.dim or model_dim(a.config_file)
    rng = np.random.default_rng(0)
    gallery, centers = features(a.gallery, a.ids, dim, a.noise, rng)
    pids = rng.integers(0, a.ids, a.queries)
    queries = centers[pids] + a.noise / np.sqrt(dim) * rng.standard_normal((a.queries, dim), dtype=np.float32)
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)

    entries = [{"path": str(i)} for i in range(a.gallery)]
    model = {"fingerprint": "bench", "dim": dim, "model": "synthetic"}
    start = time.perf_counter()
    exact = GalleryIndex.build(gallery, entries, model)
    build_exact = time.perf_counter() - start
    start = time.perf_counter()
    ivf = GalleryIndex.build(gallery, entries, model, approximate=True)
    build_ivf = time.perf_counter() - start
    nlist, nprobe = ivf.nlist, ivf.nprobe
    assert (nlist, nprobe) == (default_nlist(a.gallery), default_nprobe(nlist))

    print(f"search, {a.gallery:,} gallery vectors x {dim}-d ({a.ids:,} identities, noise {a.noise}), "
          f"{a.queries:,} queries; machine: {machine()}, faiss {faiss.__version__}, {faiss.omp_get_max_threads()} threads")
    print(f"  build: exact {build_exact:.2f} s, IVF {build_ivf:.2f} s (k-means, nlist {nlist})")
    _, truth = exact.index.search(queries, 10)
    t0 = time.perf_counter()
    exact.index.search(queries, 10)
    batch_exact = time.perf_counter() - t0
    print(f"  {'index':22s} {'recall@10':>9s} {'ms/query (1 at a time)':>23s} {'queries/s (batch)':>18s} {'speed-up':>8s}")
    rows = []
    for probe in sorted({8, 16, 32, nprobe, 2 * nprobe, 4 * nprobe}):
        ivf.index.nprobe = probe
        t0 = time.perf_counter()
        _, found = ivf.index.search(queries, 10)
        batch = time.perf_counter() - t0
        lat = latency_ms({"exact": exact.index, "ivf": ivf.index}, queries[:a.latency_queries])
        rows.append((probe, recall_at_10(found, truth), lat, batch))
        mark = " (default)" if probe == nprobe else ""
        print(f"  {'IVF nprobe ' + str(probe) + mark:22s} {rows[-1][1]:9.3f} {lat['ivf']:23.2f} "
              f"{a.queries / batch:18.0f} {lat['exact'] / lat['ivf']:7.1f}x")
    lat_exact = statistics.median(r[2]["exact"] for r in rows)
    print(f"  {'exact (IndexFlatIP)':22s} {1.0:9.3f} {lat_exact:23.2f} {a.queries / batch_exact:18.0f} {1.0:7.1f}x")
    default = next(r for r in rows if r[0] == nprobe)
    print(f"default IVF (nlist {nlist}, nprobe {nprobe}) vs exact: recall@10 {default[1]:.3f}, "
          f"{default[2]['ivf']:.2f} ms vs {default[2]['exact']:.2f} ms per query "
          f"({default[2]['exact'] / default[2]['ivf']:.1f}x faster, measured side by side)")


if __name__ == "__main__":
    main()
