"""Rejections that say everything (issue 14): every failing field of a record with its path, the
payload, replay after a fix and dismiss with a reason, from the command line and a served API,
each in the admin audit.

Before: a record with four bad fields was rejected with the first one only (fix it, sync, see
the next); the API listed no payload and could neither replay nor dismiss.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import orjson
import pytest

from erpbridge.store import open_store
from erpbridge.store.apiclients import create_client
from hubprocess import ServedHub, serve_hub
from hubprocess import cli_ok as ok
from hubprocess import run_cli as cli

MAPPING_BAD = """
    mapping: {code: id, name: name, currency: currency, credit_limit: credit, locked: locked}
"""
MAPPING_FIXED = """
    mapping:
      code: id
      name: {from: name, default: "(no name)"}
      currency: {from: currency, map: {euro: EUR}, fallback: EUR}
      credit_limit: {from: credit, map: {lots: "1000000"}}
      locked: {from: locked, map: {maybe: false, "true": true, "false": false}}
"""
CONFIG = """
channels:
  inbox: {system: folder, options: {path: inbox}}
  other: {system: folder, options: {path: other}}
flows:
  - name: customers-in
    channel: inbox
    entity: customer
    direction: in
    source: {pattern: "*.csv"}
    key: id
"""
CSV = (
    "id,name,currency,credit,locked\n"
    "C-1,Alpha,EUR,100,false\n"
    "C-2,,euro,lots,maybe\n"
    "C-3,Gamma,dollars,5,false\n"
)
FOUR = [
    ("name", "required field is missing"),
    ("currency", "'euro' does not match '[A-Z]{3}'"),
    ("credit_limit", "not a number: 'lots'"),
    ("locked", "not a boolean: 'maybe'"),
]


def write_config(root: Path, mapping: str) -> str:
    text = CONFIG + mapping
    (root / "erpbridge.yaml").write_text(text, encoding="utf-8")
    return text


def audit_rows(root: Path) -> list[tuple[str, str | None, dict[str, object]]]:
    engine = open_store(f"sqlite:///{root / 'erpbridge.db'}")
    try:
        with engine.connect() as conn:
            rows = conn.exec_driver_sql(
                "SELECT action, target, detail FROM admin_audit ORDER BY id"
            ).all()
    finally:
        engine.dispose()
    return [(r.action, r.target, orjson.loads(r.detail or "{}")) for r in rows]


@pytest.fixture
def root(tmp_path: Path) -> Path:
    folder = tmp_path / "hub"
    (folder / "inbox").mkdir(parents=True)
    (folder / "other").mkdir()
    write_config(folder, MAPPING_BAD)
    (folder / "inbox" / "customers.csv").write_text(CSV, encoding="utf-8")
    return folder


def test_every_failing_field_replay_and_dismiss_from_the_command_line(root: Path) -> None:
    synced = ok(root, "sync", "customers-in")
    assert "2 record(s) rejected" in synced

    listed = ok(root, "rejected")
    for path, reason in FOUR:
        assert path in listed and reason in listed, (path, listed)
    assert "'dollars' does not match" in listed

    shown = ok(root, "rejected", "--id", "1")
    assert "rejection 1: flow customers-in" in shown
    assert "  name: required field is missing" in shown
    assert "  locked: not a boolean: 'maybe'" in shown
    assert '"currency": "euro"' in shown and '"credit": "lots"' in shown  # the payload

    # dismiss needs a reason and a selection; then C-3 leaves the open list
    assert cli(root, "rejected", "--id", "2", "--dismiss", " ").returncode == 2
    assert cli(root, "rejected", "--dismiss", "x").returncode == 2
    out = ok(root, "rejected", "--id", "2", "--dismiss", "C-3 was deleted in the CRM")
    assert "dismissed 1 rejection(s)" in out
    assert "dollars" not in ok(root, "rejected")
    dismissed = ok(root, "rejected", "--status", "dismissed")
    assert "dollars" in dismissed
    assert "dismissed by cli:" in ok(root, "rejected", "--id", "2")
    again = ok(root, "rejected", "--id", "2", "--dismiss", "twice")
    assert "dismissed 0" in again and "not open (left as they are): 2" in again

    # replay after fixing the mapping: C-2 lands; the dismissed C-3 is not replayed
    write_config(root, MAPPING_FIXED)
    replayed = ok(root, "rejected", "--replay")
    assert "open rejections" in replayed
    assert "C-2" not in ok(root, "rejected")
    record = ok(root, "records", "customer", "--key", "C-2")
    assert "(no name)" in record and "1000000" in record
    with pytest.raises(AssertionError):
        ok(root, "records", "customer", "--key", "C-3")
    replayed_list = ok(root, "rejected", "--status", "replayed")
    assert "replayed rejections" in replayed_list and "customers-in" in replayed_list
    assert "replayed" in ok(root, "rejected", "--id", "1")

    actions = [(a, t) for a, t, _ in audit_rows(root)]
    assert actions == [
        ("rejected.dismiss", "2"),
        ("rejected.dismiss", None),
        ("rejected.replay", None),
    ]
    _, _, detail = audit_rows(root)[0]
    assert detail == {"ids": [2], "reason": "C-3 was deleted in the CRM"}


def test_bad_rejection_options(root: Path) -> None:
    ok(root, "sync", "customers-in")
    missing = cli(root, "rejected", "--id", "99")
    assert missing.returncode == 2 and "no rejection 99" in missing.stderr
    status = cli(root, "rejected", "--status", "gone")
    assert status.returncode == 2 and "dismissed" in status.stderr
    both = cli(root, "rejected", "--replay", "--dismiss", "x")
    assert both.returncode == 2 and "exclude each other" in both.stderr


@pytest.fixture
def served(root: Path) -> Iterator[tuple[ServedHub, httpx.Client, str]]:
    ok(root, "sync", "customers-in")
    engine = open_store(f"sqlite:///{root / 'erpbridge.db'}")
    _, key = create_client(engine, "ops", {"read", "write", "admin"})
    _, other = create_client(engine, "elsewhere", {"read", "write"}, channels={"other"})
    engine.dispose()
    (root / "erpbridge.db").chmod(0o600)
    # the mapping was fixed before this process started (reloading is another test's)
    config = write_config(root, MAPPING_FIXED)
    with serve_hub(root, config) as hub, hub.client(headers={"X-API-Key": key}) as http:
        yield hub, http, other


def test_rejections_over_a_served_api(served: tuple[ServedHub, httpx.Client, str]) -> None:
    hub, http, other_key = served
    listed = http.get("/api/v1/rejected", params={"flow": "customers-in"})
    assert listed.status_code == 200, listed.text
    by_id = {r["id"]: r for r in listed.json()}
    first = by_id[1]
    assert [(p["path"], p["reason"]) for p in first["problems"]] == FOUR
    assert (first["field_path"], first["reason"]) == FOUR[0]
    assert first["payload"] == {
        "id": "C-2",
        "name": "",
        "currency": "euro",
        "credit": "lots",
        "locked": "maybe",
    }
    assert http.get("/api/v1/rejected/2").json()["payload"]["currency"] == "dollars"

    # dismiss: a reason is required; unknown ids are 404; outside a client's channels too
    assert http.post("/api/v1/rejected/2/dismiss", json={"reason": "  "}).status_code == 422
    assert http.post("/api/v1/rejected/2/dismiss", json={}).status_code == 422
    assert http.post("/api/v1/rejected/77/dismiss", json={"reason": "x"}).status_code == 404
    with hub.client(headers={"X-API-Key": other_key}) as elsewhere:
        assert elsewhere.get("/api/v1/rejected/2").status_code == 404
        hidden = elsewhere.post("/api/v1/rejected/2/dismiss", json={"reason": "x"})
        assert hidden.status_code == 404
        assert elsewhere.post("/api/v1/rejected/replay", json={"ids": [1]}).status_code == 404
    done = http.post("/api/v1/rejected/2/dismiss", json={"reason": "C-3 left the CRM"})
    assert done.status_code == 200 and done.json() == {"dismissed": [2]}
    gone = http.get("/api/v1/rejected/2").json()
    assert gone["status"] == "dismissed" and gone["resolved_by"] == "ops"
    assert gone["note"] == "C-3 left the CRM"
    assert http.post("/api/v1/rejected/dismiss", json={"ids": [2], "reason": "y"}).json() == {
        "dismissed": []
    }

    # replay: nothing named is refused; then C-2 lands under the fixed mapping
    assert http.post("/api/v1/rejected/replay", json={}).status_code == 422
    assert http.post("/api/v1/rejected/replay", content=b"[").status_code in (400, 422)
    replay = http.post("/api/v1/rejected/replay", json={"ids": [1]})
    assert replay.status_code == 200, replay.text
    (run,) = replay.json()
    assert run["flow"] == "customers-in" and (run["replayed"], run["still_rejected"]) == (1, 0)
    assert http.get("/api/v1/rejected/1").json()["status"] == "replayed"
    record = http.get("/api/v1/records/customer/C-2").json()
    assert record["payload"]["name"] == "(no name)"
    assert http.post("/api/v1/rejected/replay", json={"flow": "customers-in"}).json() == []

    audit = http.get("/api/v1/audit").json()
    assert [a["action"] for a in reversed(audit)] == [
        "rejected.dismiss",
        "rejected.dismiss",
        "rejected.replay",
        "rejected.replay",
    ]
