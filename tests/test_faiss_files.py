"""The FAISS file of an index folder (fastreid_val/deploy/faiss_files.py): written streamed, the bytes
FAISS serializes (an HNSW graph without its vectors, which the catalog holds) and their SHA-256, a failed
write leaving no file; read back, a graph searches the catalog's vectors as the built index did (its
own rows of them, where the catalog has gone on), a file of an earlier version (the graph with its
vectors) still reads, and a graph with links outside its nodes is refused."""
import errno
import hashlib
import os

import numpy as np
import pytest

faiss = pytest.importorskip("faiss")

from fastreid_val.deploy import faiss_files  # noqa: E402


N, DIM = 2000, 64
ROWS = np.random.default_rng(0).standard_normal((N, DIM)).astype(np.float32)  # the catalog's vectors


def index(factory="HNSW8,Flat"):
    built = faiss.index_factory(DIM, factory, faiss.METRIC_INNER_PRODUCT)
    built.add(ROWS)
    return built


def serialized(built, flags=0):
    writer = faiss.VectorIOWriter()
    faiss.write_index(built, writer, flags)
    return faiss.vector_to_array(writer.data).tobytes()


def test_the_file_is_faiss_own_bytes_and_its_hash(tmp_path, monkeypatch):
    monkeypatch.setattr(faiss_files, "WRITE_BLOCK", 4096)  # many blocks: the hash spans them all
    built = index()
    name, sha = faiss_files.write_faiss(str(tmp_path), built)
    assert faiss_files._FAISS_NAME.fullmatch(name)
    data = (tmp_path / name).read_bytes()
    assert data == serialized(built, faiss.IO_FLAG_SKIP_STORAGE)
    assert len(serialized(built)) - len(data) >= ROWS.nbytes  # the graph alone: no vector in the file
    assert sha == hashlib.sha256(data).hexdigest()
    assert os.listdir(tmp_path) == [name]


def written(folder, built, whole=False):
    """``built`` written into ``folder`` (``whole``: with its vectors, as an earlier version wrote a
    graph) and the catalog's summary of it."""
    from fastreid_val.deploy.catalog import digest

    if whole:
        data = serialized(built)
        name, sha = "index-0123456789ab.faiss", hashlib.sha256(data).hexdigest()
        (folder / name).write_bytes(data)
    else:
        name, sha = faiss_files.write_faiss(str(folder), built)
    checksums = [f"row{i}" for i in range(built.ntotal)]
    return dict(faiss_file=name, faiss_sha=sha, faiss_rows=built.ntotal, dim=DIM,
                faiss_digest=digest([sha] + checksums)), checksums


@pytest.mark.parametrize("factory,whole,holds", [("HNSW8,Flat", False, False), ("HNSW8,Flat", True, True),
                                                 ("Flat", False, True)])
def test_a_file_reads_back_into_the_index_that_was_written(tmp_path, factory, whole, holds):
    built = index(factory)
    info, checksums = written(tmp_path, built, whole)
    read, holds_vectors = faiss_files.read_faiss(str(tmp_path), info, checksums, ROWS)
    assert holds_vectors == holds  # a graph alone searches the rows it is given: the catalog's
    queries = ROWS[:50] + 0.1
    for a, b in zip(read.search(queries, 10), built.search(queries, 10)):
        np.testing.assert_array_equal(a, b)


def test_a_graph_takes_its_own_rows_of_a_catalog_that_went_on(tmp_path):
    """Rows committed after the file was written (a writer killed before it finished): the graph reads
    back with the rows it was built on, and the rest are the caller's to add."""
    info, checksums = written(tmp_path, index())
    more = np.concatenate([ROWS, ROWS[:300] + 1.0])
    read, _ = faiss_files.read_faiss(str(tmp_path), info, checksums + ["late"] * 300, more)
    storage = faiss.downcast_index(read.storage)
    assert read.ntotal == storage.ntotal == N
    np.testing.assert_array_equal(faiss.rev_swig_ptr(storage.get_xb(), N * DIM).reshape(N, DIM), ROWS)
    read.add(more[N:])  # as the engine adds them: the graph and its storage go on together
    assert read.ntotal == storage.ntotal == len(more)
    np.testing.assert_array_equal(storage.reconstruct_n(N, 300), more[N:])


def _link_outside(hnsw):
    links = faiss.vector_to_array(hnsw.neighbors)
    links[7] = N
    faiss.copy_array_to_vector(links, hnsw.neighbors)


def _level_raised(hnsw):
    levels = faiss.vector_to_array(hnsw.levels)
    levels[3] += 1
    faiss.copy_array_to_vector(levels, hnsw.levels)


FORGED = {"a link to a node past the last": (_link_outside, r"neighbors\[7\] = 2000 out of range"),
          "a level without its lists": (_level_raised, "offsets not increasing"),
          "the entry point past the last node": (lambda h: setattr(h, "entry_point", N), "entry_point 2000 out of range")}


@pytest.mark.parametrize("case", list(FORGED))
def test_a_forged_graph_is_refused_in_one_line_naming_the_file(tmp_path, case):
    """A graph written with a hash that matches (as a tool would forge it) is refused as FAISS reads it,
    before any search walks it."""
    from fastreid_val.errors import IndexMismatchError

    built = index()
    forge, message = FORGED[case]
    forge(built.hnsw)
    info, checksums = written(tmp_path, built)
    with pytest.raises(IndexMismatchError, match=r"index-[0-9a-f]{12}\.faiss cannot be read by FAISS \(.*" + message) as e:
        faiss_files.read_faiss(str(tmp_path), info, checksums, ROWS)
    assert "\n" not in str(e.value) and "--rebuild" in str(e.value)


class _FillsUp:
    """A file that takes 10,000 bytes and then reports a full disk."""

    def __init__(self, f):
        self.f, self.written = f, 0

    def write(self, data):
        if self.written > 10_000:
            raise OSError(errno.ENOSPC, "No space left on device")
        self.written += len(data)
        return self.f.write(data)


def test_a_failed_write_raises_and_leaves_no_file(tmp_path, monkeypatch):
    monkeypatch.setattr(faiss_files, "WRITE_BLOCK", 4096)
    real = faiss_files.atomic_write
    monkeypatch.setattr(faiss_files, "atomic_write", lambda path, write: real(path, lambda f: write(_FillsUp(f))))
    with pytest.raises(OSError) as failed:  # raised from inside FAISS's write, through its callback
        faiss_files.write_faiss(str(tmp_path), index())
    assert failed.value.errno == errno.ENOSPC
    assert os.listdir(tmp_path) == []  # neither the index file nor the temporary one
