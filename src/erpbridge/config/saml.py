"""Configuration of SAML 2.0 (``hub.api.saml``): the identity provider the hub trusts, and what
its assertions grant.

One block describes the trust (the IdP's metadata, the hub's own entity ID, the clock skew) and
the attribute mapping (``grants``), so that a later web sign-in (SSO into a back office) uses the
same IdP configuration as the API's RFC 7522 bearer grant at ``/oauth/token``.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from erpbridge.config.strict import Strict

__all__ = ["BackofficeRole", "SamlBackoffice", "SamlGrant", "SamlRole", "SamlSettings"]

#: A back-office role (``store.users.Role``), from the least to the most.
BackofficeRole = Literal["viewer", "operator", "admin"]


class SamlGrant(Strict):
    """One rule of the attribute mapping: an assertion whose ``attribute`` holds ``value`` gets
    ``scopes``, restricted to ``channels``. The rules an assertion matches add up."""

    attribute: str = Field(
        min_length=1, description="The attribute's Name or FriendlyName in the assertion."
    )
    value: str = Field(description="A value the attribute must hold for the rule to apply.")
    scopes: list[str] = Field(min_length=1, description="Scopes the rule grants.")
    channels: list[str] | None = Field(
        default=None, description="Channels the caller is restricted to; none: every channel."
    )


class SamlRole(Strict):
    """One rule of the back office's role mapping: a user whose assertion's ``attribute`` holds
    ``value`` gets ``role``, restricted to ``channels``. Of the rules a user matches, the highest
    role wins and the channels add up (a matching rule without ``channels``: every channel)."""

    attribute: str = Field(
        min_length=1, description="The attribute's Name or FriendlyName in the assertion."
    )
    value: str = Field(description="A value the attribute must hold for the rule to apply.")
    role: BackofficeRole = Field(description="The back-office role.")
    channels: list[str] | None = Field(
        default=None, description="Channels the user is restricted to; none: every channel."
    )


class SamlBackoffice(Strict):
    """Single sign-on into the back office (``/ui``) with the same identity provider: the login
    page offers a button that sends the browser to the IdP (SP-initiated, HTTP-Redirect), and the
    signed answer comes back to ``acs_url`` (HTTP-POST)."""

    acs_url: str = Field(
        min_length=1,
        pattern=r"^https?://[^/]+/ui/sso/acs$",
        description="The URL of /ui/sso/acs as browsers reach it (the assertion consumer "
        "service); the response's Destination and the bearer confirmation's Recipient must be it.",
    )
    roles: list[SamlRole] = Field(
        min_length=1, description="The role mapping: a back-office role per attribute value."
    )
    label: str = Field(
        default="Sign in with SSO", min_length=1, max_length=80, description="The button's text."
    )
    request_ttl_s: int = Field(
        default=600,
        ge=30,
        le=3600,
        description="How long a sign-in started at the hub may take at the identity provider.",
    )


class SamlSettings(Strict):
    """SAML 2.0 bearer assertions (RFC 7522) as API credentials, and single sign-on into the
    back office (``backoffice``)."""

    idp_metadata: str = Field(
        description="The identity provider's SAML metadata: a file (relative to the configuration "
        "file) or an https:// URL, read when the API starts."
    )
    idp_entity_id: str | None = Field(
        default=None,
        description="Trust only this IdP of the metadata; none: every IdP the metadata describes.",
    )
    entity_id: str = Field(
        min_length=1,
        description="The hub's own SAML entity ID; an assertion's Audience must be this (or "
        "`token_url`).",
    )
    token_url: str = Field(
        min_length=1,
        description="The URL of /oauth/token as clients call it; the bearer SubjectConfirmation's "
        "Recipient must be exactly this.",
    )
    clock_skew_s: int = Field(
        default=60, ge=0, le=600, description="Tolerance when comparing the assertion's times."
    )
    max_assertion_kb: int = Field(
        default=64, ge=4, le=1024, description="Largest assertion accepted (decoded XML)."
    )
    subject_attribute: str | None = Field(
        default=None,
        description="Name the caller by this attribute's first value instead of the NameID.",
    )
    grants: list[SamlGrant] = Field(
        min_length=1, description="The attribute mapping: scopes and channels per attribute value."
    )
    backoffice: SamlBackoffice | None = Field(
        default=None, description="Single sign-on into the back office with this IdP; none: off."
    )
