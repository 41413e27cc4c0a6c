"""The interface every search engine implements, and the one function that opens one from ``--index``.

An engine stores, per gallery image, a row: its position (an integer id that search returns), the
image's path, size and modification time, its metadata (:class:`~.metadata.ImageMeta`) and its feature
vector, plus the model that computed the vectors. ``tools/search.py`` and ``deploy/search.py`` speak
only this interface; an engine is one file:

* a folder path: :class:`~.faiss_backend.FaissBackend` (SQLite rows + a FAISS index, this machine);
* ``milvus://HOST:PORT/COLLECTION``: a Milvus collection (module ``milvus_backend``, where installed).

A third engine is one more file and one more line in ``ENGINES``. Shape legend: Q queries, d feature
dimension, k results.
"""
import importlib

from ..errors import IndexMismatchError

__all__ = ["SearchBackend", "open_backend", "ENGINES"]

# URI scheme -> "module:class"; anything without a scheme is a FAISS index folder.
ENGINES = {"": "fastreid_val.deploy.faiss_backend:FaissBackend",
           "milvus": "fastreid_val.deploy.milvus_backend:MilvusBackend"}


class SearchBackend:
    """Writers call ``add`` (one committed batch each), ``delete`` and ``finish``; readers ``search``.

    Attributes: ``location`` (what ``--index`` said), ``model`` ({"fingerprint", "dim", "model"}),
    ``factory`` (the kind of index, as a FAISS ``index_factory`` string or the engine's own name).
    """

    location, model, factory = None, None, None

    @classmethod
    def open(cls, location, writer=False, model=None, kind="auto", rebuild=False, **options):
        """Open ``location`` to read, or with ``writer`` to write (``model`` required; ``rebuild`` empties
        it first). Reading a location that holds no index raises ``IndexNotFoundError``."""
        raise NotImplementedError

    def live(self):
        """{path: {"pos", "size", "mtime_ns", "camera", "timestamp", "track"}} of the rows not deleted."""
        raise NotImplementedError

    def add(self, entries, metas, vectors):
        """Append one batch (``entries``: {"path", "size", "mtime_ns"}; ``metas``: ImageMeta; ``vectors``
        [len, d] unit rows), durable when this returns."""
        raise NotImplementedError

    def delete(self, positions):
        raise NotImplementedError

    def vectors(self, positions):
        """The stored vectors [len, d] of ``positions``."""
        raise NotImplementedError

    def finish(self):
        """After the last batch: whatever the engine builds once per run (a FAISS file, compaction); True
        when it wrote anything."""
        return False

    def search(self, queries, k, flt):
        """(cosine distances [Q, k], positions [Q, k]) of the rows passing ``flt`` (a
        :class:`~.metadata.Filter`), nearest first; -1 past the rows that pass. Exact top-k where the
        index is exact; never fewer than min(k, rows passing)."""
        raise NotImplementedError

    def row(self, pos):
        """{"path", "camera", "timestamp", "track"} of a position returned by ``search``."""
        raise NotImplementedError

    def cameras(self):
        """The cameras of the rows not deleted."""
        raise NotImplementedError

    def close(self):
        pass

    def check_model(self, identity):
        """Refuse features from a model other than the one that built the index."""
        if identity["fingerprint"] == self.model["fingerprint"] and int(identity["dim"]) == int(self.model["dim"]):
            return
        raise IndexMismatchError(
            f"index {self.location} was built by another model ({self.model['model']}, fingerprint "
            f"{self.model['fingerprint']}, {self.model['dim']}-d), not by {identity['model']} (fingerprint "
            f"{identity['fingerprint']}, {identity['dim']}-d): query it with the model that built it, or index "
            "the gallery again with this model (--rebuild, or another --index)")

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def engine_of(location):
    scheme = location.split("://", 1)[0].lower() if "://" in location else ""
    if scheme not in ENGINES:
        raise IndexMismatchError(f"--index {location}: unknown scheme {scheme}://, expected a folder or "
                                 + ", ".join(f"{s}://" for s in ENGINES if s))
    module, name = ENGINES[scheme].split(":")
    return getattr(importlib.import_module(module), name)


def open_backend(location, writer=False, model=None, kind="auto", rebuild=False, **options):
    """The engine that ``location`` names, opened (see :meth:`SearchBackend.open`)."""
    return engine_of(location).open(location, writer=writer, model=model, kind=kind, rebuild=rebuild, **options)
