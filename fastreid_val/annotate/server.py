"""The annotation page over HTTP, with the standard library's server: the page itself, its state as JSON,
the picked images (by their index in the pick, never an arbitrary path), and the answers.

    GET  /              the page (page.html, no build step)
    GET  /api/state     what to show: the current image, progress, skipped images, the last answer
    GET  /image/<i>     image i of the pick
    POST /api/answer    {"index": i, "viewpoint": v}   v in 0..V-1, or -1 for "cannot tell"
    POST /api/undo      {}
    POST /api/bad       {"index": i, "reason": "..."}  the browser could not show image i

POSTs must be JSON (``Content-Type: application/json``), which a page of another site cannot send
without the browser asking first.
"""
import errno
import json
import logging
import mimetypes
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources

from ..errors import ServerAddressError
from .session import AnnotationSession, StaleAnswer

logger = logging.getLogger(__name__)

__all__ = ["page_html", "make_server"]


def page_html() -> bytes:
    """The page, a static file of this package (package data)."""
    return resources.files(__package__).joinpath("page.html").read_bytes()


class _Handler(BaseHTTPRequestHandler):
    session: AnnotationSession  # set on the subclass make_server builds

    def log_message(self, fmt, *args):  # the console stays for what the user needs to read
        logger.debug("%s " + fmt, self.address_string(), *args)

    def _send(self, status, body: bytes, content_type: str):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)

    def _json(self, obj, status=HTTPStatus.OK):
        self._send(status, json.dumps(obj).encode(), "application/json")

    def do_GET(self):
        if self.path in ("/", "/index.html"):
            return self._send(HTTPStatus.OK, page_html(), "text/html; charset=utf-8")
        if self.path == "/api/state":
            return self._json(self.session.state())
        if self.path.startswith("/image/"):
            try:
                path = self.session.image_path(int(self.path[len("/image/"):]))
            except ValueError:
                path = None
            if path is None:
                return self._json({"error": "no such image"}, HTTPStatus.NOT_FOUND)
            try:
                with open(path, "rb") as f:
                    body = f.read()
            except OSError as e:
                return self._json({"error": f"cannot read {path}: {e.strerror}"}, HTTPStatus.NOT_FOUND)
            return self._send(HTTPStatus.OK, body, mimetypes.guess_type(path)[0] or "application/octet-stream")
        return self._json({"error": "not found"}, HTTPStatus.NOT_FOUND)

    def do_POST(self):
        if self.headers.get("Content-Type", "").split(";")[0].strip() != "application/json":
            return self._json({"error": "send JSON"}, HTTPStatus.UNSUPPORTED_MEDIA_TYPE)
        try:
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
            if self.path == "/api/answer":
                return self._json(self.session.answer(int(body["index"]), int(body["viewpoint"])))
            if self.path == "/api/undo":
                return self._json(self.session.undo())
            if self.path == "/api/bad":
                return self._json(self.session.mark_bad(int(body["index"]), str(body.get("reason", ""))))
        except StaleAnswer as e:
            return self._json({"error": str(e), "state": self.session.state()}, HTTPStatus.CONFLICT)
        except (ValueError, KeyError, TypeError) as e:
            return self._json({"error": f"bad request: {e}"}, HTTPStatus.BAD_REQUEST)
        return self._json({"error": "not found"}, HTTPStatus.NOT_FOUND)


def make_server(session: AnnotationSession, host: str = "127.0.0.1", port: int = 8765) -> ThreadingHTTPServer:
    """A server bound to ``host:port`` (port 0: any free one), not yet serving."""
    handler = type("AnnotationHandler", (_Handler,), {"session": session})
    try:
        return ThreadingHTTPServer((host, port), handler)
    except OSError as e:
        why = "the port is in use" if e.errno == errno.EADDRINUSE else (e.strerror or str(e))
        raise ServerAddressError(f"cannot listen on {host}:{port}: {why}; choose another --port or --host") from None
