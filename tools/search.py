#!/usr/bin/env python
"""Index a gallery of images with their camera and time, and query it under filters: top-k with cosine
distances, a CSV and a ranked-list picture.

    python tools/search.py --config-file configs/SynthVeRi/val_mnv2.yml \\
        --weights output/synthveri/val_mnv2/model_final.pth --index output/search/synthveri \\
        --gallery datasets/synthveri/image_test --query datasets/synthveri/image_query/0201_c005_00000004_0.jpg
    python tools/search.py --weights output/synthveri/val_mnv2/model_final.onnx --index output/search/synthveri \\
        --query IMAGE [IMAGE ...] --exclude-same-camera          # the exported model needs no config

--gallery (a folder or a list file) builds or updates the index, committing every --commit-every images:
only new or changed images are embedded, images no longer there are deleted, and a killed run goes on
from its last commit when run again. Each image's camera, time and track come from --metadata (a CSV
path,camera,timestamp[,track] or VERI-Wild's vehicle_info.txt) or from VeRi-style names; a model with
camera side information (the transformer recipes) embeds each image with that camera. --kind picks
the index (auto: exact below 10,000 images, HNSW above; exact, hnsw, ivf, or a FAISS index_factory
string). --query ranks the indexed gallery for each image under the filters (ANDed) and writes
results.csv and ranked_list.png into --out. A bad input ends with one line on stderr and exit status 2.
"""
import argparse
import os
import sys

import fastreid_val  # noqa: F401  (shims and registration)
from fastreid_val.deploy.backend import open_backend
from fastreid_val.deploy.embedder import open_embedder
from fastreid_val.deploy.images import list_images
from fastreid_val.deploy.metadata import parse_time
from fastreid_val.deploy.search import (draw_results, format_time, is_match, query_filter, query_index, update_index,
                                        write_csv)
from fastreid_val.engine.user_modules import add_import_argument, import_user_modules
from fastreid_val.errors import MetadataError, UserInputError, one_line


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--weights", required=True, help="checkpoint (.pth, with --config-file) or exported .onnx file")
    p.add_argument("--config-file", default="", help="the config the checkpoint was trained with")
    p.add_argument("--index", required=True, help="index folder (catalog.sqlite + index-*.faiss)")
    p.add_argument("--gallery", help="folder or list file of gallery images to index (new and changed ones)")
    p.add_argument("--metadata", help="CSV path,camera,timestamp[,track] (ISO-8601 or epoch seconds) or VERI-Wild's "
                                      "vehicle_info.txt; default: VeRi-style names")
    p.add_argument("--kind", default="auto",
                   help="auto (exact below 10,000 images, else HNSW), exact, hnsw, ivf, or a FAISS index_factory string")
    p.add_argument("--nlist", type=int, help="IVF cells (default 4*sqrt(N), at least 39 images per cell)")
    p.add_argument("--nprobe", type=int, help="IVF cells visited per query (default nlist/8, at least 8)")
    p.add_argument("--ef-search", type=int, help="HNSW candidates per query (default 80; raise it for galleries of millions)")
    p.add_argument("--rebuild", action="store_true", help="index every gallery image again (e.g. for another model)")
    p.add_argument("--commit-every", type=int, default=256, help="images embedded per committed batch")
    p.add_argument("--query", nargs="+", help="query images (files, folders or list files)")
    p.add_argument("--top-k", type=int, default=10)
    p.add_argument("--exclude-same-camera", action="store_true",
                   help="leave out gallery images of the query's camera (from its name or --query-camera)")
    p.add_argument("--query-camera", help="the queries' camera, e.g. c005 (default: from their VeRi-style names): for "
                                          "--exclude-same-camera, and the camera a model with camera side information "
                                          "(SIE) embeds them with (unknown: the mean of its cameras' vectors)")
    p.add_argument("--cameras", help="only these cameras, comma-separated: c001,c005")
    p.add_argument("--since", help="only images taken at or after this time (ISO-8601 or epoch seconds)")
    p.add_argument("--until", help="only images taken at or before this time")
    p.add_argument("--out", default="output/search", help="folder for results.csv and ranked_list.png")
    p.add_argument("--batch-size", type=int, default=32)
    add_import_argument(p)
    p.add_argument("opts", nargs=argparse.REMAINDER, help="config overrides, KEY VALUE ...")
    a = p.parse_args(argv)
    if not a.gallery and not a.query:
        p.error("give --gallery (to index), --query (to search), or both")
    return a


def _show(path):
    """A path as the user would type it: relative to the working folder when below it."""
    rel = os.path.relpath(path)
    return path if rel.startswith("..") else rel


def filters(a):
    """The filter options, checked before any model is loaded."""
    cameras = None
    if a.cameras is not None:
        cameras = [c.strip() for c in a.cameras.split(",")]
        if not all(cameras):
            raise MetadataError(f"--cameras {a.cameras!r}: give camera names separated by commas, e.g. c001,c005")
    return {"exclude_same_camera": a.exclude_same_camera, "query_camera": a.query_camera, "cameras": cameras,
            "since": parse_time(a.since, "--since") if a.since else None,
            "until": parse_time(a.until, "--until") if a.until else None}


def run(a):
    # Cheap checks first: inputs, filters and the index exist before a model is loaded.
    gallery = list_images(a.gallery, "--gallery") if a.gallery else None
    queries = [p for q in a.query or () for p in list_images(q, "--query")]
    flt = filters(a)
    backend = None if gallery else open_backend(a.index)
    try:
        if backend is not None:
            known = backend.cameras()
            for q in queries:
                query_filter(q, known_cameras=known, **flt)
        embedder = open_embedder(a.weights, a.config_file, a.opts)
        if gallery:
            up = update_index(embedder, gallery, a.index, a.kind, a.rebuild, a.metadata, a.nlist, a.batch_size,
                              a.commit_every, on_commit=lambda done, todo: print(
                                  f"committed {done}/{todo} images", flush=True))
            state = "written" if up.written else "already up to date"
            print(f"index {a.index}: {up.total} images ({up.new} new, {up.changed} changed, {up.removed} removed; "
                  f"{up.factory}, {embedder.dim}-d): {state}")
        if not queries:
            return
        backend = backend or open_backend(a.index)
        if a.nprobe or a.ef_search:
            backend.nprobe, backend.ef_search = a.nprobe or backend.nprobe, a.ef_search or backend.ef_search
        results = query_index(embedder, a.index, queries, a.top_k, backend, a.batch_size, **flt)
    finally:
        if backend is not None:
            backend.close()
    for r in results:
        print(f"\nquery {_show(r.path)}" + (f" (identity {r.identity})" if r.identity else ""))
        print(f"  {'rank':>4s}  {'distance':>8s}  {'match':5s}  {'camera':6s}  {'time':20s}  image")
        for m in r.matches:
            match = {True: "yes", False: "no", None: "-"}[is_match(r, m)]
            print(f"  {m.rank:4d}  {m.distance:8.4f}  {match:5s}  {m.camera or '-':6s}  "
                  f"{format_time(m.timestamp) or '-':20s}  {_show(m.path)}")
    csv_path, png_path = os.path.join(a.out, "results.csv"), os.path.join(a.out, "ranked_list.png")
    write_csv(results, csv_path)
    draw_results(results, png_path)
    print(f"\ncosine distance (1 - cosine similarity); written: {csv_path}, {png_path}")


def main(argv=None):
    a = parse_args(argv)
    try:
        import_user_modules(a.imports)
        run(a)
    except UserInputError as e:
        print(f"error: {one_line(e)}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
