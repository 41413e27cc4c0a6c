"""The files of a FAISS index folder: the writer's lock, the FAISS file written whole under a new name,
and read only when it is the one the catalog names and was built from the catalog's rows."""
import fcntl
import hashlib
import os
import re
import uuid

from ..atomic import atomic_write
from ..errors import IndexLockedError, IndexMismatchError
from .catalog import CATALOG, digest

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
    """``index`` written into ``folder`` as a new ``index-<id>.faiss``, whole or not at all: its name and
    SHA-256. FAISS hands the file over a block at a time, hashed as it is written: never a second copy
    of the index in memory (5 GB at 1,000,000 x 1280-d)."""
    import faiss

    name = f"index-{uuid.uuid4().hex[:12]}.faiss"
    sha = hashlib.sha256()

    def stream(f):
        def block(data):
            sha.update(data)
            return f.write(data)

        faiss.write_index(index, faiss.PyCallbackIOWriter(block, WRITE_BLOCK))  # an error in block() is raised here

    atomic_write(os.path.join(folder, name), stream)
    return name, sha.hexdigest()


def read_faiss(folder, info, checksums):
    """The FAISS index ``info`` (the catalog's) names in ``folder``, checked before and after FAISS reads it:
    its name, its SHA-256, the digest tying it to the rows it was built from, its size and dimension."""
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
    return index
