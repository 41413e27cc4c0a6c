#!/usr/bin/env python
"""Search at scale, side by side in one run: the index kinds of ``tools/search.py --kind`` (exact ``Flat``,
``IVF``, ``HNSW32``; with ``--milvus``, a Milvus collection's HNSW too) under the filters a query may
carry (none; another camera than the query's, as the VeRi protocol asks; a time window of 10% of the
gallery's span), and ingest into the default index.

One line per case: median milliseconds per query searched one at a time on one thread (``--threads``),
and recall@10 against the exact top-10 under the same filter (the share of it that the case returns;
the exact top-10 computed here with numpy, so that no exact index need be open beside the others at
1,000,000 rows), all cases interleaved query by query. A kind whose index is the default one's is searched
in the ingested folder itself (no copy). The ingest
line times ``tools/search.py``'s path without the model: rows committed to SQLite in batches of 256,
then the default index built and written (2 threads by default: ``--ingest-threads``). With
``--small-pages`` the default index is ingested and searched a second time without asking for huge pages
(case ``hnsw-small-pages``): the control of ``fastreid_val/deploy/huge_pages.py``.

The gallery is synthetic and ReID-like, not uniform noise: ``--ids`` identities of equal size, each a
unit identity center plus Gaussian noise of norm ``--noise`` (1.0: cosine ~0.5 within an identity, ~0
across), L2-normalised; 20 cameras and times spread uniformly over a day, in no particular order;
queries are new images of gallery identities, each from a random camera.
"""
import argparse
import contextlib
import copy
import gc
import os
import resource
import shutil
import statistics
import tempfile
import time

import numpy as np

CAMERAS, SPAN = 20, 86_400.0
CHUNK = 50_000  # gallery rows generated at a time


def features(n, ids, dim, noise, rng, chunk=CHUNK):
    """The gallery, as a function that yields it in chunks of ``chunk`` rows (the same vectors whatever
    the chunk: one noise stream drawn in order; never all in memory at once, which at 1,000,000 x 1280-d
    would be 5 GB beside the index's own copy), and the identity centers. ``rng`` moves past the
    gallery's draws, as one draw of them all would move it."""
    centers = rng.standard_normal((ids, dim), dtype=np.float32)
    centers /= np.linalg.norm(centers, axis=1, keepdims=True)
    start = copy.deepcopy(rng)

    def chunks():
        draw = copy.deepcopy(start)
        for s in range(0, n, chunk):
            rows = np.arange(s, min(n, s + chunk))
            x = centers[rows % ids] + noise / np.sqrt(dim) * draw.standard_normal((len(rows), dim), dtype=np.float32)
            yield x / np.linalg.norm(x, axis=1, keepdims=True)

    for s in range(0, n, chunk):
        rng.standard_normal((min(chunk, n - s), dim), dtype=np.float32)
    return chunks, centers


def model_dim(config_file):
    import torch
    from fastreid.modeling import build_model

    import fastreid_val  # noqa: F401
    from fastreid_val.deploy.model import input_shape, preprocessing
    from fastreid_val.engine.launcher import build_config

    cfg = build_config(config_file, ["MODEL.DEVICE", "cpu", "MODEL.BACKBONE.PRETRAIN", "False"])
    with torch.no_grad():
        return int(build_model(cfg).eval()(torch.zeros(1, 3, *input_shape(preprocessing(cfg)))).shape[1])


def ingest(location, chunks, dim, metas, kind, batch=256):
    """Seconds to commit every row (of the gallery's ``chunks``) in batches and build and write the index
    of ``kind``, and of those the seconds of the build and write (``finish``)."""
    from fastreid_val.deploy.backend import open_backend

    model = {"fingerprint": "bench", "dim": dim, "model": "synthetic"}
    generating = 0.0
    start = time.perf_counter()
    with open_backend(location, writer=True, model=model, kind=kind, rebuild=True) as b:
        done, made = 0, time.perf_counter()
        for vectors in chunks():
            generating += time.perf_counter() - made  # the synthetic rows' making is not the ingest's
            for s in range(0, len(vectors), batch):
                rows = range(done + s, done + min(len(vectors), s + batch))
                b.add([{"path": f"/gallery/{i:07d}.jpg", "size": 1, "mtime_ns": i} for i in rows],
                      metas[rows.start:rows.stop], vectors[s:s + batch])
            done += len(vectors)
            made = time.perf_counter()
        built = time.perf_counter()
        b.finish()
        end = time.perf_counter()
    return end - start - generating, end - built


def exact_top(sims, keep, k):
    """The rows of the ``k`` largest of ``sims`` [n] among the rows ``keep`` [n] lets through."""
    rows = np.flatnonzero(keep)
    if len(rows) > k:
        rows = rows[np.argpartition(-sims[rows], k - 1)[:k]]
    return rows


def load():
    """The 1-minute load average: what else the cores were doing while a line was measured."""
    return f"{os.getloadavg()[0]:.1f}"


def rebuild_as(source, folder, kind, dim):
    """The rows of ``source`` indexed as ``kind`` in ``folder`` (seconds for the FAISS build and write)."""
    from fastreid_val.deploy.faiss_backend import FaissBackend

    shutil.copytree(source, folder)
    with FaissBackend.open(folder, writer=True, model={"fingerprint": "bench", "dim": dim}, kind=kind) as b:
        start = time.perf_counter()
        b.finish()
        return time.perf_counter() - start


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config-file", default="configs/SynthVeRi/val_mnv2.yml", help="the model whose dimension is used")
    p.add_argument("--dim", type=int, help="feature dimension (default: the config's model)")
    p.add_argument("--gallery", type=int, default=100_000)
    p.add_argument("--ids", type=int, help="identities (default gallery / 10)")
    p.add_argument("--queries", type=int, default=300)
    p.add_argument("--noise", type=float, default=1.0)
    p.add_argument("--kinds", default="exact,ivf,hnsw")
    p.add_argument("--threads", type=int, default=1, help="FAISS threads while searching")
    p.add_argument("--ingest-threads", type=int, default=2, help="FAISS threads while indexing")
    p.add_argument("--ef-search", help="HNSW efSearch (default: the index's, 80), or several, e.g. 64,80,96: "
                                       "every case searched at each, one line each")
    p.add_argument("--ef-construction", type=int, help="HNSW efConstruction of the graphs built (default 40)")
    p.add_argument("--blocks", action="store_true",
                   help="time each kind's queries in one block (warm caches, as a server answering query after "
                        "query) instead of interleaving the kinds query by query (each query after the other "
                        "kinds', whose scans evict its index from the caches)")
    p.add_argument("--folder", help="where the indexes are written (default: a temporary folder, removed); a "
                                    "default index an earlier run left there is searched again, not re-ingested")
    p.add_argument("--small-pages", action="store_true",
                   help="also ingest and search the default index without asking for huge pages (case "
                        "hnsw-small-pages; the control of fastreid_val/deploy/huge_pages.py)")
    p.add_argument("--milvus", help="HOST:PORT of a Milvus server, or 'lite' for a Milvus Lite server of this run's "
                                    "own on 127.0.0.1: its HNSW collection joins the cases")
    a = p.parse_args()
    import faiss

    from fastreid_val.deploy.backend import open_backend
    from fastreid_val.deploy.catalog import Catalog
    from fastreid_val.deploy.faiss_kinds import factory_for
    from fastreid_val.deploy.metadata import Filter, ImageMeta
    from fastreid_val.experiments.timing import machine

    from fastreid_val.deploy import faiss_kinds, huge_pages

    faiss_kinds.EF_CONSTRUCTION = a.ef_construction or faiss_kinds.EF_CONSTRUCTION  # read by each build
    dim = a.dim or model_dim(a.config_file)
    rng = np.random.default_rng(0)
    ids = a.ids or max(1, a.gallery // 10)
    gallery, centers = features(a.gallery, ids, dim, a.noise, rng)  # gallery(): its chunks
    cams, times = rng.integers(0, CAMERAS, a.gallery), rng.uniform(0, SPAN, a.gallery)
    metas = [ImageMeta(f"c{c + 1:03d}", float(t)) for c, t in zip(cams, times)]
    queries = centers[rng.integers(0, ids, a.queries)] + a.noise / np.sqrt(dim) * rng.standard_normal(
        (a.queries, dim), dtype=np.float32)
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    query_cams = rng.integers(0, CAMERAS, a.queries)
    starts = rng.uniform(0, 0.9 * SPAN, a.queries)
    filters = {"none": [Filter()] * a.queries,
               "camera": [Filter(exclude_camera=f"c{c + 1:03d}") for c in query_cams],
               "time": [Filter(since=float(s), until=float(s + 0.1 * SPAN)) for s in starts]}

    root = a.folder or tempfile.mkdtemp(prefix="search-bench-")
    print(f"search, {a.gallery:,} gallery vectors x {dim}-d ({ids:,} identities, noise {a.noise}, {CAMERAS} cameras), "
          f"{a.queries} queries one at a time; machine: {machine()}, faiss {faiss.__version__}")
    stack = contextlib.ExitStack()
    try:
        faiss.omp_set_num_threads(a.ingest_threads)
        reused = a.folder and os.path.isfile(os.path.join(root, "default", "catalog.sqlite"))
        if not reused:
            seconds, built = ingest(os.path.join(root, "default"), gallery, dim, metas, "auto")
        gc.collect()
        backends = {}
        catalog = Catalog(os.path.join(root, "default"))  # its summary only: the index is opened once, below
        try:
            info = catalog.read_info()
        finally:
            catalog.close()
        default = info["factory"]
        if info["faiss_rows"] != a.gallery or info["dim"] != dim:
            raise SystemExit(f"error: {root}/default holds {info['faiss_rows']} x {info['dim']}-d, not this run's gallery")
        if reused:  # the same gallery (seeded), ingested by an earlier run into --folder
            print(f"case=ingest backend=faiss n={a.gallery} dim={dim} index={default} reused={root}/default", flush=True)
        else:
            print(f"case=ingest backend=faiss n={a.gallery} dim={dim} index={default} threads={a.ingest_threads} "
                  f"seconds={seconds:.1f} build_s={built:.1f} vectors_per_s={a.gallery / seconds:.0f} load={load()}",
                  flush=True)
        for kind in a.kinds.split(","):
            folder = os.path.join(root, kind)
            if factory_for(kind, a.gallery) == default:
                folder, built = os.path.join(root, "default"), 0.0  # the index ingested above
            else:
                built = rebuild_as(os.path.join(root, "default"), folder, kind, dim)
            start = time.perf_counter()
            backends[kind, "faiss"] = open_backend(folder)
            print(f"case=build backend=faiss kind={kind} index={backends[kind, 'faiss'].factory} build_s={built:.1f} "
                  f"open_s={time.perf_counter() - start:.1f} load={load()}", flush=True)
        if a.small_pages:
            with huge_pages.small_pages():
                folder = os.path.join(root, "default-small-pages")
                seconds, built = ingest(folder, gallery, dim, metas, "auto")
                print(f"case=ingest backend=faiss n={a.gallery} dim={dim} index={default} pages=small "
                      f"threads={a.ingest_threads} seconds={seconds:.1f} build_s={built:.1f} "
                      f"vectors_per_s={a.gallery / seconds:.0f} load={load()}", flush=True)
                backends["hnsw-small-pages", "faiss"] = open_backend(folder)
        if a.milvus:
            address = a.milvus
            if address == "lite":
                from fastreid_val.deploy.milvus_lite import milvus_lite_server

                address = stack.enter_context(milvus_lite_server(os.path.join(root, "milvus")))
            location = f"milvus://{address}/bench_{a.gallery}_{dim}"
            seconds, _ = ingest(location, gallery, dim, metas, "hnsw", batch=2048)
            backends["hnsw", "milvus"] = open_backend(location)
            print(f"case=ingest backend=milvus n={a.gallery} dim={dim} index={backends['hnsw', 'milvus'].factory} "
                  f"seconds={seconds:.1f} vectors_per_s={a.gallery / seconds:.0f} load={load()}", flush=True)
        masks = next(b for (_, engine), b in backends.items() if engine == "faiss")  # who knows the rows' metadata
        faiss.omp_set_num_threads(a.threads)
        sims = np.concatenate([queries @ x.T for x in gallery()], axis=1)  # [queries, gallery]: exact top-10s
        ef_values = [int(v) for v in a.ef_search.split(",")] if a.ef_search else [None]
        for ef, (name, flts) in ((ef, item) for ef in ef_values for item in filters.items()):
            for (kind, engine), b in backends.items():
                if engine == "faiss":
                    b.ef_search = ef or faiss_kinds.EF_SEARCH
            truth = [exact_top(sims[i], masks.mask(f), 10) for i, f in enumerate(flts)]
            found = {kind: [] for kind in backends}
            lat = {kind: [] for kind in backends}
            # Interleaved query by query, so that load on the cores hits all alike; or (--blocks) kind by kind.
            order = [(kind, q, flt) for kind in backends for q, flt in zip(queries, flts)] if a.blocks else \
                [(kind, q, flt) for q, flt in zip(queries, flts) for kind in backends]
            for kind, q, flt in order:
                t0 = time.perf_counter()
                _, rows = backends[kind].search(q[None], 10, flt)
                lat[kind].append(time.perf_counter() - t0)
                found[kind].append(rows[0])
            share = np.mean([masks.mask(f).mean() for f in flts[:20]])
            for kind, engine in backends:
                recall = np.mean([len(set(f[f >= 0]) & set(t)) / max(1, len(t))
                                  for f, t in zip(found[kind, engine], truth)])
                ef_note = f" ef_search={backends[kind, engine].ef_search}" if engine == "faiss" and "hnsw" in kind else ""
                print(f"case={kind} backend={engine} n={a.gallery} dim={dim} filter={name}{ef_note} pass={share:.2f} "
                      f"median_ms={1000 * statistics.median(lat[kind, engine]):.2f} recall@10={recall:.3f} "
                      f"load={load()}", flush=True)
        for b in backends.values():
            b.close()
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB on Linux
        print(f"case=memory peak_rss_gib={peak:.1f} (every index above open at once, and the exact similarities of the queries)", flush=True)
    finally:
        stack.close()
        if not a.folder:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
