"""The IdP trust and the assertion checks on their own: configuration refused with the place and
the cause, the subject named by an attribute, and a NameID that a comment splits read whole."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from erpbridge.config.saml import SamlSettings
from erpbridge.saml import AssertionRefused, SamlSetupError, SamlTrust, verify_assertion
from samlidp import IdentityProvider

HUB = "https://hub.example.test/saml"
TOKEN_URL = "https://hub.example.test/oauth/token"
GRANTS = [{"attribute": "groups", "value": "erp-readers", "scopes": ["read"]}]


@pytest.fixture(scope="module")
def idp(tmp_path_factory: pytest.TempPathFactory) -> IdentityProvider:
    return IdentityProvider(tmp_path_factory.mktemp("idp"))


def _trust(folder: Path, idp: IdentityProvider, **settings: Any) -> SamlTrust:
    (folder / "idp.xml").write_text(idp.metadata(), encoding="utf-8")
    values = {"idp_metadata": "idp.xml", "entity_id": HUB, "token_url": TOKEN_URL}
    return SamlTrust(SamlSettings.model_validate({**values, "grants": GRANTS, **settings}), folder)


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"idp_metadata": "missing.xml"}, "hub.api.saml.idp_metadata: cannot read"),
        (
            {"idp_metadata": "http://idp.example.test/metadata"},
            "must be an https:// URL",
        ),
        ({"idp_metadata": "not-metadata.xml"}, "not-metadata.xml describes no identity provider"),
        ({"idp_metadata": "garbage.xml"}, "garbage.xml is not SAML metadata pysaml2 can read"),
        (
            {"idp_entity_id": "https://other.example.test"},
            "'https://other.example.test' is not an identity provider in idp.xml",
        ),
        (
            {"grants": [{"attribute": "groups", "value": "x", "scopes": ["root"]}]},
            "hub.api.saml.grants.0.scopes: unknown scope(s) root",
        ),
    ],
    ids=["missing-file", "plain-http", "not-metadata", "garbage", "unknown-idp", "unknown-scope"],
)
def test_setup_refused_with_place_and_cause(
    tmp_path: Path, idp: IdentityProvider, settings: dict[str, Any], message: str
) -> None:
    (tmp_path / "not-metadata.xml").write_text("<html>login</html>", encoding="utf-8")
    (tmp_path / "garbage.xml").write_text("<<<", encoding="utf-8")
    with pytest.raises(SamlSetupError) as refused:
        _trust(tmp_path, idp, **settings)
    assert message in str(refused.value)


def test_pinned_idp_and_subject_attribute(tmp_path: Path, idp: IdentityProvider) -> None:
    trust = _trust(tmp_path, idp, idp_entity_id=idp.entity_id, subject_attribute="mail")
    document = idp.assertion(
        "7f3a0c2e", {"mail": ["alice@example.test"]}, audience=HUB, recipient=TOKEN_URL
    )
    verified = verify_assertion(trust, document)
    assert verified.subject == "alice@example.test"
    assert verified.issuer == idp.entity_id
    no_mail = idp.assertion("7f3a0c2e", {"groups": ["x"]}, audience=HUB, recipient=TOKEN_URL)
    with pytest.raises(AssertionRefused, match="has no attribute 'mail'"):
        verify_assertion(trust, no_mail)


def test_token_url_as_audience(tmp_path: Path, idp: IdentityProvider) -> None:
    """RFC 7522 §3: the token endpoint URL may stand for the authorization server."""
    trust = _trust(tmp_path, idp)
    document = idp.assertion("alice", {}, audience=TOKEN_URL, recipient=TOKEN_URL)
    assert verify_assertion(trust, document).subject == "alice"


def test_comment_inside_nameid_is_read_whole(tmp_path: Path, idp: IdentityProvider) -> None:
    """Canonicalisation drops comments, so the signature still holds; a reader that stopped at
    the comment would see another user (the 2018 SAML comment truncation)."""
    trust = _trust(tmp_path, idp)
    document = idp.assertion(
        "alice@example.test.evil.test", {}, audience=HUB, recipient=TOKEN_URL
    ).replace(b">alice@example.test.evil.test<", b">alice@example.test<!---->.evil.test<")
    assert verify_assertion(trust, document).subject == "alice@example.test.evil.test"


BACKOFFICE = {
    "acs_url": "https://hub.example.test/ui/sso/acs",
    "roles": [{"attribute": "groups", "value": "staff", "role": "viewer"}],
}


def test_backoffice_sso_needs_a_redirect_endpoint(tmp_path: Path, idp: IdentityProvider) -> None:
    trust = _trust(tmp_path, idp, backoffice=BACKOFFICE)
    assert trust.sso == (idp.entity_id, "https://idp.example.test/sso")
    assert "https://hub.example.test/ui/sso/acs" in trust.sp_metadata()
    post_only = idp.metadata().replace(
        'Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect"',
        'Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Artifact"',
    )
    (tmp_path / "post-only.xml").write_text(post_only, encoding="utf-8")
    settings = {
        "idp_metadata": "post-only.xml",
        "entity_id": HUB,
        "token_url": TOKEN_URL,
        "grants": GRANTS,
        "backoffice": BACKOFFICE,
    }
    with pytest.raises(SamlSetupError, match="offers no SingleSignOnService with the HTTP-Redir"):
        SamlTrust(SamlSettings.model_validate(settings), tmp_path)


def test_backoffice_acs_url_must_be_the_acs_path() -> None:
    values = {"idp_metadata": "x.xml", "entity_id": HUB, "token_url": TOKEN_URL, "grants": GRANTS}
    with pytest.raises(ValueError, match="acs_url"):
        SamlSettings.model_validate(
            {**values, "backoffice": {**BACKOFFICE, "acs_url": "https://hub/ui/other"}}
        )
