#!/usr/bin/env python
"""Index a gallery of images and query it: top-k with cosine distances, a CSV and a ranked-list picture.

    python tools/search.py --config-file configs/SynthVeRi/val_mnv2.yml \\
        --weights output/synthveri/val_mnv2/model_final.pth --index output/search/synthveri \\
        --gallery datasets/synthveri/image_test --query datasets/synthveri/image_query/0201_c005_00000004_0.jpg
    python tools/search.py --weights output/synthveri/val_mnv2/model_final.onnx --index output/search/synthveri \\
        --query IMAGE [IMAGE ...]                                     # the exported model needs no config

--gallery (a folder or a list file) builds or updates the index: only new or changed images are
embedded, images no longer there are dropped. Exact search by default; --approximate builds an IVF
index for large galleries. --query ranks the indexed gallery for each image and writes results.csv and
ranked_list.png into --out. A bad input ends with one line on stderr and exit status 2; the index on
disk is replaced atomically, so it is never left half-written.
"""
import argparse
import os
import sys

import fastreid_val  # noqa: F401  (shims and registration)
from fastreid_val.deploy.embedder import open_embedder
from fastreid_val.deploy.images import list_images
from fastreid_val.deploy.index import GalleryIndex
from fastreid_val.deploy.search import draw_results, is_match, query_index, update_index, write_csv
from fastreid_val.engine.user_modules import add_import_argument, import_user_modules
from fastreid_val.errors import UserInputError, one_line


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--weights", required=True, help="checkpoint (.pth, with --config-file) or exported .onnx file")
    p.add_argument("--config-file", default="", help="the config the checkpoint was trained with")
    p.add_argument("--index", required=True, help="index folder (index.json + vectors-*.faiss)")
    p.add_argument("--gallery", help="folder or list file of gallery images to index (new and changed ones)")
    p.add_argument("--approximate", action="store_true",
                   help="IVF index instead of exact search (with --gallery: each indexing run builds the kind asked for)")
    p.add_argument("--nlist", type=int, help="IVF cells (default 4*sqrt(N), at least 39 images per cell)")
    p.add_argument("--nprobe", type=int, help="IVF cells visited per query (default nlist/8, at least 8)")
    p.add_argument("--rebuild", action="store_true", help="index every gallery image again (e.g. for another model)")
    p.add_argument("--query", nargs="+", help="query images (files, folders or list files)")
    p.add_argument("--top-k", type=int, default=10)
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


def run(a):
    # Cheap checks first: inputs and the index exist before a model is loaded.
    gallery = list_images(a.gallery, "--gallery") if a.gallery else None
    queries = [p for q in a.query or () for p in list_images(q, "--query")]
    index = None if gallery else GalleryIndex.load(a.index)
    embedder = open_embedder(a.weights, a.config_file, a.opts)
    if gallery:
        up = update_index(embedder, gallery, a.index, a.approximate, a.rebuild, a.nlist, a.nprobe, a.batch_size,
                          progress=True)
        kind = f"IVF, nlist {up.nlist}, nprobe {up.nprobe}" if up.kind == "ivf" else "exact"
        state = "written" if up.written else "already up to date"
        print(f"index {a.index}: {up.total} images ({up.new} new, {up.changed} changed, {up.removed} removed; "
              f"{kind}, {embedder.dim}-d): {state}")
    if not queries:
        return
    results = query_index(embedder, a.index, queries, a.top_k, a.nprobe, index, a.batch_size)
    for r in results:
        print(f"\nquery {_show(r.path)}" + (f" (identity {r.identity})" if r.identity else ""))
        print(f"  {'rank':>4s}  {'distance':>8s}  {'match':5s}  image")
        for m in r.matches:
            match = {True: "yes", False: "no", None: "-"}[is_match(r, m)]
            print(f"  {m.rank:4d}  {m.distance:8.4f}  {match:5s}  {_show(m.path)}")
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
