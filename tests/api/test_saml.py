"""SAML 2.0 bearer assertions (RFC 7522) at ``/oauth/token``, against pysaml2's IdP started here
with its own key pair: what a valid assertion gets, and every way a bad one is refused (an RFC
6749 error naming the failed check, never a 500, nothing remembered)."""

from __future__ import annotations

import base64
import copy
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from cryptography.fernet import Fernet
from lxml import etree
from sqlalchemy import func, select

from api.conftest import CONFIG, HOOK_SECRET, Project
from erpbridge.api import build_hub
from erpbridge.config.loader import load_config
from erpbridge.errors import ConfigError
from erpbridge.store import open_store
from erpbridge.store.tables import seen_assertions
from hubprocess import serve_hub
from samlidp import IdentityProvider, encode, new_id, stamp

GRANT = "urn:ietf:params:oauth:grant-type:saml2-bearer"
HUB_ENTITY = "https://hub.example.test/saml"
TOKEN_URL = "https://hub.example.test/oauth/token"
SAML_BLOCK = f"""    saml:
      idp_metadata: idp-metadata.xml
      entity_id: "{HUB_ENTITY}"
      token_url: "{TOKEN_URL}"
      clock_skew_s: 60
      grants:
        - {{attribute: groups, value: erp-admins, scopes: [admin]}}
        - {{attribute: groups, value: shop-integration, scopes: [events, read], channels: [shop]}}
"""
SAML_CONFIG = CONFIG.replace("  api:\n", "  api:\n" + SAML_BLOCK, 1)
SHOP = {"groups": ["shop-integration"], "mail": ["alice@shop.example.test"]}
ADMINS = {"groups": ["erp-admins"]}
EVENT = {"id": "C-1", "name": "Muster GmbH"}
NS = {
    "saml": "urn:oasis:names:tc:SAML:2.0:assertion",
    "samlp": "urn:oasis:names:tc:SAML:2.0:protocol",
    "ds": "http://www.w3.org/2000/09/xmldsig#",
}


@pytest.fixture(scope="module")
def idp(tmp_path_factory: pytest.TempPathFactory) -> IdentityProvider:
    return IdentityProvider(tmp_path_factory.mktemp("idp"))


@pytest.fixture
def saml_project(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, idp: IdentityProvider
) -> Iterator[Project]:
    monkeypatch.setenv("SHOP_HOOK_SECRET", HOOK_SECRET)
    monkeypatch.setenv("ERPBRIDGE_SECRET_KEY", Fernet.generate_key().decode())
    (tmp_path / "erp").mkdir()
    (tmp_path / "idp-metadata.xml").write_text(idp.metadata(), encoding="utf-8")
    (tmp_path / "erpbridge.yaml").write_text(SAML_CONFIG, encoding="utf-8")
    engine = open_store(f"sqlite:///{tmp_path / 'hub.db'}")
    hub = build_hub(load_config(tmp_path / "erpbridge.yaml"), engine)
    yield Project(tmp_path, hub, engine, {})
    engine.dispose()


def _issue(idp: IdentityProvider, attributes: dict[str, list[str]] = SHOP, **kwargs: Any) -> bytes:
    return idp.assertion("alice", attributes, audience=HUB_ENTITY, recipient=TOKEN_URL, **kwargs)


def _exchange(project: Project, assertion: str | None, scope: str | None = None) -> httpx.Response:
    form = {"grant_type": GRANT}
    if assertion is not None:
        form["assertion"] = assertion
    if scope:
        form["scope"] = scope
    with project.client() as http:
        return http.post("/oauth/token", data=form)


def _remembered(project: Project) -> int:
    with project.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(seen_assertions)).scalar_one())


def _refused(answer: httpx.Response, error: str, *fragments: str) -> None:
    assert answer.status_code in (400, 401), answer.text
    body = answer.json()
    assert body["error"] == error, body
    for fragment in fragments:
        assert fragment in body["error_description"], body
    assert answer.headers["Cache-Control"] == "no-store"


# --- what a valid assertion gets -----------------------------------------------------------------


def test_valid_assertion_gets_token_with_mapped_scopes_and_channels(
    saml_project: Project, idp: IdentityProvider
) -> None:
    answer = _exchange(saml_project, encode(_issue(idp)))
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["token_type"] == "Bearer" and body["expires_in"] == 900
    assert body["scope"] == "events read"
    assert answer.headers["Cache-Control"] == "no-store"
    claims = jwt.decode(body["access_token"], options={"verify_signature": False})
    assert jwt.get_unverified_header(body["access_token"])["alg"] == "ES256"
    assert claims["sub"] == "saml:alice" and claims["idp"] == idp.entity_id
    assert claims["channels"] == ["shop"]
    bearer = {"Authorization": f"Bearer {body['access_token']}"}
    with saml_project.client(**bearer) as http:
        assert http.post("/api/v1/events/customers-in", json=EVENT).status_code == 202
        other = http.post("/api/v1/events/other-in", json={"sku": "A"})
        assert http.get("/api/v1/flows").status_code == 200
        admin_only = http.post("/api/v1/flows/customers-in/disable")
    assert other.status_code == 403
    assert "'saml:alice' may not use channel 'other'" in other.json()["error"]["message"]
    assert admin_only.status_code == 403
    assert "'saml:alice' lacks the scope 'admin'" in admin_only.json()["error"]["message"]
    assert _remembered(saml_project) == 1


def test_admin_group_narrowed_to_read(saml_project: Project, idp: IdentityProvider) -> None:
    answer = _exchange(saml_project, encode(_issue(idp, ADMINS)), scope="read")
    assert answer.status_code == 200, answer.text
    assert answer.json()["scope"] == "read"
    claims = jwt.decode(answer.json()["access_token"], options={"verify_signature": False})
    assert "channels" not in claims  # the admin rule restricts no channel
    bearer = {"Authorization": f"Bearer {answer.json()['access_token']}"}
    with saml_project.client(**bearer) as http:
        assert http.get("/api/v1/flows").status_code == 200
        write = http.post("/api/v1/events/other-in", json={"sku": "A"})
    assert write.status_code == 403 and "lacks the scope 'events'" in write.text


def test_within_clock_skew_is_accepted(saml_project: Project, idp: IdentityProvider) -> None:
    soon = datetime.now(UTC) + timedelta(seconds=30)

    def early(assertion: Any) -> None:
        assertion.conditions.not_before = stamp(soon)

    assert _exchange(saml_project, encode(_issue(idp, change=early))).status_code == 200


def test_scope_beyond_the_grant(saml_project: Project, idp: IdentityProvider) -> None:
    answer = _exchange(saml_project, encode(_issue(idp)), scope="read admin")
    _refused(answer, "invalid_scope", "the assertion of 'alice': the client does not hold admin")
    assert _remembered(saml_project) == 0


def test_no_matching_rule(saml_project: Project, idp: IdentityProvider) -> None:
    answer = _exchange(saml_project, encode(_issue(idp, {"groups": ["staff"]})))
    _refused(answer, "invalid_grant", "matches no rule of hub.api.saml.grants")


def test_token_stops_when_saml_is_no_longer_configured(
    saml_project: Project, idp: IdentityProvider
) -> None:
    token = _exchange(saml_project, encode(_issue(idp))).json()["access_token"]
    (saml_project.root / "plain.yaml").write_text(CONFIG, encoding="utf-8")
    without = build_hub(load_config(saml_project.root / "plain.yaml"), saml_project.engine)
    plain = Project(saml_project.root, without, saml_project.engine, {})
    with plain.client(Authorization=f"Bearer {token}") as http:
        answer = http.get("/api/v1/flows")
    assert answer.status_code == 401
    assert "no longer configured" in answer.json()["error"]["message"]
    refused = _exchange(plain, encode(_issue(idp)))
    _refused(refused, "unsupported_grant_type", "not configured (hub.api.saml)")


# --- assertions that are wrong in time, place or person ----------------------------------------


def _conditions(
    not_before: timedelta | None, not_on_or_after: timedelta, confirmation: timedelta
) -> Callable[[Any], None]:
    def change(assertion: Any) -> None:
        at = datetime.now(UTC)
        assertion.conditions.not_before = stamp(at + not_before) if not_before else None
        assertion.conditions.not_on_or_after = stamp(at + not_on_or_after)
        data = assertion.subject.subject_confirmation[0].subject_confirmation_data
        data.not_on_or_after = stamp(at + confirmation)

    return change


def _audience(assertion: Any) -> None:
    assertion.conditions.audience_restriction[0].audience[0].text = "https://other.example.test"


def _recipient(assertion: Any) -> None:
    data = assertion.subject.subject_confirmation[0].subject_confirmation_data
    data.recipient = "https://evil.example.test/oauth/token"


def _sender_vouches(assertion: Any) -> None:
    method = "urn:oasis:names:tc:SAML:2.0:cm:sender-vouches"
    assertion.subject.subject_confirmation[0].method = method


def _confirmation_expired(assertion: Any) -> None:
    data = assertion.subject.subject_confirmation[0].subject_confirmation_data
    data.not_on_or_after = stamp(datetime.now(UTC) - timedelta(minutes=5))


def _no_audience(assertion: Any) -> None:
    assertion.conditions.audience_restriction = []


@pytest.mark.parametrize(
    ("change", "fragments"),
    [
        (
            _conditions(timedelta(minutes=-20), timedelta(minutes=-10), timedelta(minutes=-10)),
            ("the assertion has expired: NotOnOrAfter",),
        ),
        (
            _conditions(timedelta(minutes=10), timedelta(minutes=20), timedelta(minutes=20)),
            ("the assertion is not valid yet: NotBefore",),
        ),
        (_audience, ("meant for 'https://other.example.test'", HUB_ENTITY)),
        (_no_audience, ("no <AudienceRestriction>",)),
        (_recipient, ("Recipient is 'https://evil.example.test/oauth/token'", TOKEN_URL)),
        (_sender_vouches, ("is not bearer",)),
        (_confirmation_expired, ("no bearer SubjectConfirmation fits: it expired at",)),
    ],
    ids=[
        "expired",
        "not-yet-valid",
        "wrong-audience",
        "no-audience",
        "wrong-recipient",
        "not-bearer",
        "confirmation-expired",
    ],
)
def test_assertion_out_of_time_or_place(
    saml_project: Project,
    idp: IdentityProvider,
    change: Callable[[Any], None],
    fragments: tuple[str, ...],
) -> None:
    answer = _exchange(saml_project, encode(_issue(idp, change=change)))
    _refused(answer, "invalid_grant", *fragments)
    assert _remembered(saml_project) == 0


def test_unsigned_assertion(saml_project: Project, idp: IdentityProvider) -> None:
    answer = _exchange(saml_project, encode(_issue(idp, sign=False)))
    _refused(answer, "invalid_grant", "the assertion is not signed")


def test_signed_by_another_key(
    saml_project: Project, idp: IdentityProvider, tmp_path: Path
) -> None:
    rogue = IdentityProvider(tmp_path / "rogue", entity_id=idp.entity_id)  # same name, own key
    answer = _exchange(saml_project, encode(_issue(rogue)))
    _refused(answer, "invalid_grant", "signature does not verify with the certificate of")


def test_unknown_issuer(saml_project: Project, tmp_path: Path) -> None:
    stranger = IdentityProvider(tmp_path / "stranger", entity_id="https://stranger.example.test")
    answer = _exchange(saml_project, encode(_issue(stranger)))
    _refused(answer, "invalid_grant", "'https://stranger.example.test' is not a trusted identity")


def test_replayed_assertion(saml_project: Project, idp: IdentityProvider) -> None:
    assertion = encode(_issue(idp))
    assert _exchange(saml_project, assertion).status_code == 200
    again = _exchange(saml_project, assertion)
    _refused(again, "invalid_grant", "was used already")
    assert _remembered(saml_project) == 1


# --- signature wrapping (XSW) --------------------------------------------------------------------


def _tree(document: bytes) -> Any:
    return etree.fromstring(document)


def _evil_twin(signed: Any) -> Any:
    """The signed assertion made to say 'mallory, admin' (its signature copied along)."""
    evil = copy.deepcopy(signed)
    evil.find("saml:Subject/saml:NameID", NS).text = "mallory"
    for value in evil.iterfind(".//saml:Attribute[@Name='groups']/saml:AttributeValue", NS):
        value.text = "erp-admins"
    return evil


def _evil_first_in_response(document: bytes) -> bytes:
    signed = _tree(document)
    evil = _evil_twin(signed)
    evil.remove(evil.find("ds:Signature", NS))
    evil.set("ID", new_id())
    response = etree.Element(f"{{{NS['samlp']}}}Response", nsmap={"samlp": NS["samlp"]})
    response.set("ID", new_id())
    response.set("Version", "2.0")
    response.set("IssueInstant", stamp(datetime.now(UTC)))
    response.extend([evil, signed])
    return etree.tostring(response)


def _evil_before_signed(document: bytes) -> bytes:
    evil = _evil_twin(_tree(document))
    evil.remove(evil.find("ds:Signature", NS))
    evil.set("ID", new_id())
    return etree.tostring(evil) + document.split(b"?>", 1)[-1]


def _signed_moved_into_object(document: bytes) -> bytes:
    signed = _tree(document)
    evil = _evil_twin(signed)  # same ID, the original signature in place
    holder = etree.SubElement(evil.find("ds:Signature", NS), f"{{{NS['ds']}}}Object")
    holder.append(signed)
    return etree.tostring(evil)


def _signed_moved_into_advice(document: bytes) -> bytes:
    signed = _tree(document)
    evil = _evil_twin(signed)
    advice = etree.Element(f"{{{NS['saml']}}}Advice")
    advice.append(signed)
    evil.find("saml:Conditions", NS).addnext(advice)
    return etree.tostring(evil)


def _signed_moved_into_extensions(document: bytes) -> bytes:
    signed = _tree(document)
    evil = _evil_twin(signed)
    evil.remove(evil.find("ds:Signature", NS))
    data = evil.find(".//saml:SubjectConfirmationData", NS)  # takes any content
    extensions = etree.SubElement(data, f"{{{NS['samlp']}}}Extensions")
    extensions.append(signed)
    return etree.tostring(evil)


def _nameid_changed(document: bytes) -> bytes:
    return document.replace(b">alice</", b">mallory</")


def _attribute_added(document: bytes) -> bytes:
    return document.replace(b">shop-integration</", b">erp-admins</")


@pytest.mark.parametrize(
    ("wrap", "fragments"),
    [
        (_evil_first_in_response, ("a SAML Response is not an assertion",)),
        (_evil_before_signed, ("not well-formed XML",)),
        (_signed_moved_into_object, ("holds 2 assertions",)),
        (_signed_moved_into_advice, ("holds 2 assertions",)),
        (_signed_moved_into_extensions, ("holds 2 assertions",)),
        (_nameid_changed, ("signature does not verify",)),
        (_attribute_added, ("signature does not verify",)),
    ],
    ids=[
        "evil-first-in-response",
        "evil-before-signed",
        "signed-moved-into-object",
        "signed-moved-into-advice",
        "signed-moved-into-extensions",
        "nameid-changed-after-signing",
        "attribute-changed-after-signing",
    ],
)
def test_signature_wrapping_is_refused(
    saml_project: Project,
    idp: IdentityProvider,
    wrap: Callable[[bytes], bytes],
    fragments: tuple[str, ...],
) -> None:
    answer = _exchange(saml_project, encode(wrap(_issue(idp))))
    _refused(answer, "invalid_grant", *fragments)
    assert _remembered(saml_project) == 0


def test_signature_must_be_the_assertions_own(saml_project: Project, idp: IdentityProvider) -> None:
    """The signature moved from the assertion into its subject: one signature, wrong place."""
    signed = _tree(_issue(idp))
    signature = signed.find("ds:Signature", NS)
    signed.find("saml:Subject", NS).append(signature)
    answer = _exchange(saml_project, encode(etree.tostring(signed)))
    _refused(answer, "invalid_grant", "a direct child of the <Assertion>")


# --- not even an assertion -------------------------------------------------------------------


def _doctype(idp: IdentityProvider) -> str:
    body = _issue(idp).split(b"?>", 1)[-1].replace(b">alice</", b">&who;</")
    return encode(b'<!DOCTYPE a [<!ENTITY who "mallory">]>' + body)


def _external_entity(_: IdentityProvider) -> str:
    return encode(b'<!DOCTYPE a [<!ENTITY x SYSTEM "file:///etc/passwd">]><a>&x;</a>')


def _oversized(idp: IdentityProvider) -> str:
    return encode(_issue(idp, {**SHOP, "note": ["x" * 70_000]}))


def _too_deep(_: IdentityProvider) -> str:
    return encode(b"<a>" * 5000 + b"</a>" * 5000)


@pytest.mark.parametrize(
    ("make", "error", "fragment"),
    [
        (lambda _: "%%%not-base64%%%", "invalid_grant", "not base64url"),
        (lambda _: "QUJD", "invalid_grant", "not well-formed XML"),
        (lambda _: "QUJDR", "invalid_grant", "not base64url"),
        (lambda _: base64.b64encode(b"<a>+/</a>?>>").decode(), "invalid_grant", "not base64url"),
        (_doctype, "invalid_grant", "DOCTYPE/entity declarations are not accepted"),
        (_external_entity, "invalid_grant", "DOCTYPE/entity declarations are not accepted"),
        (_oversized, "invalid_grant", "larger than 64 KB"),
        (_too_deep, "invalid_grant", "nested more than 100 elements deep"),
        (lambda _: encode(b"<x/>"), "invalid_grant", "root element is x"),
        (lambda _: "", "invalid_request", "assertion parameter is missing"),
        (lambda _: None, "invalid_request", "assertion parameter is missing"),
    ],
    ids=[
        "garbage",
        "not-xml",
        "bad-length",
        "standard-base64",
        "doctype-entity",
        "external-entity",
        "oversized",
        "too-deep",
        "not-an-assertion",
        "empty",
        "missing",
    ],
)
def test_malformed_assertions(
    saml_project: Project,
    idp: IdentityProvider,
    make: Callable[[IdentityProvider], str | None],
    error: str,
    fragment: str,
) -> None:
    _refused(_exchange(saml_project, make(idp)), error, fragment)
    assert _remembered(saml_project) == 0


def test_saml_off_is_unsupported(project: Project) -> None:
    _refused(_exchange(project, "QUJD"), "unsupported_grant_type", "not configured")


# --- configuration ---------------------------------------------------------------------------


def test_unknown_channel_in_grants_is_a_config_error(tmp_path: Path) -> None:
    text = SAML_CONFIG.replace("channels: [shop]", "channels: [shop, nowhere]")
    (tmp_path / "erpbridge.yaml").write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as refused:
        load_config(tmp_path / "erpbridge.yaml", env={"SHOP_HOOK_SECRET": HOOK_SECRET})
    assert [str(p) for p in refused.value.problems] == [
        "erpbridge.yaml:11 hub.api.saml.grants[1].channels: no channel named nowhere"
    ]


def test_unknown_channel_in_backoffice_roles_is_a_config_error(tmp_path: Path) -> None:
    backoffice = (
        "      backoffice:\n"
        '        acs_url: "https://hub.example.test/ui/sso/acs"\n'
        "        roles:\n"
        "          - {attribute: groups, value: staff, role: viewer, channels: [elsewhere]}\n"
    )
    text = SAML_CONFIG.replace(SAML_BLOCK, SAML_BLOCK + backoffice)
    (tmp_path / "erpbridge.yaml").write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as refused:
        load_config(tmp_path / "erpbridge.yaml", env={"SHOP_HOOK_SECRET": HOOK_SECRET})
    assert [str(p).split(" ", 1)[1] for p in refused.value.problems] == [
        "hub.api.saml.backoffice.roles[0].channels: no channel named elsewhere"
    ]


def test_served_api_refuses_to_start_without_metadata(tmp_path: Path) -> None:
    (tmp_path / "erpbridge.yaml").write_text(SAML_CONFIG, encoding="utf-8")
    env = {
        **os.environ,
        "SHOP_HOOK_SECRET": HOOK_SECRET,
        "ERPBRIDGE_SECRET_KEY": Fernet.generate_key().decode(),
    }
    env.pop("ERPBRIDGE_DATABASE_URL", None)
    done = subprocess.run(
        [sys.executable, "-m", "erpbridge", "api", "-c", str(tmp_path / "erpbridge.yaml")],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert "hub.api.saml.idp_metadata: cannot read" in done.stderr
    assert "Traceback" not in done.stderr + done.stdout


# --- the served process ----------------------------------------------------------------------


def test_served_grant_works_and_replay_is_refused_by_another_process(
    tmp_path: Path, idp: IdentityProvider
) -> None:
    """Two ``erpbridge api`` processes on one hub store: a token from one opens the other, and
    an assertion used at one is refused at the other."""
    root = tmp_path / "hub"
    root.mkdir()
    (root / "erp").mkdir()
    (root / "idp-metadata.xml").write_text(idp.metadata(), encoding="utf-8")
    env = {"SHOP_HOOK_SECRET": HOOK_SECRET, "ERPBRIDGE_SECRET_KEY": Fernet.generate_key().decode()}
    assertion = encode(_issue(idp))
    form = {"grant_type": GRANT, "assertion": assertion}
    with (
        serve_hub(root, SAML_CONFIG, env=env) as first,
        serve_hub(root, SAML_CONFIG, env=env) as second,
        first.client() as one,
        second.client() as two,
    ):
        answer = one.post("/oauth/token", data=form)
        assert answer.status_code == 200, answer.text
        assert answer.json()["scope"] == "events read"
        bearer = {"Authorization": f"Bearer {answer.json()['access_token']}"}
        event = two.post("/api/v1/events/customers-in", json=EVENT, headers=bearer)
        assert event.status_code == 202, event.text
        other = two.post("/api/v1/events/other-in", json={"sku": "A"}, headers=bearer)
        assert other.status_code == 403
        replay = two.post("/oauth/token", data=form)
        _refused(replay, "invalid_grant", "was used already")
        garbage = two.post("/oauth/token", data={"grant_type": GRANT, "assertion": "%%%"})
        _refused(garbage, "invalid_grant", "not base64url")
        wrapped = one.post(
            "/oauth/token",
            data={"grant_type": GRANT, "assertion": encode(_signed_moved_into_object(_issue(idp)))},
        )
        _refused(wrapped, "invalid_grant", "holds 2 assertions")
