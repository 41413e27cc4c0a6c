"""The search page (``tools/search_server.py``): an index of a gallery searched in the browser, an indexed
image or an uploaded one as the query, under the filters of ``tools/search.py``.

* :mod:`.service`: the index and the model, without HTTP (summary, listing, thumbnails, searches);
* :mod:`.server`: its routes and JSON API on the project's web layer (:mod:`fastreid_val.web`), and
  ``page.html``, the page.
"""
from .app import start
from .server import make_app, make_server, search_request
from .service import SearchRequest, SearchService

__all__ = ["start", "make_app", "make_server", "search_request", "SearchRequest", "SearchService"]
