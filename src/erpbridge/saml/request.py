"""The back office's sign-in request: a SAML ``<AuthnRequest>`` (pysaml2's service provider)
sent to the identity provider with the HTTP-Redirect binding, asking for the answer at the
back office's assertion consumer service with the HTTP-POST binding."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from erpbridge.saml.trust import SamlSetupError, SamlTrust

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message="CFB has been moved")
    from saml2 import BINDING_HTTP_POST, BINDING_HTTP_REDIRECT
    from saml2.client import Saml2Client

__all__ = ["SignInRequest", "sign_in_request"]


@dataclass(frozen=True, slots=True)
class SignInRequest:
    """A request made: its ID (the answer's InResponseTo) and where to send the browser."""

    request_id: str
    location: str


@lru_cache(maxsize=2)  # the trust of the running configuration (a reload makes a new one)
def _client(trust: SamlTrust) -> Any:
    return Saml2Client(config=trust.config)


def sign_in_request(trust: SamlTrust, relay_state: str) -> SignInRequest:
    """A new ``<AuthnRequest>`` to the back office's IdP (``trust.sso``)."""
    if trust.sso is None or trust.settings.backoffice is None:
        raise SamlSetupError("hub.api.saml.backoffice is not set: single sign-on is off")
    idp, _ = trust.sso
    request_id, info = _client(trust).prepare_for_authenticate(
        entityid=idp,
        relay_state=relay_state,
        binding=BINDING_HTTP_REDIRECT,
        response_binding=BINDING_HTTP_POST,
        assertion_consumer_service_url=trust.settings.backoffice.acs_url,
    )
    location = dict(info["headers"])["Location"]
    return SignInRequest(str(request_id), str(location))
