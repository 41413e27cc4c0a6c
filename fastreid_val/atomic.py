"""Atomic file writing, used by the checkpointer, the export, the search index and the pictures."""
import os
import tempfile

__all__ = ["atomic_write"]


def atomic_write(path, write):
    """Write ``path`` whole or not at all: ``write(f)`` fills a temporary file in the same folder,
    which is synced and renamed into place. A failure (or a kill) leaves the old file as it was."""
    folder = os.path.dirname(path) or "."
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=os.path.basename(path), dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp's 0600 -> the mode open() would have given
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask
