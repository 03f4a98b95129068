"""Cursor show and reset (issue 14): a changed cursor column says "reset the flow's cursor", and
now a command and an endpoint do it. Run as a user runs them: ``erpbridge sync``, ``erpbridge
cursor`` as processes and a served ``erpbridge api``.

Before: no command showed or reset a flow's cursor; the only way was SQL on the hub store.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import httpx
import orjson
import pytest

from erpbridge.store import open_store
from erpbridge.store.apiclients import create_client
from erpbridge.store.runs import finish_run, start_run
from hubprocess import ServedHub, serve_hub
from hubprocess import cli_ok as ok
from hubprocess import run_cli as cli

CONFIG = """
channels:
  crm: {system: sql, options: {url: "sqlite:///crm.db"}}
  erp: {system: folder, options: {path: erp}}
flows:
  - name: customers-in
    channel: crm
    entity: customer
    direction: in
    source: {table: customers}
    key: id
    cursor: {column: updated_at, tiebreaker: id, safety_window: 0}
    mapping: {code: code, name: name}
  - name: customers-out
    channel: erp
    entity: customer
    direction: out
    target: {format: json, name: "{key}.json"}
"""


def source(root: Path, rows: list[tuple[int, str, str, int]]) -> None:
    with sqlite3.connect(root / "crm.db") as db:
        db.execute(
            "CREATE TABLE IF NOT EXISTS customers "
            "(id INTEGER PRIMARY KEY, code TEXT, name TEXT, updated_at INTEGER)"
        )
        db.execute("DELETE FROM customers")
        db.executemany("INSERT INTO customers VALUES (?, ?, ?, ?)", rows)
    db.close()


@pytest.fixture
def root(tmp_path: Path) -> Path:
    folder = tmp_path / "hub"
    (folder / "erp").mkdir(parents=True)
    (folder / "erpbridge.yaml").write_text(CONFIG, encoding="utf-8")
    source(folder, [(1, "C-1", "Alpha", 10), (2, "C-2", "Beta", 20)])
    return folder


def test_cursor_show_and_reset_from_the_command_line(root: Path) -> None:
    assert "customers-in" in ok(root, "sync", "customers-in")
    shown = ok(root, "cursor", "show", "customers-in")
    assert '"value":20' in shown and '"column":"updated_at"' in shown

    # a change the cursor does not see (updated_at unchanged): incremental runs miss it
    source(root, [(1, "C-1", "Alpha renamed", 10), (2, "C-2", "Beta", 20)])
    ok(root, "sync", "customers-in")
    records = ok(root, "records", "customer", "--key", "C-1")
    assert "Alpha renamed" not in records

    out = ok(root, "cursor", "reset", "customers-in")
    assert "-> (none: the next run reads everything)" in out
    assert "(none: reads everything)" in ok(root, "cursor", "show")
    ok(root, "sync", "customers-in")
    assert "Alpha renamed" in ok(root, "records", "customer", "--key", "C-1")

    # --to sets a value in the form show prints: reads start at updated_at >= 15, so only C-2
    to = '{"value":15,"type":"int","key":{"value":0,"type":"int"},"column":"updated_at"}'
    out = ok(root, "cursor", "reset", "customers-in", "--to", to)
    assert '-> {"value":15' in out
    source(root, [(1, "C-1", "Alpha again", 10), (2, "C-2", "Beta renamed", 20)])
    ok(root, "sync", "customers-in")
    assert "Alpha again" not in ok(root, "records", "customer", "--key", "C-1")
    assert "Beta renamed" in ok(root, "records", "customer", "--key", "C-2")

    engine = open_store(f"sqlite:///{root / 'erpbridge.db'}")
    try:
        with engine.connect() as conn:
            rows = conn.exec_driver_sql(
                "SELECT actor, action, target, detail FROM admin_audit ORDER BY id"
            ).all()
    finally:
        engine.dispose()
    assert [(r.action, r.target) for r in rows] == [("flow.cursor_reset", "customers-in")] * 2
    assert all(r.actor.startswith("cli:") for r in rows)
    assert orjson.loads(rows[0].detail)["before"]["value"] == 20
    assert orjson.loads(rows[1].detail)["after"]["value"] == 15


def test_cursor_commands_refuse_unknown_and_out_flows(root: Path) -> None:
    unknown = cli(root, "cursor", "reset", "customer-in")
    assert unknown.returncode == 2
    assert "no flow named 'customer-in'; did you mean 'customers-in'?" in unknown.stderr
    out_flow = cli(root, "cursor", "show", "customers-out")
    assert out_flow.returncode == 2 and "OUT flow: only IN flows have a cursor" in out_flow.stderr


@pytest.fixture
def served(root: Path) -> Iterator[tuple[ServedHub, httpx.Client]]:
    engine = open_store(f"sqlite:///{root / 'erpbridge.db'}")
    _, key = create_client(engine, "ops", {"admin"})
    engine.dispose()
    (root / "erpbridge.db").chmod(0o600)
    ok(root, "sync", "customers-in")
    with (
        serve_hub(root, CONFIG) as hub,
        hub.client(headers={"X-API-Key": key}) as http,
    ):
        yield hub, http


def test_cursor_endpoints_of_a_served_api(
    root: Path, served: tuple[ServedHub, httpx.Client]
) -> None:
    _, http = served
    listed = http.get("/api/v1/cursors")
    assert listed.status_code == 200, listed.text
    (only,) = listed.json()
    assert only["flow"] == "customers-in" and only["value"]["value"] == 20
    assert http.get("/api/v1/flows/customers-in/cursor").json()["value"] == only["value"]

    reset = http.post("/api/v1/flows/customers-in/cursor/reset", json={"to": None})
    assert reset.status_code == 200, reset.text
    assert reset.json()["before"]["value"]["value"] == 20 and reset.json()["after"]["value"] is None
    assert http.get("/api/v1/flows/customers-in/cursor").json()["value"] is None
    to = {"value": 15, "type": "int", "key": {"value": 1, "type": "int"}, "column": "updated_at"}
    again = http.post("/api/v1/flows/customers-in/cursor/reset", json={"to": to})
    assert again.json()["after"]["value"] == to

    # a run holding the flow: refused, the cursor stays
    engine = open_store(f"sqlite:///{root / 'erpbridge.db'}")
    try:
        run_id = start_run(
            engine,
            flow="customers-in",
            channel="crm",
            entity="customer",
            mode="incremental",
            dry_run=False,
            cursor_before=None,
            lock=True,
        )
        busy = http.post("/api/v1/flows/customers-in/cursor/reset")
        finish_run(engine, run_id, status="succeeded", error=None, warnings=[])
    finally:
        engine.dispose()
    assert busy.status_code == 409, busy.text
    assert busy.json()["error"]["code"] == "flow_busy"
    assert f"already running in run {run_id}" in busy.json()["error"]["message"]
    assert http.get("/api/v1/flows/customers-in/cursor").json()["value"] == to

    assert http.get("/api/v1/flows/nowhere/cursor").status_code == 404
    out_flow = http.post("/api/v1/flows/customers-out/cursor/reset")
    assert out_flow.status_code == 409 and out_flow.json()["error"]["code"] == "not_an_in_flow"
    bad = http.post("/api/v1/flows/customers-in/cursor/reset", content=b"{not json")
    assert bad.status_code in (400, 422), bad.text

    audit = http.get("/api/v1/audit", params={"action": "flow.cursor_reset"}).json()
    assert [(a["outcome"], a["actor"]) for a in reversed(audit)] == [
        ("ok", "ops"),
        ("ok", "ops"),
        ("refused", "ops"),
    ]
