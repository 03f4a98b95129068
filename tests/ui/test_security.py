"""The back office's security, against ``erpbridge run`` served as a subprocess:

- a POST without the session's CSRF token (or with another session's) is refused, nothing done;
- login makes a new session id (a planted cookie is not adopted), and sign-out ends it;
- session cookies are HttpOnly and SameSite=Strict; pages carry a strict CSP and no-store;
- a record payload holding ``<script>`` is shown escaped;
- a viewer's POST to an operator's action is refused on the server (403), nothing done;
- failed logins are throttled per address (429) and audited.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from erpbridge.store import open_store
from erpbridge.store.tables import admin_audit, deliveries, flow_switches, runs
from hubprocess import ServedHub
from ui.backoffice import PASSWORD, eventually, login_token, served_backoffice, signed_in

HOSTILE = "Mallory <script>alert('x')</script>"


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServedHub]:
    root = tmp_path_factory.mktemp("security") / "hub"
    with served_backoffice(root) as served:
        (root / "inbox" / "customers_1.csv").write_text(
            f"code;name\nC1;{HOSTILE}\nC2;Bob\n", encoding="utf-8"
        )
        eventually(lambda: len(list((root / "erp").glob("*.json"))) == 2, what="2 deliveries")
        yield served


def _delivery_states(hub: ServedHub) -> dict[int, str]:
    engine = open_store(f"sqlite:///{hub.database}")
    try:
        with engine.connect() as conn:
            return {r.id: r.state for r in conn.execute(deliveries.select())}
    finally:
        engine.dispose()


def test_post_without_csrf_token_is_refused(hub: ServedHub) -> None:
    before = _delivery_states(hub)
    with signed_in(hub, "operator") as (http, token), signed_in(hub, "admin") as (_, other):
        for headers, data in (({}, {}), ({"X-CSRF-Token": "x"}, {}), ({}, {"csrf": "x"})):
            for path in ("/ui/deliveries/1/cancel", "/ui/flows/customers-in/pause"):
                answer = http.post(path, headers=headers, data=data)
                assert answer.status_code == 403
                assert "CSRF token is missing or stale" in answer.text
        assert other != token
        assert http.post("/ui/deliveries/1/cancel", data={"csrf": other}).status_code == 403
    assert _delivery_states(hub) == before
    assert _switches_and_desk_runs(hub) == ([], 0)


def test_login_rotates_the_session_id(hub: ServedHub) -> None:
    planted = "attacker-chosen-session-id"
    with hub.client() as http:
        http.cookies.set("erpbridge_session", planted, domain="127.0.0.1")
        assert http.get("/ui/").status_code == 303  # not a session
        answer = _login(http, "viewer")
        assert answer.status_code == 303
        cookie = answer.headers["set-cookie"]
        assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/" in cookie
        session = answer.cookies["erpbridge_session"]
        assert session != planted and len(session) >= 40
        assert http.get("/ui/").status_code == 200
    # Signing in again, holding that session, gives yet another id; the old one is dead.
    with hub.client() as again:
        again.cookies.set("erpbridge_session", session, domain="127.0.0.1")
        assert _login(again, "viewer").cookies["erpbridge_session"] != session
    with hub.client() as old:
        old.cookies.set("erpbridge_session", session, domain="127.0.0.1")
        assert old.get("/ui/").status_code == 303


def _login(http: httpx.Client, user: str, password: str = PASSWORD) -> httpx.Response:
    data = {"name": user, "password": password, "csrf": login_token(http), "next": "/ui/"}
    return http.post("/ui/login", data=data)


def test_sign_out_ends_the_session(hub: ServedHub) -> None:
    with signed_in(hub, "viewer") as (http, token):
        session = http.cookies["erpbridge_session"]
        assert http.post("/ui/logout", data={"csrf": token}).status_code == 303
    with hub.client() as replay:
        replay.cookies.set("erpbridge_session", session, domain="127.0.0.1")
        assert replay.get("/ui/deliveries").status_code == 303


def test_pages_have_strict_headers(hub: ServedHub) -> None:
    with signed_in(hub, "viewer") as (http, _):
        page = http.get("/ui/")
    assert page.status_code == 200
    csp = page.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp
    assert "frame-ancestors 'none'" in csp
    assert page.headers["cache-control"] == "no-store"
    assert page.headers["x-frame-options"] == "DENY"


def test_script_in_a_record_is_shown_escaped(hub: ServedHub) -> None:
    with signed_in(hub, "viewer") as (http, _):
        page = http.get("/ui/records/customer/C1")
    assert page.status_code == 200
    assert "<script>alert" not in page.text
    assert "Mallory &lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;" in page.text


def test_viewer_cannot_press_operator_buttons(hub: ServedHub) -> None:
    before = _delivery_states(hub)
    with signed_in(hub, "viewer") as (http, token):
        page = http.get("/ui/deliveries/1")
        assert 'action="/ui/deliveries/1/cancel"' not in page.text  # not offered ...
        for path in (
            "/ui/deliveries/1/cancel",
            "/ui/deliveries/1/retry",
            "/ui/deliveries/retry-dead",
            "/ui/flows/customers-in/pause",
            "/ui/flows/customers-in/resume",
            "/ui/flows/customers-desk/run",
            "/ui/flows/customers-desk/dry-run",
        ):
            answer = http.post(path, data={"csrf": token})  # ... and refused when pressed anyway
            assert answer.status_code == 403, path
            assert "needs the operator role" in answer.text
        flow_page = http.get("/ui/flows/customers-in").text
        assert "/ui/flows/customers-in/pause" not in flow_page
    assert _delivery_states(hub) == before
    assert _switches_and_desk_runs(hub) == ([], 0)


def _switches_and_desk_runs(hub: ServedHub) -> tuple[list[str], int]:
    engine = open_store(f"sqlite:///{hub.database}")
    try:
        with engine.connect() as conn:
            switched = [r.flow for r in conn.execute(flow_switches.select())]
            desk = conn.execute(runs.select().where(runs.c.flow == "customers-desk")).all()
            return switched, len(desk)
    finally:
        engine.dispose()


def test_only_an_admin_resets_a_cursor_tests_a_channel_or_reads_the_audit(hub: ServedHub) -> None:
    for user in ("viewer", "operator"):
        with signed_in(hub, user) as (http, token):
            assert 'id="cursor-reset"' not in http.get("/ui/flows/customers-in").text
            assert 'id="test"' not in http.get("/ui/channels/erp").text
            for path, data in (
                ("/ui/flows/customers-in/cursor/reset", {}),
                ("/ui/channels/erp/test", {}),
                ("/ui/channels/erp/credentials", {"credential": "x", "value": "y"}),
            ):
                answer = http.post(path, data={"csrf": token, **data})
                assert answer.status_code == 403, path
                assert "needs the admin role" in answer.text
            assert http.get("/ui/audit").status_code == 403
    with signed_in(hub, "admin") as (http, token):
        answer = http.post("/ui/flows/customers-out/cursor/reset", data={"csrf": token})
        assert answer.status_code == 409 and "is an OUT flow" in answer.text


def test_operator_action_on_an_unknown_flow_says_so(hub: ServedHub) -> None:
    with signed_in(hub, "operator") as (http, token):
        for action in ("pause", "resume", "run"):
            answer = http.post(f"/ui/flows/no-such-flow/{action}", data={"csrf": token})
            assert answer.status_code == 404
            assert "no flow named &#39;no-such-flow&#39;" in answer.text
        answer = http.post("/ui/flows/customers-out/run", data={"csrf": token})
        assert answer.status_code == 409
        assert "is an OUT flow" in answer.text


def test_channel_restricted_user_sees_only_their_channels(hub: ServedHub) -> None:
    with signed_in(hub, "erp-viewer") as (http, _):
        page = http.get("/ui/")
        assert 'data-flow="customers-out"' in page.text
        assert 'data-flow="customers-in"' not in page.text
        assert http.get("/ui/runs/1").status_code == 404  # a run of channel drop


def test_failed_logins_are_throttled_and_audited(tmp_path: Path) -> None:
    with served_backoffice(tmp_path / "hub") as hub, hub.client() as http:
        answers = [_login(http, "admin", "wrong-password") for _ in range(12)]
        assert answers[0].status_code == 401
        assert "Wrong user name or password" in answers[0].text
        assert answers[-1].status_code == 429 and "Retry-After" in answers[-1].headers
        # Even the right password is refused while the address is throttled.
        assert _login(http, "admin").status_code == 429
        engine = open_store(f"sqlite:///{hub.database}")
        with engine.connect() as conn:
            rows = list(
                conn.execute(admin_audit.select().where(admin_audit.c.action == "ui.login"))
            )
        engine.dispose()
        assert {r.outcome for r in rows} == {"failed"}
        assert rows[0].target == "admin"
