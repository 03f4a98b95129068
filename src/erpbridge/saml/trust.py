"""The identity provider the hub trusts: its metadata, read once when the API starts, and the
pysaml2 security context that checks signatures against the certificates in it (never against a
certificate an assertion brings along).
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import httpx

from erpbridge.config.saml import SamlSettings
from erpbridge.errors import ErpbridgeError
from erpbridge.store.apiclients import SCOPES

with warnings.catch_warnings():
    # pysaml2 names a cipher mode that cryptography moved; harmless here, noise in the log.
    warnings.filterwarnings("ignore", message="CFB has been moved")
    from saml2 import BINDING_HTTP_POST, BINDING_HTTP_REDIRECT
    from saml2.config import SPConfig
    from saml2.metadata import entity_descriptor
    from saml2.sigver import SecurityContext, get_xmlsec_binary, security_context

__all__ = ["SamlSetupError", "SamlTrust"]

_METADATA_TIMEOUT_S = 15
_MAX_METADATA_BYTES = 10 * 1024 * 1024


class SamlSetupError(ErpbridgeError):
    """``hub.api.saml`` cannot work: metadata unreadable or without the IdP, or no xmlsec1."""


class SamlTrust:
    """What the hub believes about its SAML identity provider(s), from ``hub.api.saml``."""

    def __init__(self, settings: SamlSettings, base_dir: Path) -> None:
        self.settings = settings
        for index, rule in enumerate(settings.grants):
            unknown = sorted(set(rule.scopes) - SCOPES)
            if unknown:
                raise SamlSetupError(
                    f"hub.api.saml.grants.{index}.scopes: unknown scope(s) {', '.join(unknown)}; "
                    f"known: {', '.join(sorted(SCOPES))}"
                )
        metadata = _read_metadata(settings.idp_metadata, base_dir)
        try:
            xmlsec = get_xmlsec_binary()
        except Exception:  # noqa: BLE001 - pysaml2 raises a bare SigverError family member
            raise SamlSetupError(
                "hub.api.saml: the xmlsec1 program is not installed (Debian: apt-get install "
                "xmlsec1); it verifies the signatures of SAML assertions"
            ) from None
        config = SPConfig()
        try:
            config.load(_pysaml2_config(settings, metadata, xmlsec))
        except Exception as exc:  # noqa: BLE001 - pysaml2 raises anything on bad metadata
            raise SamlSetupError(
                f"hub.api.saml.idp_metadata: {settings.idp_metadata} is not SAML metadata "
                f"pysaml2 can read ({type(exc).__name__}: {str(exc)[:200]})"
            ) from None
        self.metadata: Any = config.metadata
        self.security: SecurityContext = security_context(config)
        providers = set(self.metadata.identity_providers())
        if settings.idp_entity_id is not None:
            if settings.idp_entity_id not in providers:
                raise SamlSetupError(
                    f"hub.api.saml.idp_entity_id: {settings.idp_entity_id!r} is not an identity "
                    f"provider in {settings.idp_metadata} (found: {', '.join(sorted(providers))})"
                )
            providers = {settings.idp_entity_id}
        if not providers:
            raise SamlSetupError(
                f"hub.api.saml.idp_metadata: {settings.idp_metadata} describes no identity "
                "provider (IDPSSODescriptor), or its validUntil has passed"
            )
        #: Entity IDs whose assertions are accepted.
        self.identity_providers = frozenset(providers)
        #: pysaml2's service-provider configuration (for the back office's sign-in requests).
        self.config = config
        #: The IdP the back office sends browsers to, and its sign-in URL; None: SSO is off.
        self.sso: tuple[str, str] | None = (
            self._sso_endpoint(providers) if settings.backoffice is not None else None
        )

    def sp_metadata(self) -> str:
        """The hub's service-provider metadata (entity ID, assertion consumer services)."""
        return str(entity_descriptor(self.config))

    def _sso_endpoint(self, providers: set[str]) -> tuple[str, str]:
        if len(providers) != 1:
            raise SamlSetupError(
                "hub.api.saml.backoffice: the metadata describes several identity providers "
                f"({', '.join(sorted(providers))}); name the one to sign in with in "
                "hub.api.saml.idp_entity_id"
            )
        (idp,) = providers
        try:
            endpoints = self.metadata.single_sign_on_service(idp, BINDING_HTTP_REDIRECT)
        except Exception:  # noqa: BLE001 - pysaml2's metadata lookups raise plain errors
            endpoints = []
        if not endpoints:
            raise SamlSetupError(
                f"hub.api.saml.backoffice: identity provider {idp} offers no SingleSignOnService "
                "with the HTTP-Redirect binding in its metadata; the back office sends browsers "
                "there"
            )
        return idp, str(endpoints[0]["location"])


def _read_metadata(source: str, base_dir: Path) -> str:
    if source.startswith(("http://", "https://")):
        if not source.startswith("https://"):
            raise SamlSetupError(
                f"hub.api.saml.idp_metadata: {source} must be an https:// URL: the metadata holds "
                "the certificates every assertion is checked with"
            )
        try:
            answer = httpx.get(source, timeout=_METADATA_TIMEOUT_S, follow_redirects=True)
            answer.raise_for_status()
        except httpx.HTTPError as exc:
            raise SamlSetupError(
                f"hub.api.saml.idp_metadata: cannot fetch {source}: {exc}"
            ) from None
        if len(answer.content) > _MAX_METADATA_BYTES:
            raise SamlSetupError(f"hub.api.saml.idp_metadata: {source} is larger than 10 MB")
        return answer.text
    path = base_dir / source
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise SamlSetupError(f"hub.api.saml.idp_metadata: cannot read {path}: {reason}") from None


def _pysaml2_config(settings: SamlSettings, metadata: str, xmlsec: str) -> dict[str, Any]:
    # The hub is a service provider: the back office's ACS (when SSO is on) is its assertion
    # consumer service; the token URL stands beside it (the grant itself never uses endpoints).
    services = [(settings.token_url, BINDING_HTTP_POST)]
    if settings.backoffice is not None:
        services.insert(0, (settings.backoffice.acs_url, BINDING_HTTP_POST))
    return {
        "entityid": settings.entity_id,
        "metadata": {"inline": [metadata]},
        "xmlsec_binary": xmlsec,
        "only_use_keys_in_metadata": True,
        "accepted_time_diff": settings.clock_skew_s,
        "allow_unknown_attributes": True,
        "service": {
            "sp": {
                "endpoints": {"assertion_consumer_service": services},
                "want_assertions_signed": True,
                "allow_unsolicited": True,
            }
        },
    }
