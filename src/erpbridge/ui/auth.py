"""Who is using the back office, and may they: sessions, CSRF tokens, roles, login throttling.

- The session cookie is HttpOnly, SameSite=Strict, ``Secure`` and ``__Host-`` prefixed when the
  hub serves HTTPS (directly or behind a trusted proxy that says so); the session lives in the
  hub store (``store.users``) and a new one is made at every login.
- Every POST carries the session's CSRF token (a form field ``csrf`` or the ``X-CSRF-Token``
  header htmx sends); without it, or with another session's, the action is refused (403).
- A user's role maps to the API's scopes (``store.users.ROLE_SCOPES``) and their channels to
  the API's channel restriction: the pages read through the same read model with the same scope
  as an API client, and every action checks the scope on the server.
- Failed logins count per address against ``hub.api.rate_limits.ui_logins`` (stricter than the
  API's ``anonymous``: passwords can be guessed); every login, logout and action lands in the
  admin audit.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from erpbridge.api.auth import Principal
from erpbridge.api.context import Hub, get_hub
from erpbridge.api.network import client_address
from erpbridge.api.scope import read_scope
from erpbridge.store.read import Scope
from erpbridge.store.users import IDLE, ROLE_SCOPES, Session, session_by_token

__all__ = [
    "CSRF_HEADER",
    "Current",
    "Forbidden",
    "LoginRequired",
    "Operator",
    "Refused",
    "cookie_name",
    "current",
    "require_role",
    "secure",
    "set_session_cookie",
]

CSRF_HEADER = "x-csrf-token"
_COOKIE = "erpbridge_session"


class LoginRequired(Exception):
    """No live session: the page answers with a redirect to the login page."""


class Refused(Exception):
    """An action or page refused: the status and a message naming the place and the cause."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


class Forbidden(Refused):
    """The user's role or channels do not allow the action (403, with the reason)."""

    def __init__(self, message: str) -> None:
        super().__init__(403, message)


@dataclass(frozen=True, slots=True)
class Operator:
    """The signed-in user of a request: the session, and the API principal they act as."""

    session: Session
    principal: Principal
    scope: Scope

    @property
    def name(self) -> str:
        """The user's name (the actor in the admin audit)."""
        return self.principal.name

    def may(self, scope: str) -> bool:
        """True when the user's role holds the API scope ``scope``."""
        return self.principal.may(scope)


def secure(request: Request) -> bool:
    """True when the browser talks HTTPS to us (directly or through a trusted proxy)."""
    return request.url.scheme == "https"


def cookie_name(request: Request) -> str:
    """The session cookie's name: ``__Host-`` prefixed over HTTPS (browsers then insist on
    Secure, Path=/ and no Domain, so no sibling host can plant one)."""
    return f"__Host-{_COOKIE}" if secure(request) else _COOKIE


def set_session_cookie(request: Request, response: Response, token: str) -> None:
    """Put the session's token in its cookie."""
    response.set_cookie(
        cookie_name(request),
        token,
        max_age=int(IDLE.total_seconds()) * 24,  # the server-side expiry is what ends it
        path="/",
        secure=secure(request),
        httponly=True,
        samesite="strict",
    )


async def current(request: Request, hub: Annotated[Hub, Depends(get_hub)]) -> Operator:
    """The signed-in user of ``request`` (:class:`LoginRequired` when there is none); a POST
    must carry the session's CSRF token (:class:`Forbidden` otherwise)."""
    token = request.cookies.get(cookie_name(request))
    session = await run_in_threadpool(session_by_token, hub.engine, token) if token else None
    if session is None:
        raise LoginRequired
    settings = hub.config.model.hub.api
    address = client_address(request, settings.trusted_proxies)
    user = session.user
    principal = Principal(
        user.name,
        ROLE_SCOPES[user.role],
        user.channels,
        "session",
        str(address) if address else None,
    )
    request.state.ui_user = user
    request.state.ui_csrf = session.csrf
    operator = Operator(session, principal, read_scope(hub, principal))
    if request.method not in ("GET", "HEAD"):
        await _check_csrf(request, session)
    return operator


async def _check_csrf(request: Request, session: Session) -> None:
    sent = request.headers.get(CSRF_HEADER)
    if sent is None:
        form = await request.form()  # parsed once: the route's Form() fields read it again
        field = form.get("csrf")
        sent = field if isinstance(field, str) else ""
    if not secrets.compare_digest(sent.encode(), session.csrf.encode()):
        raise Forbidden("the form's CSRF token is missing or stale; reload the page and try again")


Current = Annotated[Operator, Depends(current)]
"""A route parameter: the signed-in user (any role)."""


def require_role(scope: str) -> object:
    """A dependency: the signed-in user, who must hold ``scope`` (:class:`Forbidden`)."""

    def dependency(who: Current) -> Operator:
        if not who.may(scope):
            raise Forbidden(
                f"user {who.name!r} ({who.session.user.role}) may not do this: it needs the "
                f"{_ROLE_FOR[scope]} role"
            )
        return who

    return Depends(dependency)


#: The least role holding each scope, for the refusal's message.
_ROLE_FOR = {"read": "viewer", "write": "operator", "operations": "operator", "admin": "admin"}
