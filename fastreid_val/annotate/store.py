"""The hand-label CSV as the annotation page writes it: ``path,viewpoint`` rows in the order answered,
rewritten whole and atomically after every answer, by one writer at a time.

A viewpoint is ``0..V-1`` (V=2: 0 front, 1 rear) or -1 for "cannot tell" (``labeller.files.CANNOT_TELL``):
that row tells a resumed annotation the image was answered, and ``tools/label_viewpoints.py`` leaves it
out. The file is what ``tools/label_viewpoints.py --labelled`` reads.
"""
import csv
import fcntl
import io
import os
from typing import List, Tuple

from ..atomic import atomic_write
from ..errors import AnnotationError, AnnotationLockedError, OutputDirError
from ..labeller.files import read_labelled_csv

__all__ = ["LabelStore"]


class LabelStore:
    """The answers so far, kept in ``path``; holds ``<path>.lock`` (an advisory lock the system drops when
    the process ends, however it ends) while open, so that a second writer is refused."""

    def __init__(self, path: str, num_viewpoints: int = 2):
        self.path = os.path.realpath(path)  # a symlinked --output: the file it points to, and its lock
        self.num_viewpoints = num_viewpoints
        folder = os.path.dirname(self.path)
        if os.path.isdir(self.path) or not os.path.isdir(folder) or not os.access(folder, os.W_OK):
            raise OutputDirError(f"cannot write {path}: it is a folder, or folder {folder} does not exist or is "
                                 "not writable")
        self._lock = self._take_lock(path)
        self._lock.seek(0)
        self._lock.truncate()
        self._lock.write(f"process {os.getpid()}\n")
        self._lock.flush()
        self.rows: List[Tuple[str, int]] = []
        try:
            if os.path.exists(self.path):
                self.rows = read_labelled_csv(self.path, num_viewpoints, keep_cannot_tell=True)
                self._check_unique()
        except BaseException:
            self.close()
            raise

    def _check_unique(self):
        seen = set()
        for p, _ in self.rows:
            if p in seen:
                raise AnnotationError(f"{self.path}: {p} is answered twice; keep one of its rows")
            seen.add(p)

    def answered(self) -> dict:
        return dict(self.rows)

    def answer(self, path: str, viewpoint: int) -> None:
        if not (0 <= viewpoint < self.num_viewpoints or viewpoint == -1):
            raise ValueError(f"viewpoint {viewpoint} is not in 0..{self.num_viewpoints - 1} or -1")
        if path in self.answered():
            raise ValueError(f"{path} is answered already")
        self.rows.append((path, viewpoint))
        self._write()

    def undo(self):
        """Removes the last answer and returns it, or None when there is none."""
        if not self.rows:
            return None
        last = self.rows.pop()
        self._write()
        return last

    def _write(self):
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(["path", "viewpoint"])
        w.writerows(self.rows)
        atomic_write(self.path, lambda f: f.write(buf.getvalue().encode()))

    def _take_lock(self, path: str):
        """Open and lock ``<path>.lock``. The holder removes that file while it still holds the lock (see
        ``close``), so a lock taken on a file that is no longer the one at that path (opened just before the
        removal) is let go and taken again on the file that is there now."""
        while True:
            lock = open(self.path + ".lock", "a+")
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                lock.seek(0)
                holder = lock.read().strip() or "another process"
                lock.close()
                raise AnnotationLockedError(f"{path} is open in another annotation ({holder}); close that one "
                                            "first, or choose another --output") from None
            try:
                current = os.stat(lock.name).st_ino
            except FileNotFoundError:
                current = None
            if current == os.fstat(lock.fileno()).st_ino:
                return lock
            lock.close()

    def close(self):
        if not self._lock.closed:
            # Removed while still locked: whoever opened it before the removal finds, once it gets the
            # lock, that the file is gone and opens the new one (``_take_lock``).
            os.remove(self._lock.name)
            self._lock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
