"""The FAISS engine: an index folder on this machine holding ``catalog.sqlite`` (rows: paths, metadata,
vectors; :mod:`.catalog`), ``index-<id>.faiss`` (the FAISS index of those vectors, named in the catalog
with its SHA-256) and ``writer.lock``.

The kind of index (a FAISS ``index_factory`` string) and how a query is searched under a filter are
:mod:`.faiss_kinds`'s, the query itself :mod:`.faiss_search`'s; the lock and the checked read of the
FAISS file :mod:`.faiss_files`'s. The rows' metadata is held in memory; a filter becomes an
``IDSelectorBitmap`` that FAISS checks inside the search.
Deleted rows are tombstones that the selector leaves out; past ``COMPACT_SHARE`` of the rows they are
dropped and the FAISS index is rebuilt. One writer at a time; readers need no lock.
"""
import glob
import os

import numpy as np

from ..errors import IndexMismatchError, IndexNotFoundError, OutputDirError
from .backend import SearchBackend
from .catalog import CATALOG, Catalog, digest
from .faiss_files import read_faiss, take_writer_lock, write_faiss
from .faiss_search import filter_mask, filtered_search
from .faiss_kinds import EF_SEARCH, build, default_nprobe, factory_for, new_index, new_scan
from .huge_pages import collapse_index

__all__ = ["FaissBackend"]

COMPACT_SHARE = 0.25     # tombstones past this share of the rows are dropped
LEGACY = "index.json"


class FaissBackend(SearchBackend):

    def __init__(self, location, folder, catalog, info, rows, lock=None):
        self.location, self.folder, self.catalog, self.lock = location, folder, catalog, lock
        self.info = info
        self.model = {"fingerprint": info["fingerprint"], "dim": info["dim"], "model": info["model"]}
        self.factory = info["factory"]
        self.paths, self.sizes, self.mtimes = rows["path"], rows["size"], rows["mtime_ns"]
        self.camera_names, self.times, self.tracks = rows["camera"], rows["timestamp"], rows["track"]
        self.checksums = rows["checksum"]
        self.deleted = np.array(rows["deleted"], dtype=bool)
        self._codes = {}
        self.cam = np.array([self._code(c) for c in self.camera_names], dtype=np.int64)
        self.time = np.array([np.nan if t is None else t for t in self.times], dtype=np.float64)
        self.index = self.flat = None
        self.ef_search, self.nprobe = EF_SEARCH, None
        self.kind, self.nlist, self._own_flat, self.scan = "auto", None, False, None

    def _code(self, camera):
        return -1 if camera is None else self._codes.setdefault(camera, len(self._codes))

    @property
    def n(self):
        return len(self.paths)

    # Opening.

    @classmethod
    def open(cls, location, writer=False, model=None, kind="auto", rebuild=False, nlist=None, nprobe=None,
             ef_search=None):
        folder = os.path.realpath(location)
        path = os.path.join(folder, CATALOG)
        legacy = os.path.isfile(os.path.join(folder, LEGACY))
        if legacy and not rebuild and not os.path.isfile(path):
            raise IndexMismatchError(f"search index {location} was written by an earlier version ({LEGACY}, no "
                                     f"metadata): index the gallery again with --rebuild")
        if not writer:
            if not os.path.isfile(path) or not os.path.getsize(path):
                raise IndexNotFoundError(f"no search index in {location} ({CATALOG} missing): build it first with "
                                         f"tools/search.py --gallery IMAGES --index {location}")
            catalog = Catalog(folder)
            try:
                backend = cls._load(location, folder, catalog)
            except BaseException:
                catalog.close()  # the last connection closed: SQLite removes its -wal and -shm files
                raise
        else:
            new_index(factory_for(kind, 0, nlist=nlist or 1), int(model["dim"]))  # a bad --kind stops before any write
            try:
                os.makedirs(folder, exist_ok=True)
            except OSError as e:
                raise OutputDirError(f"cannot create index folder {location} ({e.strerror})") from None
            lock, catalog = take_writer_lock(folder, location), None
            try:
                if rebuild:  # a catalog SQLite cannot open at all is replaced
                    try:
                        Catalog(folder).close()
                    except IndexMismatchError:
                        for suffix in ("", "-wal", "-shm"):
                            if os.path.exists(path + suffix):
                                os.remove(path + suffix)
                catalog = Catalog(folder, create=True)
                if rebuild or not catalog.db.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]:
                    catalog.reset(model, "Flat")  # one transaction: a kill leaves the old rows or none
                backend = cls._load(location, folder, catalog, lock)
                backend.check_model(model)
            except BaseException:
                if catalog is not None:
                    catalog.close()
                lock.close()
                raise
            backend.kind, backend.nlist = kind, nlist
        backend.nprobe = nprobe or backend.nprobe
        backend.ef_search = ef_search or backend.ef_search
        return backend

    @classmethod
    def _load(cls, location, folder, catalog, lock=None):
        for attempt in range(3):  # a writer may replace the FAISS file between our snapshot and our read of it
            try:
                with catalog.snapshot():
                    info = catalog.read_info()
                    rows = catalog.read(info["dim"])
                    index, holds_vectors = read_faiss(folder, info, rows["checksum"], rows["vectors"]) \
                        if info["faiss_file"] else (None, False)
                break
            except FileNotFoundError:
                if attempt == 2:
                    raise IndexMismatchError(f"search index {location}: {info['faiss_file']} is missing: index the "
                                             "gallery again with --rebuild") from None
        backend = cls(location, folder, catalog, info, rows, lock)
        vectors = rows["vectors"]
        if index is None:
            index = build(info["factory"], vectors)
        elif index.ntotal < len(vectors):  # rows committed after the FAISS file was written
            index.add(vectors[index.ntotal:])
        backend._use(index, vectors)
        stored = backend.stored_vectors(info["faiss_rows"]) if holds_vectors else None  # a graph: the rows
        if stored is not None and not np.array_equal(stored, vectors[:len(stored)]):
            raise IndexMismatchError(f"search index file {os.path.join(folder, info['faiss_file'])} holds other "
                                     f"vectors than the rows of {CATALOG}: index the gallery again with --rebuild")
        return backend

    def _use(self, index, vectors):
        """Serve ``index``; ``flat`` is an exact index over the same rows (the index itself, an HNSW
        graph's storage, or a copy for other kinds)."""
        import faiss

        # ``vectors`` may be a view of the index being replaced: it is released only at the end.
        down = faiss.downcast_index(index)
        storage = getattr(down, "storage", None)
        own = False
        if isinstance(down, faiss.IndexFlat):
            flat = down
        elif storage is not None and isinstance(faiss.downcast_index(storage), faiss.IndexFlat):
            flat = faiss.downcast_index(storage)
        else:
            flat, own = faiss.IndexFlatIP(vectors.shape[1]), True
            flat.add(vectors)
        scan = None if flat is down else new_scan(vectors)  # approximate kinds: narrow filters' scan
        for walked in (index, scan):  # what a search reads at random, in huge pages where the system has them
            if walked is not None:
                collapse_index(walked)
        self._owner = index  # the wrapper that owns the C++ index: the downcast one does not
        self.index, self.flat, self._own_flat, self.scan = down, flat, own, scan
        ivf = faiss.try_extract_index_ivf(self.index)
        if ivf is not None:
            self.nprobe = self.nprobe or default_nprobe(ivf.nlist)

    def stored_vectors(self, rows):
        """The first ``rows`` vectors as the FAISS index holds them (None where it keeps them compressed)."""
        import faiss

        if not rows:
            return None
        if not self._own_flat:
            return faiss.rev_swig_ptr(self.flat.get_xb(), rows * self.model["dim"]).reshape(rows, -1)
        ivf = faiss.try_extract_index_ivf(self.index)
        if isinstance(ivf, faiss.IndexIVFFlat):
            ivf.make_direct_map()
            return ivf.reconstruct_n(0, rows)
        return None

    def all_vectors(self, copy=True):
        """The rows' vectors [n, d]: a copy, or with ``copy=False`` a view of the exact index's memory,
        valid until rows are added or the index is replaced."""
        import faiss

        dim = self.model["dim"]
        view = faiss.rev_swig_ptr(self.flat.get_xb(), self.n * dim).reshape(self.n, dim)  # n may be 0
        return view.copy() if copy else view

    # The interface.

    def live(self):
        return {self.paths[p]: {"pos": p, "size": self.sizes[p], "mtime_ns": self.mtimes[p],
                                "camera": self.camera_names[p], "timestamp": self.times[p], "track": self.tracks[p]}
                for p in np.flatnonzero(~self.deleted).tolist()}

    def vectors(self, positions):
        return np.stack([self.flat.reconstruct(int(p)) for p in positions]) if len(positions) else \
            np.zeros((0, self.model["dim"]), np.float32)

    def row(self, pos):
        return {"path": self.paths[pos], "camera": self.camera_names[pos], "timestamp": self.times[pos],
                "track": self.tracks[pos]}

    def cameras(self):
        return {c for c, d in zip(self.camera_names, self.deleted) if c is not None and not d}

    def add(self, entries, metas, vectors):
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        checksums = self.catalog.add(self.n, entries, metas, vectors)  # committed: durable from here on
        self.index.add(vectors)
        if self._own_flat:
            self.flat.add(vectors)
        if self.scan is not None:
            self.scan.add(vectors)
        self.paths += [e["path"] for e in entries]
        self.sizes += [e["size"] for e in entries]
        self.mtimes += [e["mtime_ns"] for e in entries]
        self.camera_names += [m.camera for m in metas]
        self.times += [m.timestamp for m in metas]
        self.tracks += [m.track for m in metas]
        self.checksums += checksums
        self.deleted = np.concatenate([self.deleted, np.zeros(len(entries), bool)])
        self.cam = np.concatenate([self.cam, np.array([self._code(m.camera) for m in metas], dtype=np.int64)])
        self.time = np.concatenate([self.time, [np.nan if m.timestamp is None else m.timestamp for m in metas]])

    def delete(self, positions):
        if len(positions):
            self.catalog.delete(positions)
            self.deleted[np.asarray(positions, dtype=np.int64)] = True

    def finish(self):
        """Compact past ``COMPACT_SHARE`` tombstones, build the kind asked for, write the FAISS file (True
        when it was written)."""
        compact = self.deleted.sum() > COMPACT_SHARE * self.n
        if compact:
            vectors = self.all_vectors()[~self.deleted]
            self.catalog.compact()
            keep = np.flatnonzero(~self.deleted).tolist()
            for name in ("paths", "sizes", "mtimes", "camera_names", "times", "tracks", "checksums"):
                setattr(self, name, [getattr(self, name)[p] for p in keep])
            self.cam, self.time = self.cam[keep], self.time[keep]
            self.deleted = np.zeros(len(keep), bool)
            self.info.update(faiss_file="", faiss_rows=0)
        live = int((~self.deleted).sum())
        # No rows: an exact index of none, whatever the kind (cells need rows to be trained on).
        target = factory_for(self.kind, live, self.factory, self.nlist) if live else "Flat"
        if compact or target != self.factory:
            # Not compacted: the new index is built from a view of the old one's vectors (at 1,000,000 x
            # 1280-d a copy is 5 GB more), and the old index goes only once the new one is built.
            vectors = vectors if compact else self.all_vectors(copy=False)
            self.factory, self.nprobe = target, None
            self._use(build(target, vectors), vectors)
            del vectors
        elif self.info["faiss_file"] and self.info["faiss_rows"] == self.n:
            return False  # the FAISS file on disk is current
        self._write()
        return True

    def _write(self):
        name, sha = write_faiss(self.folder, self.index)
        values = dict(faiss_file=name, faiss_rows=self.index.ntotal, faiss_sha=sha,
                      faiss_digest=digest([sha] + self.checksums[:self.index.ntotal]), factory=self.factory)
        with self.catalog.transaction():
            self.catalog.set_info(**values)
        self.info.update(values)
        for old in glob.glob(os.path.join(self.folder, "index-*.faiss")) + \
                glob.glob(os.path.join(self.folder, "vectors-*.faiss")):
            if os.path.basename(old) != name:
                os.remove(old)
        if os.path.isfile(os.path.join(self.folder, LEGACY)):
            os.remove(os.path.join(self.folder, LEGACY))

    def close(self):
        # The indexes go now, not when a reference cycle is next collected (GBs at a million rows).
        self.index = self.flat = self.scan = self._owner = None
        self.catalog.close()
        if self.lock is not None:
            self.lock.close()
            self.lock = None

    # Search (:mod:`.faiss_search`).

    def mask(self, flt):
        """Rows that pass ``flt`` (and are not deleted): bool [n]."""
        return filter_mask(self.deleted, self.cam, self.time, self._codes, flt)

    def search(self, queries, k, flt):
        return filtered_search(self.index, self.flat, self.scan, lambda: self.all_vectors(copy=False),
                               self.mask(flt), queries, k, self.ef_search, self.nprobe)
