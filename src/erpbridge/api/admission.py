"""Overload: an API process works on at most ``hub.api.max_pending_events`` event and webhook
requests at once; one more is answered at once with 503 ``overloaded`` and ``Retry-After``.

Without a bound, requests beyond what the store can commit queue inside the server for seconds
(until the sender times out and sends again, adding to the queue); with it, what is accepted
is answered within the time a few group commits take, throughput stays at capacity, and the
sender learns at once to come back later. Nothing of a refused request is read or stored.
"""

from __future__ import annotations

import orjson
from starlette.types import ASGIApp, Receive, Scope, Send

__all__ = ["EVENT_PATHS", "EventAdmission"]

#: The routes the bound applies to: inbound events and webhooks.
EVENT_PATHS = ("/api/v1/events/", "/hooks/")

#: Seconds a refused sender is asked to wait.
RETRY_AFTER_S = 1


class EventAdmission:
    """Pure ASGI middleware counting the event and webhook requests in progress."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit
        #: Requests in progress; touched only by the event loop's thread.
        self.busy = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(EVENT_PATHS):
            await self.app(scope, receive, send)
            return
        if self.busy >= self.limit:
            await self._refuse(send)
            return
        self.busy += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.busy -= 1

    async def _refuse(self, send: Send) -> None:
        body = orjson.dumps(
            {
                "error": {
                    "code": "overloaded",
                    "message": f"the hub is working on {self.limit} events already "
                    f"(hub.api.max_pending_events); retry in {RETRY_AFTER_S} s",
                }
            }
        )
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"retry-after", str(RETRY_AFTER_S).encode()),
        ]
        await send({"type": "http.response.start", "status": 503, "headers": headers})
        await send({"type": "http.response.body", "body": body})
