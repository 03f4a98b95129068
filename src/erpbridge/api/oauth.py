"""OAuth 2.0: ``POST /oauth/token`` issues the hub's short-lived JWTs for client credentials and
for SAML 2.0 bearer assertions (RFC 7522, :mod:`erpbridge.api.samlgrant`), and
``GET /.well-known/jwks.json`` publishes the keys that verify them.

Throttling, in this order: an address whose failed logins used up the per-address ``anonymous``
limit gets 429 before anything else is looked at; each failed login counts for its address only;
the per-client ``oauth`` limit counts only requests that authenticated as that client, so nobody
without the secret can use it up. A token's scopes are the requested subset of what the client
holds, implied scopes included (``store.apiclients.narrow_scopes``); anything else is
``invalid_scope``.
"""

from __future__ import annotations

import base64
import binascii
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from erpbridge.api.context import Hub, get_hub
from erpbridge.api.network import allowed, client_address
from erpbridge.api.ratelimit import Decision
from erpbridge.api.samlgrant import SAML2_BEARER, GrantRefused, saml_bearer
from erpbridge.store.apiclients import ClientRefused, ScopeRefused, check_secret, narrow_scopes

__all__ = ["router"]

router = APIRouter(tags=["oauth"])
HubDep = Annotated[Hub, Depends(get_hub)]


class TokenOut(BaseModel):
    """RFC 6749 §5.1."""

    access_token: str
    token_type: str
    expires_in: int
    scope: str


def _oauth_error(status: int, error: str, description: str) -> JSONResponse:
    # RFC 6749 §5.2: errors have their own shape, and never get cached.
    headers = {"Cache-Control": "no-store"}
    if status == 401:
        headers["WWW-Authenticate"] = 'Basic realm="erpbridge"'
    return JSONResponse({"error": error, "error_description": description}, status, headers)


def _slow_down(decision: Decision, who: str) -> JSONResponse:
    return JSONResponse(
        {
            "error": "slow_down",
            "error_description": f"too many token requests {who}; retry in {decision.reset_s} s",
        },
        429,
        {**decision.headers(), "Cache-Control": "no-store"},
    )


def _failed(hub: Hub, address: str, refusal: JSONResponse) -> JSONResponse:
    """Count a failed login against ``address`` (never against a client): 429 once too many."""
    decision = hub.limiter.hit_anonymous(address)
    return refusal if decision.allowed else _slow_down(decision, f"from {address}")


@router.post(
    "/oauth/token",
    response_model=TokenOut,
    responses={400: {"description": "bad request"}, 401: {"description": "bad client"}},
)
def token(
    request: Request,
    hub: HubDep,
    grant_type: Annotated[str, Form(max_length=64)],
    scope: Annotated[str | None, Form(max_length=512)] = None,
    client_id: Annotated[str | None, Form(max_length=128)] = None,
    client_secret: Annotated[str | None, Form(max_length=256)] = None,
    assertion: Annotated[str | None, Form()] = None,
) -> Any:
    """Client credentials grant (secret as HTTP basic auth or in the form), or the SAML 2.0
    bearer grant (``grant_type=urn:ietf:params:oauth:grant-type:saml2-bearer``, ``assertion=``
    the base64url of a signed ``<saml:Assertion>``; see ``hub.api.saml``)."""
    settings = hub.config.model.hub.api
    address = client_address(request, settings.trusted_proxies)
    if not allowed(address, settings.allowed_ips):
        return _oauth_error(403, "access_denied", f"address {address} may not call this API")
    shown = str(address) if address else "unknown"
    blocked = hub.limiter.blocked(shown)
    if blocked is not None:
        return _slow_down(blocked, f"from {shown}")
    if grant_type == SAML2_BEARER:
        try:
            issued = saml_bearer(hub, shown, assertion, scope)
        except GrantRefused as exc:
            answer = _oauth_error(exc.status, exc.code, exc.message)
            answer.headers.update(exc.headers)
            return answer
        return _token_answer(issued.token, issued.ttl_s, issued.scopes)
    if grant_type != "client_credentials":
        return _oauth_error(
            400,
            "unsupported_grant_type",
            f"grant types: client_credentials, {SAML2_BEARER}",
        )
    basic = _basic(request.headers.get("authorization", ""))
    if basic:
        client_id, client_secret = basic
    if not client_id or not client_secret:
        missing = _oauth_error(401, "invalid_client", "client authentication is missing")
        return _failed(hub, shown, missing)
    try:
        client = check_secret(hub.engine, client_id, client_secret)
    except ClientRefused as exc:
        return _failed(hub, shown, _oauth_error(401, "invalid_client", str(exc)))
    decision = hub.limiter.hit(f"oauth:{client.name}", "oauth")
    if not decision.allowed:
        return _slow_down(decision, f"by client {client.name!r}")
    if client.allowed_ips is not None and not allowed(address, list(client.allowed_ips)):
        return _oauth_error(
            403, "access_denied", f"client {client_id!r} may not call from {address}"
        )
    try:
        wanted = narrow_scopes(client.scopes, scope)
    except ScopeRefused as exc:
        return _oauth_error(400, "invalid_scope", f"client {client_id!r}: {exc}")
    token, ttl = hub.keyring.issue(client.name, wanted)
    return _token_answer(token, ttl, wanted)


def _token_answer(token: str, ttl: int, scopes: frozenset[str]) -> JSONResponse:
    body = TokenOut(
        access_token=token,
        token_type="Bearer",  # noqa: S106 - the RFC 6749 token type, not a secret
        expires_in=ttl,
        scope=" ".join(sorted(scopes)),
    )
    return JSONResponse(body.model_dump(), headers={"Cache-Control": "no-store"})


@router.get("/.well-known/jwks.json")
def jwks(hub: HubDep) -> dict[str, Any]:
    """The public keys verifying the hub's tokens."""
    return hub.keyring.jwks()


def _basic(header: str) -> tuple[str, str] | None:
    if header[:6].lower() != "basic ":
        return None
    try:
        raw = base64.b64decode(header[6:].strip().encode("latin-1"))
        user, _, password = raw.decode().partition(":")
    except (binascii.Error, UnicodeError):
        return None
    return (user, password) if user else None
