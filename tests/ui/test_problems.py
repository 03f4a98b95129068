"""Rejected records and two-way conflicts in the browser, against ``erpbridge run`` served as a
subprocess: a rejected record shows its payload and the failing field, a replay says what
happened; a conflict (the CRM changed a record while the hub's change to it waited) is shown
side by side and resolved with a button, and the record takes the chosen side; a mapping fixed
in the configuration page is saved and reloaded, and the rejection it caused then replays."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
from playwright.sync_api import Browser, expect
from sqlalchemy import select

from erpbridge.store import open_store
from erpbridge.store.tables import admin_audit, records
from hubprocess import ServedHub
from ui.backoffice import eventually, open_page, served_backoffice, signed_in

CONFIG = """
channels:
  drop:
    system: folder
    options: {path: inbox, min_age_seconds: 0}
  crm:
    system: folder
    description: "The CRM: gets customers, sends changes back"
    options: {path: crm, min_age_seconds: 0}
flows:
  - name: customers-in
    channel: drop
    entity: customer
    direction: in
    trigger: {interval: 1s}
    source: {pattern: "*.csv", format: csv, delimiter: ";"}
    key: code
    mapping:
      code: {from: code, required: true}
      name: {from: name, required: true}
  - name: customers-to-crm
    channel: crm
    entity: customer
    direction: out
    trigger: immediate
    target: {format: json, name: "{key}.json"}
    mapping: {code: code, name: name}
  - name: customers-from-crm
    channel: crm
    entity: customer
    direction: in
    trigger: manual
    conflict: manual
    source: {pattern: "*.csv", format: csv, delimiter: ";"}
    key: code
    mapping:
      code: {from: code, required: true}
      name: {from: name, required: true}
"""


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServedHub]:
    root = tmp_path_factory.mktemp("problems") / "hub"
    with served_backoffice(root, CONFIG, folders=("inbox", "crm")) as served:
        (root / "inbox" / "customers_1.csv").write_text(
            "code;name\nC1;Alice\nC2;\n;\n", encoding="utf-8"
        )
        eventually(lambda: (root / "crm" / "C1.json").exists(), what="C1 delivered to the CRM")
        yield served


def _record(hub: ServedHub, key: str) -> dict[str, object]:
    engine = open_store(f"sqlite:///{hub.database}")
    try:
        with engine.connect() as conn:
            row = conn.execute(select(records.c.payload).where(records.c.key == key)).one()
            return dict(orjson.loads(row.payload))
    finally:
        engine.dispose()


def test_rejected_records_show_every_failing_field_replay_and_dismiss(
    browser: Browser, hub: ServedHub, shots: Path
) -> None:
    page = open_page(browser, hub, "operator")
    page.click("nav >> text=Rejected")
    rows = page.locator("#rejected tbody tr[data-rejection]")
    expect(rows).to_have_count(2)
    expect(rows.first.locator("td.problems div")).to_have_count(2)  # code and name, both
    expect(rows.nth(1)).to_contain_text("name")
    page.screenshot(path=shots / "rejected.png", full_page=True)
    rows.nth(1).locator("a").first.click()
    expect(page.locator("#payload")).to_contain_text('"code": "C2"')
    expect(page.locator("#problems tbody tr")).to_have_count(1)
    page.screenshot(path=shots / "rejection.png", full_page=True)
    # Nothing was fixed: the replay says so (in red), and the rejection stays open.
    page.click("button#replay")
    expect(page.locator(".notice.failed")).to_contain_text("0 landed, 1 still rejected")
    expect(page.locator(".head .badge")).to_have_text("open")
    # The other one is a blank line of the export: dismissed with that reason.
    page.goto("/ui/rejected")
    page.locator("#rejected tbody tr[data-rejection]").first.locator("a").first.click()
    expect(page.locator("#problems tbody tr")).to_have_count(2)
    page.fill("#dismiss input[name=reason]", "a blank line at the end of the export")
    page.click("#dismiss button")
    expect(page.locator(".notice")).to_contain_text("dismissed")
    expect(page.locator(".head .badge")).to_have_text("dismissed")
    expect(page.locator("#note")).to_have_text("a blank line at the end of the export")
    page.goto("/ui/rejected")
    expect(page.locator("#rejected tbody tr[data-rejection]")).to_have_count(1)
    page.close()


def test_conflict_side_by_side_and_resolved(browser: Browser, hub: ServedHub, shots: Path) -> None:
    with signed_in(hub, "operator") as (http, token):
        assert http.post("/ui/flows/customers-to-crm/pause", data={"csrf": token}).is_redirect
    # The hub's change waits (paused) while the CRM changes the same record.
    (hub.root / "inbox" / "customers_2.csv").write_text(
        "code;name\nC1;Alice Smith\n", encoding="utf-8"
    )
    eventually(lambda: _record(hub, "C1")["name"] == "Alice Smith", what="C1 version 2")
    (hub.root / "crm" / "changes.csv").write_text("code;name\nC1;Alice CRM\n", encoding="utf-8")

    page = open_page(browser, hub, "operator")
    page.goto("/ui/flows/customers-from-crm")
    page.click("button#run-now")
    expect(page.locator("#recent-runs .badge").first).to_have_text("succeeded")
    page.click("nav >> text=Conflicts")
    rows = page.locator("#conflicts tbody tr[data-conflict]")
    expect(rows).to_have_count(1)
    page.screenshot(path=shots / "conflicts.png", full_page=True)
    rows.first.locator("a").first.click()
    fields = page.locator("#fields tbody tr")
    expect(fields).to_have_count(1)
    expect(fields.first).to_contain_text("Alice Smith")
    expect(fields.first).to_contain_text("Alice CRM")
    page.screenshot(path=shots / "conflict.png", full_page=True)
    page.click("button#take-source")
    expect(page.locator(".notice")).to_contain_text("resolved: the channel's change taken")
    expect(page.locator(".head .badge")).to_have_text("resolved")
    assert _record(hub, "C1")["name"] == "Alice CRM"
    page.close()
    engine = open_store(f"sqlite:///{hub.database}")
    with engine.connect() as conn:
        actions = [r.action for r in conn.execute(select(admin_audit.c.action))]
    engine.dispose()
    assert {"conflict.resolve", "rejected.replay", "rejected.dismiss"} <= set(actions)


def test_viewer_cannot_replay_or_resolve(hub: ServedHub) -> None:
    with signed_in(hub, "viewer") as (http, token):
        for path, data in (
            ("/ui/rejected/replay", {"flow": "customers-in"}),
            ("/ui/rejected/1/dismiss", {"reason": "no"}),
            ("/ui/conflicts/1/resolve", {"take": "hub"}),
        ):
            answer = http.post(path, data={"csrf": token, **data})
            assert answer.status_code == 403, path
            assert "needs the operator role" in answer.text
        assert 'action="/ui/rejected/replay"' not in http.get("/ui/rejected/1").text


def test_bad_input_is_named_not_a_500(hub: ServedHub) -> None:
    with signed_in(hub, "operator") as (http, token):
        answer = http.post("/ui/conflicts/999/resolve", data={"csrf": token, "take": "hub"})
        assert answer.status_code == 404 and "no conflict 999" in answer.text
        answer = http.post("/ui/conflicts/1/resolve", data={"csrf": token, "take": "both"})
        assert answer.status_code == 422
        answer = http.post("/ui/rejected/replay", data={"csrf": token, "flow": "nope"})
        assert answer.status_code == 404 and "no flow named" in answer.text
        answer = http.post("/ui/rejected/replay", data={"csrf": token})
        assert answer.status_code == 422 and "choose a flow or a rejected record" in answer.text
        answer = http.post("/ui/rejected/424242/dismiss", data={"csrf": token, "reason": "x"})
        assert answer.status_code == 404
        answer = http.post("/ui/rejected/1/dismiss", data={"csrf": token, "reason": "  "})
        assert answer.status_code == 303 and "failed=1" in answer.headers["location"]
        assert http.get("/ui/rejected/99999999999999999999").status_code == 422
        assert http.get("/ui/rejected/424242").status_code == 404


def test_a_mapping_fixed_in_the_configuration_page_then_the_rejection_replayed(
    browser: Browser, hub: ServedHub, shots: Path
) -> None:
    page = open_page(browser, hub, "admin")
    page.goto("/ui/config")
    text = page.locator("#editor textarea").input_value()
    strict = "      name: {from: name, required: true}\n"
    assert text.count(strict) == 2  # customers-in and customers-from-crm
    fixed = text.replace(strict, '      name: {from: name, default: "(no name)"}\n', 1)
    page.fill("#editor textarea", fixed)
    page.click("button#save")
    expect(page.locator(".notice")).to_contain_text("saved and reloaded")
    page.goto("/ui/rejected/1")  # C2, rejected for its empty name
    expect(page.locator(".head .badge")).to_have_text("open")
    page.click("button#replay")
    expect(page.locator(".notice")).to_contain_text("1 landed, 0 still rejected")
    expect(page.locator(".head .badge")).to_have_text("replayed")
    page.screenshot(path=shots / "rejection-replayed.png", full_page=True)
    page.close()
    assert _record(hub, "C2")["name"] == "(no name)"
