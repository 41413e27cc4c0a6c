"""The FAISS file of an index folder is written streamed (fastreid_val/deploy/faiss_files.py): the same
bytes FAISS serializes, the SHA-256 of those bytes, and a failed write raises and leaves no file."""
import errno
import hashlib
import os

import numpy as np
import pytest

faiss = pytest.importorskip("faiss")

from fastreid_val.deploy import faiss_files  # noqa: E402


def index(n=2000, dim=64):
    x = np.random.default_rng(0).standard_normal((n, dim)).astype(np.float32)
    built = faiss.index_factory(dim, "HNSW8,Flat", faiss.METRIC_INNER_PRODUCT)
    built.add(x)
    return built


def test_the_file_is_faiss_own_bytes_and_its_hash(tmp_path, monkeypatch):
    monkeypatch.setattr(faiss_files, "WRITE_BLOCK", 4096)  # many blocks: the hash spans them all
    built = index()
    name, sha = faiss_files.write_faiss(str(tmp_path), built)
    assert faiss_files._FAISS_NAME.fullmatch(name)
    data = (tmp_path / name).read_bytes()
    assert data == faiss.serialize_index(built).tobytes()
    assert sha == hashlib.sha256(data).hexdigest()
    assert os.listdir(tmp_path) == [name]


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
