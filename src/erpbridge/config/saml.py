"""Configuration of SAML 2.0 (``hub.api.saml``): the identity provider the hub trusts, and what
its assertions grant.

One block describes the trust (the IdP's metadata, the hub's own entity ID, the clock skew) and
the attribute mapping (``grants``), so that a later web sign-in (SSO into a back office) uses the
same IdP configuration as the API's RFC 7522 bearer grant at ``/oauth/token``.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["SamlGrant", "SamlSettings"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class SamlGrant(_Strict):
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


class SamlSettings(_Strict):
    """SAML 2.0 bearer assertions (RFC 7522) as API credentials."""

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
