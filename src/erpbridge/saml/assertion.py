"""Verify one SAML 2.0 assertion as RFC 7522 asks, and say plainly why one is refused.

The checks, in order; the first that fails refuses the assertion:

1. the document is well-formed XML without DOCTYPE or entity declarations, nested at most
   ``xmlguard.MAX_DEPTH`` levels (the hub's one XML guard, defusedxml);
2. its shape: the root is the one ``<saml:Assertion>`` of the document, carrying exactly one
   ``<ds:Signature>``, its own direct child, and no ``<ds:Object>``. Signature wrapping (XSW)
   hides a signed assertion somewhere in the document while another one is read: with one
   assertion and one signature there is nowhere to hide it;
3. the issuer is an identity provider of the configured metadata;
4. the signature verifies with that IdP's certificate from the metadata (pysaml2 and xmlsec1;
   pysaml2 also requires the signature to reference the assertion's own ID, enveloped, one
   reference, exclusive canonicalisation, and the assertion to be valid against the schema);
5. times: ``IssueInstant`` not in the future, ``Conditions`` ``NotBefore``/``NotOnOrAfter``;
6. ``AudienceRestriction``: every one names the hub's ``entity_id`` (or its ``token_url``);
7. the subject has a ``NameID`` and a bearer ``SubjectConfirmation`` whose data names the token
   URL as ``Recipient`` and has a ``NotOnOrAfter`` still ahead.

What is read afterwards (subject, attributes) comes from the very object whose signature was
verified. Replay (the same assertion ID twice) is the store's job (``store.assertions``).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from xml.etree.ElementTree import Element, ParseError

from erpbridge.errors import ErpbridgeError
from erpbridge.saml.trust import SamlTrust
from erpbridge.transports import xmlguard

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message="CFB has been moved")
    from saml2 import saml
    from saml2.sigver import SignatureError

__all__ = [
    "AssertionRefused",
    "Expected",
    "VerifiedAssertion",
    "check_signed",
    "parse",
    "show",
    "verified_content",
    "verify_assertion",
]

_SAML = "urn:oasis:names:tc:SAML:2.0:assertion"
_SAMLP = "urn:oasis:names:tc:SAML:2.0:protocol"
_DSIG = "http://www.w3.org/2000/09/xmldsig#"
_XENC = "http://www.w3.org/2001/04/xmlenc#"
_BEARER = "urn:oasis:names:tc:SAML:2.0:cm:bearer"


class AssertionRefused(ErpbridgeError):
    """The assertion does not prove who the caller is; the message says which check failed."""


@dataclass(frozen=True, slots=True)
class VerifiedAssertion:
    """What a verified assertion says."""

    id: str
    issuer: str
    #: The NameID, or the first value of ``subject_attribute`` when that is configured.
    subject: str
    #: Attribute values by the attribute's Name and by its FriendlyName.
    attributes: Mapping[str, tuple[str, ...]]
    #: The last moment the assertion could still be accepted (its expiry plus the clock skew).
    usable_until: datetime


def verify_assertion(
    trust: SamlTrust, document: bytes, at: datetime | None = None
) -> VerifiedAssertion:
    """The verified content of the assertion ``document``; :class:`AssertionRefused` otherwise."""
    settings = trust.settings
    at = at or datetime.now(UTC)
    root = parse(document, "the assertion")
    _check_shape(root)
    issuer = (root.findtext(f"{{{_SAML}}}Issuer") or "").strip()
    if not issuer:
        raise AssertionRefused("the assertion has no <Issuer>")
    if issuer not in trust.identity_providers:
        raise AssertionRefused(
            f"issuer {issuer!r} is not a trusted identity provider (hub.api.saml.idp_metadata)"
        )
    item = _signed(trust, document, issuer)
    expect = Expected(settings.token_url, "this hub's token URL", (settings.token_url,))
    return verified_content(trust, item, issuer, expect, at)


@dataclass(frozen=True, slots=True)
class Expected:
    """What the bearer confirmation must say: where the assertion is presented (``recipient``,
    named ``recipient_label`` in refusals), other accepted audiences beside the hub's entity ID,
    and the sign-in request it answers (web SSO) or ``None`` (RFC 7522)."""

    recipient: str
    recipient_label: str
    audiences: tuple[str, ...] = ()
    in_response_to: str | None = None


def verified_content(
    trust: SamlTrust, item: Any, issuer: str, expect: Expected, at: datetime
) -> VerifiedAssertion:
    """The content of the assertion ``item`` (pysaml2's, its signature verified, from
    ``issuer``), after the checks 5 to 7 of this module; :class:`AssertionRefused` otherwise."""
    settings = trust.settings
    skew = timedelta(seconds=settings.clock_skew_s)
    if item.version != "2.0":
        raise AssertionRefused(f"SAML version {item.version!r} is not 2.0")
    if item.issuer is None or (item.issuer.text or "").strip() != issuer:
        raise AssertionRefused("the verified assertion names another issuer")
    issued = _time(item.issue_instant, "IssueInstant")
    if issued is not None and issued > at + skew:
        raise AssertionRefused(f"the assertion is issued in the future ({show(issued)})")
    ends = _check_conditions(item, (settings.entity_id, *expect.audiences), at, skew)
    name_id, confirmed_until = _check_subject(item, expect, at, skew)
    attributes = _attributes(item)
    subject = name_id
    if settings.subject_attribute is not None:
        values = attributes.get(settings.subject_attribute, ())
        if not values:
            raise AssertionRefused(
                f"the assertion has no attribute {settings.subject_attribute!r} "
                "(hub.api.saml.subject_attribute) to name the caller by"
            )
        subject = values[0]
    expiry = min(t for t in (ends, confirmed_until) if t is not None)
    return VerifiedAssertion(str(item.id), issuer, subject, attributes, expiry + skew)


def parse(document: bytes, what: str) -> Element:
    """``document`` parsed by the hub's XML guard; :class:`AssertionRefused` naming ``what``."""
    try:
        return xmlguard.fromstring(document)
    except xmlguard.XmlRefused as exc:
        raise AssertionRefused(f"{what}: {exc}") from None
    except ParseError as exc:
        raise AssertionRefused(f"{what} is not well-formed XML: {exc}") from None


def _check_shape(root: Element) -> None:
    if root.tag == f"{{{_SAMLP}}}Response":
        raise AssertionRefused(
            "a SAML Response is not an assertion: send its <saml:Assertion> element alone, "
            "base64url-encoded (RFC 7522)"
        )
    if root.tag != f"{{{_SAML}}}Assertion":
        raise AssertionRefused(f"the root element is {root.tag}, not a SAML 2.0 <Assertion>")
    assertions = sum(1 for _ in root.iter(f"{{{_SAML}}}Assertion"))
    if assertions != 1:
        raise AssertionRefused(
            f"the document holds {assertions} assertions; exactly one is accepted "
            "(an assertion inside another is a signature-wrapping pattern)"
        )
    if next(root.iter(f"{{{_SAML}}}EncryptedAssertion"), None) is not None:
        raise AssertionRefused("encrypted assertions are not supported")
    signatures = list(root.iter(f"{{{_DSIG}}}Signature"))
    if not signatures:
        raise AssertionRefused("the assertion is not signed")
    if len(signatures) != 1 or signatures[0] not in list(root):
        raise AssertionRefused(
            f"the document holds {len(signatures)} signature(s); exactly one is accepted, "
            "a direct child of the <Assertion>"
        )
    if next(root.iter(f"{{{_DSIG}}}Object"), None) is not None:
        raise AssertionRefused("the signature carries a <ds:Object>, which SAML does not allow")
    if not root.get("ID"):
        raise AssertionRefused("the assertion has no ID")


def _signed(trust: SamlTrust, document: bytes, issuer: str) -> Any:
    item = check_signed(
        lambda: trust.security.correctly_signed_message(document, "assertion", must=True),
        "the assertion",
        issuer,
    )
    if item is None or not isinstance(item, saml.Assertion):
        raise AssertionRefused("the document is not a SAML 2.0 assertion")
    return item


def check_signed(verify: Callable[[], Any], what: str, issuer: str) -> Any:
    """What ``verify`` (a pysaml2 signature check of ``what``) returns; its failures as
    :class:`AssertionRefused` naming the failed check."""
    try:
        return verify()
    except SignatureError as exc:
        detail = exc.args[0] if exc.args else None
        if isinstance(detail, dict) and "validators" in detail:
            failed = [name for name, ok in detail["validators"].items() if not ok]
            raise AssertionRefused(
                f"the signature does not follow the SAML profile: {'; '.join(failed)}"
            ) from None
        if isinstance(detail, dict) and "reason" in detail:
            raise AssertionRefused(
                f"{what} is not valid against the SAML schema: "
                f"{str(detail['reason']).splitlines()[0][:200]}"
            ) from None
        raise AssertionRefused(
            f"{what}: the signature does not verify with the certificate of {issuer} in the "
            "metadata"
        ) from None
    except Exception as exc:  # noqa: BLE001 - pysaml2 and xmlsec1 fail in many ways; none is a 500
        raise AssertionRefused(
            f"{what}: the signature cannot be verified with the certificate of {issuer} in the "
            f"metadata ({type(exc).__name__})"
        ) from None


def _check_conditions(
    item: Any, accepted: tuple[str, ...], at: datetime, skew: timedelta
) -> datetime | None:
    entity_id = accepted[0]
    conditions = item.conditions
    if conditions is None:
        raise AssertionRefused("the assertion has no <Conditions> (RFC 7522 needs an Audience)")
    not_before = _time(conditions.not_before, "Conditions NotBefore")
    ends = _time(conditions.not_on_or_after, "Conditions NotOnOrAfter")
    if not_before is not None and not_before > at + skew:
        raise AssertionRefused(
            f"the assertion is not valid yet: NotBefore {show(not_before)}, now {show(at)} "
            f"(clock skew {skew.seconds} s)"
        )
    if ends is not None and ends <= at - skew:
        raise AssertionRefused(
            f"the assertion has expired: NotOnOrAfter {show(ends)}, now {show(at)} "
            f"(clock skew {skew.seconds} s)"
        )
    restrictions = conditions.audience_restriction
    if not restrictions:
        raise AssertionRefused(
            f"the assertion has no <AudienceRestriction>; it must name {entity_id!r}"
        )
    for restriction in restrictions:
        audiences = [(a.text or "").strip() for a in restriction.audience]
        if not set(accepted) & set(audiences):
            raise AssertionRefused(
                f"the assertion is meant for {', '.join(map(repr, audiences)) or 'nobody'}, "
                f"not for this hub ({entity_id!r})"
            )
    return ends


def _check_subject(
    item: Any, expect: Expected, at: datetime, skew: timedelta
) -> tuple[str, datetime]:
    subject = item.subject
    if subject is None:
        raise AssertionRefused("the assertion has no <Subject>")
    if subject.name_id is None or not (subject.name_id.text or "").strip():
        what = "an encrypted NameID, which is not supported" if subject.encrypted_id else "none"
        raise AssertionRefused(f"the assertion's subject has no NameID ({what})")
    reasons: list[str] = []
    for confirmation in subject.subject_confirmation:
        if confirmation.method != _BEARER:
            reasons.append(f"method {confirmation.method} is not bearer")
            continue
        data = confirmation.subject_confirmation_data
        recipient = (data.recipient or "").strip() if data is not None else ""
        if recipient != expect.recipient:
            reasons.append(
                f"its Recipient is {recipient or 'missing'!r}, not {expect.recipient_label} "
                f"{expect.recipient!r}"
            )
            continue
        answers = data.in_response_to
        if expect.in_response_to is not None and answers not in (None, expect.in_response_to):
            reasons.append(
                f"it answers request {answers!r}, not the response's {expect.in_response_to!r}"
            )
            continue
        until = _time(data.not_on_or_after, "SubjectConfirmationData NotOnOrAfter")
        if until is None:
            reasons.append("its SubjectConfirmationData has no NotOnOrAfter")
            continue
        if until <= at - skew:
            reasons.append(f"it expired at {show(until)} (now {show(at)})")
            continue
        since = _time(data.not_before, "SubjectConfirmationData NotBefore")
        if since is not None and since > at + skew:
            reasons.append(f"it is not valid before {show(since)} (now {show(at)})")
            continue
        return subject.name_id.text.strip(), until
    raise AssertionRefused(
        "no bearer SubjectConfirmation fits: " + ("; ".join(reasons) or "there is none")
    )


def _attributes(item: Any) -> dict[str, tuple[str, ...]]:
    found: dict[str, list[str]] = {}
    for statement in item.attribute_statement:
        for attribute in statement.attribute:
            values = [v.text.strip() for v in attribute.attribute_value if v.text]
            for name in {attribute.name, attribute.friendly_name} - {None, ""}:
                found.setdefault(name, []).extend(values)
    return {name: tuple(values) for name, values in found.items()}


def _time(value: str | None, what: str) -> datetime | None:
    if value is None:
        return None
    try:
        stamp = datetime.fromisoformat(value.strip())
    except ValueError:
        raise AssertionRefused(f"{what} {value[:40]!r} is not an xs:dateTime") from None
    # In UTC: the store compares the expiry as the text SQLite keeps.
    return stamp.astimezone(UTC) if stamp.tzinfo else stamp.replace(tzinfo=UTC)


def show(stamp: datetime) -> str:
    """A moment as refusals name it (UTC, seconds)."""
    return stamp.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
