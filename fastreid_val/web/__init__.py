"""The project's one web layer: every page it serves (the annotation page now, the search page next) is a
Starlette app built by :func:`local_app` and served by :class:`LocalServer` (uvicorn), so each of them gets
the same checks, written and tested once:

* :mod:`.guard`: the Host and Origin headers (DNS rebinding), a request body cap, a body read timeout,
  ``nosniff`` and the other response headers, a JSON answer for every refusal or defect;
* :mod:`.body`: strict JSON (no NaN/Infinity, bounded nesting, exact types) and field checks;
* :mod:`.images`: an image answered with the content type its decoding gives, never its file name's, and
  an upload (multipart, python-multipart) accepted only if it decodes;
* :mod:`.server`: uvicorn on 127.0.0.1 by default, with timeouts for idle and slow clients.
"""
from .body import BadRequest, int_field, read_json, str_field
from .guard import allowed_hosts, local_app
from .images import decoded_image, image_response, image_type, image_upload
from .server import LocalServer

__all__ = ["BadRequest", "int_field", "read_json", "str_field", "allowed_hosts", "local_app", "decoded_image",
           "image_response", "image_type", "image_upload", "LocalServer"]
