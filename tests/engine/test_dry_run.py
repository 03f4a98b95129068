"""A dry run that shows what would change (issue 14): each record the run would create or
update, field by field (hub against incoming), from ``erpbridge sync --dry-run`` and
``POST /api/v1/flows/{name}/dry-run`` of a served API, and nothing of it written.

Before: ``sync --dry-run`` printed counts only ("1 created, 1 updated"), not which records nor
which fields.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from erpbridge.engine.preview import FieldDiff, field_diff
from erpbridge.store import open_store
from erpbridge.store.apiclients import create_client
from hubprocess import cli_ok as ok
from hubprocess import serve_hub

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
    mapping: {code: code, name: name, credit_limit: credit}
  - name: customers-out
    channel: erp
    entity: customer
    direction: out
    target: {format: json, name: "{key}.json"}
"""

#: Every table a dry run must leave as it was (runs get a row marked dry_run: the trace).
TABLES = ("records", "audit", "bindings", "deliveries", "cursors", "rejected", "search_terms")


def source(root: Path, rows: list[tuple[int, str, str, str | None]]) -> None:
    with sqlite3.connect(root / "crm.db") as db:
        db.execute(
            "CREATE TABLE IF NOT EXISTS customers "
            "(id INTEGER PRIMARY KEY, code TEXT, name TEXT, credit TEXT)"
        )
        db.execute("DELETE FROM customers")
        db.executemany("INSERT INTO customers VALUES (?, ?, ?, ?)", rows)
    db.close()


def snapshot(root: Path) -> dict[str, list[tuple[object, ...]]]:
    engine = open_store(f"sqlite:///{root / 'erpbridge.db'}")
    try:
        with engine.connect() as conn:
            names = {
                r[0]
                for r in conn.exec_driver_sql("SELECT name FROM sqlite_master WHERE type='table'")
            }
            return {
                t: [tuple(r) for r in conn.exec_driver_sql(f"SELECT * FROM {t}")]
                for t in TABLES
                if t in names
            }
    finally:
        engine.dispose()


@pytest.fixture
def root(tmp_path: Path) -> Path:
    folder = tmp_path / "hub"
    (folder / "erp").mkdir(parents=True)
    (folder / "erpbridge.yaml").write_text(CONFIG, encoding="utf-8")
    source(folder, [(1, "C-1", "Alpha", "100"), (2, "C-2", "Beta", None)])
    ok(folder, "sync", "customers-in")
    # since then: C-1 renamed and its credit changed, C-2 as it was, C-3 new
    source(
        folder,
        [(1, "C-1", "Alpha renamed", "250.5"), (2, "C-2", "Beta", None), (3, "C-3", "Gamma", "7")],
    )
    return folder


def test_dry_run_shows_each_field_and_writes_nothing(root: Path) -> None:
    before = snapshot(root)
    out = ok(root, "sync", "customers-in", "--dry-run")
    assert "what would change (nothing was written)" in out
    lines = [line for line in out.splitlines() if "│" in line]
    flat = [" ".join(c.strip() for c in line.split("│") if c.strip()) for line in lines]
    assert 'update C-1 (v1) credit_limit "100" "250.5"' in flat
    assert 'name "Alpha" "Alpha renamed"' in flat
    assert 'create C-3 code (none) "C-3"' in flat
    assert not any("C-2" in line for line in flat[2:])  # unchanged: not listed
    assert snapshot(root) == before
    assert not list((root / "erp").iterdir())

    # a run that writes does what the dry run showed
    ok(root, "sync", "customers-in")
    assert "Alpha renamed" in ok(root, "records", "customer", "--key", "C-1")
    again = ok(root, "sync", "customers-in", "--dry-run")
    assert "dry run of customers-in: no record would change" in again


def test_dry_run_over_a_served_api(root: Path) -> None:
    engine = open_store(f"sqlite:///{root / 'erpbridge.db'}")
    _, key = create_client(engine, "ops", {"read", "write"})
    engine.dispose()
    (root / "erpbridge.db").chmod(0o600)
    before = snapshot(root)
    with serve_hub(root, CONFIG) as hub, hub.client(headers={"X-API-Key": key}) as http:
        answer = http.post("/api/v1/flows/customers-in/dry-run")
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert (body["created"], body["updated"], body["unchanged"]) == (1, 1, 1)
        assert body["changes_truncated"] is False
        by_key = {c["key"]: c for c in body["changes"]}
        assert set(by_key) == {"C-1", "C-3"}
        assert by_key["C-1"]["action"] == "update" and by_key["C-1"]["version"] == 1
        assert by_key["C-1"]["fields"] == [
            {"path": "credit_limit", "hub": "100", "incoming": "250.5", "kind": "changed"},
            {"path": "name", "hub": "Alpha", "incoming": "Alpha renamed", "kind": "changed"},
        ]
        assert by_key["C-3"]["action"] == "create" and by_key["C-3"]["version"] is None
        assert {f["path"] for f in by_key["C-3"]["fields"]} == {
            "code",
            "credit_limit",
            "locked",
            "name",
        }
        assert http.post("/api/v1/flows/customers-out/dry-run").status_code == 409
        assert http.post("/api/v1/flows/nowhere/dry-run").status_code == 404
    assert snapshot(root) == before


def test_field_diff_goes_into_objects_and_lists() -> None:
    hub = {"name": "A", "prefs": {"mail": True}, "lines": [{"qty": 1}, {"qty": 2}], "tags": ["x"]}
    incoming = {"name": "A", "prefs": {"mail": False}, "lines": [{"qty": 1}, {"qty": 3}], "new": 1}
    assert field_diff(hub, incoming) == [
        FieldDiff("lines[1].qty", 2, 3, "changed"),
        FieldDiff("new", None, 1, "added"),
        FieldDiff("prefs.mail", True, False, "changed"),
        FieldDiff("tags", ["x"], None, "removed"),
    ]
    assert field_diff({"l": [1]}, {"l": [1, 2]}) == [FieldDiff("l", [1], [1, 2], "changed")]
