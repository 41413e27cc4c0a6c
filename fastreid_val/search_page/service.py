"""What the search page asks of an index, without HTTP: a summary, a page of indexed images, an indexed
image's thumbnail, and a search for an indexed image (by its row) or for an uploaded one, under filters.

The index is read once when the service opens (its rows, cameras and time span); an index written to
afterwards is seen after a restart. Images are named by their row (the index's position of the image);
no request names a file. Searches run one at a time (a model and a FAISS index are shared by every
request; two cores gain nothing from running two at once).
"""
import io
import os
import threading
from dataclasses import dataclass
from typing import Optional, Sequence

from PIL import Image, ImageOps

from ..deploy.images import veri_identity
from ..deploy.search import format_time, query_filter
from ..web import decoded_image

__all__ = ["SearchRequest", "SearchService", "THUMBNAIL"]

THUMBNAIL = 256  # longest side, in pixels, of an image the page is sent (a smaller one is sent as it is)


@dataclass(frozen=True)
class SearchRequest:
    """One search's options, as :func:`~fastreid_val.deploy.search.query_filter` takes them."""
    k: int = 10
    exclude_same_camera: bool = False
    query_camera: Optional[str] = None   # the query's camera; a row's own camera when not given
    cameras: Optional[Sequence[str]] = None
    since: Optional[float] = None
    until: Optional[float] = None


class SearchService:
    """``backend`` (an open :class:`~fastreid_val.deploy.backend.SearchBackend`) searched with ``embedder``
    (the model that built it: another one is refused)."""

    def __init__(self, backend, embedder, location=""):
        backend.check_model(embedder.identity())
        self.backend, self.embedder, self.location = backend, embedder, location or backend.location
        live = backend.live()
        self.rows = {r["pos"]: {"path": p, "camera": r["camera"], "timestamp": r["timestamp"]} for p, r in live.items()}
        self.order = sorted(self.rows)
        self.cameras = sorted({r["camera"] for r in self.rows.values() if r["camera"] is not None})
        times = [r["timestamp"] for r in self.rows.values() if r["timestamp"] is not None]
        self.span = (min(times), max(times)) if times else (None, None)
        self.lock = threading.Lock()

    @property
    def last_row(self):
        """The largest row number (-1 for an empty index); rows of deleted images are not found."""
        return self.order[-1] if self.order else -1

    def summary(self):
        return {"index": os.path.basename(os.path.normpath(self.location)) or self.location,
                "images": len(self.rows), "last_row": self.last_row, "cameras": self.cameras,
                "since": format_time(self.span[0]) or None, "until": format_time(self.span[1]) or None,
                "model": self.embedder.description, "dim": self.embedder.dim, "kind": self.backend.factory,
                "camera_embedding": self.embedder.takes_camera}

    def listing(self, start=0, count=24):
        """The indexed images from the ``start``-th (in row order), ``count`` of them."""
        rows = self.order[start:start + count]
        return {"start": start, "total": len(self.order), "rows": [self.describe(r) for r in rows]}

    def describe(self, row):
        r = self.rows[row]
        return {"row": row, "name": os.path.basename(r["path"]), "camera": r["camera"],
                "time": format_time(r["timestamp"]) or None, "timestamp": r["timestamp"]}

    def thumbnail(self, row):
        """(bytes, content type) of row ``row``'s image, at most :data:`THUMBNAIL` pixels a side, or
        (None, why) when there is no such row or its file does not decode."""
        if row not in self.rows:
            return None, f"no indexed image has row {row} (rows 0..{self.last_row}, deleted ones excluded)"
        data, content_type, why = decoded_image(self.rows[row]["path"])
        if data is None:
            return None, f"the image of row {row} cannot be shown: {why}"
        with Image.open(io.BytesIO(data)) as image:
            if max(image.size) <= THUMBNAIL:
                return data, content_type
            small = ImageOps.exif_transpose(image).convert("RGB")
            small.thumbnail((THUMBNAIL, THUMBNAIL))
        out = io.BytesIO()
        small.save(out, format="JPEG", quality=90)
        return out.getvalue(), "image/jpeg"

    def search_row(self, row, request: SearchRequest):
        """The nearest indexed images to row ``row``'s (its stored vector: embedded with its own camera where
        the model takes one). KeyError when there is no such row."""
        if row not in self.rows:
            raise KeyError(row)
        camera = request.query_camera or self.rows[row]["camera"]
        flt = self._filter(f"row {row}", request, camera)
        with self.lock:
            vector = self.backend.vectors([row])
            result = self._search(vector, request.k, flt)
        return {"query": {**self.describe(row), "camera": camera}, **result}

    def search_image(self, data: bytes, request: SearchRequest):
        """The nearest indexed images to an uploaded image (bytes that decode; the web layer checked them),
        embedded with ``query_camera`` where the model takes a camera (none: unknown, :mod:`~fastreid_val.
        deploy.cameras`)."""
        flt = self._filter("the uploaded image", request, request.query_camera)
        with Image.open(io.BytesIO(data)) as image:  # as FastReID's read_image reads a file
            image = ImageOps.exif_transpose(image).convert("RGB")
        with self.lock:
            camids = self.embedder.model_cameras([request.query_camera], "query") if self.embedder.takes_camera \
                else None
            vector = self.embedder.embed_images([image], camids)
            result = self._search(vector, request.k, flt)
        query = {"row": None, "name": "upload", "camera": request.query_camera,
                 "embedded_with_camera": None if camids is None else camids[0]}
        return {"query": query, **result}

    def _filter(self, name, request, camera):
        return query_filter(name, request.exclude_same_camera, camera, request.cameras, request.since,
                            request.until, known_cameras=self.cameras)

    def _search(self, vector, k, flt):
        distances, rows = self.backend.search(vector, k, flt)
        for row in rows[0]:
            if row >= 0 and int(row) not in self.rows:  # added to a shared index (Milvus) since the service opened
                r = self.backend.row(int(row))
                self.rows[int(row)] = {"path": r["path"], "camera": r["camera"], "timestamp": r["timestamp"]}
        results = [{"rank": rank, **self.describe(int(row)), "distance": float(d),
                    "identity": veri_identity(self.rows[int(row)]["path"])}
                   for rank, (d, row) in enumerate(zip(distances[0], rows[0]), start=1) if row >= 0]
        return {"filter": flt.describe(), "results": results}
