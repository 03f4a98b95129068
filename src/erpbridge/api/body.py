"""Reading a request body as the hub accepts it: at most ``hub.api.max_body_mb`` bytes (413),
JSON (400 naming the place of the syntax error) nested at most :data:`MAX_JSON_DEPTH` levels.

The depth bound is below what every later step handles: orjson parses 1024 levels but writes only
254, Python's recursion limit is 1000, so a body that parsed could otherwise fail with a 500 while
it is mapped or stored. Every route that takes a body reads it through here.

Integers must fit 64 bits: orjson reads a longer one as a float, which would silently change an
id such as ``123456789012345678901234567890`` into ``1.2345678901234568e+29``; such a body is
refused (send long numbers as strings).
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import orjson
from starlette.requests import ClientDisconnect, Request

from erpbridge.api.context import ApiError
from erpbridge.api.nulchars import NUL_MESSAGE, holds_nul
from erpbridge.jsondepth import MAX_JSON_DEPTH
from erpbridge.pci import redact_card_numbers

__all__ = ["MAX_JSON_DEPTH", "json_body", "parse_json", "read_body"]

log = logging.getLogger(__name__)


async def read_body(request: Request, max_body_mb: float, timeout_s: float | None = None) -> bytes:
    """The body, refused with 413 as soon as it is known to exceed ``max_body_mb``. A client that
    disconnects before its body arrived is logged in one line and answered 499 (to nobody).

    With ``timeout_s``, a body that has not all arrived that many seconds after the request
    reached the app is refused with 408 (and the connection closed): a slow sender does not hold
    one of the process's event slots (``hub.api.max_pending_events``) for longer."""
    limit = int(max_body_mb * 1024 * 1024)
    declared = request.headers.get("content-length")
    if declared and declared.isascii() and declared.isdigit() and int(declared) > limit:
        raise ApiError(413, "too_large", f"the body exceeds {limit} bytes")
    chunks: list[bytes] = []
    size = 0

    async def read() -> None:
        nonlocal size
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise ApiError(413, "too_large", f"the body exceeds {limit} bytes")
            chunks.append(chunk)

    try:
        async with asyncio.timeout(timeout_s):
            await read()
    except TimeoutError:
        raise ApiError(
            408,
            "body_timeout",
            f"the body did not arrive within {timeout_s:g} s (hub.api.body_timeout_s); "
            f"{size} byte(s) came",
            {"Connection": "close"},
        ) from None
    except ClientDisconnect:
        # A sender that timed out and hung up: one line, not a traceback per request.
        address = request.client.host if request.client else "unknown"
        log.warning(
            "client went away: %s %s from %s after %d byte(s) of its body",
            request.method,
            redact_card_numbers(request.url.path),
            address,
            size,
        )
        raise ApiError(499, "client_gone", "the client went away before its body arrived") from None
    return b"".join(chunks)


def parse_json(body: bytes) -> Any:
    """The JSON body, or 400 naming the place of the syntax error or the nesting too deep."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise ApiError(400, "malformed_json", f"the body is not JSON: {exc}") from None
    deep, big = _survey(data, MAX_JSON_DEPTH)
    if deep:
        raise ApiError(
            400,
            "too_deep",
            f"the body nests arrays and objects more than {MAX_JSON_DEPTH} levels deep",
        )
    if big:
        _refuse_long_integers(body)
    if b"\\u0000" in body and holds_nul(data):  # raw NUL bytes are not JSON already
        raise ApiError(400, "nul_character", f"a string of the body {NUL_MESSAGE}")
    return data


async def json_body(request: Request, max_body_mb: float) -> Any:
    """:func:`read_body`, then :func:`parse_json`."""
    return parse_json(await read_body(request, max_body_mb))


def _survey(data: Any, limit: int) -> tuple[bool, bool]:
    """Whether ``data`` nests deeper than ``limit``, and whether it holds a whole float beyond
    64-bit integers (maybe an integer literal orjson could not keep)."""
    big = False
    stack: list[tuple[Any, int]] = [(data, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, dict):
            children: Any = value.values()
        elif isinstance(value, list):
            children = value
        else:
            big = big or (isinstance(value, float) and value.is_integer() and abs(value) >= _I64)
            continue
        if depth > limit:
            return True, big
        stack.extend((child, depth + 1) for child in children)
    return False, big


_I64 = 2**63
_U64_MAX = 2**64 - 1


def _refuse_long_integers(body: bytes) -> None:
    """400 when an integer literal of ``body`` does not fit 64 bits (orjson's range)."""

    def integer(text: str) -> int:
        value = int(text)
        if not -_I64 <= value <= _U64_MAX:
            raise _LongInteger(text)
        return value

    try:
        json.loads(body, parse_int=integer)
    except ValueError:  # _LongInteger, or Python's own limit of 4300 digits
        # The number itself is not echoed: it may be a card number with more around it.
        raise ApiError(
            400,
            "number_too_long",
            "an integer in the body does not fit 64 bits; send long numbers as strings",
        ) from None


class _LongInteger(ValueError):
    """An integer literal beyond 64 bits."""
