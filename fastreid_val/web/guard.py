"""The checks every request to a page of the project passes before it reaches the page's routes.

* **Host** (DNS rebinding): a web page the user visits can point its own name at 127.0.0.1 and then read
  and write the local server as if it were its own site; the browser sends that name in the Host header.
  Only the loopback names, the address the server listens on and names given with ``--allow-host`` are
  served; anything else is refused with 403 and one log line.
* **Origin**: a request that carries one (every POST from a browser does) must come from a page of this
  server (an allowed name and this server's port).
* **Body**: at most ``max_body`` bytes (413, by ``Content-Length`` before reading, and while reading a
  chunked body), each part within ``body_timeout`` seconds (408): a client that announces more than it
  sends cannot hold the request.
* **Every answer** gets ``X-Content-Type-Options: nosniff`` (a file is never run as a page because of its
  contents), ``Cache-Control: no-store``, no framing and no referrer; every refusal and every defect is a
  JSON answer ``{"error": ...}``, never a dropped connection.
"""
import asyncio
import ipaddress
import json
import logging
from typing import Iterable, Sequence
from urllib.parse import urlsplit

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.responses import JSONResponse

logger = logging.getLogger(__name__)

__all__ = ["allowed_hosts", "host_name", "local_app", "Guard"]

LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")
SECURITY_HEADERS = (
    (b"x-content-type-options", b"nosniff"),
    (b"cache-control", b"no-store"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    # The pages are static files with their script and style inline; nothing is loaded from elsewhere.
    (b"content-security-policy", b"default-src 'self'; img-src 'self' blob: data:; style-src 'self' 'unsafe-inline'; "
                                 b"script-src 'self' 'unsafe-inline'; frame-ancestors 'none'; form-action 'self'"),
)


def allowed_hosts(listen_host: str, extra: Iterable[str] = ()) -> frozenset:
    """The names a request's Host header may give: the loopback names, ``listen_host`` unless it is a
    wildcard (0.0.0.0, ::), and ``extra`` (``--allow-host``: the name or address other machines use)."""
    names = set(LOOPBACK_NAMES) | {host_name(h) for h in extra if h}
    try:
        wildcard = ipaddress.ip_address(listen_host.strip("[]")).is_unspecified
    except ValueError:
        wildcard = False
    if listen_host and not wildcard:
        names.add(host_name(listen_host))
    return frozenset(names)


def host_name(host: str) -> str:
    """The name of a Host header or an address, without its port or IPv6 brackets, lower case."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[1:].split("]", 1)[0]
    if host.count(":") == 1:  # name:port (an IPv6 address without brackets has several colons)
        return host.split(":", 1)[0]
    return host


def _json(status: int, error: str):
    body = json.dumps({"error": error}).encode()
    return status, [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())], body


class Guard:
    """ASGI middleware: the checks of this module's docstring, in front of the app."""

    def __init__(self, app, hosts: Sequence[str], max_body: int = 64 * 1024, body_timeout: float = 10.0):
        self.app, self.hosts = app, frozenset(hosts)
        self.max_body, self.body_timeout = max_body, body_timeout

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = {}
        for k, v in scope["headers"]:
            headers.setdefault(k.decode("latin-1"), v.decode("latin-1"))
        refusal = self._refusal(scope, headers)
        if refusal is not None:
            return await self._answer(send, *refusal)
        length = headers.get("content-length", "")
        if length.isdigit() and int(length) > self.max_body:
            return await self._answer(send, *_json(413, f"the request body is larger than {self.max_body} bytes"))

        received = 0

        async def limited_receive():
            nonlocal received
            try:
                message = await asyncio.wait_for(receive(), self.body_timeout)
            except asyncio.TimeoutError:
                raise HTTPException(408, f"the request body did not arrive within {self.body_timeout:g} s") from None
            received += len(message.get("body", b""))
            if received > self.max_body:
                raise HTTPException(413, f"the request body is larger than {self.max_body} bytes")
            return message

        started = False

        async def secured_send(message):
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                names = {k.lower() for k, _ in message.get("headers", [])}
                extra = [(k, v) for k, v in SECURITY_HEADERS if k not in names]
                message = dict(message, headers=[*message.get("headers", []), *extra])
            await send(message)

        try:
            await self.app(scope, limited_receive, secured_send)
        except Exception as e:  # noqa: BLE001  (a defect: answered, logged in one line, the server goes on)
            logger.error("%s %s failed: %s: %s", scope["method"], scope["path"], type(e).__name__, e)
            if not started:
                await self._answer(send, *_json(500, f"the server failed ({type(e).__name__}); see its console"))

    def _refusal(self, scope, headers):
        host = headers.get("host", "")
        if host_name(host) not in self.hosts:
            return self._refuse(scope, f"Host {host!r} is not a name of this server")
        origin = headers.get("origin")
        if origin is not None:
            parts = urlsplit(origin)
            port = scope["server"][1] if scope.get("server") else None
            try:
                origin_port = parts.port or {"http": 80, "https": 443}.get(parts.scheme)
            except ValueError:
                origin_port = None
            if parts.scheme not in ("http", "https") or host_name(parts.hostname or "") not in self.hosts or \
                    origin_port != port:
                return self._refuse(scope, f"Origin {origin!r} is not a page of this server")
        return None

    def _refuse(self, scope, why):
        logger.warning("refused %s %s: %s (allowed names: %s; --allow-host NAME adds one)", scope["method"],
                       scope["path"], why, ", ".join(sorted(self.hosts)))
        return _json(403, f"{why}; this server answers only to {', '.join(sorted(self.hosts))}")

    @staticmethod
    async def _answer(send, status, headers, body):
        await send({"type": "http.response.start", "status": status, "headers": [*headers, *SECURITY_HEADERS]})
        await send({"type": "http.response.body", "body": body})


async def _http_error(request, exc: HTTPException):
    return JSONResponse({"error": exc.detail}, status_code=exc.status_code, headers=exc.headers)


def local_app(routes, hosts: Sequence[str], max_body: int = 64 * 1024, body_timeout: float = 10.0) -> Starlette:
    """A Starlette app of ``routes`` behind :class:`Guard`; HTTP errors (404, 405, 400 ...) and defects
    (500, logged in one line) are answered as JSON ``{"error": ...}``."""
    return Starlette(routes=routes,
                     middleware=[Middleware(Guard, hosts=hosts, max_body=max_body, body_timeout=body_timeout)],
                     exception_handlers={HTTPException: _http_error})
