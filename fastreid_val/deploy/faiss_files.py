"""The files of a FAISS index folder: the writer's lock, the FAISS file written whole under a new name,
and read only when it is the one the catalog names and was built from the catalog's rows.

An HNSW graph over flat vectors (the default index) is written without its vectors: the catalog holds
them already, so the file is the graph alone (27 MB at 100,000 x 1280-d, not 27 MB plus 512 MB of
vectors), and a read gives the graph the catalog's vectors as its storage. FAISS checks as it reads a
graph that its links lie within its nodes, so a forged graph cannot lead a search outside its arrays;
one forged with links in range is a worse graph, whose results are still ranked by the catalog's
vectors (and forging it means forging the catalog's digest too). A file that holds its vectors
(other kinds, and graphs written by earlier versions) is read whole, and its vectors are compared with
the catalog's by the caller."""
import fcntl
import hashlib
import os
import re
import uuid

from ..atomic import atomic_write
from ..errors import IndexLockedError, IndexMismatchError
from .catalog import CATALOG, digest
from .huge_pages import presize_codes

__all__ = ["LOCK", "take_writer_lock", "write_faiss", "read_faiss"]

LOCK = "writer.lock"
_FAISS_NAME = re.compile(r"index-[0-9a-f]{12}\.faiss")
READ_BLOCK = 1 << 24  # bytes read at a time from a FAISS file
WRITE_BLOCK = 1 << 24  # bytes FAISS hands over at a time while writing one


def take_writer_lock(folder, location):
    """``writer.lock`` of ``folder`` (its real path) locked for this process, or :class:`IndexLockedError`
    naming the holder; the system releases it when the process ends, however it ends."""
    lock = open(os.path.join(folder, LOCK), "a+")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        lock.seek(0)
        holder = lock.read().strip() or "another process"
        lock.close()
        raise IndexLockedError(f"index {location} is being written by another indexing run ({holder}): wait for it "
                               "to finish, or give another --index") from None
    lock.seek(0)
    lock.truncate()
    lock.write(f"process {os.getpid()}\n")
    lock.flush()
    return lock


def write_faiss(folder, index):
    """``index`` written into ``folder`` as a new ``index-<id>.faiss``, whole or not at all (an HNSW graph
    over flat vectors without them: :func:`graph_only`): its name and SHA-256. FAISS hands the file over a
    block at a time, hashed as it is written: never a second copy of the index in memory (5 GB at
    1,000,000 x 1280-d)."""
    import faiss

    flags = faiss.IO_FLAG_SKIP_STORAGE if graph_only(index) else 0

    name = f"index-{uuid.uuid4().hex[:12]}.faiss"
    sha = hashlib.sha256()

    def stream(f):
        def block(data):
            sha.update(data)
            return f.write(data)

        faiss.write_index(index, faiss.PyCallbackIOWriter(block, WRITE_BLOCK), flags)  # an error in block() is raised here

    atomic_write(os.path.join(folder, name), stream)
    return name, sha.hexdigest()


def graph_only(index):
    """Whether ``index`` is written without its vectors: an HNSW graph whose storage is flat (its rows
    are the catalog's vectors as they are)."""
    import faiss

    down = faiss.downcast_index(index)
    return isinstance(down, faiss.IndexHNSW) and down.storage is not None and \
        isinstance(faiss.downcast_index(down.storage), faiss.IndexFlat)


def read_faiss(folder, info, checksums, vectors):
    """The FAISS index ``info`` (the catalog's) names in ``folder``, checked before and after FAISS reads it:
    its name, its SHA-256, the digest tying it to the rows it was built from, its size and dimension; and
    whether its file held its own vectors (else a graph's storage is the first rows of ``vectors``, the
    catalog's)."""
    import faiss

    name = info["faiss_file"]
    path = os.path.join(folder, name)
    refuse = lambda why: IndexMismatchError(  # noqa: E731
        f"search index file {path} {why}: index the gallery again with --rebuild")
    if not _FAISS_NAME.fullmatch(name):
        raise refuse(f"is named {name!r} in {CATALOG}, not index-<id>.faiss")
    # Hashed, then read by FAISS, through one open file, a block at a time: never a second copy of the
    # index in memory (5 GB at 1,000,000 x 1280-d), and what FAISS reads is the file that was hashed.
    with open(path, "rb") as f:
        sha = hashlib.sha256()
        for block in iter(lambda: f.read(READ_BLOCK), b""):
            sha.update(block)
        if sha.hexdigest() != info["faiss_sha"]:
            raise refuse(f"is not the file {CATALOG} names (its SHA-256 differs)")
        if info["faiss_rows"] > len(checksums) or \
                digest([info["faiss_sha"]] + checksums[:info["faiss_rows"]]) != info["faiss_digest"]:
            raise refuse(f"was not built from the rows of {CATALOG} (their checksums differ)")
        f.seek(0)
        try:
            index = faiss.read_index(faiss.PyCallbackIOReader(f.read, READ_BLOCK))
        except RuntimeError as e:
            raise refuse(f"cannot be read by FAISS ({str(e).splitlines()[0]})") from None
    if index.ntotal != info["faiss_rows"] or index.d != info["dim"]:
        raise refuse(f"holds {index.ntotal} vectors of {index.d}-d, {CATALOG} says {info['faiss_rows']} of "
                     f"{info['dim']}-d")
    down = faiss.downcast_index(index)
    if not isinstance(down, faiss.IndexHNSW) or down.storage is not None:
        return index, True
    # A graph written without its storage reads back without it (FAISS wrote a "null" in its place).
    # FAISS has checked that the graph's levels, lists, entry point and links lie within its size.
    flat = faiss.IndexFlat(index.d, index.metric_type)
    presize_codes(flat, index.ntotal)  # the rows a search walks, in huge pages where the system has them
    flat.add(vectors[:index.ntotal])
    # The graph owns its storage now and frees it (FAISS's setter takes it from Python's proxy).
    down.storage, down.own_fields = flat, True
    return index, False
