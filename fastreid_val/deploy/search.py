"""Query-the-gallery: index a gallery into any search engine (:mod:`.backend`) in committed batches,
rank it for queries under filters, and write the results as CSV and as a ranked-list picture."""
import csv
import io
import logging
import os
from dataclasses import dataclass, field
from datetime import datetime, timezone

from ..atomic import atomic_write
from ..errors import MetadataError
from .backend import open_backend
from .images import check_images, veri_identity
from .metadata import Filter, gallery_metadata, name_metadata

logger = logging.getLogger(__name__)

__all__ = ["IndexUpdate", "Match", "QueryResult", "update_index", "query_index", "query_filter", "embed_with_cameras",
           "write_csv", "draw_results"]

COMMIT_EVERY = 256  # images embedded and committed per transaction


@dataclass
class IndexUpdate:
    """What an indexing run did; ``written`` is False when the index was already current."""
    total: int
    new: int
    changed: int
    removed: int
    factory: str
    written: bool = True


@dataclass
class Match:
    rank: int
    path: str
    distance: float
    identity: str = None
    camera: str = None
    timestamp: float = None


@dataclass
class QueryResult:
    path: str
    identity: str = None
    matches: list = field(default_factory=list)


def _stat(path):
    st = os.stat(path)
    return {"path": path, "size": st.st_size, "mtime_ns": st.st_mtime_ns}


def update_index(embedder, paths, location, kind="auto", rebuild=False, metadata_file=None, nlist=None,
                 batch_size=32, commit_every=COMMIT_EVERY, on_commit=None):
    """Make the index at ``location`` hold exactly ``paths`` (absolute image paths) with their metadata.

    New images, and images whose size or modification time changed, are embedded and committed
    ``commit_every`` at a time (``on_commit(done, todo)`` after each commit: a kill loses no committed
    batch, and the next run goes on from there). Images no longer listed, and the old rows of changed
    ones, are deleted (tombstones; compacted by the engine). An image whose metadata changed keeps
    its vector, unless the model takes the camera (SIE, :mod:`.cameras`) and the camera changed: a model
    with SIE embeds each image with the camera its metadata gives. An index built by another model is
    refused unless ``rebuild``.
    """
    paths = list(dict.fromkeys(paths))  # an image listed twice is indexed once
    metas = gallery_metadata(paths, metadata_file)  # bad metadata stops before anything is written
    entries = [_stat(p) for p in paths]
    location_is_new = "://" not in location and not os.path.isdir(location)
    if rebuild or location_is_new:
        check_images(paths)
    with open_backend(location, writer=True, model=embedder.identity(), kind=kind, rebuild=rebuild,
                      nlist=nlist) as backend:
        live = backend.live()
        listed = set(paths)
        embed, reuse, drop, changed = [], [], [], 0
        for e, m in zip(entries, metas):
            old = live.get(e["path"])
            if old is None:
                embed.append((e, m))
            elif (old["size"], old["mtime_ns"]) != (e["size"], e["mtime_ns"]):
                embed.append((e, m))
                drop.append(old["pos"])
                changed += 1
            elif embedder.takes_camera and old["camera"] != m.camera:  # its vector depends on the camera
                embed.append((e, m))
                drop.append(old["pos"])
                changed += 1
            elif (old["camera"], old["timestamp"], old["track"]) != (m.camera, m.timestamp, m.track):
                reuse.append((e, m, old["pos"]))
                drop.append(old["pos"])
        gone = [r["pos"] for p, r in live.items() if p not in listed]
        if not (rebuild or location_is_new):
            check_images([e["path"] for e, _ in embed])
        vectors = backend.vectors([pos for _, _, pos in reuse])  # before their rows are deleted
        backend.delete(drop + gone)
        if reuse:
            backend.add([e for e, _, _ in reuse], [m for _, m, _ in reuse], vectors)
        for start in range(0, len(embed), commit_every):
            chunk = embed[start:start + commit_every]
            feats = embed_with_cameras(embedder, [e["path"] for e, _ in chunk], [m.camera for _, m in chunk],
                                       batch_size)
            backend.add([e for e, _ in chunk], [m for _, m in chunk], feats)
            if on_commit:
                on_commit(start + len(chunk), len(embed))
        wrote = backend.finish()
        written = bool(embed or reuse or drop or gone or wrote)
        logger.info("index %s: %d images, %d embedded, %d removed (%s)", location, len(paths), len(embed),
                    len(gone), backend.factory)
        return IndexUpdate(len(paths), len(embed) - changed, changed, len(gone), backend.factory, written)


def embed_with_cameras(embedder, paths, cameras, batch_size=32, what="gallery"):
    """``embedder.embed(paths)``, giving a model with SIE the camera numbers of the camera names ``cameras``
    (:mod:`.cameras`; None: unknown, the mean of its cameras' vectors)."""
    if not embedder.takes_camera:
        return embedder.embed(paths, batch_size)
    return embedder.embed(paths, batch_size, camids=embedder.model_cameras(cameras, what))


def query_filter(query_path, exclude_same_camera=False, query_camera=None, cameras=None, since=None, until=None,
                 known_cameras=None):
    """The :class:`Filter` of one query. The query's camera comes from ``query_camera`` or its VeRi-style
    name; ``cameras`` must all be in ``known_cameras`` (the index's) when that is given."""
    exclude = None
    if exclude_same_camera:
        exclude = query_camera or name_metadata(query_path).camera
        if exclude is None:
            raise MetadataError(f"--exclude-same-camera: the camera of query {query_path} is unknown (its name is "
                                "not VeRi-style, 0001_c001_...): give it with --query-camera")
    if cameras is not None and known_cameras is not None:
        unknown = sorted(set(cameras) - set(known_cameras))
        if unknown:
            shown = ", ".join(sorted(known_cameras)[:12]) + (" ..." if len(known_cameras) > 12 else "")
            raise MetadataError(f"--cameras: unknown camera {', '.join(unknown)}; the index holds {shown or 'none'}")
    if since is not None and until is not None and since > until:
        raise MetadataError("--since is after --until: no image can pass")
    return Filter(exclude, None if cameras is None else frozenset(cameras), since, until)


def query_index(embedder, location, query_paths, top_k=10, backend=None, batch_size=32, **filters):
    """Rank the gallery for each query under ``filters`` (see :func:`query_filter`): a list of
    :class:`QueryResult` with up to ``top_k`` matches each. A model with SIE embeds each query with
    ``query_camera``, else the camera of its VeRi-style name, else the unknown camera (:mod:`.cameras`)."""
    own = backend is None
    backend = backend or open_backend(location)
    try:
        backend.check_model(embedder.identity())
        known = backend.cameras()
        flts = [query_filter(q, known_cameras=known, **filters) for q in query_paths]
        cameras = [filters.get("query_camera") or name_metadata(q).camera for q in query_paths]
        feats = embed_with_cameras(embedder, query_paths, cameras, batch_size, "query")
        results = []
        for q, (path, flt) in enumerate(zip(query_paths, flts)):
            dist, rows = backend.search(feats[q:q + 1], top_k, flt)
            matches = []
            for rank, (d, pos) in enumerate(zip(dist[0], rows[0]), start=1):
                if pos >= 0:
                    row = backend.row(int(pos))
                    matches.append(Match(rank, row["path"], float(d), veri_identity(row["path"]), row["camera"],
                                         row["timestamp"]))
            results.append(QueryResult(path, veri_identity(path), matches))
        return results
    finally:
        if own:
            backend.close()


def is_match(query, match):
    """True/False when both identities are known from VeRi-style names, else None."""
    if query.identity is None or match.identity is None:
        return None
    return query.identity == match.identity


def format_time(timestamp):
    return "" if timestamp is None else datetime.fromtimestamp(timestamp, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def write_csv(results, path):
    """One row per (query, rank): query, rank, gallery image, cosine distance, identities, match, the
    gallery image's camera and time."""
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(["query", "rank", "gallery", "distance", "query_identity", "gallery_identity", "match",
                     "gallery_camera", "gallery_time"])
    for r in results:
        for m in r.matches:
            match = is_match(r, m)
            writer.writerow([r.path, m.rank, m.path, f"{m.distance:.6f}", r.identity or "", m.identity or "",
                             "" if match is None else int(match), m.camera or "", format_time(m.timestamp)])
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    atomic_write(path, lambda f: f.write(buf.getvalue().encode()))


def draw_results(results, path, thumb=96):
    """Ranked-list picture: each query, then its top-k (green: same identity, red: another, grey: unknown)."""
    from ..experiments.analyze import draw_ranked_lists

    rows = [(r.path, [(m.path, is_match(r, m), f"{m.rank}: {m.distance:.3f}") for m in r.matches]) for r in results]
    draw_ranked_lists(rows, path, thumb=thumb)
