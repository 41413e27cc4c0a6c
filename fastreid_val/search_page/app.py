"""A search page from the command line's choices: open the index and the model, build the server."""
from typing import Sequence

from ..deploy.backend import open_backend
from ..deploy.embedder import open_embedder
from .server import MAX_UPLOAD, make_server
from .service import SearchService

__all__ = ["start"]


def start(index: str, weights: str, config_file: str = "", opts: Sequence[str] = (), host: str = "127.0.0.1",
          port: int = 8766, allow_hosts: Sequence[str] = (), max_upload: int = MAX_UPLOAD):
    """Open ``index`` (refused when it does not exist or another model built it), load the model, and bind
    the page's server to ``host:port``. Returns (service, server, url); ``server.serve_forever()`` serves
    it, and the caller closes ``service.backend`` at the end."""
    backend = open_backend(index)  # before the model: a wrong --index stops at once
    try:
        service = SearchService(backend, open_embedder(weights, config_file, opts), index)
        server = make_server(service, host, port, allow_hosts, max_upload)
    except BaseException:
        backend.close()
        raise
    return service, server, server.url
