"""A FAISS index of gallery features on disk, with a sidecar naming its images and the model.

A folder holds ``index.json`` (the sidecar: image paths with their size and modification time, the
model's fingerprint and dimension, the index kind) and ``vectors-<id>.faiss`` (the FAISS index it
names). Features are L2-normalised, so FAISS's inner product is the cosine similarity; distances
reported are cosine distances ``1 - cos``, as FastReID's evaluator ranks.

Writes are atomic: a new ``vectors-<id>.faiss`` is written whole under a fresh name, then
``index.json`` is replaced in one rename to point to it, then the old vectors file is removed. A
crash at any moment leaves ``index.json`` naming a complete vectors file: the old index or the new.

Kinds: ``exact`` (``IndexFlatIP``, brute force) and ``ivf`` (``IndexIVFFlat``, inverted lists: the
gallery is clustered into ``nlist`` cells by k-means and a query visits the ``nprobe`` cells nearest
to it). Shape legend: N gallery images, Q queries, d feature dimension, k results per query.
"""
import glob
import json
import math
import os
import re
import uuid

import numpy as np

from ..atomic import atomic_write
from ..errors import IndexMismatchError, IndexNotFoundError

__all__ = ["GalleryIndex", "default_nlist", "default_nprobe", "SIDECAR"]

SIDECAR = "index.json"
FORMAT = 1
# The vectors file's name as save() writes it: index.json never makes load() read a file elsewhere.
_VECTORS_NAME = re.compile(r"vectors-[0-9a-f]{12}\.faiss")
# FAISS's k-means warns below 39 training points per centroid.
MIN_POINTS_PER_CELL = 39


def default_nlist(n):
    """Cells of an IVF index of ``n`` vectors: 4·sqrt(n) (FAISS's guideline is 4 to 16·sqrt(n)), with
    at least 39 vectors per cell to train k-means: 1,264 cells for 100,000 vectors."""
    return max(1, min(int(4 * math.sqrt(n)), n // MIN_POINTS_PER_CELL))


def default_nprobe(nlist):
    """Cells visited per query: 1/8 of the cells (at least 8). On ``benchmarks/search.py``'s clustered
    features of 100,000 images this keeps recall@10 at 0.89 (128-d) and 0.999 (1280-d) at a
    quarter to a fifth of the exact search's single-query time; ``--nprobe`` trades one for the other."""
    return min(nlist, max(8, nlist // 8))


class GalleryIndex:
    """Gallery features in FAISS plus ``entries`` ({"path", "size", "mtime_ns"} per row) and ``model``
    ({"fingerprint", "dim", "model"}: who computed the features)."""

    def __init__(self, index, entries, model, kind, nlist=None):
        self.index, self.entries, self.model, self.kind, self.nlist = index, entries, model, kind, nlist

    @classmethod
    def build(cls, vectors, entries, model, approximate=False, nlist=None, nprobe=None):
        """Index ``vectors`` [N, d] (unit rows, float32): exact, or IVF when ``approximate``."""
        import faiss

        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        n, d = vectors.shape
        if not approximate:
            index = faiss.IndexFlatIP(d)
            index.add(vectors)
            return cls(index, entries, model, "exact")
        nlist = min(nlist or default_nlist(n), max(n, 1))
        index = faiss.IndexIVFFlat(faiss.IndexFlatIP(d), d, nlist, faiss.METRIC_INNER_PRODUCT)
        index.train(vectors)
        index.add(vectors)
        index.nprobe = nprobe or default_nprobe(nlist)
        return cls(index, entries, model, "ivf", nlist)

    @property
    def nprobe(self):
        return getattr(self.index, "nprobe", None)

    def vectors(self):
        """The stored features [N, d] (exact for both kinds: IVF-Flat keeps full vectors)."""
        if self.kind == "ivf":
            self.index.make_direct_map()
        return self.index.reconstruct_n(0, self.index.ntotal)

    def search(self, queries, k, nprobe=None):
        """(cosine distances [Q, k], gallery rows [Q, k]); rows past the gallery's size are -1."""
        if nprobe and self.kind == "ivf":
            self.index.nprobe = nprobe
        sims, rows = self.index.search(np.ascontiguousarray(queries, dtype=np.float32), k)
        return np.clip(1.0 - sims, 0.0, 2.0), rows  # float rounding puts identical images at -1e-7

    def check_model(self, identity, folder):
        """Refuse features from a model other than the one that built the index."""
        if identity["fingerprint"] == self.model["fingerprint"] and identity["dim"] == self.model["dim"]:
            return
        raise IndexMismatchError(
            f"index {folder} was built by another model ({self.model['model']}, fingerprint "
            f"{self.model['fingerprint']}, {self.model['dim']}-d), not by {identity['model']} (fingerprint "
            f"{identity['fingerprint']}, {identity['dim']}-d): query it with the model that built it, or index "
            "the gallery again with this model (--rebuild, or another --index folder)")

    def save(self, folder):
        import faiss

        os.makedirs(folder, exist_ok=True)
        name = f"vectors-{uuid.uuid4().hex[:12]}.faiss"
        data = faiss.serialize_index(self.index)
        atomic_write(os.path.join(folder, name), lambda f: f.write(data.tobytes()))
        sidecar = {"format": FORMAT, "vectors": name, "kind": self.kind, "nlist": self.nlist, "nprobe": self.nprobe,
                   "metric": "inner product of L2-normalised features (cosine similarity)", "model": self.model,
                   "count": len(self.entries), "images": self.entries}
        atomic_write(os.path.join(folder, SIDECAR), lambda f: f.write(json.dumps(sidecar, indent=1).encode()))
        for old in glob.glob(os.path.join(folder, "vectors-*.faiss")):
            if os.path.basename(old) != name:
                os.remove(old)

    @classmethod
    def exists(cls, folder):
        return os.path.isfile(os.path.join(folder, SIDECAR))

    @classmethod
    def load(cls, folder):
        import faiss

        path = os.path.join(folder, SIDECAR)
        if not os.path.isfile(path):
            raise IndexNotFoundError(f"no search index in {folder} ({SIDECAR} missing): build it first with "
                                     f"tools/search.py --gallery IMAGES --index {folder}")
        try:
            with open(path, encoding="utf-8") as f:
                sidecar = json.load(f)
            if not _VECTORS_NAME.fullmatch(str(sidecar["vectors"])):  # a name in this folder, as save() writes it
                raise ValueError(f"{SIDECAR} names vectors file {sidecar['vectors']!r}, not vectors-<id>.faiss in {folder}")
            index = faiss.read_index(os.path.join(folder, sidecar["vectors"]))
        except (OSError, ValueError, KeyError, RuntimeError) as e:
            raise IndexMismatchError(f"search index {folder} cannot be read ({type(e).__name__}: "
                                     f"{str(e).splitlines()[0] if str(e) else ''}): build it again with --rebuild") from None
        if index.ntotal != len(sidecar["images"]) or sidecar.get("format") != FORMAT:
            raise IndexMismatchError(f"search index {folder}: {sidecar['vectors']} holds {index.ntotal} vectors but "
                                     f"{SIDECAR} lists {len(sidecar['images'])} images: build it again with --rebuild")
        if sidecar["kind"] == "ivf" and sidecar.get("nprobe"):
            index.nprobe = sidecar["nprobe"]
        return cls(index, sidecar["images"], sidecar["model"], sidecar["kind"], sidecar.get("nlist"))
