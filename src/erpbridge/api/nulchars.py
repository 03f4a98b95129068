"""NUL characters in a request: refused with 400 before any route sees them.

PostgreSQL text cannot hold NUL (``\\x00``): a path parameter, query value or JSON string holding
one failed deep in the store with a 500 (or a reset connection) instead of a clear refusal, and
no ERP value ever means one. The path and query are checked here (:class:`RefuseNul`); bodies in
:func:`erpbridge.api.body.parse_json` (:func:`holds_nul`).
"""

from __future__ import annotations

from typing import Any

import orjson
from starlette.types import ASGIApp, Receive, Scope, Send

__all__ = ["NUL_MESSAGE", "RefuseNul", "holds_nul"]

NUL_MESSAGE = "holds a NUL character (\\u0000 or %00), which the hub cannot store"


class RefuseNul:
    """ASGI middleware: a request whose path or query string holds NUL gets 400 in the error
    shape (inside :class:`~erpbridge.api.headers.SecurityHeaders`, which adds its headers)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and (
            "\x00" in scope["path"] or b"%00" in scope.get("query_string", b"")
        ):
            body = orjson.dumps(
                {"error": {"code": "nul_character", "message": f"the path or query {NUL_MESSAGE}"}}
            )
            headers = [
                (b"content-type", b"application/json"),
                (b"content-length", b"%d" % len(body)),
            ]
            await send({"type": "http.response.start", "status": 400, "headers": headers})
            await send({"type": "http.response.body", "body": body})
            return
        await self.app(scope, receive, send)


def holds_nul(data: Any) -> bool:
    """Whether a string of ``data`` (parsed JSON), a key or a value, holds NUL."""
    stack = [data]
    while stack:
        value = stack.pop()
        if isinstance(value, str):
            if "\x00" in value:
                return True
        elif isinstance(value, dict):
            stack.extend(value.keys())
            stack.extend(value.values())
        elif isinstance(value, list):
            stack.extend(value)
    return False
