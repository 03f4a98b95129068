"""Every API request counted (route template, status, latency), and a client that goes away
mid-request logged in one line instead of a traceback.

Pure ASGI (no ``BaseHTTPMiddleware``): it wraps ``send`` to see the status, and reads the route
template Starlette's router leaves in the scope (``/api/v1/runs/{run_id}``, never the raw path:
one series per route, whatever the ids). Requests no route matched count as ``unmatched``.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from erpbridge.observe import metrics

__all__ = ["RequestMetrics"]

log = logging.getLogger("erpbridge.api")


class RequestMetrics:
    """Count requests and their latency; log a client disconnect in one line."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = [500]
        responded = [False]

        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
                responded[0] = True
            await send(message)

        try:
            await self.app(scope, receive, sending)
        except ClientDisconnect:
            # The client closed the connection before its request body arrived: nothing to
            # answer, nothing failed here. One line (not uvicorn's traceback).
            status[0] = 499
            log.info(
                "client %s went away before sending its request body: %s %s",
                _client(scope),
                scope.get("method"),
                _route(scope),
            )
        finally:
            if metrics.enabled():
                route = _route(scope)
                method = str(scope.get("method", ""))
                metrics.API_REQUESTS.labels(method, route, str(status[0])).inc()
                metrics.API_SECONDS.labels(method, route).observe(time.perf_counter() - started)


def _route(scope: Scope) -> str:
    route: Any = scope.get("route")
    path = getattr(route, "path", None)
    return str(path) if path else "unmatched"


def _client(scope: Scope) -> str:
    client = scope.get("client")
    return f"{client[0]}:{client[1]}" if client else "unknown"
