"""Reconciliation in a served ``erpbridge run``: scheduled (``reconcile.interval``), stored,
alerted through a webhook notifier when differences are found, listed over the API, and shown
in the back office in Chromium (list, a reconciliation's differences with both values, the
"Reconcile now" button). The channel is a SQLite ERP database read by the ``sql`` transport."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from playwright.sync_api import Browser, expect
from sqlalchemy import select

from erpbridge import FlowRunner, load_config, open_store
from erpbridge.store.read import EVERYTHING, reconciliations_page
from erpbridge.store.tables import cursors, records
from httpserve import QuietHandler, serve_handler
from hubprocess import ServedHub
from ui.backoffice import eventually, open_page, served_backoffice

CONFIG = """
entities:
  account:
    key: [code]
    fields: {{code: {{type: string, required: true}}, name: string, balance: decimal}}
channels:
  erp: {{system: sql, options: {{url: "sqlite:///erp.db"}}}}
flows:
  - name: accounts-in
    channel: erp
    entity: account
    direction: in
    source: {{table: accounts}}
    key: code
    reconcile: {{amounts: [balance], interval: 2s}}
alerts:
  interval_s: 1
  notifiers:
    hook: {{webhook: {{url: "{hook}", secret: "${{HOOK_SECRET}}"}}}}
  rules:
    - {{name: erp-differs, when: reconcile_differences, flow: accounts-in, notify: [hook]}}
"""


class _Hook(QuietHandler):
    received: list[dict[str, Any]] = []
    lock = threading.Lock()

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        with self.lock:
            type(self).received.append(orjson.loads(body))
        self.send_response(204)
        self.end_headers()


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServedHub]:
    root = tmp_path_factory.mktemp("reconcile") / "hub"
    root.mkdir()
    erp = sqlite3.connect(root / "erp.db")
    erp.execute("CREATE TABLE accounts (code TEXT PRIMARY KEY, name TEXT, balance NUMERIC)")
    erp.executemany(
        "INSERT INTO accounts VALUES (?, ?, ?)",
        [("A1", "Alpha", "10.50"), ("A2", "Beta", "20.25"), ("A3", "Gamma", "5")],
    )
    erp.commit()
    (root / "erpbridge.yaml").write_text(CONFIG.format(hook="http://127.0.0.1:9"), "utf-8")
    engine = open_store(f"sqlite:///{root / 'erpbridge.db'}")
    config = load_config(root / "erpbridge.yaml", {"HOOK_SECRET": "s3cret"})
    assert FlowRunner(config, engine).run("accounts-in").created == 3
    engine.dispose()
    # Behind the hub's back: one account renamed, one added.
    erp.execute("UPDATE accounts SET name = 'Beta AG' WHERE code = 'A2'")
    erp.execute("INSERT INTO accounts VALUES ('A4', 'Delta', '1.25')")
    erp.commit()
    erp.close()
    with serve_handler(_Hook) as receiver, served_backoffice(
        root, CONFIG.format(hook=f"{receiver.url}/alerts"), folders=(),
        env={"HOOK_SECRET": "s3cret"},
    ) as served:  # fmt: skip
        yield served


def test_scheduled_reconciliation_is_stored_and_alerted(hub: ServedHub) -> None:
    def alerted() -> bool:
        with _Hook.lock:
            return any(a["rule"] == "erp-differs" for a in _Hook.received)

    eventually(alerted, 40, "the erp-differs alert")
    with _Hook.lock:
        alert = next(a for a in _Hook.received if a["rule"] == "erp-differs")
    assert alert["kind"] == "fired" and alert["subject"] == "accounts-in"
    assert "found 2 difference(s)" in alert["message"]
    assert "1 missing in the hub, 1 differing" in alert["message"]

    engine = open_store(f"sqlite:///{hub.root / 'erpbridge.db'}")
    try:
        with engine.connect() as conn:
            rows = reconciliations_page(conn, EVERYTHING, flow="accounts-in")
            stored = conn.execute(select(records.c.key, records.c.version)).all()
            cursor_rows = conn.execute(select(cursors)).all()
    finally:
        engine.dispose()
    scheduled = [r for r in rows if r.trigger == "schedule"]
    assert scheduled and scheduled[0].missing_in_hub == 1 and scheduled[0].differing == 1
    # Reconciling wrote no record (A4 stays missing, A2 at version 1) and no cursor.
    assert sorted(stored) == [("A1", 1), ("A2", 1), ("A3", 1)]
    assert cursor_rows == []


def test_back_office_shows_differences_and_reconciles_now(
    browser: Browser, hub: ServedHub, shots: Path
) -> None:
    page = open_page(browser, hub, "operator")
    page.click("nav >> text=Reconciliations")
    expect(page.locator("#reconciliations tbody tr").first).to_contain_text("accounts-in")
    expect(page.locator("#reconciliations tbody tr").first.locator(".badge")).to_have_text(
        "differs"
    )
    page.click("button#reconcile-accounts-in")
    expect(page.locator(".notice")).to_contain_text("found 2 difference(s)")
    differences = page.locator("#differences tbody tr")
    expect(differences).to_have_count(2)
    expect(differences.nth(0)).to_contain_text("A2")
    expect(differences.nth(0)).to_contain_text("Beta")
    expect(differences.nth(0)).to_contain_text("Beta AG")
    expect(differences.nth(1)).to_contain_text("missing in hub")
    expect(page.locator("#sums")).to_contain_text("35.75")  # the hub's total
    expect(page.locator("#sums")).to_contain_text("37.00")  # the ERP's: A4 added
    page.screenshot(path=shots / "reconciliation.png", full_page=True)
    page.close()


def test_the_alert_resolves_when_both_sides_agree_again(hub: ServedHub) -> None:
    with sqlite3.connect(hub.root / "erp.db") as erp:
        erp.execute("UPDATE accounts SET name = 'Beta' WHERE code = 'A2'")
        erp.execute("DELETE FROM accounts WHERE code = 'A4'")

    def resolved() -> bool:
        with _Hook.lock:
            return any(
                a["rule"] == "erp-differs" and a["kind"] == "resolved" for a in _Hook.received
            )

    eventually(resolved, 40, "the erp-differs alert resolved")
