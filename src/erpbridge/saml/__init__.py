"""SAML 2.0: the identity provider the hub trusts, verified assertions, and what they grant.

Used by the API's RFC 7522 bearer grant at ``/oauth/token``; a web sign-in (SSO) reuses the same
trust (``hub.api.saml``)."""

from erpbridge.saml.assertion import AssertionRefused, VerifiedAssertion, verify_assertion
from erpbridge.saml.grants import Granted, grant
from erpbridge.saml.trust import SamlSetupError, SamlTrust

__all__ = [
    "AssertionRefused",
    "Granted",
    "SamlSetupError",
    "SamlTrust",
    "VerifiedAssertion",
    "grant",
    "verify_assertion",
]
