"""Single sign-on into the back office with the hub's SAML identity provider
(``hub.api.saml.backoffice``).

- ``GET /ui/sso/login`` makes a signed-in-nowhere ``<AuthnRequest>``, remembers its ID for this
  browser (a random cookie) and sends the browser to the IdP (HTTP-Redirect);
- ``POST /ui/sso/acs`` takes the IdP's signed ``<Response>`` (HTTP-POST): verified
  (``saml.response``), answering a request this browser started and not answered before
  (``store.samlrequests``), its assertion used once (``store.assertions``), the role from
  ``roles``; then a session exactly like a password sign-in (new id, CSRF token, idle and
  absolute expiry), and ``/ui/logout`` ends it;
- ``GET /ui/sso/metadata`` is the hub's service-provider metadata for the IdP's administrator.

Every refusal is the login page with the failed check named (403; 404 when SSO is off), audited
as a failed ``ui.login`` and counted against the address like a wrong password.
"""

from __future__ import annotations

import logging
import secrets
from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from erpbridge.api.context import Hub
from erpbridge.config.saml import SamlBackoffice
from erpbridge.saml import AssertionRefused, SamlTrust
from erpbridge.saml.grants import grant_role
from erpbridge.saml.request import sign_in_request
from erpbridge.saml.response import verify_response
from erpbridge.store.assertions import AssertionReplayed, remember_assertion
from erpbridge.store.samlrequests import RequestRefused, remember_request, take_request
from erpbridge.store.users import UserError, sso_user
from erpbridge.ui.auth import Refused, secure
from erpbridge.ui.pages.common import HubDep
from erpbridge.ui.pages.login import (
    login_form,
    next_path,
    signing_in_from,
    start_session,
    too_many_failures,
)

__all__ = ["router"]

router = APIRouter(include_in_schema=False)
log = logging.getLogger(__name__)
#: The browser that started a sign-in: its value's SHA-256 is kept with the request.
_BROWSER_COOKIE = "erpbridge_sso"
_ACS = "/ui/sso/acs"


def _trust(hub: Hub) -> tuple[SamlTrust, SamlBackoffice]:
    trust = hub.saml
    if trust is None or trust.sso is None or trust.settings.backoffice is None:
        raise Refused(404, "single sign-on is not configured (hub.api.saml.backoffice)")
    return trust, trust.settings.backoffice


@router.get("/ui/sso/login")
async def sso_login(request: Request, hub: HubDep, next: str | None = None) -> Response:
    """Send the browser to the identity provider with a new sign-in request."""
    trust, settings = _trust(hub)
    browser = secrets.token_urlsafe(32)
    made = await run_in_threadpool(sign_in_request, trust, "")
    ttl = timedelta(seconds=settings.request_ttl_s)
    await run_in_threadpool(
        remember_request, hub.engine, made.request_id, browser, next_path(next), ttl
    )
    response = RedirectResponse(made.location, status_code=303)
    # The IdP posts the answer from its own site: over HTTPS the cookie must be SameSite=None to
    # come back with that POST; over plain HTTP only a same-site IdP gets it back (Lax).
    response.set_cookie(
        _BROWSER_COOKIE,
        browser,
        max_age=settings.request_ttl_s,
        path=_ACS,
        secure=secure(request),
        httponly=True,
        samesite="none" if secure(request) else "lax",
    )
    return response


@router.post(_ACS)
async def sso_acs(
    request: Request,
    hub: HubDep,
    saml_response: Annotated[str, Form(alias="SAMLResponse", max_length=2_000_000)] = "",
) -> Response:
    """Sign the user in with the identity provider's answer (or say why not)."""
    trust, settings = _trust(hub)
    shown = signing_in_from(request, hub)
    throttled = too_many_failures(request, hub, shown, None)
    if throttled is not None:
        return throttled
    browser = request.cookies.get(_BROWSER_COOKIE)
    try:
        if not saml_response:
            raise AssertionRefused("the POST carries no SAMLResponse")
        verified = await run_in_threadpool(verify_response, trust, saml_response, settings.acs_url)
        assertion = verified.assertion
        role = grant_role(settings.roles, assertion.attributes)
        if role.role is None:
            raise AssertionRefused(
                f"the identity provider's user {assertion.subject!r} matches no rule of "
                "hub.api.saml.backoffice.roles"
            )
        target = await run_in_threadpool(take_request, hub.engine, verified.in_response_to, browser)
        await run_in_threadpool(
            remember_assertion, hub.engine, assertion.issuer, assertion.id, assertion.usable_until
        )
        user = await run_in_threadpool(
            sso_user, hub.engine, assertion.subject, assertion.issuer, role.role, role.channels
        )
    except (AssertionRefused, RequestRefused, AssertionReplayed, UserError) as exc:
        log.warning("SAML sign-in from %s refused: %s", shown, exc)
        hub.limiter.hit_ui_login(shown)
        await run_in_threadpool(
            hub.audit, "ui:anonymous", shown, "ui.login", "saml", "failed", {"reason": str(exc)}
        )
        # the request stays open (it expires): a forged post cannot spend a user's sign-in
        return login_form(request, None, f"Single sign-on refused: {exc}", 403)
    detail = {"via": "saml", "idp": assertion.issuer, "role": user.role}
    response = await start_session(request, hub, user, shown, target, detail)
    response.delete_cookie(_BROWSER_COOKIE, path=_ACS)
    return response


@router.get("/ui/sso/metadata")
async def sso_metadata(hub: HubDep) -> Response:
    """The hub's SAML service-provider metadata (entity ID, ACS URL)."""
    trust, _ = _trust(hub)
    document = await run_in_threadpool(trust.sp_metadata)
    return Response(document, media_type="application/samlmetadata+xml")
