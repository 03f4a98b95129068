"""Who is calling, and may they: API keys, JWTs (ours and an identity provider's), client
certificates; scopes, channel restrictions, IP allow-lists and rate limits.

Every protected route depends on :func:`require` with the scope it needs and its route group
(for per-route limits). The checks run in this order, and each refusal writes nothing:

1. the address must be inside ``hub.api.allowed_ips`` (403 ``address_not_allowed``);
2. an address whose failed logins used up the per-address ``anonymous`` limit is refused before
   its credential is looked at (429 with ``Retry-After``);
3. a credential must be present and valid (401 ``unauthenticated`` with ``WWW-Authenticate``);
   each failure counts against that per-address limit (429 once it is used up). Every credential
   leads to a client that must still be usable, revoked or expired clients are refused on every
   path (key, token, certificate, mapped identity);
4. the address must be inside the client's own allow-list (403 ``address_not_allowed``);
5. the client's rate limits (429 ``rate_limited`` with ``Retry-After``);
6. the scope, with the scopes it implies (403 ``missing_scope``).

An identity provider's token acts as a local client only through an explicit mapping of its
issuer and subject (``identity_providers[].identities``); an unmapped identity gets what the
provider's ``unmapped`` grant allows, or nothing.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Literal

from fastapi import Depends, Request
from sqlalchemy import Connection
from starlette.concurrency import run_in_threadpool

from erpbridge.api.context import ApiError, Hub, get_hub
from erpbridge.api.keycache import KeyCache
from erpbridge.api.network import allowed as address_allowed
from erpbridge.api.network import client_address
from erpbridge.api.ratelimit import Decision
from erpbridge.api.tokens import ISSUER, Claims, TokenRefused
from erpbridge.store.apiclients import (
    ApiClient,
    ClientRefused,
    client_in,
    expand_scopes,
    usable_client,
    verify_key,
)
from erpbridge.store.runs import now

__all__ = ["Principal", "authenticate", "client_guard", "require"]

#: Where the embedded server puts a verified client certificate's subject CN (see api.tls).
CLIENT_CERT_SCOPE_KEY = "erpbridge.client_cert_cn"
#: The header of every 401.
_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="erpbridge"'}


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated caller."""

    name: str
    #: Every scope the caller holds, implied ones included.
    scopes: frozenset[str]
    #: Channels the caller may touch; ``None``: all.
    channels: frozenset[str] | None
    via: Literal["key", "token", "idp", "certificate", "saml", "session"]
    address: str | None
    rate_limit: str | None = None

    def may(self, scope: str) -> bool:
        """True when the caller holds ``scope`` (``admin`` holds all, ``write`` holds ``read``)."""
        return scope in expand_scopes(self.scopes)

    def may_channel(self, channel: str) -> bool:
        """True when the caller may touch ``channel``."""
        return self.channels is None or channel in self.channels

    def check_channel(self, channel: str) -> None:
        """Raise 403 unless the caller may touch ``channel``."""
        if not self.may_channel(channel):
            raise ApiError(
                403, "channel_not_allowed", f"client {self.name!r} may not use channel {channel!r}"
            )


def authenticate(request: Request, hub: Hub, *, remember: bool = False) -> Principal:
    """The caller of ``request``, checked against allow-lists; raise :class:`ApiError`. With
    ``remember``, an API key that opens the API is noted in ``request.state.key_checked``, to
    be remembered (:class:`KeyCache`) once the request is admitted."""
    shown = _admitted_address(request, hub)
    try:
        principal = _credential(request, hub, shown, remember)
    except (ClientRefused, TokenRefused) as exc:
        _count_failure(hub, shown)
        raise ApiError(401, "unauthenticated", str(exc), _CHALLENGE) from None
    if principal is None:
        _count_failure(hub, shown)
        raise ApiError(
            401,
            "unauthenticated",
            "no credentials: send X-API-Key, Authorization: Bearer <token>, or a client "
            "certificate",
            _CHALLENGE,
        )
    return principal


def _admitted_address(request: Request, hub: Hub) -> str | None:
    """The caller's address, shown; refused unless allowed and not blocked for failed logins."""
    settings = hub.config.model.hub.api
    address = client_address(request, settings.trusted_proxies)
    shown = str(address) if address else None
    if not address_allowed(address, settings.allowed_ips):
        raise ApiError(403, "address_not_allowed", f"address {shown} may not call this API")
    blocked = hub.limiter.blocked(shown or "unknown")
    if blocked is not None:
        raise _too_many(shown, blocked)
    return shown


def _remembered(request: Request, hub: Hub) -> Principal | None:
    """The caller of an event route by an API key the process remembers, checked without the
    store (on the event loop); None: look the credential up. The client found is kept in
    ``request.state.cached_client`` for :func:`client_guard`."""
    key = request.headers.get("x-api-key")
    if not key or request.headers.get("authorization"):
        return None
    client = hub.keys.get(key)
    if client is None:
        return None
    principal = _from_client(client, "key", _admitted_address(request, hub))
    request.state.cached_client = client
    return principal


def require(scope: str, group: str = "api") -> Callable[..., Awaitable[Principal]]:
    """A dependency that authenticates, rate-limits and checks ``scope``.

    The event routes (``group == "events"``) remember API keys (:mod:`erpbridge.api.keycache`):
    a remembered key is checked on the event loop; any other credential, and every other route,
    is looked up in the store in a worker thread, as before."""
    remember = group == "events"

    async def dependency(request: Request, hub: Hub = Depends(get_hub)) -> Principal:  # noqa: B008
        # Rate limits kept in another process's storage (redis) are not counted on the loop.
        principal = _remembered(request, hub) if remember and hub.limiter.local else None
        if principal is not None:
            return _admit(request, hub, principal, scope, group)
        return await run_in_threadpool(_checked, request, hub, scope, group, remember)

    return dependency


def _checked(request: Request, hub: Hub, scope: str, group: str, remember: bool) -> Principal:
    principal = _admit(request, hub, authenticate(request, hub, remember=remember), scope, group)
    checked = getattr(request.state, "key_checked", None)
    if checked is not None:
        hub.keys.put(*checked)
    return principal


def _admit(request: Request, hub: Hub, principal: Principal, scope: str, group: str) -> Principal:
    """Rate-limit ``principal`` and check ``scope``; raise :class:`ApiError` when refused."""
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


def _credential(
    request: Request, hub: Hub, address: str | None, remember: bool = False
) -> Principal | None:
    header = request.headers.get("authorization", "")
    if header[:7].lower() == "bearer ":
        return _from_token(hub, header[7:].strip(), address)
    key = request.headers.get("x-api-key")
    if key:
        client = verify_key(hub.engine, key)
        principal = _from_client(client, "key", address)
        if remember:  # once the request is admitted (require): a refused one is not remembered
            request.state.key_checked = (key, client)
        return principal
    common_name = request.scope.get(CLIENT_CERT_SCOPE_KEY)
    if common_name:
        client = usable_client(hub.engine, common_name, "certificate CN")
        return _from_client(client, "certificate", address)
    return None


def _from_token(hub: Hub, token: str, address: str | None) -> Principal:
    claims = hub.keyring.verify(token)
    if claims.issuer == ISSUER and claims.idp is not None:
        return _from_saml(hub, claims, address)
    if claims.issuer == ISSUER:
        # Our own token: its client must still be usable (revocation and expiry are immediate).
        client = usable_client(hub.engine, claims.subject, "token subject")
        return _narrowed(_from_client(client, "token", address), claims)
    return _from_identity(hub, claims, address)


def _from_identity(hub: Hub, claims: Claims, address: str | None) -> Principal:
    """An identity provider's token: the client its (issuer, subject) is mapped to, else the
    provider's grant for unmapped identities, else refused."""
    providers = hub.config.model.hub.api.identity_providers
    provider = next((p for p in providers if p.issuer == claims.issuer), None)
    if provider is None:  # the keyring verified it, so the configuration changed meanwhile
        raise TokenRefused(f"tokens of issuer {claims.issuer!r} are not accepted")
    identity = f"{claims.subject!r} of {claims.issuer}"
    if not claims.subject:
        raise TokenRefused(f"the token of {claims.issuer} names no {provider.client_claim!r}")
    mapped = provider.identities.get(claims.subject)
    if mapped is not None:
        client = usable_client(hub.engine, mapped, f"mapped from identity {identity}")
        return _narrowed(_from_client(client, "idp", address), claims)
    grant = provider.unmapped
    if grant is None:
        raise TokenRefused(
            f"identity {identity} is not mapped to an API client "
            "(hub.api.identity_providers[].identities)"
        )
    channels = frozenset(grant.channels) if grant.channels is not None else None
    scopes = expand_scopes(claims.scopes) & expand_scopes(grant.scopes)
    # "idp:" keeps the name (and its rate-limit counts) apart from any local client's.
    return Principal(f"idp:{claims.subject}@{claims.issuer}", scopes, channels, "idp", address)


def _narrowed(principal: Principal, claims: Claims) -> Principal:
    """``principal`` holding only the scopes both it and the token's claims hold."""
    scopes = expand_scopes(claims.scopes) & principal.scopes
    return Principal(
        principal.name,
        scopes,
        principal.channels,
        principal.via,
        principal.address,
        principal.rate_limit,
    )


def _from_saml(hub: Hub, claims: Claims, address: str | None) -> Principal:
    # Our token for a SAML identity (api.samlgrant): no local client stands behind it, so its
    # own claims carry the scopes and channels; it dies with its IdP's configuration.
    trust = hub.saml
    if trust is None or claims.idp not in trust.identity_providers:
        raise TokenRefused(f"sign-in through {claims.idp} is no longer configured (hub.api.saml)")
    scopes = expand_scopes(claims.scopes)
    return Principal(claims.subject, scopes, claims.channels, "saml", address)


def _from_client(
    client: ApiClient, via: Literal["key", "token", "idp", "certificate"], address: str | None
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
    return Principal(
        client.name,
        expand_scopes(client.scopes),
        client.channels,
        via,
        address,
        client.rate_limit,
    )


def _count_failure(hub: Hub, address: str | None) -> None:
    decision = hub.limiter.hit_anonymous(address or "unknown")
    if not decision.allowed:
        raise _too_many(address, decision)


def _too_many(address: str | None, decision: Decision) -> ApiError:
    return ApiError(
        429,
        "rate_limited",
        f"too many failed logins from {address}; retry in {decision.reset_s} s",
        decision.headers(),
    )


def client_guard(cache: KeyCache, cached: ApiClient) -> Callable[[Connection], ApiError | None]:
    """The guard an event authenticated from the cache runs in its transaction: the client's
    row, read again, must still be usable and grant what it granted when its key was cached."""

    def check(conn: Connection) -> ApiError | None:
        transaction = conn.get_transaction()
        if cache.checked.get(cached.id) is transaction:
            return None  # checked for an earlier event of the same group (transaction)
        current = client_in(conn, cached.id)
        if current is None or current.revoked_at is not None:
            why = f"client {cached.name!r} was revoked"
        elif current.expires_at is not None and current.expires_at <= now():
            why = f"the credential of client {cached.name!r} has expired"
        elif (current.scopes, current.channels, current.allowed_ips) != (
            cached.scopes,
            cached.channels,
            cached.allowed_ips,
        ):
            why = f"client {cached.name!r} changed since its key was checked; send again"
        else:
            cache.checked[cached.id] = transaction
            return None
        cache.forget(cached.id)
        return ApiError(401, "unauthenticated", why, _CHALLENGE)

    return check
