"""The SAML 2.0 bearer grant of ``POST /oauth/token`` (RFC 7522).

A caller sends ``grant_type=urn:ietf:params:oauth:grant-type:saml2-bearer`` and ``assertion=``
(the base64url of one signed ``<saml:Assertion>`` from the configured identity provider) and gets
the hub's usual ES256 access token. The token names ``saml:<subject>``, carries the scopes and
channel restriction that ``hub.api.saml.grants`` gives the assertion's attributes, and the IdP
(claim ``idp``), so that it stops working once that IdP is no longer configured. Client
authentication is not needed: the assertion is the credential (RFC 7522 §3.1).

Every refusal is an RFC 6749 error: ``invalid_grant`` for any assertion that does not prove the
caller (with the failed check in ``error_description``), ``invalid_request`` when there is none,
``invalid_scope`` for a scope beyond the grant, ``unsupported_grant_type`` when SAML is off.
"""

from __future__ import annotations

import base64
import binascii
import logging
import re
from dataclasses import dataclass

from erpbridge.api.context import ApiError, Hub
from erpbridge.saml import AssertionRefused, grant, verify_assertion
from erpbridge.store.apiclients import ScopeRefused, narrow_scopes
from erpbridge.store.assertions import AssertionReplayed, remember_assertion

__all__ = ["SAML2_BEARER", "GrantRefused", "IssuedToken", "saml_bearer"]

SAML2_BEARER = "urn:ietf:params:oauth:grant-type:saml2-bearer"
#: Prefix of the names SAML callers get: never the name of a local API client.
SUBJECT_PREFIX = "saml:"
_BASE64URL = re.compile(r"[A-Za-z0-9_-]+={0,2}")

log = logging.getLogger(__name__)


class GrantRefused(ApiError):
    """An RFC 6749 §5.2 error answer: ``code`` is its ``error``, ``message`` its
    ``error_description`` (``/oauth/token`` answers it in that shape)."""


@dataclass(frozen=True, slots=True)
class IssuedToken:
    """A token issued for a verified assertion."""

    token: str
    ttl_s: int
    scopes: frozenset[str]
    channels: frozenset[str] | None


def saml_bearer(hub: Hub, address: str, assertion: str | None, scope: str | None) -> IssuedToken:
    """Exchange ``assertion`` for a hub token; raise :class:`GrantRefused`."""
    trust = hub.saml
    if trust is None:
        raise GrantRefused(
            400, "unsupported_grant_type", "SAML assertions are not configured (hub.api.saml)"
        )
    if not assertion:
        raise _failed(hub, address, "invalid_request", "the assertion parameter is missing")
    try:
        document = _decode(assertion, trust.settings.max_assertion_kb)
        verified = verify_assertion(trust, document)
    except AssertionRefused as exc:
        log.info("SAML assertion from %s refused: %s", address, exc)
        raise _failed(hub, address, "invalid_grant", str(exc)) from None
    name = SUBJECT_PREFIX + verified.subject
    # Like a client's own limit: it counts only what proved to be this caller.
    decision = hub.limiter.hit(f"oauth:{name}", "oauth")
    if not decision.allowed:
        raise GrantRefused(
            429, "slow_down", f"too many token requests by {name!r}", decision.headers()
        )
    granted = grant(trust.settings.grants, verified.attributes)
    if not granted.scopes:
        raise _failed(
            hub,
            address,
            "invalid_grant",
            f"the assertion of {verified.subject!r} matches no rule of hub.api.saml.grants",
        )
    try:
        wanted = narrow_scopes(granted.scopes, scope)
    except ScopeRefused as exc:
        raise GrantRefused(
            400, "invalid_scope", f"the assertion of {verified.subject!r}: {exc}"
        ) from None
    try:
        remember_assertion(hub.engine, verified.issuer, verified.id, verified.usable_until)
    except AssertionReplayed as exc:
        log.warning("SAML assertion replayed from %s: %s", address, exc)
        raise _failed(hub, address, "invalid_grant", str(exc)) from None
    token, ttl = hub.keyring.issue(name, wanted, idp=verified.issuer, channels=granted.channels)
    return IssuedToken(token, ttl, wanted, granted.channels)


def _failed(hub: Hub, address: str, error: str, description: str) -> GrantRefused:
    """A failed login, counted against ``address`` (429 once its ``anonymous`` limit is used)."""
    decision = hub.limiter.hit_anonymous(address)
    if not decision.allowed:
        return GrantRefused(
            429,
            "slow_down",
            f"too many failed logins from {address}; retry in {decision.reset_s} s",
            decision.headers(),
        )
    return GrantRefused(400, error, description)


def _decode(assertion: str, max_kb: int) -> bytes:
    limit = max_kb * 1024
    # base64 grows by 4/3: refuse before decoding what cannot fit.
    if len(assertion) > limit * 4 // 3 + 4:
        raise AssertionRefused(f"the assertion is larger than {max_kb} KB")
    text = assertion.strip()
    if not _BASE64URL.fullmatch(text):
        raise AssertionRefused("the assertion is not base64url (RFC 7522 §2.1)")
    try:
        document = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        raise AssertionRefused("the assertion is not base64url (RFC 7522 §2.1)") from None
    if len(document) > limit:
        raise AssertionRefused(f"the assertion is larger than {max_kb} KB")
    return document
