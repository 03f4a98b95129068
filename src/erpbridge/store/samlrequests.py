"""The back office's SAML sign-in requests: each AuthnRequest the hub sends a browser off with is
remembered until an answer takes it, so that an answer must name a request the hub made
(InResponseTo), come back to the browser that started it, and be taken once.

The browser is known by a random cookie set with the request (its SHA-256 is kept); a response
carried to another browser (login CSRF) or posted twice (a replay) is refused, and the refusal
says which.
"""

from __future__ import annotations

import hashlib
import hmac
from datetime import timedelta

from sqlalchemy import Engine, delete, select, update

from erpbridge.errors import ErpbridgeError
from erpbridge.store.runs import now
from erpbridge.store.tables import saml_requests

__all__ = ["RequestRefused", "remember_request", "take_request"]

#: A request answered (or expired) is still named as such this long, then its row goes.
_KEEP = timedelta(hours=1)


class RequestRefused(ErpbridgeError):
    """The response does not answer a live sign-in request of this browser (the message says
    why: unknown, answered already, expired, or started in another browser)."""


def _digest(browser: str) -> str:
    return hashlib.sha256(browser.encode()).hexdigest()


def remember_request(
    engine: Engine, request_id: str, browser: str, next_path: str, ttl: timedelta
) -> None:
    """Remember the request ``request_id`` sent by the browser holding cookie ``browser``, to
    answer within ``ttl`` and then go to ``next_path``."""
    at = now()
    with engine.begin() as conn:
        conn.execute(delete(saml_requests).where(saml_requests.c.expires_at < at - _KEEP))
        conn.execute(
            saml_requests.insert().values(
                request_id=request_id[:128],
                browser=_digest(browser),
                next_path=next_path[:512],
                created_at=at,
                expires_at=at + ttl,
            )
        )


def take_request(engine: Engine, request_id: str, browser: str | None) -> str:
    """Mark the request ``request_id`` answered and return where to go next;
    :class:`RequestRefused` when it is unknown, answered, expired, or not this browser's."""
    at = now()
    with engine.begin() as conn:
        row = conn.execute(
            select(saml_requests).where(saml_requests.c.request_id == request_id[:128])
        ).first()
        if row is None:
            raise RequestRefused(
                f"the response answers request {request_id[:80]!r}, which this hub never made "
                "(or forgot long ago); start the sign-in again from the login page"
            )
        if row.used_at is not None:
            raise RequestRefused(
                f"request {request_id[:80]!r} was answered already: a response is accepted once "
                "(a replayed response)"
            )
        expires = (
            row.expires_at if row.expires_at.tzinfo else row.expires_at.replace(tzinfo=at.tzinfo)
        )
        if expires < at:
            raise RequestRefused(
                f"the sign-in request {request_id[:80]!r} expired (hub.api.saml.backoffice."
                "request_ttl_s); start the sign-in again from the login page"
            )
        if browser is None or not hmac.compare_digest(row.browser, _digest(browser)):
            raise RequestRefused(
                "the response comes back to another browser than the one that started the "
                "sign-in (or its cookie did not come back: over plain HTTP the IdP must be on "
                "the same site); start the sign-in again from the login page"
            )
        taken = conn.execute(
            update(saml_requests)
            .where(saml_requests.c.request_id == row.request_id, saml_requests.c.used_at.is_(None))
            .values(used_at=at)
        )
        if taken.rowcount != 1:
            raise RequestRefused(
                f"request {request_id[:80]!r} was answered already: a response is accepted once "
                "(a replayed response)"
            )
    return str(row.next_path)
