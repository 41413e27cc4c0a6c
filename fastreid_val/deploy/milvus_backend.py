"""The Milvus engine: ``--index milvus://HOST:PORT/COLLECTION`` keeps the rows of :mod:`.backend` in a
Milvus collection, through ``pymilvus``'s ``MilvusClient`` (one client; the address picks a local Milvus
Lite server or a cluster), so that a gallery can outgrow one machine.

The collection: ``pos`` (INT64 primary key, the position search returns), ``path``, ``size``,
``mtime_ns``, ``camera``, ``timestamp``, ``track`` (nullable where the metadata is optional) and
``vector`` (FLOAT_VECTOR of the model's dimension), with the model that computed the vectors in the
collection property ``fastreid_val.model``. Its vector index, over the inner product of unit vectors:
``HNSW`` (M 32, efConstruction 64; the default and ``--kind hnsw``), ``FLAT`` (``--kind exact``) or
``IVF_FLAT`` (``--kind ivf``), chosen when the collection is created (``--rebuild`` creates it again).
Filters are Milvus boolean expressions over the same fields, evaluated by Milvus inside the search.
Deletions are Milvus deletes; compaction is Milvus's own.
"""
import json
import logging
import re

import numpy as np

from ..errors import IndexMismatchError, IndexNotFoundError, IndexUnreachableError
from .backend import SearchBackend
from .faiss_kinds import EF_SEARCH, default_nlist, default_nprobe

__all__ = ["MilvusBackend", "filter_expression"]

# pymilvus's query iterator warns on every call that Milvus Lite gives it no MVCC timestamp (it then uses
# the client's clock, which is what a single reader needs): kept off the tool's one-line stderr.
logging.getLogger("pymilvus.client.iterator.query_iterator").setLevel(logging.ERROR)

PROPERTY = "fastreid_val.model"
_LOCATION = re.compile(r"milvus://([^/:\s]+):(\d+)/([A-Za-z_][A-Za-z0-9_]*)")
_KINDS = {"auto": "HNSW", "hnsw": "HNSW", "exact": "FLAT", "ivf": "IVF_FLAT"}
_FIELDS = ("pos", "path", "size", "mtime_ns", "camera", "timestamp", "track")


def filter_expression(flt):
    """The Milvus expression of a :class:`~.metadata.Filter` ("" for none); the same semantics as FAISS's
    mask: an image without a camera passes ``exclude_camera``, one without a time fails a time bound."""
    parts = []
    if flt.exclude_camera is not None:
        parts.append(f"(camera is null or camera != {json.dumps(flt.exclude_camera)})")
    if flt.cameras is not None:
        parts.append(f"camera in {json.dumps(sorted(flt.cameras))}")
    if flt.since is not None:
        parts.append(f"timestamp >= {flt.since!r}")
    if flt.until is not None:
        parts.append(f"timestamp <= {flt.until!r}")
    return " and ".join(parts)


class MilvusBackend(SearchBackend):

    def __init__(self, location, client, name, model, index_type):
        self.location, self.client, self.name, self.model = location, client, name, model
        self.factory = f"Milvus {index_type}"
        self.index_type, self.ef_search, self.nprobe = index_type, EF_SEARCH, None
        self._rows, self._changed = {}, False
        self.next_pos = 1 + max((r["pos"] for r in self.live().values()), default=-1)

    @classmethod
    def open(cls, location, writer=False, model=None, kind="auto", rebuild=False, nlist=None, nprobe=None,
             ef_search=None):
        from pymilvus import MilvusClient
        from pymilvus.exceptions import MilvusException

        match = _LOCATION.fullmatch(location)
        if not match:
            raise IndexMismatchError(f"--index {location}: expected milvus://HOST:PORT/COLLECTION (a collection name "
                                     "of letters, digits and _, not starting with a digit)")
        host, port, name = match.groups()
        uri = f"http://{host}:{port}"
        try:
            client = MilvusClient(uri=uri, timeout=10)
            exists = client.has_collection(name)
        except MilvusException as e:
            raise IndexUnreachableError(f"Milvus at {location} cannot be reached ({e.message}): start it, or check "
                                        "--index") from None
        if writer and kind not in _KINDS:
            raise IndexMismatchError(f"--kind {kind!r}: a Milvus index is auto, hnsw, exact or ivf")
        if writer and exists and rebuild:
            client.drop_collection(name)
            exists = False
        if not exists:
            if not writer:
                raise IndexNotFoundError(f"no search index in {location} (no collection {name}): build it first with "
                                         f"tools/search.py --gallery IMAGES --index {location}")
            cls._create(client, name, model, _KINDS[kind], nlist)
        stored, index_type = cls._describe(client, name, location)
        backend = cls(location, client, name, stored, index_type)
        if writer:
            backend.check_model(model)
        backend.nprobe = nprobe or backend.nprobe
        backend.ef_search = ef_search or backend.ef_search
        return backend

    @staticmethod
    def _create(client, name, model, index_type, nlist):
        from pymilvus import DataType

        schema = client.create_schema(auto_id=False)
        schema.add_field("pos", DataType.INT64, is_primary=True)
        schema.add_field("path", DataType.VARCHAR, max_length=4096)
        schema.add_field("size", DataType.INT64)
        schema.add_field("mtime_ns", DataType.INT64)
        schema.add_field("camera", DataType.VARCHAR, max_length=256, nullable=True)
        schema.add_field("timestamp", DataType.DOUBLE, nullable=True)
        schema.add_field("track", DataType.VARCHAR, max_length=256, nullable=True)
        schema.add_field("vector", DataType.FLOAT_VECTOR, dim=int(model["dim"]))
        params = {"HNSW": {"M": 32, "efConstruction": 64}, "FLAT": {},
                  "IVF_FLAT": {"nlist": nlist or default_nlist(100_000)}}[index_type]
        index = client.prepare_index_params()
        index.add_index(field_name="vector", index_type=index_type, metric_type="IP", params=params)
        client.create_collection(name, schema=schema, index_params=index,
                                 properties={PROPERTY: json.dumps({"format": "2", **model})})

    @staticmethod
    def _describe(client, name, location):
        """The stored model, checked against the collection's fields, and the vector index's type."""
        d = client.describe_collection(name)
        try:
            model = json.loads(d["properties"][PROPERTY])
            fields = {f["name"]: f for f in d["fields"]}
            dim = int(fields["vector"]["params"]["dim"])
            if set(fields) != set(_FIELDS) | {"vector"} or dim != int(model["dim"]) or model.get("format") != "2":
                raise ValueError(f"fields {sorted(fields)}, vector dimension {dim}")
            index_type = client.describe_index(name, "vector")["index_type"]
        except (KeyError, ValueError, TypeError) as e:
            raise IndexMismatchError(f"collection {name} of {location} is not a search index of this project "
                                     f"({type(e).__name__}: {e}): index the gallery again with --rebuild") from None
        return {k: model[k] for k in ("fingerprint", "dim", "model")}, index_type

    # The interface.

    def live(self):
        it = self.client.query_iterator(self.name, batch_size=4096, filter="pos >= 0", output_fields=list(_FIELDS))
        rows = {}
        try:
            while True:
                batch = it.next()
                if not batch:
                    break
                for r in batch:
                    rows[r["path"]] = {k: r[k] for k in _FIELDS if k != "path"}
                    self._rows[r["pos"]] = r
        finally:
            it.close()
        return rows

    def add(self, entries, metas, vectors):
        vectors = np.asarray(vectors, dtype=np.float32)
        rows = [{"pos": self.next_pos + i, **e, "camera": m.camera, "timestamp": m.timestamp, "track": m.track,
                 "vector": v} for i, (e, m, v) in enumerate(zip(entries, metas, vectors))]
        if rows:
            self.client.insert(self.name, rows)
            self.next_pos += len(rows)
            self._changed = True

    def delete(self, positions):
        if len(positions):
            self.client.delete(self.name, filter=f"pos in {json.dumps([int(p) for p in positions])}")
            self._changed = True

    def vectors(self, positions):
        if not len(positions):
            return np.zeros((0, int(self.model["dim"])), np.float32)
        got = self.client.query(self.name, filter=f"pos in {json.dumps([int(p) for p in positions])}",
                                output_fields=["pos", "vector"])
        by_pos = {r["pos"]: r["vector"] for r in got}
        return np.array([by_pos[int(p)] for p in positions], dtype=np.float32)

    def finish(self):
        if self._changed:
            self.client.flush(self.name)
        return self._changed

    def row(self, pos):
        if pos not in self._rows:
            self._rows.update({r["pos"]: r for r in self.client.query(self.name, filter=f"pos == {int(pos)}",
                                                                         output_fields=list(_FIELDS))})
        r = self._rows[pos]
        return {k: r[k] for k in ("path", "camera", "timestamp", "track")}

    def cameras(self):
        return {r["camera"] for r in self.live().values() if r["camera"] is not None}

    def close(self):
        self.client.close()

    def search(self, queries, k, flt):
        queries = np.asarray(queries, dtype=np.float32)
        params = {"metric_type": "IP", "params": {"HNSW": {"ef": max(self.ef_search, k)},
                                                  "IVF_FLAT": {"nprobe": self.nprobe or default_nprobe(1264)},
                                                  "FLAT": {}}.get(self.index_type, {})}
        hits = self.client.search(self.name, data=queries.tolist(), limit=k, filter=filter_expression(flt),
                                  search_params=params, output_fields=[f for f in _FIELDS if f != "pos"])
        dist = np.full((len(queries), k), 2.0, np.float32)
        rows = np.full((len(queries), k), -1, np.int64)
        for q, found in enumerate(hits):
            for j, h in enumerate(found):
                pos = int(h["pos"] if "pos" in h else h["id"])
                rows[q, j], dist[q, j] = pos, np.clip(1.0 - h["distance"], 0.0, 2.0)
                self._rows[pos] = {"pos": pos, **h["entity"]}
        return dist, rows
