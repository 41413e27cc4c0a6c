"""Every file the project writes for a user, written whole or not at all, and read back only whole.

Writers: :func:`atomic_write` (bytes from a callback), :func:`write_text`, :func:`write_json`. The content
goes to a temporary file in the same folder (``.tmp-<pid>-<random>-<name>``), which is synced and renamed
over the file in one step: a kill at any moment leaves the old file or the new one, never an empty or a
half-written one. A failure that the process sees (an exception, Ctrl-C) removes the temporary file; one
it cannot see (``kill -9``, a power cut) leaves it, and the next write of that file removes the
temporaries of processes that are gone. Append-only logs (``metrics.json``, the progress file) are not
rewritten this way: their readers skip a torn last line instead.

Reader: :func:`read_json` refuses an empty or cut-short file with one line, so that such a file (written
by an earlier version, or by another program) is never taken for a result.
"""
import errno
import json
import os
import re
import tempfile

from .errors import OutputFileError

__all__ = ["atomic_write", "write_text", "write_json", "write_figure", "read_json", "stale_temporaries"]

_TEMPORARY = re.compile(r"\.tmp-(\d+)-[^-]+-(.+)")


def atomic_write(path, write):
    """Write ``path`` whole or not at all: ``write(f)`` fills a temporary file in the same folder,
    which is synced and renamed into place. A failure (or a kill) leaves the old file as it was."""
    path = os.fspath(path)
    folder, name = os.path.split(path)
    folder = folder or "."
    for stale in stale_temporaries(folder, name):
        try:
            os.remove(stale)
        except OSError:
            pass  # removed by another writer meanwhile, or not ours to remove: it is only clutter
    fd, tmp = tempfile.mkstemp(prefix=f".tmp-{os.getpid()}-", suffix=f"-{name}", dir=folder)
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


def write_text(path, text: str):
    atomic_write(path, lambda f: f.write(text.encode("utf-8")))


def write_json(path, obj, indent=1):
    write_text(path, json.dumps(obj, indent=indent) + "\n")


def write_figure(path, fig, dpi=120):
    """A matplotlib figure as a PNG file, whole or not at all."""
    atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=dpi))


def stale_temporaries(folder, name):
    """The temporary files of writes of ``folder/name`` by processes that no longer run."""
    try:
        entries = os.listdir(folder)
    except OSError:
        return []
    out = []
    for entry in entries:
        m = _TEMPORARY.fullmatch(entry)
        if m and m.group(2) == name and int(m.group(1)) != os.getpid() and not _alive(int(m.group(1))):
            out.append(os.path.join(folder, entry))
    return out


def _alive(pid):
    try:
        os.kill(pid, 0)
    except OSError as e:
        return e.errno == errno.EPERM  # it exists, under another user
    return True


def read_json(path, what="file"):
    """The JSON value in ``path``; an empty, cut-short or otherwise malformed file stops with one line
    (:class:`~fastreid_val.errors.OutputFileError`) instead of being taken for a result."""
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except OSError as e:
        raise OutputFileError(f"{what} {path} cannot be read ({e.strerror or e})") from None
    if not raw.strip():
        raise OutputFileError(f"{what} {path} is empty (a run stopped while writing it?): delete it, or the "
                              "run's folder, and run again")
    try:
        return json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as e:
        raise OutputFileError(f"{what} {path} is cut short or malformed ({type(e).__name__}: "
                              f"{str(e).splitlines()[0][:120]}): delete it, or the run's folder, and run again") from None


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask
