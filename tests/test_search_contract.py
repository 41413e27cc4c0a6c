"""One contract, every search engine: FAISS (an index folder) and Milvus (a real Milvus Lite server started
here on 127.0.0.1, no mock). Where both are exact they return the same top-k as a naive float64 reference
under every filter; re-indexing embeds only new images and deletes the ones gone; another model, or a
collection of another dimension, is refused; an unreachable Milvus stops in one line naming the URI."""
import os
import socket
import uuid
import zlib

import numpy as np
import pytest

from fastreid_val.deploy.backend import open_backend
from fastreid_val.deploy.embedder import Embedder
from fastreid_val.deploy.images import list_images
from fastreid_val.deploy.search import query_index, update_index
from fastreid_val.errors import IndexMismatchError

from .conftest import run_tool
from .test_search_index import FILTERS, MODEL, gallery, naive
from .test_search_ingest import make_gallery


@pytest.fixture(scope="module")
def milvus(tmp_path_factory):
    """A Milvus Lite server on a free port of 127.0.0.1: its address HOST:PORT."""
    pytest.importorskip("pymilvus", reason="make install installs pymilvus and milvus-lite (the test extra)")
    from fastreid_val.deploy.milvus_lite import milvus_lite_server

    with milvus_lite_server(tmp_path_factory.mktemp("milvus")) as address:
        yield address


@pytest.fixture(params=["faiss", "milvus"])
def location(request, tmp_path):
    if request.param == "faiss":
        return str(tmp_path / "index")
    return f"milvus://{request.getfixturevalue('milvus')}/c{uuid.uuid4().hex[:12]}"


class Hashed(Embedder):
    """Features from the file name alone (no model): a seeded random unit vector per name."""

    def __init__(self, fingerprint="hashed", dim=16):
        self.dim, self.fingerprint, self.description = dim, fingerprint, f"hashed {fingerprint}"
        self.embedded = []

    def embed(self, paths, batch_size=32, progress=False, desc=""):
        self.embedded += list(paths)
        out = np.stack([np.random.default_rng(zlib.crc32(os.path.basename(p).encode())).standard_normal(self.dim)
                        for p in paths]).astype(np.float32) if paths else np.zeros((0, self.dim), np.float32)
        return out / np.linalg.norm(out, axis=1, keepdims=True)


def test_exact_top_k_under_every_filter(location):
    x, entries, metas = gallery(600)
    with open_backend(location, writer=True, model=MODEL, kind="exact") as b:
        for s in range(0, 600, 200):
            b.add(entries[s:s + 200], metas[s:s + 200], x[s:s + 200])
        b.finish()
    queries = x[::53] + 0.05
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    with open_backend(location) as b:
        for name, flt in FILTERS.items():
            truth, _ = naive(queries, x, metas, flt)
            dist, rows = b.search(queries, 10, flt)
            np.testing.assert_array_equal(rows[:, :truth.shape[1]], truth, err_msg=name)
            assert (rows[:, truth.shape[1]:] == -1).all(), name
            sims = np.take_along_axis(queries.astype(np.float64) @ x.T.astype(np.float64), truth, 1)
            np.testing.assert_allclose(dist[:, :truth.shape[1]], 1 - sims, atol=1e-5)
            if truth.shape[1]:  # (the time window passes none of 600 images: all -1)
                assert b.row(int(rows[0, 0]))["camera"] == metas[rows[0, 0]].camera


def test_reindexing_embeds_only_new_images_and_deletes_the_ones_gone(location, tmp_path):
    folder = make_gallery(tmp_path / "gallery", 24)
    images = list_images(folder)
    embedder = Hashed()
    up = update_index(embedder, images[:20], location, commit_every=8)
    assert (up.total, up.new, up.removed) == (20, 20, 0) and len(embedder.embedded) == 20
    embedder.embedded.clear()
    up = update_index(embedder, images[4:], location, commit_every=8)
    assert (up.total, up.new, up.removed) == (20, 4, 4) and sorted(embedder.embedded) == images[20:]
    with open_backend(location) as b:
        assert sorted(b.live()) == images[4:]
    results = query_index(embedder, location, images[:6], top_k=3, exclude_same_camera=True)
    assert all(len(r.matches) == 3 and all(m.camera != os.path.basename(r.path).split("_")[1] for m in r.matches)
               for r in results)
    first = query_index(embedder, location, images[10:12], top_k=1)
    assert [r.matches[0].path for r in first] == images[10:12]  # each image finds itself first
    assert first[0].matches[0].distance < 1e-5


def test_another_model_or_dimension_is_refused(location, tmp_path):
    images = list_images(make_gallery(tmp_path / "gallery", 6))
    update_index(Hashed("A"), images, location)
    for other in (Hashed("B"), Hashed("A", dim=8)):
        for call in (lambda: update_index(other, images, location), lambda: query_index(other, location, images[:1])):
            with pytest.raises(IndexMismatchError, match=r"was built by another model \(hashed A, fingerprint A, "
                                                         r"16-d\).*--rebuild"):
                call()
    assert update_index(Hashed("A", dim=8), images, location, rebuild=True).new == 6


def test_an_unreachable_milvus_is_one_line_naming_it(tmp_path, capsys):
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    query = make_gallery(tmp_path / "q", 1)
    code, _, err = run_tool("search", ["--weights", "model.onnx", "--index", f"milvus://127.0.0.1:{port}/gallery",
                                       "--query", query], capsys)
    assert code == 2 and err.strip().splitlines() == [
        f"error: Milvus at milvus://127.0.0.1:{port}/gallery cannot be reached (Fail connecting to server on "
        f"127.0.0.1:{port}, illegal connection params or server unavailable): start it, or check --index"]
