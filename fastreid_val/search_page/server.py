"""The search page over HTTP, on the project's web layer (:mod:`fastreid_val.web`: Host and Origin checks,
body cap, strict JSON, ``nosniff``, timeouts, multipart uploads that must decode). Images are named by
their index row only; no request names a file.

    GET  /                    the page (page.html, no build step)
    GET  /api/index           the index: images, last row, cameras, time span, model, kind of index
    GET  /api/rows?start=S&count=C   indexed images S..S+C-1 in row order (C at most 200): row, name,
                              camera, time
    GET  /api/image/<row>     row's image, at most 256 pixels a side (content type from decoding)
    POST /api/search          JSON {"row": N, ...filters}: the indexed image of row N as the query
    POST /api/search/upload   multipart: field "image" (a file that decodes as an image) and optional field
                              "filters" (the same filters as a JSON object)

Filters (each optional): ``k`` (1..100, default 10), ``exclude_same_camera`` (true/false; the query's
camera: ``query_camera``, else a row's own camera), ``query_camera`` (a camera name), ``cameras`` (a list
of camera names of the index), ``since`` / ``until`` (ISO-8601 or seconds since the epoch, as a string
or a number; inclusive). A search answers ``{"query": {...}, "filter": "...", "results": [{"rank", "row",
"name", "camera", "time", "timestamp", "distance", "identity"}]}`` (distance: 1 - cosine similarity).
A bad value answers 400 ``{"error": ...}`` saying which and what is expected; a row that is no indexed
image 404; an upload past the cap 413; one that is not multipart 415.
"""
from importlib import resources
from typing import Sequence

from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ..deploy.metadata import parse_time
from ..errors import MetadataError
from ..web import (BadRequest, LocalServer, allowed_hosts, bool_field, image_form, image_response, int_field,
                   local_app, parse_json, read_json, str_field)
from .service import SearchRequest, SearchService

__all__ = ["page_html", "make_app", "make_server", "search_request", "MAX_UPLOAD"]

MAX_UPLOAD = 8 * 1024 * 1024  # the body of an upload (an image of a vehicle is tens of kilobytes)
MAX_K = 100
MAX_CAMERAS = 1000
MAX_LISTED = 200


def page_html() -> bytes:
    """The page, a static file of this package (package data)."""
    return resources.files(__package__).joinpath("page.html").read_bytes()


def search_request(body: dict) -> SearchRequest:
    """The filters of a request's JSON object, each checked for its type and range (400 otherwise)."""
    known = {"row", "k", "exclude_same_camera", "query_camera", "cameras", "since", "until"}
    unknown = sorted(set(body) - known)
    if unknown:
        raise BadRequest(f"unknown field {', '.join(unknown)}; the fields are {', '.join(sorted(known))}")
    cameras = body.get("cameras")
    if cameras is not None:
        if not isinstance(cameras, list) or not 0 < len(cameras) <= MAX_CAMERAS or \
                not all(isinstance(c, str) and 0 < len(c.strip()) <= 64 for c in cameras):
            raise BadRequest(f"cameras must be a list of 1..{MAX_CAMERAS} camera names (e.g. [\"c001\", \"c005\"]), "
                             "or left out for every camera")
        cameras = [c.strip() for c in cameras]
    return SearchRequest(k=int_field(body, "k", 1, MAX_K, default=10),
                         exclude_same_camera=bool_field(body, "exclude_same_camera"),
                         query_camera=str_field(body, "query_camera", 64).strip() or None, cameras=cameras,
                         since=_time(body, "since"), until=_time(body, "until"))


def _time(body, name):
    value = body.get(name)
    if value is None or value == "":
        return None
    if type(value) in (int, float):
        return float(value)
    if not isinstance(value, str) or len(value) > 64:
        raise BadRequest(f"{name} must be a time: ISO-8601 (2018-03-11T10:46:23) or seconds since the epoch")
    try:
        return parse_time(value, name)
    except MetadataError as e:
        raise BadRequest(str(e)) from None


def make_app(service: SearchService, hosts, max_upload: int = MAX_UPLOAD):
    """The page's routes over ``service``, behind the web layer's checks for ``hosts``."""

    async def page(request):
        return Response(page_html(), media_type="text/html; charset=utf-8")

    async def index(request):
        return JSONResponse(service.summary())

    async def rows(request):
        try:
            start = int(request.query_params.get("start", "0"))
            count = int(request.query_params.get("count", "24"))
        except ValueError:
            raise BadRequest("start and count must be integers") from None
        if start < 0 or not 0 < count <= MAX_LISTED:
            raise BadRequest(f"start must be 0 or more and count in 1..{MAX_LISTED}")
        return JSONResponse(service.listing(start, count))

    async def image(request):
        data, content_type_or_why = await run_in_threadpool(service.thumbnail, request.path_params["row"])
        if data is None:
            raise HTTPException(404, content_type_or_why)
        return image_response(data, content_type_or_why)

    async def search(request):
        body = await read_json(request)
        row = int_field(body, "row", 0, max(service.last_row, 0))
        return await _answer(service.search_row, row, search_request(body))

    async def upload(request):
        data, _, fields = await image_form(request, "image")
        return await _answer(service.search_image, data, search_request(parse_json(fields.get("filters", "").encode())))

    async def _answer(method, query, options):
        try:
            return JSONResponse(await run_in_threadpool(method, query, options))
        except MetadataError as e:  # an unknown camera, --since after --until, a query camera not known
            raise BadRequest(str(e)) from None
        except KeyError:
            raise HTTPException(404, f"no indexed image has row {query} (deleted, or never indexed)") from None

    routes = [Route("/", page), Route("/index.html", page), Route("/api/index", index), Route("/api/rows", rows),
              Route("/api/image/{row:int}", image), Route("/api/search", search, methods=["POST"]),
              Route("/api/search/upload", upload, methods=["POST"])]
    return local_app(routes, hosts, max_body=max_upload)


def make_server(service: SearchService, host: str = "127.0.0.1", port: int = 8766, allow_hosts: Sequence[str] = (),
                max_upload: int = MAX_UPLOAD) -> LocalServer:
    """A server bound to ``host:port`` (port 0: any free one), not yet serving; it answers requests whose
    Host is a loopback name, ``host`` or one of ``allow_hosts``."""
    return LocalServer(make_app(service, allowed_hosts(host, allow_hosts), max_upload), host, port)
