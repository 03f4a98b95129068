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
