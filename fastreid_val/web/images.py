"""Images in and out of a server: an image answered with the content type that decoding its bytes gives,
and an uploaded image accepted only if it decodes.

A file name says nothing about what a file holds (``notes.html`` listed as an image, a PPM named ``.png``);
the browser, told ``nosniff``, shows what the content type says. So the type comes from Pillow decoding the
very bytes that are sent, and what does not decode is not sent at all.
"""
import io
from typing import Dict, Optional, Tuple

from PIL import Image
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException
from starlette.responses import Response

__all__ = ["decoded_image", "image_type", "image_upload", "image_form", "image_response"]


def decoded_image(path: str) -> Tuple[Optional[bytes], Optional[str], str]:
    """``(data, content type, "")`` for an image file Pillow decodes, else ``(None, None, why not)``."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        return None, None, "the file does not exist"
    except OSError as e:
        return None, None, f"it cannot be read ({e.strerror or e})"
    content_type, why = image_type(data)
    return (data if content_type else None), content_type, why


def image_type(data: bytes) -> Tuple[Optional[str], str]:
    """``(content type, "")`` of image bytes Pillow decodes whole, else ``(None, why not)``."""
    try:
        with Image.open(io.BytesIO(data)) as img:
            img.load()
            fmt = img.format
    except Exception as e:  # noqa: BLE001  (any decoding failure means: not an image, whatever Pillow raises)
        return None, f"it cannot be decoded ({type(e).__name__}: {e})"
    return Image.MIME.get(fmt, "application/octet-stream"), ""


async def image_upload(request, field: str = "image") -> Tuple[bytes, str]:
    """The image sent as the multipart field ``field`` (Starlette's multipart parser, python-multipart):
    ``(bytes, content type from decoding)``; 415 for a body that is not multipart, 400 for a malformed one,
    a missing field, more than one file, or a file that does not decode as an image. The body's size is
    the app's cap (:class:`~fastreid_val.web.guard.Guard`)."""
    data, content_type, _ = await image_form(request, field)
    return data, content_type


async def image_form(request, field: str = "image") -> Tuple[bytes, str, Dict[str, str]]:
    """:func:`image_upload`, with the form's text fields besides: ``(bytes, content type, {name: text})``."""
    if not request.headers.get("content-type", "").lower().startswith("multipart/form-data"):
        raise HTTPException(415, f"send the image as multipart/form-data, field {field!r}")
    async with request.form(max_files=1, max_fields=16) as form:
        upload = form.get(field)
        if not isinstance(upload, UploadFile):
            raise HTTPException(400, f"bad request: no file in the field {field!r}")
        data = await upload.read()
        texts = {k: v for k, v in form.multi_items() if isinstance(v, str)}
    content_type, why = image_type(data)
    if content_type is None:
        raise HTTPException(400, f"bad request: the upload is not an image: {why[:200]}")
    return data, content_type, texts


def image_response(data: bytes, content_type: str) -> Response:
    return Response(content=data, media_type=content_type)
