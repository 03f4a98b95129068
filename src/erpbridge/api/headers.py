"""Headers on every answer: security headers (HSTS when served over TLS) and rate-limit state."""

from __future__ import annotations

from starlette.middleware.base import BaseHTTPMiddleware, RequestResponseEndpoint
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp

__all__ = ["SecurityHeaders"]

_DOCS = ("/docs", "/redoc")


class SecurityHeaders(BaseHTTPMiddleware):
    """Adds nosniff, frame and referrer policies, a strict CSP outside the docs, no-store on the
    API, ``Strict-Transport-Security`` when TLS is on, and the ``RateLimit-*`` headers."""

    def __init__(self, app: ASGIApp, hsts_max_age_s: int | None) -> None:
        super().__init__(app)
        self.hsts = f"max-age={hsts_max_age_s}; includeSubDomains" if hsts_max_age_s else None

    async def dispatch(self, request: Request, call_next: RequestResponseEndpoint) -> Response:
        response = await call_next(request)
        headers = response.headers
        headers.setdefault("X-Content-Type-Options", "nosniff")
        headers.setdefault("X-Frame-Options", "DENY")
        headers.setdefault("Referrer-Policy", "no-referrer")
        path = request.url.path
        if not path.startswith(_DOCS):
            headers.setdefault(
                "Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'"
            )
        if path.startswith(("/api/", "/oauth/", "/hooks/")):
            headers.setdefault("Cache-Control", "no-store")
        if self.hsts:
            headers.setdefault("Strict-Transport-Security", self.hsts)
        decision = getattr(request.state, "rate_limit", None)
        if decision is not None:
            for name, value in decision.headers().items():
                headers.setdefault(name, value)
        return response
