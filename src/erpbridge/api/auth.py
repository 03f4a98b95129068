"""Who is calling, and may they: API keys, JWTs (ours and an identity provider's), client
certificates; scopes, channel restrictions, IP allow-lists and rate limits.

Every protected route depends on :func:`require` with the scope it needs and its route group
(for per-route limits). The checks run in this order, and each refusal writes nothing:

1. the address must be inside ``hub.api.allowed_ips`` (403 ``address_not_allowed``);
2. a credential must be present and valid (401 ``unauthenticated`` with ``WWW-Authenticate``);
   failed attempts count against the per-address anonymous limit (429);
3. the address must be inside the client's own allow-list (403 ``address_not_allowed``);
4. the client's rate limits (429 ``rate_limited`` with ``Retry-After``);
5. the scope (403 ``missing_scope``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from fastapi import Depends, Request

from erpbridge.api.context import ApiError, Hub, get_hub
from erpbridge.api.network import allowed as address_allowed
from erpbridge.api.network import client_address
from erpbridge.api.tokens import ISSUER, TokenRefused
from erpbridge.store.apiclients import SCOPES, ApiClient, ClientRefused, find_client, verify_key

__all__ = ["Principal", "authenticate", "require"]

#: Where the embedded server puts a verified client certificate's subject CN (see api.tls).
CLIENT_CERT_SCOPE_KEY = "erpbridge.client_cert_cn"


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated caller."""

    name: str
    scopes: frozenset[str]
    #: Channels the caller may touch; ``None``: all.
    channels: frozenset[str] | None
    via: Literal["key", "token", "idp", "certificate"]
    address: str | None
    rate_limit: str | None = None

    def may(self, scope: str) -> bool:
        """True when the caller holds ``scope`` (``admin`` holds all)."""
        return scope in self.scopes or "admin" in self.scopes

    def may_channel(self, channel: str) -> bool:
        """True when the caller may touch ``channel``."""
        return self.channels is None or channel in self.channels

    def check_channel(self, channel: str) -> None:
        """Raise 403 unless the caller may touch ``channel``."""
        if not self.may_channel(channel):
            raise ApiError(
                403, "channel_not_allowed", f"client {self.name!r} may not use channel {channel!r}"
            )


def authenticate(request: Request, hub: Hub) -> Principal:
    """The caller of ``request``, checked against allow-lists; raise :class:`ApiError`."""
    settings = hub.config.model.hub.api
    address = client_address(request, settings.trusted_proxies)
    shown = str(address) if address else None
    if not address_allowed(address, settings.allowed_ips):
        raise ApiError(403, "address_not_allowed", f"address {shown} may not call this API")
    try:
        principal = _credential(request, hub, shown)
    except (ClientRefused, TokenRefused) as exc:
        _count_failure(hub, shown)
        raise ApiError(
            401, "unauthenticated", str(exc), {"WWW-Authenticate": 'Bearer realm="erpbridge"'}
        ) from None
    if principal is None:
        _count_failure(hub, shown)
        raise ApiError(
            401,
            "unauthenticated",
            "no credentials: send X-API-Key, Authorization: Bearer <token>, or a client "
            "certificate",
            {"WWW-Authenticate": 'Bearer realm="erpbridge"'},
        )
    return principal


def require(scope: str, group: str = "api") -> Callable[..., Principal]:
    """A dependency that authenticates, rate-limits and checks ``scope``."""

    def dependency(request: Request, hub: Hub = Depends(get_hub)) -> Principal:  # noqa: B008
        principal = authenticate(request, hub)
        decision = hub.limiter.hit(principal.name, group, principal.rate_limit)
        request.state.rate_limit = decision
        if not decision.allowed:
            raise ApiError(
                429,
                "rate_limited",
                f"client {principal.name!r} exceeded its limit of {decision.limit} requests; "
                f"retry in {decision.reset_s} s",
                decision.headers(),
            )
        if not principal.may(scope):
            raise ApiError(
                403,
                "missing_scope",
                f"client {principal.name!r} lacks the scope {scope!r} "
                f"(it has: {', '.join(sorted(principal.scopes)) or 'none'})",
            )
        request.state.principal = principal
        return principal

    return dependency


def _credential(request: Request, hub: Hub, address: str | None) -> Principal | None:
    header = request.headers.get("authorization", "")
    if header[:7].lower() == "bearer ":
        return _from_token(hub, header[7:].strip(), address)
    key = request.headers.get("x-api-key")
    if key:
        return _from_client(verify_key(hub.engine, key), "key", address)
    common_name = request.scope.get(CLIENT_CERT_SCOPE_KEY)
    if common_name:
        client = find_client(hub.engine, common_name)
        if client is None:
            raise ClientRefused(f"no API client named {common_name!r} (certificate CN)")
        if client.revoked_at is not None:
            raise ClientRefused(f"client {client.name!r} was revoked")
        return _from_client(client, "certificate", address)
    return None


def _from_token(hub: Hub, token: str, address: str | None) -> Principal:
    claims = hub.keyring.verify(token)
    if claims.issuer == ISSUER:
        # Our own token: the client must still exist and be usable (revocation is immediate).
        client = find_client(hub.engine, claims.subject)
        if client is None or client.revoked_at is not None:
            raise TokenRefused(f"client {claims.subject!r} was revoked")
        principal = _from_client(client, "token", address)
        return Principal(
            principal.name,
            claims.scopes & client.scopes,
            principal.channels,
            "token",
            address,
            client.rate_limit,
        )
    return Principal(claims.subject, claims.scopes & SCOPES, None, "idp", address)


def _from_client(
    client: ApiClient, via: Literal["key", "token", "certificate"], address: str | None
) -> Principal:
    from ipaddress import ip_address

    if client.allowed_ips is not None:
        parsed = ip_address(address) if address else None
        if not address_allowed(parsed, list(client.allowed_ips)):
            raise ApiError(
                403,
                "address_not_allowed",
                f"client {client.name!r} may not call from {address}",
            )
    return Principal(client.name, client.scopes, client.channels, via, address, client.rate_limit)


def _count_failure(hub: Hub, address: str | None) -> None:
    decision = hub.limiter.hit_anonymous(address or "unknown")
    if not decision.allowed:
        raise ApiError(
            429,
            "rate_limited",
            f"too many unauthenticated requests from {address}; retry in {decision.reset_s} s",
            decision.headers(),
        )
