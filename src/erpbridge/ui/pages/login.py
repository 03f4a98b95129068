"""``/ui/login`` and ``/ui/logout``: sign in with a local user, throttled per address (or with
the identity provider: ``ui.pages.sso``)."""

from __future__ import annotations

import secrets
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from erpbridge.api.context import Hub, get_hub, hub_of
from erpbridge.api.network import client_address
from erpbridge.store.users import User, check_password, end_session, open_session
from erpbridge.ui.auth import Current, cookie_name, secure, set_session_cookie
from erpbridge.ui.render import render

__all__ = [
    "login_form",
    "next_path",
    "router",
    "signing_in_from",
    "start_session",
    "too_many_failures",
]

router = APIRouter(include_in_schema=False)
HubDep = Annotated[Hub, Depends(get_hub)]
#: The login form's own CSRF token (double submit: this cookie and the form's field must agree),
#: so that another site cannot sign a browser in as someone else.
_LOGIN_COOKIE = "erpbridge_login"


def next_path(target: str | None) -> str:
    """Where to go after login: a path of the back office only (no open redirect)."""
    if target and target.startswith("/ui") and not target.startswith("/ui//"):
        return target
    return "/ui/"


def login_form(request: Request, target: str | None, error: str | None, status: int) -> Response:
    """The sign-in page (with ``error`` in red), answered with ``status``."""
    token = secrets.token_urlsafe(32)
    trust = hub_of(request).saml
    backoffice = trust.settings.backoffice if trust is not None and trust.sso else None
    context = {
        "title": "Sign in",
        "next": next_path(target),
        "error": error,
        "login_csrf": token,
        "sso_label": backoffice.label if backoffice is not None else None,
    }
    response = render(request, "login.html", context, status)
    response.set_cookie(
        _LOGIN_COOKIE,
        token,
        path="/ui/login",
        secure=secure(request),
        httponly=True,
        samesite="strict",
    )
    return response


def signing_in_from(request: Request, hub: Hub) -> str:
    """The address a sign-in comes from, as throttling and the audit name it."""
    address = client_address(request, hub.config.model.hub.api.trusted_proxies)
    return str(address) if address else "unknown"


def too_many_failures(
    request: Request, hub: Hub, shown: str, target: str | None
) -> Response | None:
    """The sign-in page answering 429 when the address ``shown`` failed too often, else None."""
    blocked = hub.limiter.ui_login_blocked(shown)
    if blocked is None:
        return None
    message = f"Too many failed sign-ins from {shown}; try again in {blocked.reset_s} s."
    response = login_form(request, target, message, 429)
    response.headers["Retry-After"] = str(max(1, blocked.reset_s))
    return response


@router.get("/ui/login")
def login_page(request: Request, next: str | None = None) -> Response:
    """The sign-in form."""
    return login_form(request, next, None, 200)


@router.post("/ui/login")
async def login(
    request: Request,
    hub: HubDep,
    name: Annotated[str, Form(max_length=128)],
    password: Annotated[str, Form(max_length=1024)],
    csrf: Annotated[str, Form(max_length=128)] = "",
    next: Annotated[str | None, Form(max_length=512)] = None,
) -> Response:
    """Check the password; on success a new session (a new id) and back to where the user was."""
    shown = signing_in_from(request, hub)
    expected = request.cookies.get(_LOGIN_COOKIE, "")
    if not expected or not secrets.compare_digest(csrf.encode(), expected.encode()):
        return login_form(request, next, "The sign-in form expired; please try again.", 403)
    throttled = too_many_failures(request, hub, shown, next)
    if throttled is not None:
        return throttled
    user = await run_in_threadpool(check_password, hub.engine, name, password)
    if user is None:
        hub.limiter.hit_ui_login(shown)
        await run_in_threadpool(hub.audit, "ui:anonymous", shown, "ui.login", name[:128], "failed")
        return login_form(request, next, "Wrong user name or password.", 401)
    response = await start_session(request, hub, user, shown, next_path(next), None)
    response.delete_cookie(_LOGIN_COOKIE, path="/ui/login")
    return response


async def start_session(
    request: Request,
    hub: Hub,
    user: User,
    address: str,
    target: str,
    detail: dict[str, Any] | None,
) -> Response:
    """A new session for ``user`` (a new id: a cookie planted before dies here), audited as
    ``ui.login`` with ``detail``, and the way on to ``target``."""
    old = request.cookies.get(cookie_name(request))
    if old:
        await run_in_threadpool(end_session, hub.engine, old)
    token, _ = await run_in_threadpool(open_session, hub.engine, user, address)
    await run_in_threadpool(hub.audit, user.name, address, "ui.login", None, "ok", detail)
    response = RedirectResponse(target, status_code=303)
    set_session_cookie(request, response, token)
    return response


@router.post("/ui/logout")
async def logout(request: Request, hub: HubDep, who: Current) -> Response:
    """End the session."""
    token = request.cookies.get(cookie_name(request), "")
    await run_in_threadpool(end_session, hub.engine, token)
    await run_in_threadpool(hub.audit, who.name, who.principal.address, "ui.logout", None)
    response = RedirectResponse("/ui/login", status_code=303)
    response.delete_cookie(cookie_name(request), path="/")
    return response
