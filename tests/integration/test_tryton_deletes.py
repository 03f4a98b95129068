"""Deletes from a real Tryton server (scripts/tryton.sh) over JSON-RPC: a party archived in Tryton
(``active = False``, read with ``active_test: false``) becomes a tombstone through the flow's
``delete_marker`` and comes back when it is restored; a party deleted in Tryton (its id vanished)
is found by a key sweep (issue 19, item 2)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from erpbridge import FlowRunner, load_config, open_store
from erpbridge.engine.worker import Worker
from integration.servers import require_server
from integration.test_tryton_masterdata import Tryton
from integration.versions import actions

CONFIG = """
hub: {{database_url: "sqlite:///{hub}"}}
entities:
  party:
    key: [code]
    fields:
      code: {{type: string, required: true}}
      name: string
channels:
  tryton:
    system: tryton
    options: {{base_url: "{base_url}", database: {database}, username: {username}}}
    credentials: {{password: "${{TRYTON_PASSWORD}}"}}
  shop:
    system: platform
flows:
  - name: shop-in
    channel: shop
    entity: party
    direction: in
  - name: parties-out
    channel: tryton
    entity: party
    direction: out
    target:
      model: party.party
      method: upsert
      match_field: code
      context: {{active_test: false}}
    on_delete: deactivate
    deactivate: {{active: false}}
    mapping: {{code: code, name: name}}
  - name: parties-in
    channel: tryton
    entity: party
    direction: in
    source:
      model: party.party
      domain: [["code", "like", "{prefix}%"]]
      context: {{active_test: false}}
      fields: [code, name, active]
    key: id
    delete_marker: {{field: active, value: false}}
    mapping: {{code: code, name: name}}
  - name: parties-sweep
    channel: tryton
    entity: party
    direction: in
    source:
      model: party.party
      domain: [["code", "like", "{prefix}%"]]
      fields: [code, name]
    key: id
    key_sweep: 1d
    mapping: {{code: code, name: name}}
"""


@pytest.fixture(scope="module")
def tryton() -> Tryton:
    return Tryton(require_server("ERPBRIDGE_TEST_TRYTON", "Tryton (scripts/tryton.sh)"))


@pytest.fixture
def prefix() -> str:
    return f"DEL{uuid.uuid4().hex[:6]}-"


@pytest.fixture
def runner(tryton: Tryton, prefix: str, tmp_path: Path) -> Iterator[FlowRunner]:
    path = tmp_path / "erpbridge.yaml"
    text = CONFIG.format(hub=tmp_path / "hub.db", base_url=tryton.base_url, prefix=prefix,
                         database=tryton.database, username=tryton.username)  # fmt: skip
    path.write_text(text, encoding="utf-8")
    engine = open_store(f"sqlite:///{tmp_path / 'hub.db'}")
    yield FlowRunner(load_config(path, env={"TRYTON_PASSWORD": tryton.password}), engine)
    engine.dispose()


def ok(result: object) -> object:
    assert getattr(result, "status", None) == "succeeded", getattr(result, "error", None)
    return result


def test_an_archived_party_is_a_tombstone_until_it_is_restored(
    runner: FlowRunner, tryton: Tryton, prefix: str
) -> None:
    parties = [{"code": f"{prefix}1", "name": "Kept"}, {"code": f"{prefix}2", "name": "Archived"}]
    ids = tryton.call("party.party", "create", parties)
    assert runner.run("parties-in").created == 2
    tryton.call("party.party", "write", [ids[1]], {"active": False})
    archived = runner.run("parties-in")
    assert (archived.status, archived.deleted, archived.unchanged) == ("succeeded", 1, 1)
    assert actions(runner.engine, "party", f"{prefix}2") == ["created", "deleted", "(deleted)"]
    tryton.call("party.party", "write", [ids[1]], {"active": True})
    restored = runner.run("parties-in")
    assert (restored.created, restored.deleted) == (1, 0)
    assert actions(runner.engine, "party", f"{prefix}2") == ["created", "deleted", "recreated"]


def test_a_party_deleted_in_tryton_is_found_by_the_key_sweep(
    runner: FlowRunner, tryton: Tryton, prefix: str
) -> None:
    parties = [{"code": f"{prefix}1", "name": "Stays"}, {"code": f"{prefix}2", "name": "Goes"}]
    ids = tryton.call("party.party", "create", parties)
    first = runner.run("parties-sweep")
    assert (first.mode, first.created) == ("sweep", 2), first.error
    tryton.call("party.party", "delete", [ids[1]])
    swept = runner.run("parties-sweep", full=True)
    assert (swept.status, swept.read, swept.deleted) == ("succeeded", 1, 1), swept.error
    assert actions(runner.engine, "party", f"{prefix}2") == ["created", "deleted", "(deleted)"]
    assert actions(runner.engine, "party", f"{prefix}1") == ["created"]


def test_a_deleted_record_is_archived_in_tryton(
    runner: FlowRunner, tryton: Tryton, prefix: str
) -> None:
    code = f"{prefix}9"
    runner.ingest("shop-in", [{"code": code, "name": "To archive"}], "t")
    worker = Worker(runner.config, runner.engine)
    try:
        assert worker.run_once().delivered == 1
        assert bool(tryton.one("party.party", [["code", "=", code]], ["active"])["active"])
        assert runner.ingest("shop-in", [{"code": code}], "t", deletes=True).deleted == 1
        stats = worker.run_once()
        assert (stats.delivered, stats.dead) == (1, 0)
    finally:
        worker.close()
    archived = tryton.one("party.party", [["code", "=", code]], ["active", "name"],
                          active_test=False)  # fmt: skip
    assert (bool(archived["active"]), archived["name"]) == (False, "To archive")  # SQLite: 0
