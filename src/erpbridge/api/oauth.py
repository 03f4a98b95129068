"""OAuth 2.0 client credentials: ``POST /oauth/token`` issues the hub's short-lived JWTs, and
``GET /.well-known/jwks.json`` publishes the keys that verify them."""

from __future__ import annotations

import base64
import binascii
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from erpbridge.api.context import Hub, get_hub
from erpbridge.api.network import allowed, client_address
from erpbridge.store.apiclients import ClientRefused, check_secret

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
) -> Any:
    """Client credentials grant (secret as HTTP basic auth or in the form)."""
    settings = hub.config.model.hub.api
    address = client_address(request, settings.trusted_proxies)
    if not allowed(address, settings.allowed_ips):
        return _oauth_error(403, "access_denied", f"address {address} may not call this API")
    if grant_type != "client_credentials":
        return _oauth_error(400, "unsupported_grant_type", "only client_credentials is supported")
    basic = _basic(request.headers.get("authorization", ""))
    if basic:
        client_id, client_secret = basic
    if not client_id or not client_secret:
        return _oauth_error(401, "invalid_client", "client authentication is missing")
    decision = hub.limiter.hit(f"oauth:{client_id}", "oauth")
    if not decision.allowed:
        return JSONResponse(
            {"error": "slow_down", "error_description": "too many token requests"},
            429,
            decision.headers(),
        )
    try:
        client = check_secret(hub.engine, client_id, client_secret)
    except ClientRefused as exc:
        hub.limiter.hit_anonymous(str(address))
        return _oauth_error(401, "invalid_client", str(exc))
    if client.allowed_ips is not None and not allowed(address, list(client.allowed_ips)):
        return _oauth_error(
            403, "access_denied", f"client {client_id!r} may not call from {address}"
        )
    wanted = frozenset(scope.split()) if scope else client.scopes
    if not wanted <= client.scopes and "admin" not in client.scopes:
        extra = ", ".join(sorted(wanted - client.scopes))
        return _oauth_error(400, "invalid_scope", f"client {client_id!r} does not hold {extra}")
    issued, ttl = hub.keyring.issue(client.name, wanted)
    body = TokenOut(
        access_token=issued,
        token_type="Bearer",  # noqa: S106 - the RFC 6749 token type, not a secret
        expires_in=ttl,
        scope=" ".join(sorted(wanted)),
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
        user, _, password = base64.b64decode(header[6:].strip()).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return None
    return (user, password) if user else None
