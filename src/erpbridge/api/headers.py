"""Headers on every answer: security headers (HSTS when served over TLS) and rate-limit state.

:class:`SecurityHeaders` is plain ASGI middleware that adds them as the answer starts, so they
are on every answer that passes through the app, whoever made it (a route, a 404 or 405 of the
router, a validation error). A 500 is answered by Starlette's outermost error middleware, outside
every user middleware: its handler adds the same headers with :func:`security_headers`.
"""

from __future__ import annotations

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["SecurityHeaders", "hsts_value", "security_headers"]

_DOCS = ("/docs", "/redoc")


def security_headers(path: str, hsts: str | None) -> dict[str, str]:
    """The security headers of an answer to ``path``: nosniff, frame and referrer policies, a
    strict CSP outside the docs, no-store on the API, and ``hsts`` when given."""
    headers = {
        "X-Content-Type-Options": "nosniff",
        "X-Frame-Options": "DENY",
        "Referrer-Policy": "no-referrer",
    }
    if not path.startswith(_DOCS):
        headers["Content-Security-Policy"] = "default-src 'none'; frame-ancestors 'none'"
    if path.startswith(("/api/", "/oauth/", "/hooks/")):
        headers["Cache-Control"] = "no-store"
    if hsts:
        headers["Strict-Transport-Security"] = hsts
    return headers


def hsts_value(max_age_s: int | None) -> str | None:
    """The ``Strict-Transport-Security`` value for ``max_age_s`` (None or 0: no header)."""
    return f"max-age={max_age_s}; includeSubDomains" if max_age_s else None


class SecurityHeaders:
    """Adds :func:`security_headers` and the ``RateLimit-*`` headers of the request's rate-limit
    decision (``request.state.rate_limit``) to every answer; a header already set stays."""

    def __init__(self, app: ASGIApp, hsts_max_age_s: int | None) -> None:
        self.app = app
        self.hsts = hsts_value(hsts_max_age_s)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        scope.setdefault("state", {})  # shared with the request, which keeps its rate_limit there

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in security_headers(scope["path"], self.hsts).items():
                    headers.setdefault(name, value)
                decision = scope.get("state", {}).get("rate_limit")
                if decision is not None:
                    for name, value in decision.headers().items():
                        headers.setdefault(name, value)
            await send(message)

        await self.app(scope, receive, send_with_headers)
