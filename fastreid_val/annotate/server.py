"""The annotation page over HTTP, on the project's web layer (:mod:`fastreid_val.web`: Host and Origin
checks, body cap, strict JSON, ``nosniff``, timeouts): the page itself, its state as JSON, the picked
images (by their index in the pick, never a path), and the answers.

    GET  /              the page (page.html, no build step)
    GET  /api/state     what to show: the current image, progress, skipped images, the last answer
    GET  /image/<i>     image i of the pick, if it decodes (content type from decoding, not the name)
    POST /api/answer    {"index": i, "viewpoint": v}   v in 0..V-1, or -1 for "cannot tell"
    POST /api/undo      {}
    POST /api/bad       {"index": i, "reason": "..."}  the browser could not show image i

POSTs must be JSON (``Content-Type: application/json``), which a page of another site cannot send
without the browser asking first; their fields have exact types (an index is an integer of the pick).
"""
from importlib import resources
from typing import Sequence

from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ..web import LocalServer, allowed_hosts, image_response, int_field, local_app, read_json, str_field
from .session import AnnotationSession, StaleAnswer

__all__ = ["page_html", "make_app", "make_server"]

MAX_BODY = 16 * 1024  # an answer is a few dozen bytes


def page_html() -> bytes:
    """The page, a static file of this package (package data)."""
    return resources.files(__package__).joinpath("page.html").read_bytes()


def make_app(session: AnnotationSession, hosts):
    """The page's routes over ``session``, behind the web layer's checks for ``hosts``."""
    last = len(session.images) - 1

    async def page(request):
        return Response(page_html(), media_type="text/html; charset=utf-8")

    async def state(request):
        return JSONResponse(await run_in_threadpool(session.state))

    async def image(request):
        index = request.path_params["index"]
        found = await run_in_threadpool(session.image, index)
        if found is None:
            raise HTTPException(404, "no such image")
        return image_response(*found)

    async def change(request, what):
        body = await read_json(request)
        try:
            if what == "answer":
                result = await run_in_threadpool(session.answer, int_field(body, "index", 0, last),
                                                 int_field(body, "viewpoint", -1, session.store.num_viewpoints - 1))
            elif what == "undo":
                result = await run_in_threadpool(session.undo)
            else:
                result = await run_in_threadpool(session.mark_bad, int_field(body, "index", 0, last),
                                                 str_field(body, "reason", 200))
        except StaleAnswer as e:
            return JSONResponse({"error": str(e), "state": await run_in_threadpool(session.state)}, status_code=409)
        return JSONResponse(result)

    async def answer(request):
        return await change(request, "answer")

    async def undo(request):
        return await change(request, "undo")

    async def bad(request):
        return await change(request, "bad")

    routes = [Route("/", page), Route("/index.html", page), Route("/api/state", state),
              Route("/image/{index:int}", image), Route("/api/answer", answer, methods=["POST"]),
              Route("/api/undo", undo, methods=["POST"]), Route("/api/bad", bad, methods=["POST"])]
    return local_app(routes, hosts, max_body=MAX_BODY)


def make_server(session: AnnotationSession, host: str = "127.0.0.1", port: int = 8765,
                allow_hosts: Sequence[str] = ()) -> LocalServer:
    """A server bound to ``host:port`` (port 0: any free one), not yet serving; it answers requests whose
    Host is a loopback name, ``host`` or one of ``allow_hosts``."""
    return LocalServer(make_app(session, allowed_hosts(host, allow_hosts)), host, port)
