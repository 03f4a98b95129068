"""Search helps and API clients in the back office, against ``erpbridge run`` served as a
subprocess: a search finds a record by a word of its name (viewer, channel scope as in the API);
an admin adds a client, sees its key once, the key works on the API, and revokes it; viewers and
operators are refused both the page and its actions."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, expect

from hubprocess import ServedHub
from ui.backoffice import eventually, open_page, served_backoffice, signed_in

CONFIG = """
entities:
  partner:
    key: [code]
    fields: {code: {type: string, required: true}, name: string, city: string}
    search: [code, name, city]
channels:
  drop:
    system: folder
    options: {path: inbox, min_age_seconds: 0}
  erp:
    system: folder
    options: {path: erp}
flows:
  - name: partners-in
    channel: drop
    entity: partner
    direction: in
    trigger: {interval: 1s}
    source: {pattern: "*.csv", format: csv, delimiter: ";"}
    key: code
"""


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServedHub]:
    root = tmp_path_factory.mktemp("admin") / "hub"
    with served_backoffice(root, CONFIG, folders=("inbox", "erp")) as served:
        dropped = root / "inbox" / "partners.csv"
        dropped.write_text(
            "code;name;city\nP1;Müller Maschinenbau;Bremen\nP2;Schmidt Logistik;Kiel\n",
            encoding="utf-8",
        )
        eventually(lambda: not dropped.exists(), what="partners.csv read")
        yield served


def test_search_finds_a_record_by_a_word(browser: Browser, hub: ServedHub, shots: Path) -> None:
    page = open_page(browser, hub, "viewer")
    page.click("nav >> text=Search")
    page.select_option("select[name=entity]", "partner")
    page.fill("input[name=q]", "maschinenbau bremen")
    page.click("form.filters button")
    hits = page.locator("#hits tbody tr")
    expect(hits).to_have_count(1)
    expect(hits.first).to_contain_text("Müller Maschinenbau")
    page.screenshot(path=shots / "search.png", full_page=True)
    hits.first.locator("a").click()
    expect(page.locator("h1")).to_contain_text("partner")
    page.close()
    with signed_in(hub, "viewer") as (http, _):
        answer = http.get("/ui/search", params={"entity": "nothing", "q": "x"})
        assert answer.status_code == 404 and "has no search help" in answer.text


def test_admin_adds_a_client_sees_the_key_once_and_revokes_it(
    browser: Browser, hub: ServedHub, shots: Path
) -> None:
    page = open_page(browser, hub, "admin")
    page.click("nav >> text=API clients")
    page.fill("#add-client input[name=name]", "shop")
    page.select_option("#add-client select[name=scope]", ["read", "events"])
    page.click("#add-client button")
    key = page.locator("#key").inner_text().strip()
    assert key.startswith("ebk_") or len(key) > 30
    page.screenshot(path=shots / "clients.png", full_page=True)
    with hub.client() as api:
        assert api.get("/api/v1/flows", headers={"X-API-Key": key}).status_code == 200
    page.goto("/ui/clients")
    assert key not in page.content()  # shown once
    page.locator('tr[data-client="shop"] button').click()
    expect(page.locator(".notice")).to_contain_text("client shop revoked")
    expect(page.locator('tr[data-client="shop"] .badge')).to_have_text("revoked")
    with hub.client() as api:
        assert api.get("/api/v1/flows", headers={"X-API-Key": key}).status_code == 401
    # A second client of the same name, or an unknown scope: said on the page, nothing added.
    with signed_in(hub, "admin") as (http, token):
        answer = http.post("/ui/clients", data={"csrf": token, "name": "shop", "scope": "read"})
        assert answer.status_code == 422 and "exists already" in answer.text
        answer = http.post("/ui/clients", data={"csrf": token, "name": "x", "scope": "root"})
        assert answer.status_code == 422 and "unknown scope" in answer.text
    page.close()


def test_only_admins_manage_clients(hub: ServedHub) -> None:
    for user in ("viewer", "operator"):
        with signed_in(hub, user) as (http, token):
            assert 'href="/ui/clients"' not in http.get("/ui/").text
            assert http.get("/ui/clients").status_code == 403
            answer = http.post("/ui/clients", data={"csrf": token, "name": "x", "scope": "read"})
            assert answer.status_code == 403 and "needs the admin role" in answer.text
            assert http.post("/ui/clients/shop/revoke", data={"csrf": token}).status_code == 403


def test_configuration_checked_saved_reloaded_and_rolled_back(
    browser: Browser, hub: ServedHub, shots: Path
) -> None:
    page = open_page(browser, hub, "admin")
    page.click("nav >> text=Configuration")
    editor = page.locator("#editor textarea")
    expect(editor).to_contain_text("partners-in")
    running = editor.input_value()
    # A broken edit: every problem, as erpbridge check words it; nothing saved.
    page.fill("#editor textarea", running.replace("channel: drop", "channel: dorp"))
    page.click("button#check")
    expect(page.locator("#problems")).to_contain_text("dorp")
    expect(page.locator("#diff")).to_contain_text("+    channel: dorp")
    page.click("button#save")
    expect(page.locator("#error")).to_contain_text("not saved")
    assert "channel: dorp" not in hub.config.read_text(encoding="utf-8")
    # A good edit (a comment and a description): saved as typed, reloaded as a new version.
    edited = running.replace(
        "  - name: partners-in\n",
        "  # partners come from the ERP export\n  - name: partners-in\n"
        "    description: ERP partners\n",
    )
    page.fill("#editor textarea", edited)
    page.click("button#save")
    expect(page.locator(".notice")).to_contain_text("saved and reloaded: version")
    assert "# partners come from the ERP export" in hub.config.read_text(encoding="utf-8")
    page.screenshot(path=shots / "config.png", full_page=True)
    versions = page.locator("#versions tbody tr")
    expect(versions).to_have_count(2)
    first = versions.nth(1).get_attribute("data-version")
    versions.nth(1).locator("button").click()
    expect(page.locator(".notice")).to_contain_text(f"rolled back to version {first}")
    assert "# partners come from the ERP export" not in hub.config.read_text(encoding="utf-8")
    page.goto(f"/ui/config/versions/{int(first or 0) + 1}")
    expect(page.locator("#diff")).to_contain_text("+    description: ERP partners")
    page.close()
    with signed_in(hub, "operator") as (http, token):
        assert http.get("/ui/config").status_code == 403
        answer = http.post("/ui/config/save", data={"csrf": token, "text": "x: 1"})
        assert answer.status_code == 403
