"""Query-the-gallery: index a gallery (only new or changed images are embedded), rank it for queries,
and write the results as CSV and as a ranked-list picture."""
import csv
import io
import logging
import os
from dataclasses import dataclass, field

import numpy as np

from ..atomic import atomic_write
from .images import veri_identity
from .index import GalleryIndex

logger = logging.getLogger(__name__)

__all__ = ["IndexUpdate", "Match", "update_index", "query_index", "write_csv", "draw_results"]


@dataclass
class IndexUpdate:
    """What an indexing run did; ``written`` is False when the index on disk was already current."""
    total: int
    new: int
    changed: int
    removed: int
    kind: str
    nlist: int = None
    nprobe: int = None
    written: bool = True


@dataclass
class Match:
    rank: int
    path: str
    distance: float
    identity: str = None


@dataclass
class QueryResult:
    path: str
    identity: str = None
    matches: list = field(default_factory=list)


def _stat(path):
    st = os.stat(path)
    return {"path": path, "size": st.st_size, "mtime_ns": st.st_mtime_ns}


def update_index(embedder, paths, folder, approximate=False, rebuild=False, nlist=None, nprobe=None,
                 batch_size=32, progress=False):
    """Make the index in ``folder`` hold exactly ``paths`` (absolute image paths), embedded by ``embedder``.

    Images already indexed with the same size and modification time keep their features; only new
    or changed images are embedded. Images no longer listed are dropped. The index (exact, or IVF
    when ``approximate``) is rebuilt from the features and written atomically. An index built by
    another model is refused unless ``rebuild``.
    """
    old, keep = None, {}
    if not rebuild and GalleryIndex.exists(folder):
        old = GalleryIndex.load(folder)
        old.check_model(embedder.identity(), folder)
        keep = {e["path"]: (row, e) for row, e in enumerate(old.entries)}
    entries = [_stat(p) for p in dict.fromkeys(paths)]  # an image listed twice is indexed once
    todo = [i for i, e in enumerate(entries) if e["path"] not in keep or keep[e["path"]][1] != e]
    changed = sum(1 for i in todo if entries[i]["path"] in keep)
    removed = len(set(keep) - {e["path"] for e in entries})
    kind = "ivf" if approximate else "exact"
    if old is not None and not todo and not removed and old.kind == kind and len(old.entries) == len(entries) \
            and (not approximate or ((nlist in (None, old.nlist)) and (nprobe in (None, old.nprobe)))):
        return IndexUpdate(len(entries), 0, 0, 0, kind, old.nlist, old.nprobe, written=False)
    vectors = np.zeros((len(entries), embedder.dim), dtype=np.float32)
    if old is not None and len(todo) < len(entries):
        stored = old.vectors()
        for i, e in enumerate(entries):
            if e["path"] in keep:
                vectors[i] = stored[keep[e["path"]][0]]
    if todo:
        vectors[todo] = embedder.embed([entries[i]["path"] for i in todo], batch_size, progress, desc="indexing")
    index = GalleryIndex.build(vectors, entries, embedder.identity(), approximate, nlist, nprobe)
    index.save(folder)
    logger.info("index %s: %d images, %d embedded, %d removed (%s)", folder, len(entries), len(todo), removed, index.kind)
    return IndexUpdate(len(entries), len(todo) - changed, changed, removed, index.kind, index.nlist, index.nprobe)


def query_index(embedder, folder, query_paths, top_k=10, nprobe=None, index=None, batch_size=32):
    """Rank the gallery for each query: a list of :class:`QueryResult` with ``top_k`` matches each."""
    index = index or GalleryIndex.load(folder)
    index.check_model(embedder.identity(), folder)
    feats = embedder.embed(query_paths, batch_size)
    k = min(top_k, len(index.entries))
    dist, rows = index.search(feats, k, nprobe)
    results = []
    for q, path in enumerate(query_paths):
        matches = [Match(rank, index.entries[row]["path"], float(d), veri_identity(index.entries[row]["path"]))
                   for rank, (d, row) in enumerate(zip(dist[q], rows[q]), start=1) if row >= 0]
        results.append(QueryResult(path, veri_identity(path), matches))
    return results


def is_match(query, match):
    """True/False when both identities are known from VeRi-style names, else None."""
    if query.identity is None or match.identity is None:
        return None
    return query.identity == match.identity


def write_csv(results, path):
    """One row per (query, rank): query, rank, gallery image, cosine distance, identities, match."""
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(["query", "rank", "gallery", "distance", "query_identity", "gallery_identity", "match"])
    for r in results:
        for m in r.matches:
            match = is_match(r, m)
            writer.writerow([r.path, m.rank, m.path, f"{m.distance:.6f}", r.identity or "", m.identity or "",
                             "" if match is None else int(match)])
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    atomic_write(path, lambda f: f.write(buf.getvalue().encode()))


def draw_results(results, path, thumb=96):
    """Ranked-list picture: each query, then its top-k (green: same identity, red: another, grey: unknown)."""
    from ..experiments.analyze import draw_ranked_lists

    rows = [(r.path, [(m.path, is_match(r, m), f"{m.rank}: {m.distance:.3f}") for m in r.matches]) for r in results]
    draw_ranked_lists(rows, path, thumb=thumb)
