"""A page's app served by uvicorn on one address, in the foreground or in a thread.

uvicorn runs one event loop: an idle connection costs a socket, not a thread, and the page's blocking work
(decoding an image, writing a file) runs in Starlette's thread pool. Limits on top of uvicorn's own
(HTTP/1.1 parsed by h11, headers capped at 16 KB, 400 for a malformed request):

* a connection must send a whole request head within ``header_timeout`` seconds of opening (or of its
  last answer), and an idle keep-alive connection is closed after ``idle_timeout``;
* at most ``max_connections`` at once (uvicorn answers 503 beyond);
* the body's size and timeout are :class:`~fastreid_val.web.guard.Guard`'s.
"""
import errno
import signal
import socket
import threading
import time

import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from ..errors import ServerAddressError

__all__ = ["LocalServer"]


class _DeadlineProtocol(H11Protocol):
    """uvicorn's h11 protocol, with a deadline for the request head: uvicorn closes a connection that sits
    idle after an answer, but not one that opens and sends nothing, or a byte at a time."""

    header_timeout = 10.0  # set per server by LocalServer

    def connection_made(self, transport):
        super().connection_made(transport)
        self._arm_deadline()

    def _arm_deadline(self):
        self._head_deadline = self.loop.call_later(self.header_timeout, self._head_too_slow)

    def _head_too_slow(self):
        if self.cycle is None or self.cycle.response_complete:  # still waiting for a request head
            self.timeout_keep_alive_handler()

    def data_received(self, data):
        super().data_received(data)
        if self.cycle is not None and not self.cycle.response_complete:  # a whole head arrived
            self._head_deadline.cancel()

    def on_response_complete(self):
        self._head_deadline.cancel()
        super().on_response_complete()
        if not self.transport.is_closing():
            self._arm_deadline()

    def connection_lost(self, exc):
        self._head_deadline.cancel()
        super().connection_lost(exc)


class LocalServer:
    """``app`` bound to ``host:port`` (port 0: any free one) as soon as it is made, so a taken port is
    reported before anything else starts; :meth:`serve_forever` or :meth:`start` serve it."""

    def __init__(self, app, host: str = "127.0.0.1", port: int = 0, *, idle_timeout: float = 5.0,
                 header_timeout: float = 10.0, max_connections: int = 64):
        self.host = host
        self._sock = _bind(host, port)
        protocol = type("Protocol", (_DeadlineProtocol,), {"header_timeout": header_timeout})
        config = uvicorn.Config(app, http=protocol, ws="none", lifespan="off", log_config=None, access_log=False,
                                timeout_keep_alive=idle_timeout, limit_concurrency=max_connections,
                                timeout_graceful_shutdown=2)
        self._server = uvicorn.Server(config)
        self._thread = None

    @property
    def server_address(self):
        return self._sock.getsockname()[:2]

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.server_address[1]}/"

    def serve_forever(self):
        """Serve until Ctrl-C or SIGTERM (in the main thread) or :meth:`shutdown`, then return, so that the
        caller's clean-up runs. uvicorn shuts down gracefully on either signal and then raises it again
        with the handler that was there before: KeyboardInterrupt for Ctrl-C, and for SIGTERM the one set
        here, which ends the wait the same way."""
        in_main = threading.current_thread() is threading.main_thread()
        previous = signal.getsignal(signal.SIGTERM)
        try:
            if in_main:
                signal.signal(signal.SIGTERM, _terminated)
            self._server.run(sockets=[self._sock])
        except (KeyboardInterrupt, _Terminated):  # also when it came before uvicorn took the signals over
            pass
        finally:
            if in_main:
                signal.signal(signal.SIGTERM, previous)

    def start(self) -> "LocalServer":
        """Serve in a daemon thread; returns once the server answers."""
        self._thread = threading.Thread(target=self.serve_forever, daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 30
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"the server on {self.url} did not start")
            time.sleep(0.01)
        return self

    def shutdown(self):
        self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=30)

    def server_close(self):
        self._sock.close()


class _Terminated(Exception):
    """SIGTERM, raised again by uvicorn once it has shut down."""


def _terminated(signum, frame):
    raise _Terminated()


def _bind(host: str, port: int) -> socket.socket:
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
        sock = socket.socket(family, kind, proto)
    except OSError as e:
        raise ServerAddressError(f"cannot listen on {host}:{port}: {e.strerror or e}; choose another --port or "
                                 "--host") from None
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # a restart right after a stop
        sock.bind(address)
        sock.listen(128)
    except OSError as e:
        sock.close()
        why = "the port is in use" if e.errno == errno.EADDRINUSE else (e.strerror or str(e))
        raise ServerAddressError(f"cannot listen on {host}:{port}: {why}; choose another --port or --host") from None
    sock.setblocking(False)
    return sock
