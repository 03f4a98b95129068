"""Verify the ``<samlp:Response>`` an identity provider posts to the back office's assertion
consumer service (web browser SSO, HTTP-POST binding), and say plainly why one is refused.

The checks, in order; the first that fails refuses the response:

1. the form value is base64 of at most ``max_assertion_kb`` KB, well-formed XML without DOCTYPE
   or entities (the hub's XML guard, defusedxml);
2. its shape: the root is a ``<samlp:Response>`` holding exactly one ``<saml:Assertion>``, its
   own direct child, no encrypted assertion; ``<ds:Signature>`` only as a direct child of the
   response or of the assertion (one each at most, at least one of them) and no ``<ds:Object>``.
   With one assertion and signatures only where SAML puts them there is nowhere to hide a signed
   assertion while another is read (signature wrapping);
3. the response answers a request (``InResponseTo``: unsolicited responses are refused) and is
   addressed to the back office (``Destination``, when present, is ``acs_url``);
4. its status is Success (else the IdP's own status code and message are named);
5. its issuer and the assertion's are one identity provider of the configured metadata;
6. every signature there is verifies with that IdP's certificate from the metadata (pysaml2 and
   xmlsec1, never a certificate the response brings along);
7. the assertion's times, ``AudienceRestriction`` (the hub's ``entity_id``) and a bearer
   ``SubjectConfirmation`` for ``acs_url`` still valid and answering the same request
   (``erpbridge.saml.assertion``).

Whether the request is one the hub made, for this browser, and not answered before, is the
caller's check with the store (``store.samlrequests``); a second use of the assertion is refused
by ``store.assertions``.
"""

from __future__ import annotations

import base64
import binascii
import re
import warnings
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from xml.etree.ElementTree import Element

from erpbridge.saml.assertion import (
    AssertionRefused,
    Expected,
    VerifiedAssertion,
    check_signed,
    parse,
    verified_content,
)
from erpbridge.saml.trust import SamlTrust

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message="CFB has been moved")
    from saml2 import class_name

__all__ = ["SignedResponse", "verify_response"]

_SAML = "urn:oasis:names:tc:SAML:2.0:assertion"
_SAMLP = "urn:oasis:names:tc:SAML:2.0:protocol"
_DSIG = "http://www.w3.org/2000/09/xmldsig#"
_SUCCESS = "urn:oasis:names:tc:SAML:2.0:status:Success"
_BASE64 = re.compile(rb"[A-Za-z0-9+/]+={0,2}")


@dataclass(frozen=True, slots=True)
class SignedResponse:
    """A verified response: the request it answers and what its assertion says."""

    in_response_to: str
    assertion: VerifiedAssertion


def verify_response(
    trust: SamlTrust, posted: str, acs_url: str, at: datetime | None = None
) -> SignedResponse:
    """The verified content of ``posted`` (the ``SAMLResponse`` form value);
    :class:`AssertionRefused` otherwise."""
    at = at or datetime.now(UTC)
    document = _decode(posted, trust.settings.max_assertion_kb)
    root = parse(document, "the SAML response")
    assertion = _check_shape(root)
    answers = (root.get("InResponseTo") or "").strip()
    if not answers:
        raise AssertionRefused(
            "the response answers no sign-in request (no InResponseTo): unsolicited responses "
            "are refused; start the sign-in from the hub's login page"
        )
    destination = root.get("Destination")
    if destination is not None and destination.strip() != acs_url:
        raise AssertionRefused(
            f"the response is addressed to {destination.strip()!r}, not to this hub's "
            f"ACS URL {acs_url!r} (hub.api.saml.backoffice.acs_url)"
        )
    _check_status(root)
    issuer = _issuer(root, assertion, trust)
    text = document.decode("utf-8", errors="replace")
    item = _check_signatures(trust, text, root, assertion, issuer)
    expect = Expected(acs_url, "this hub's ACS URL", (), answers)
    return SignedResponse(answers, verified_content(trust, item, issuer, expect, at))


def _decode(posted: str, max_kb: int) -> bytes:
    limit = max_kb * 1024
    packed = re.sub(rb"\s+", b"", posted.encode("ascii", errors="replace"))
    if len(packed) > limit * 4 // 3 + 4:
        raise AssertionRefused(f"the SAML response is larger than {max_kb} KB")
    if not packed or not _BASE64.fullmatch(packed):
        raise AssertionRefused("the SAMLResponse form field is not base64")
    try:
        return base64.b64decode(packed, validate=True)
    except (binascii.Error, ValueError):
        raise AssertionRefused("the SAMLResponse form field is not base64") from None


def _check_shape(root: Element) -> Element:
    if root.tag != f"{{{_SAMLP}}}Response":
        raise AssertionRefused(f"the root element is {root.tag}, not a SAML 2.0 <samlp:Response>")
    if next(root.iter(f"{{{_SAML}}}EncryptedAssertion"), None) is not None:
        raise AssertionRefused("encrypted assertions are not supported")
    assertions = list(root.iter(f"{{{_SAML}}}Assertion"))
    if len(assertions) != 1 or assertions[0] not in list(root):
        raise AssertionRefused(
            f"the response holds {len(assertions)} assertion(s); exactly one is accepted, a "
            "direct child of the <Response> (anything else is a signature-wrapping pattern)"
        )
    (assertion,) = assertions
    signature = f"{{{_DSIG}}}Signature"
    on_response = [s for s in root if s.tag == signature]
    on_assertion = [s for s in assertion if s.tag == signature]
    placed = len(on_response) + len(on_assertion)
    if sum(1 for _ in root.iter(signature)) != placed:
        raise AssertionRefused(
            "the response holds a signature where SAML puts none; one is accepted as a direct "
            "child of the <Response> and one of the <Assertion>"
        )
    if len(on_response) > 1 or len(on_assertion) > 1:
        raise AssertionRefused("the response or its assertion carries more than one signature")
    if not placed:
        raise AssertionRefused("neither the response nor its assertion is signed")
    if next(root.iter(f"{{{_DSIG}}}Object"), None) is not None:
        raise AssertionRefused("a signature carries a <ds:Object>, which SAML does not allow")
    if not root.get("ID") or not assertion.get("ID"):
        raise AssertionRefused("the response or its assertion has no ID")
    return assertion


def _check_status(root: Element) -> None:
    status = root.find(f"{{{_SAMLP}}}Status")
    code = status.find(f"{{{_SAMLP}}}StatusCode") if status is not None else None
    value = code.get("Value") if code is not None else None
    if value == _SUCCESS:
        return
    if code is None or status is None:
        raise AssertionRefused("the response has no <StatusCode>")
    inner = code.find(f"{{{_SAMLP}}}StatusCode")
    detail = inner.get("Value", "") if inner is not None else ""
    message = (status.findtext(f"{{{_SAMLP}}}StatusMessage") or "").strip()[:200]
    said = ", ".join(
        part for part in (str(value).rsplit(":", 1)[-1], detail.rsplit(":", 1)[-1], message) if part
    )
    raise AssertionRefused(f"the identity provider did not sign the user in ({said})")


def _issuer(root: Element, assertion: Element, trust: SamlTrust) -> str:
    issuer = (assertion.findtext(f"{{{_SAML}}}Issuer") or "").strip()
    if not issuer:
        raise AssertionRefused("the assertion has no <Issuer>")
    outer = root.findtext(f"{{{_SAML}}}Issuer")
    if outer is not None and outer.strip() != issuer:
        raise AssertionRefused(
            f"the response's issuer {outer.strip()!r} is not its assertion's {issuer!r}"
        )
    if issuer not in trust.identity_providers:
        raise AssertionRefused(
            f"issuer {issuer!r} is not a trusted identity provider (hub.api.saml.idp_metadata)"
        )
    return issuer


def _check_signatures(
    trust: SamlTrust, text: str, root: Element, assertion: Element, issuer: str
) -> Any:
    """The pysaml2 assertion of the response, once every signature there verified."""
    security = trust.security
    response = check_signed(
        lambda: security.correctly_signed_response(text, must=False),
        "the response",
        issuer,
    )
    if response is None or len(response.assertion) != 1:
        raise AssertionRefused("the document is not a SAML 2.0 response with one assertion")
    item = response.assertion[0]
    if next(assertion.iter(f"{{{_DSIG}}}Signature"), None) is not None:
        check_signed(
            lambda: security.check_signature(item, class_name(item), origdoc=text, must=True),
            "the assertion",
            issuer,
        )
    elif item.signature is not None or response.signature is None:
        raise AssertionRefused("neither the response nor its assertion is signed")
    if str(item.id) != assertion.get("ID"):
        raise AssertionRefused("the verified assertion is not the one in the response")
    return item
