"""The rows of a FAISS search index on disk: one SQLite table (WAL mode) holding, per indexed image, its
path, size and modification time, its metadata (camera, timestamp, track), its feature vector and a
checksum tying them together, plus a key/value table naming the model and the FAISS file.

Why SQLite holds the vectors: an indexing batch is one transaction, so a batch is on disk whole (its
metadata and vectors, row for row) or not at all, whenever the process is killed. The FAISS file is a
derived copy of the rows' vectors (a graph for HNSW, cells for IVF) covering the first ``faiss_rows``
rows; rows committed after it was written are added to it when the index is opened.

Checks on open (:meth:`Catalog.verify`): the tables' columns and types, every value's type, vectors of
``dim`` float32, dense positions 0..n-1, each row's checksum over its metadata and vector, and a digest
of the checksums of the rows the FAISS file covers (so a FAISS file of other rows, or rows reordered,
are refused). A failure names the file and stops with one line.

Shape legend: n rows (deleted ones included until compaction), d feature dimension.
"""
import hashlib
import os
import sqlite3

import numpy as np

from ..errors import IndexMismatchError

__all__ = ["Catalog", "CATALOG", "FORMAT", "row_checksum"]

CATALOG = "catalog.sqlite"
FORMAT = "2"  # 1: index.json + vectors-<id>.faiss (no metadata)
_COLUMNS = [("pos", "INTEGER"), ("path", "TEXT"), ("size", "INTEGER"), ("mtime_ns", "INTEGER"), ("camera", "TEXT"),
            ("timestamp", "REAL"), ("track", "TEXT"), ("deleted", "INTEGER"), ("checksum", "TEXT"), ("vector", "BLOB")]
_SCHEMA = """
CREATE TABLE info (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE images (pos INTEGER PRIMARY KEY, path TEXT NOT NULL, size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL,
                     camera TEXT, timestamp REAL, track TEXT, deleted INTEGER NOT NULL, checksum TEXT NOT NULL,
                     vector BLOB NOT NULL);
CREATE UNIQUE INDEX live_path ON images(path) WHERE deleted = 0;
"""
_INFO_KEYS = ("format", "fingerprint", "dim", "model", "factory", "faiss_file", "faiss_rows", "faiss_sha", "faiss_digest")
_TYPES = ("typeof(path) != 'text' OR typeof(size) != 'integer' OR typeof(mtime_ns) != 'integer' OR "
          "typeof(camera) NOT IN ('text', 'null') OR typeof(timestamp) NOT IN ('real', 'null') OR "
          "typeof(track) NOT IN ('text', 'null') OR deleted NOT IN (0, 1) OR typeof(checksum) != 'text' OR "
          "typeof(vector) != 'blob' OR length(vector) != ?")


def row_checksum(path, size, mtime_ns, camera, timestamp, track, vector_bytes):
    h = hashlib.blake2b(digest_size=8)
    h.update(repr((path, size, mtime_ns, camera, timestamp, track)).encode())
    h.update(vector_bytes)
    return h.hexdigest()


def digest(checksums):
    h = hashlib.blake2b(digest_size=16)
    for c in checksums:
        h.update(c.encode())
    return h.hexdigest()


class Catalog:
    """The SQLite file of an index folder. ``rows`` after :meth:`read`: a dict of column -> list/array,
    in position order; ``info``: the key/value table."""

    def __init__(self, folder, create=False):
        self.folder, self.path = folder, os.path.join(folder, CATALOG)
        try:
            uri = f"file:{self.path}?mode={'rwc' if create else 'rw'}"
            self.db = sqlite3.connect(uri, uri=True, isolation_level=None, timeout=30)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=NORMAL" if not create else "PRAGMA synchronous=FULL")
        except sqlite3.Error as e:
            raise self.refused(e) from None

    def refused(self, error):
        return IndexMismatchError(f"search index file {self.path} cannot be read ({error}): index the gallery again "
                                  "with --rebuild")

    def close(self):
        self.db.close()

    def reset(self, model, factory):
        """Empty the catalog for ``model`` (a new index, or ``--rebuild``): one transaction, so a kill
        leaves the old rows or the empty catalog, never a mix."""
        with self.transaction():
            for table in ("images", "info", "kept"):
                self.db.execute(f"DROP TABLE IF EXISTS {table}")
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    self.db.execute(statement)
            info = {"format": FORMAT, "fingerprint": model["fingerprint"], "dim": str(model["dim"]),
                    "model": model["model"], "factory": factory, "faiss_file": "", "faiss_rows": "0",
                    "faiss_sha": "", "faiss_digest": digest([])}
            self.db.executemany("INSERT INTO info VALUES (?, ?)", info.items())

    def transaction(self):
        """One write transaction (``BEGIN IMMEDIATE``): committed whole or rolled back."""
        return _Transaction(self.db, "BEGIN IMMEDIATE")

    def snapshot(self):
        """One read transaction: every read inside sees the same committed state (WAL)."""
        return _Transaction(self.db, "BEGIN")

    # Reading and checking.

    def read_info(self):
        try:
            tables = {r[0] for r in self.db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            if tables != {"info", "images"}:
                raise ValueError(f"tables {sorted(tables)}, expected info and images")
            columns = [(r[1], r[2]) for r in self.db.execute("PRAGMA table_info(images)")]
            if columns != _COLUMNS:
                raise ValueError(f"images has columns {columns}, expected {_COLUMNS}")
            info = dict(self.db.execute("SELECT key, value FROM info"))
            missing = [k for k in _INFO_KEYS if k not in info]
            if missing:
                raise ValueError(f"info lacks {', '.join(missing)}")
            if info["format"] != FORMAT:
                raise ValueError(f"format {info['format']!r}, this version reads {FORMAT}")
            info["dim"], info["faiss_rows"] = int(info["dim"]), int(info["faiss_rows"])
        except (sqlite3.Error, ValueError) as e:
            raise self.refused(e) from None
        return info

    def read(self, dim, start=0):
        """Rows from position ``start`` on, each checked (types, dense positions, checksums): a dict of
        column -> list, and ``vectors`` [n, d] float32."""
        try:
            bad = self.db.execute(f"SELECT pos FROM images WHERE pos >= ? AND ({_TYPES}) LIMIT 1",
                                  (start, 4 * dim)).fetchone()
            if bad is not None:
                raise ValueError(f"row {bad[0]} has a value of the wrong type or a vector that is not {dim} float32")
            count = self.db.execute("SELECT count(*) FROM images WHERE pos >= ?", (start,)).fetchone()[0]
            cursor = self.db.execute("SELECT pos, path, size, mtime_ns, camera, timestamp, track, deleted, checksum, "
                                     "vector FROM images WHERE pos >= ? ORDER BY pos", (start,))
            rows = {k: [] for k, _ in _COLUMNS if k != "vector"}
            vectors = np.empty((count, dim), np.float32)  # filled in place: one copy of the vectors in memory
            for expected, r in enumerate(cursor, start=start):
                if expected - start == count:
                    raise ValueError(f"more rows than the {count} counted")
                if r[0] != expected:
                    raise ValueError(f"positions jump from {expected - 1} to {r[0]}")
                if row_checksum(*r[1:7], r[9]) != r[8]:
                    raise ValueError(f"row {r[0]} ({r[1]}) does not match its checksum: its metadata and vector "
                                     "were not written together")
                for (k, _), v in zip(_COLUMNS, r):
                    if k != "vector":
                        rows[k].append(v)
                vectors[expected - start] = np.frombuffer(r[9], dtype=np.float32)
            if len(rows["pos"]) != count:
                raise ValueError(f"{len(rows['pos'])} rows read of the {count} counted")
        except (sqlite3.Error, ValueError) as e:
            raise self.refused(e) from None
        rows["vectors"] = vectors
        return rows

    # Writing: each call is one transaction.

    def add(self, start, entries, metas, vectors):
        """Rows ``start``.. for ``entries`` ({"path", "size", "mtime_ns"}) with their ImageMeta and vectors
        [len, d]: one transaction."""
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        rows = []
        for i, (e, m) in enumerate(zip(entries, metas)):
            blob = vectors[i].tobytes()
            fields = (e["path"], e["size"], e["mtime_ns"], m.camera, m.timestamp, m.track)
            rows.append((start + i, *fields, 0, row_checksum(*fields, blob), blob))
        with self.transaction():
            self.db.executemany("INSERT INTO images VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
        return [r[-2] for r in rows]

    def delete(self, positions):
        """Tombstones: the rows stay (the FAISS file keeps their vectors) until compaction."""
        with self.transaction():
            self.db.executemany("UPDATE images SET deleted = 1 WHERE pos = ?", [(int(p),) for p in positions])

    def compact(self):
        """Drop deleted rows and renumber the rest 0..n-1 in order; the FAISS file no longer matches, so
        it is forgotten in the same transaction (the next open builds it from the rows)."""
        with self.transaction():
            self.db.execute("CREATE TABLE kept AS SELECT * FROM images WHERE deleted = 0 ORDER BY pos")
            self.db.execute("DELETE FROM images")
            self.db.execute("INSERT INTO images SELECT row_number() OVER (ORDER BY pos) - 1, path, size, mtime_ns, "
                            "camera, timestamp, track, deleted, checksum, vector FROM kept")
            self.db.execute("DROP TABLE kept")
            self.set_info(faiss_file="", faiss_rows="0", faiss_sha="", faiss_digest=digest([]))

    def set_info(self, **values):
        self.db.executemany("UPDATE info SET value = ? WHERE key = ?", [(str(v), k) for k, v in values.items()])


class _Transaction:
    def __init__(self, db, begin):
        self.db, self.begin = db, begin

    def __enter__(self):
        self.db.execute(self.begin)
        return self.db

    def __exit__(self, kind, value, tb):
        self.db.execute("COMMIT" if kind is None else "ROLLBACK")
