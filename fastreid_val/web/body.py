"""Strict JSON request bodies: what a page's API accepts, and a 400 with the reason for anything else.

Python's ``json`` module alone accepts ``NaN``, ``Infinity`` and ``1e400`` (an infinite float), recurses
once per nesting level (a body of ten thousand ``[`` ends in a RecursionError), keeps the last of two equal
keys, and leaves types to the caller (``0.9``, ``"0"`` and ``true`` all pass an ``int(...)``). Here: finite
numbers only, at most :data:`MAX_DEPTH` levels, no repeated key, an object at the top, and every field read
with its exact type and range.
"""
import json
import math
from typing import Optional

from starlette.exceptions import HTTPException

__all__ = ["BadRequest", "MAX_DEPTH", "parse_json", "read_json", "int_field", "str_field", "bool_field"]

MAX_DEPTH = 8


class BadRequest(HTTPException):
    """400, with the reason as the answer's ``error``."""

    def __init__(self, reason: str):
        super().__init__(400, f"bad request: {reason}")


def _depth(text: str) -> int:
    """The deepest nesting of arrays and objects in ``text`` (brackets inside strings do not count)."""
    depth = deepest = 0
    in_string = escaped = False
    for ch in text:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif ch in "]}":
            depth -= 1
    return deepest


def _no_constant(name):
    raise ValueError(f"{name} is not a JSON number")


def _finite(text):
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text} is not a finite number")
    return value


def _unique(pairs):
    out = {}
    for k, v in pairs:
        if k in out:
            raise ValueError(f"key {k!r} appears twice")
        out[k] = v
    return out


def parse_json(raw: bytes) -> dict:
    """The object in ``raw`` (empty: ``{}``), or :class:`BadRequest` saying what is wrong with it."""
    if not raw.strip():
        return {}
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise BadRequest("the body is not UTF-8") from None
    if _depth(text) > MAX_DEPTH:
        raise BadRequest(f"the JSON is nested deeper than {MAX_DEPTH} levels")
    try:
        value = json.loads(text, parse_constant=_no_constant, parse_float=_finite, object_pairs_hook=_unique)
    except ValueError as e:  # JSONDecodeError, the hooks' refusals, an integer of more than 4300 digits
        raise BadRequest(f"not valid JSON ({str(e)[:200]})") from None
    if not isinstance(value, dict):
        raise BadRequest(f"expected a JSON object, got {type(value).__name__}")
    return value


async def read_json(request) -> dict:
    """The request's body as :func:`parse_json` reads it; 415 when it is not sent as ``application/json``
    (which a page of another site cannot send without the browser asking first)."""
    if request.headers.get("content-type", "").split(";")[0].strip().lower() != "application/json":
        raise HTTPException(415, "send JSON (Content-Type: application/json)")
    return parse_json(await request.body())


def _shown(value) -> str:
    text = json.dumps(value)
    return text if len(text) <= 40 else text[:37] + "..."


def int_field(body: dict, name: str, low: int, high: int, default: Optional[int] = None) -> int:
    """``body[name]``, an integer (not a bool, not a float) in ``low..high``."""
    if name not in body:
        if default is not None:
            return default
        raise BadRequest(f"{name} is missing")
    value = body[name]
    if type(value) is not int or not low <= value <= high:
        raise BadRequest(f"{name} must be an integer in {low}..{high}, got {_shown(value)}")
    return value


def str_field(body: dict, name: str, max_length: int, default: str = "") -> str:
    """``body[name]``, a string of at most ``max_length`` characters (``default`` when absent)."""
    value = body.get(name, default)
    if not isinstance(value, str) or len(value) > max_length:
        raise BadRequest(f"{name} must be a string of at most {max_length} characters, got {_shown(value)}")
    return value


def bool_field(body: dict, name: str, default: bool = False) -> bool:
    """``body[name]``, ``true`` or ``false`` (not 0, 1 or a string); ``default`` when absent."""
    value = body.get(name, default)
    if type(value) is not bool:
        raise BadRequest(f"{name} must be true or false, got {_shown(value)}")
    return value
