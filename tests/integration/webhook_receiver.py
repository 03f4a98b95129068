"""A commerce platform's webhook endpoint for tests: a real FastAPI app served by uvicorn on
127.0.0.1, verifying each webhook's HMAC signature and timestamp the way a platform would (its own
code, not erpbridge's), and keeping what it accepted.

``answers`` lets a test make the next requests fail (``(429, {"Retry-After": "7"})``, ``(400,
{})``); a webhook with a bad signature is answered 401 and recorded in ``refused``. Each accepted
webhook gets an id (``wh-<n>``); a repeated ``Idempotency-Key`` gets the id its first one got, as
a platform that honours the header answers.
"""

from __future__ import annotations

import hashlib
import hmac
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from httpserve import serve_app

__all__ = ["Receiver", "receiving"]


@dataclass
class Receiver:
    """What the platform received; ``url`` is its webhook endpoint."""

    secret: str
    url: str = ""
    accepted: list[dict[str, Any]] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)
    answers: list[tuple[int, dict[str, str]]] = field(default_factory=list)
    ids: dict[str, str] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def events(self, event: str | None = None) -> list[dict[str, Any]]:
        """Every accepted record (a batch body counts as its records), oldest first."""
        with self.lock:
            found: list[dict[str, Any]] = []
            for body in self.accepted:
                items = body.get("records", [body])
                found += [
                    {"event": body["event"], **item}
                    for item in items
                    if event is None or body["event"] == event
                ]
            return found

    def by_key(self, event: str) -> dict[str, dict[str, Any]]:
        """The latest accepted ``data`` per record key of ``event``."""
        return {item["key"]: item["data"] for item in self.events(event)}

    def clear(self) -> None:
        """Forget what was received (a test's next phase)."""
        with self.lock:
            self.accepted.clear()
            self.headers.clear()
            self.refused.clear()
            self.ids.clear()


def _app(receiver: Receiver) -> FastAPI:
    app = FastAPI()

    @app.post("/hooks/erpbridge")
    async def hook(request: Request) -> JSONResponse:
        body = await request.body()
        stamp = request.headers.get("X-Timestamp", "")
        given = request.headers.get("X-Signature", "")
        expected = (
            "sha256="
            + hmac.new(
                receiver.secret.encode(), stamp.encode() + b"." + body, hashlib.sha256
            ).hexdigest()
        )
        if not stamp.isdigit() or abs(time.time() - int(stamp)) > 300:
            receiver.refused.append(f"stale or missing timestamp {stamp!r}")
            return JSONResponse({"error": "stale"}, status_code=401)
        if not hmac.compare_digest(given, expected):
            receiver.refused.append("bad signature")
            return JSONResponse({"error": "bad signature"}, status_code=401)
        with receiver.lock:
            if receiver.answers:
                status, headers = receiver.answers.pop(0)
                return JSONResponse({"error": f"told to answer {status}"}, status, headers)
            data = orjson.loads(body)
            receiver.accepted.append(data)
            receiver.headers.append(dict(request.headers))
            given_id = f"wh-{len(receiver.accepted)}"
            key = request.headers.get("Idempotency-Key")
            if key is not None:
                given_id = receiver.ids.setdefault(key, given_id)
        return JSONResponse({"id": given_id, "received": True})

    return app


@contextmanager
def receiving(secret: str) -> Iterator[Receiver]:
    """A running receiver for the length of the block."""
    receiver = Receiver(secret)
    with serve_app(_app(receiver), access_log=False) as served:
        receiver.url = f"{served.url}/hooks/erpbridge"
        yield receiver
