"""The project's one web layer: every page it serves (the annotation page, the search page) is a
Starlette app built by :func:`local_app` and served by :class:`LocalServer` (uvicorn), so each of them gets
the same checks, written and tested once:

* :mod:`.guard`: the Host and Origin headers (DNS rebinding), a request body cap, a body read timeout,
  ``nosniff`` and the other response headers, a JSON answer for every refusal or defect;
* :mod:`.body`: strict JSON (no NaN/Infinity, bounded nesting, exact types) and field checks;
* :mod:`.images`: an image answered with the content type its decoding gives, never its file name's, and
  an upload (multipart, python-multipart) accepted only if it decodes;
* :mod:`.server`: uvicorn on 127.0.0.1 by default, with timeouts for idle and slow clients.
"""
from .body import BadRequest, bool_field, int_field, parse_json, read_json, str_field
from .guard import allowed_hosts, local_app
from .images import decoded_image, image_form, image_response, image_type, image_upload
from .server import LocalServer

__all__ = ["BadRequest", "bool_field", "int_field", "parse_json", "read_json", "str_field", "allowed_hosts",
           "local_app", "decoded_image", "image_form", "image_response", "image_type", "image_upload", "LocalServer"]
