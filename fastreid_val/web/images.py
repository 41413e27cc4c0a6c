"""An image answered by a server: its bytes as read, with the content type that decoding them gives.

A file name says nothing about what a file holds (``notes.html`` listed as an image, a PPM named ``.png``);
the browser, told ``nosniff``, shows what the content type says. So the type comes from Pillow decoding the
very bytes that are sent, and what does not decode is not sent at all.
"""
import io
from typing import Optional, Tuple

from PIL import Image
from starlette.responses import Response

__all__ = ["decoded_image", "image_response"]


def decoded_image(path: str) -> Tuple[Optional[bytes], Optional[str], str]:
    """``(data, content type, "")`` for an image file Pillow decodes, else ``(None, None, why not)``."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        return None, None, "the file does not exist"
    except OSError as e:
        return None, None, f"it cannot be read ({e.strerror or e})"
    try:
        with Image.open(io.BytesIO(data)) as img:
            img.load()
            fmt = img.format
    except Exception as e:  # noqa: BLE001  (any decoding failure means: not an image, whatever Pillow raises)
        return None, None, f"it cannot be decoded ({type(e).__name__}: {e})"
    return data, Image.MIME.get(fmt, "application/octet-stream"), ""


def image_response(data: bytes, content_type: str) -> Response:
    return Response(content=data, media_type=content_type)
