"""One annotation: the picked images in order, the answers so far (a :class:`LabelStore`), and the
images that cannot be read, which are skipped with a note instead of leaving the page blank."""
import os
import threading
from typing import Dict, List, Optional, Sequence, Tuple

from ..labeller.report import viewpoint_names
from ..web import decoded_image
from .store import LabelStore

__all__ = ["AnnotationSession", "StaleAnswer", "unreadable"]


class StaleAnswer(Exception):
    """An answer for an image that is not the one shown now (a key pressed twice, a second tab)."""


def unreadable(path: str) -> Optional[str]:
    """Why ``path`` cannot be shown and labelled (the labeller decodes it with PIL too), or None."""
    return decoded_image(path)[2] or None


class AnnotationSession:
    """The state the page shows and changes; every change is saved before it is answered."""

    def __init__(self, images: Sequence[str], store: LabelStore):
        self.images: List[str] = [os.path.abspath(p) for p in images]
        self.store = store
        self.classes = viewpoint_names(store.num_viewpoints)
        self.bad: Dict[str, str] = {}
        self._checked = set()
        self._lock = threading.Lock()

    def _current(self) -> Optional[int]:
        answered = self.store.answered()
        for i, p in enumerate(self.images):
            if p in answered or p in self.bad:
                continue
            if p not in self._checked:
                reason = unreadable(p)
                if reason:
                    self.bad[p] = reason
                    continue
                self._checked.add(p)
            return i
        return None

    def state(self) -> dict:
        with self._lock:
            return self._state()

    def _state(self) -> dict:
        current = self._current()
        answered = self.store.answered()
        in_pick = [p for p in self.images if p in answered]
        last = self.store.rows[-1] if self.store.rows else None
        return {"classes": self.classes, "total": len(self.images), "answered": len(in_pick),
                "done": len(in_pick) + len(self.bad), "output": self.store.path,
                "skipped": [{"path": p, "reason": r} for p, r in self.bad.items()],
                "last": None if last is None else {"name": os.path.basename(last[0]), "viewpoint": last[1]},
                "current": None if current is None else {"index": current, "path": self.images[current],
                                                         "name": os.path.basename(self.images[current])}}

    def answer(self, index: int, viewpoint: int) -> dict:
        with self._lock:
            if index != self._current():
                raise StaleAnswer(f"image {index} is not the one shown now")
            self.store.answer(self.images[index], viewpoint)
            return self._state()

    def undo(self) -> dict:
        with self._lock:
            self.store.undo()
            return self._state()

    def mark_bad(self, index: int, reason: str) -> dict:
        """The browser could not show image ``index``: skip it, with ``reason`` in the note."""
        with self._lock:
            if 0 <= index < len(self.images) and self.images[index] not in self.store.answered():
                self.bad[self.images[index]] = reason[:200]
            return self._state()

    def image(self, index: int) -> Optional[Tuple[bytes, str]]:
        """Image ``index`` of the pick as ``(bytes, content type)``, or None: out of the pick, marked as not an
        image, or not decoding now (then marked, so the page skips it with the reason)."""
        if not 0 <= index < len(self.images):
            return None
        path = self.images[index]
        with self._lock:
            if path in self.bad:
                return None
        data, content_type, why = decoded_image(path)
        if data is None:
            with self._lock:
                if path not in self.store.answered():
                    self.bad.setdefault(path, why)
            return None
        return data, content_type
