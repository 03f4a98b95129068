"""Single sign-on into the back office (``hub.api.saml.backoffice``), against ``erpbridge run``
served as a subprocess and a SAML identity provider served here (pysaml2's IdP with its own key
pair, answering the hub's ``<AuthnRequest>`` with a signed ``<Response>`` posted by the browser):

- in Chromium: the login page's SSO button, the IdP's page, the dashboard as ``saml:alice``
  (operator, from the group mapping), an operator action with the session's CSRF token, logout;
  a viewer limited to one channel; a user the mapping gives no role;
- over HTTP, every hostile answer is refused with the failed check named, never a 500, no
  session made: a forged signature, another audience, an expired assertion, a replayed response,
  an unknown or missing InResponseTo, a response carried to another browser, signature wrapping,
  garbage.
"""

from __future__ import annotations

import base64
import html
import re
import urllib.parse
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, expect
from sqlalchemy import Engine, select

from erpbridge.store import open_store
from erpbridge.store.tables import admin_audit, ui_sessions
from erpbridge.store.users import UserError, add_user, check_password
from httpserve import QuietHandler, Served, serve_handler
from hubprocess import ServedHub, free_port
from samlidp import IdentityProvider
from ui.backoffice import CONFIG, served_backoffice

HUB_ENTITY = "https://hub.example.test/saml"
#: Who the test IdP signs in, and their groups.
PEOPLE = {
    "alice": {"groups": ["erp-operators", "staff"]},
    "bob": {"groups": ["staff"]},
    "mallory": {"groups": ["contractors"]},
}


class _Idp:
    """The identity provider the IdP's HTTP handler answers for (made once its port is known)."""

    provider: IdentityProvider


class _IdpHandler(QuietHandler):
    """``GET /sso``: the IdP's sign-in page for the hub's request (a button per person);
    ``POST /sso``: the signed response, posted to the hub's ACS by the browser."""

    def do_GET(self) -> None:
        query = urllib.parse.parse_qs(urllib.parse.urlparse(self.path).query)
        request = _inflate(query["SAMLRequest"][0])
        request_id = re.search(r' ID="([^"]+)"', request)
        acs = re.search(r'AssertionConsumerServiceURL="([^"]+)"', request)
        assert request_id and acs, request
        buttons = "".join(
            f'<button name="who" value="{who}">Sign in as {who}</button> ' for who in PEOPLE
        )
        self._page(
            "<h1>Test identity provider</h1>"
            f"<p>erpbridge asks who you are (request {html.escape(request_id.group(1))}).</p>"
            '<form method="post" action="/sso">'
            f'<input type="hidden" name="id" value="{html.escape(request_id.group(1))}">'
            f'<input type="hidden" name="acs" value="{html.escape(acs.group(1))}">'
            f"{buttons}</form>"
        )

    def do_POST(self) -> None:
        length = int(self.headers["Content-Length"])
        form = urllib.parse.parse_qs(self.rfile.read(length).decode())
        who, acs = form["who"][0], form["acs"][0]
        answer = _Idp.provider.response(
            who, PEOPLE[who], audience=HUB_ENTITY, acs_url=acs, in_response_to=form["id"][0]
        )
        self._page(
            f'<form method="post" action="{html.escape(acs)}">'
            f'<input type="hidden" name="SAMLResponse" value="{answer}">'
            "<button>Continue</button></form>"
            "<script>document.forms[0].submit()</script>"
        )

    def _page(self, body: str) -> None:
        data = f"<!doctype html><html><body>{body}</body></html>".encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


def _inflate(value: str) -> str:
    return zlib.decompress(base64.b64decode(value), -15).decode()


def _config(port: int) -> str:
    return (
        f"""
hub:
  api:
    rate_limits: {{ui_logins: "1000/minute"}}
    saml:
      idp_metadata: idp-metadata.xml
      entity_id: "{HUB_ENTITY}"
      token_url: "http://127.0.0.1:{port}/oauth/token"
      grants:
        - {{attribute: groups, value: erp-admins, scopes: [admin]}}
      backoffice:
        acs_url: "http://127.0.0.1:{port}/ui/sso/acs"
        label: "Sign in with Example ID"
        roles:
          - {{attribute: groups, value: staff, role: viewer, channels: [erp]}}
          - {{attribute: groups, value: erp-operators, role: operator}}
"""
        + CONFIG
    )


@pytest.fixture(scope="module")
def idp_served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    served = serve_handler(_IdpHandler)
    _Idp.provider = IdentityProvider(tmp_path_factory.mktemp("idp"), sso_url=f"{served.url}/sso")
    with served:
        yield served


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory, idp_served: Served) -> Iterator[ServedHub]:
    root = tmp_path_factory.mktemp("sso") / "hub"
    root.mkdir(parents=True)
    (root / "idp-metadata.xml").write_text(_Idp.provider.metadata(), encoding="utf-8")
    port = free_port()
    with served_backoffice(root, _config(port), port=port) as served:
        yield served


# --- in the browser ------------------------------------------------------------------------------


def test_operator_signs_in_with_sso_acts_and_signs_out(
    hub: ServedHub, browser: Browser, shots: Path
) -> None:
    page = browser.new_page(viewport={"width": 1280, "height": 800}, base_url=hub.url)
    page.set_default_timeout(30_000)
    page.on("dialog", lambda dialog: dialog.accept())
    page.goto("/ui/flows")
    sso = page.locator("a#sso")
    expect(sso).to_have_text("Sign in with Example ID")
    page.screenshot(path=str(shots / "sso-login.png"))
    sso.click()
    expect(page.locator("h1")).to_have_text("Test identity provider")
    page.screenshot(path=str(shots / "sso-idp.png"))
    page.click("button[value=alice]")
    expect(page.locator("h1")).to_have_text("Flows")  # back where the user was going
    assert page.url == f"{hub.url}/ui/flows"
    expect(page.locator(".user")).to_have_text("saml:alice")
    expect(page.locator(".role")).to_have_text("operator")
    page.screenshot(path=str(shots / "sso-signed-in.png"))
    # an operator's action works with this session's CSRF token (htmx sends it)
    page.goto("/ui/flows/customers-desk")
    page.click("#pause")
    expect(page.locator("#resume")).to_be_visible()
    page.click("#resume")
    expect(page.locator("#pause")).to_be_visible()
    page.click("header form button")  # sign out
    expect(page.locator("h1")).to_have_text("Sign in")
    page.goto("/ui/")
    expect(page).to_have_url(f"{hub.url}/ui/login?next=/ui/")
    page.close()
    with _store(hub) as engine, engine.connect() as conn:
        logins = conn.execute(
            select(admin_audit.c.actor, admin_audit.c.detail).where(
                admin_audit.c.action == "ui.login", admin_audit.c.outcome == "ok"
            )
        ).all()
        actions = {
            r.action
            for r in conn.execute(select(admin_audit).where(admin_audit.c.actor == "saml:alice"))
        }
    assert any(r.actor == "saml:alice" and "saml" in str(r.detail) for r in logins)
    assert {"ui.logout"} <= actions and len(actions) >= 3, actions


def test_viewer_sees_their_channel_and_unmapped_user_is_refused(
    hub: ServedHub, browser: Browser, shots: Path
) -> None:
    page = browser.new_page(viewport={"width": 1280, "height": 800}, base_url=hub.url)
    page.set_default_timeout(30_000)
    page.goto("/ui/flows")
    page.click("a#sso")
    page.click("button[value=bob]")
    expect(page.locator(".role")).to_have_text("viewer")
    expect(page.locator("main")).to_contain_text("customers-out")
    expect(page.locator("main")).not_to_contain_text("customers-in")  # channel drop: not bob's
    expect(page.locator("#pause")).to_have_count(0)
    page.context.clear_cookies()
    page.goto("/ui/login")
    page.click("a#sso")
    page.click("button[value=mallory]")
    alert = page.locator("[role=alert]")
    expect(alert).to_contain_text("matches no rule of hub.api.saml.backoffice.roles")
    page.screenshot(path=str(shots / "sso-refused.png"))
    page.close()


# --- hostile answers over HTTP -------------------------------------------------------------------


def _start(http: httpx.Client, next_path: str = "/ui/runs") -> str:
    """Start a sign-in as a browser does; the request's ID (its cookie lands in ``http``)."""
    answer = http.get(f"/ui/sso/login?next={next_path}")
    assert answer.status_code == 303, answer.text
    query = urllib.parse.parse_qs(urllib.parse.urlparse(answer.headers["location"]).query)
    found = re.search(r' ID="([^"]+)"', _inflate(query["SAMLRequest"][0]))
    assert found
    return found.group(1)


def _respond(hub: ServedHub, request_id: str | None, who: str = "alice", **kwargs: Any) -> str:
    return _Idp.provider.response(
        who,
        PEOPLE[who],
        audience=kwargs.pop("audience", HUB_ENTITY),
        acs_url=f"{hub.url}/ui/sso/acs",
        in_response_to=request_id,
        **kwargs,
    )


def _post(http: httpx.Client, response: str) -> httpx.Response:
    return http.post("/ui/sso/acs", data={"SAMLResponse": response, "RelayState": ""})


def _refused(answer: httpx.Response, *fragments: str) -> None:
    assert answer.status_code == 403, answer.text
    text = html.unescape(answer.text)
    assert "Single sign-on refused" in text
    for fragment in fragments:
        assert fragment in text, text
    assert (
        "set-cookie" not in answer.headers
        or "erpbridge_session=" not in (answer.headers["set-cookie"])
    )


def test_a_valid_response_signs_in_once_and_its_replay_is_refused(hub: ServedHub) -> None:
    with hub.client() as http:
        request_id = _start(http)
        response = _respond(hub, request_id)
        answer = _post(http, response)
        assert answer.status_code == 303, answer.text
        assert answer.headers["location"] == "/ui/runs"
        cookie = answer.headers["set-cookie"]
        assert "erpbridge_session=" in cookie and "HttpOnly" in cookie
        assert "samesite=strict" in cookie.lower()
        page = http.get("/ui/")
        assert page.status_code == 200 and "saml:alice" in page.text
        _refused(_post(http, response), "answered already", "replayed")
    with hub.client() as other:  # the same response, stolen and posted from elsewhere
        _refused(_post(other, response), "answered already")


def test_forged_wrong_audience_expired_and_unknown_requests_are_refused(
    hub: ServedHub, tmp_path: Path
) -> None:
    forger = IdentityProvider(tmp_path / "forger")  # same entity ID, another key
    cases: list[tuple[str, Any, tuple[str, ...]]] = [
        (
            "forged signature",
            lambda rid: forger.response(
                "alice",
                PEOPLE["alice"],
                audience=HUB_ENTITY,
                acs_url=f"{hub.url}/ui/sso/acs",
                in_response_to=rid,
            ),
            ("the assertion: the signature does not verify", "in the metadata"),
        ),
        (
            "another audience",
            lambda rid: _respond(hub, rid, audience="https://other.example.test/saml"),
            ("meant for 'https://other.example.test/saml'", "not for this hub"),
        ),
        (
            "expired",
            lambda rid: _respond(hub, rid, change=_expire),
            ("the assertion has expired: NotOnOrAfter 2020-01-01T00:00:00Z",),
        ),
        (
            "unknown InResponseTo",
            lambda rid: _respond(hub, "id-never-asked"),
            ("request 'id-never-asked', which this hub never made",),
        ),
        (
            "unsolicited",
            lambda rid: _respond(hub, None),
            ("unsolicited responses are refused",),
        ),
        (
            "unsigned",
            lambda rid: _respond(hub, rid, sign_assertion=False),
            ("neither the response nor its assertion is signed",),
        ),
        (
            "signature wrapping",
            lambda rid: _wrapped(_respond(hub, rid), _respond(hub, rid, who="bob")),
            ("exactly one is accepted",),
        ),
        ("not base64", lambda rid: "%%%", ("not base64",)),
        (
            "not XML",
            lambda rid: base64.b64encode(b"<Response").decode(),
            ("not well-formed XML",),
        ),
        (
            "entities",
            lambda rid: base64.b64encode(b'<!DOCTYPE r [<!ENTITY e "x">]><r>&e;</r>').decode(),
            ("the SAML response",),
        ),
    ]
    for name, make, fragments in cases:
        with hub.client() as http:
            request_id = _start(http)
            answer = _post(http, make(request_id))
            try:
                _refused(answer, *fragments)
            except AssertionError as exc:
                raise AssertionError(f"{name}: {exc}") from None
            assert http.get("/ui/").status_code == 303, name  # no session
            # the refusal did not use the request up: a good answer still signs in
            good = _post(http, _respond(hub, request_id))
            assert good.status_code == 303, (name, good.text)


def test_a_response_carried_to_another_browser_is_refused(hub: ServedHub) -> None:
    with hub.client() as victim, hub.client() as attacker:
        request_id = _start(attacker)  # the attacker's own sign-in ...
        response = _respond(hub, request_id, who="bob")
        # ... posted from the victim's browser (login CSRF): the request is not the victim's
        _refused(_post(victim, response), "another browser than the one that started")
        assert victim.get("/ui/").status_code == 303


def test_sso_off_answers_404_and_users_cannot_take_sso_names(hub: ServedHub) -> None:
    with hub.client() as http:
        page = http.get("/ui/sso/metadata")
        assert page.status_code == 200
        assert f'{hub.url}/ui/sso/acs"' in page.text and HUB_ENTITY in page.text
        assert http.post("/ui/sso/acs", data={}).status_code == 403
    with _store(hub) as engine:
        with pytest.raises(UserError, match="single sign-on users"):
            add_user(engine, "saml:alice", "a-long-enough-password", "admin")
        assert check_password(engine, "saml:alice", "sso:") is None
        with engine.connect() as conn:
            sessions = conn.execute(select(ui_sessions.c.user_name)).scalars().all()
        assert "saml:mallory" not in sessions


def _expire(response: Any) -> None:
    assertion = response.assertion
    assertion.conditions.not_on_or_after = "2020-01-01T00:00:00Z"


def _wrapped(good: str, evil: str) -> str:
    """``good`` with the assertion of ``evil`` added beside its own (an XSW attempt)."""
    outer = base64.b64decode(good).decode()
    inner = base64.b64decode(evil).decode()
    found = re.search(r"<ns1:Assertion .*</ns1:Assertion>", inner, re.S)
    assert found
    return base64.b64encode(
        outer.replace("</ns0:Response>", found.group(0) + "</ns0:Response>").encode()
    ).decode()


@contextmanager
def _store(hub: ServedHub) -> Iterator[Engine]:
    """The served hub's store, opened for a look."""
    engine = open_store(f"sqlite:///{hub.database}")
    try:
        yield engine
    finally:
        engine.dispose()
