"""Deletes between the hub and a real REST API (json-server behind the test gateway,
``scripts/restapi.sh``): IN, an item's ``deleted`` flag (``delete_marker``) and an item removed
from the list (a key sweep over every page) become tombstones; OUT, ``on_delete: delete`` sends
a DELETE of the item through the delivery ledger, and a delete of an item already gone is
delivered, not dead (issue 19, item 2)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from erpbridge import FlowRunner, load_config, open_store
from erpbridge.engine.worker import Worker
from integration.servers import require_server
from integration.versions import actions


@pytest.fixture(scope="module")
def api() -> str:
    line = require_server("ERPBRIDGE_TEST_RESTAPI", "the REST test API (scripts/restapi.sh)")
    url: str = json.loads(line)["url"]
    return url


def collection(api: str, items: list[dict[str, Any]]) -> str:
    name = f"d{uuid.uuid4().hex[:12]}"
    httpx.put(f"{api}/_admin/collections/{name}", json=items).raise_for_status()
    return name


@pytest.fixture
def make_runner(api: str, tmp_path: Path) -> Iterator[Any]:
    engines = []

    def make(name: str) -> FlowRunner:
        (tmp_path / "inbox").mkdir(exist_ok=True)
        mapping = {"code": "code", "name": "name"}
        document = {
            "hub": {"database_url": f"sqlite:///{tmp_path / 'hub.db'}"},
            "channels": {
                "api": {"system": "rest", "options": {"base_url": f"{api}/open/"}},
                "drop": {"system": "folder", "options": {"path": "inbox"}},
            },
            "flows": [
                {"name": "customers-in", "channel": "api", "entity": "customer",
                 "direction": "in", "key": "id", "batch_size": 2, "mapping": mapping,
                 "source": {"resource": f"api/{name}", "pagination": {
                     "type": "page", "page_param": "_page", "size_param": "_limit",
                     "page_size": 2}},
                 "delete_marker": {"field": "deleted", "value": True}, "key_sweep": "1d"},
                {"name": "drop-in", "channel": "drop", "entity": "customer", "direction": "in",
                 "source": {"pattern": "*.csv"}, "mapping": mapping},
                {"name": "customers-out", "channel": "api", "entity": "customer",
                 "direction": "out", "target": {"resource": f"api/{name}"},
                 "on_delete": "delete", "mapping": mapping,
                 "retry": {"max_attempts": 3, "backoff_s": 0.001, "min_delay_s": 0}},
            ],
        }  # fmt: skip
        path = tmp_path / "erpbridge.yaml"
        path.write_text(yaml.safe_dump(document), encoding="utf-8")
        engine = open_store(f"sqlite:///{tmp_path / 'hub.db'}")
        engines.append(engine)
        return FlowRunner(load_config(path), engine)

    yield make
    for engine in engines:
        engine.dispose()


def test_a_deleted_flag_and_an_item_gone_from_the_pages_become_tombstones(
    api: str, make_runner: Any
) -> None:
    name = collection(api, [{"id": i, "code": f"C-{i}", "name": f"N {i}"} for i in (1, 2, 3)])
    runner: FlowRunner = make_runner(name)
    first = runner.run("customers-in")  # never swept: reads every page and compares
    assert (first.status, first.mode, first.created) == ("succeeded", "sweep", 3), first.error
    httpx.patch(f"{api}/open/api/{name}/2", json={"deleted": True}).raise_for_status()
    httpx.delete(f"{api}/open/api/{name}/3").raise_for_status()
    swept = runner.run("customers-in", full=True)
    assert (swept.status, swept.read, swept.deleted) == ("succeeded", 2, 2), swept.error
    assert actions(runner.engine, "customer", "C-2") == ["created", "deleted", "(deleted)"]
    assert actions(runner.engine, "customer", "C-3") == ["created", "deleted", "(deleted)"]
    assert actions(runner.engine, "customer", "C-1") == ["created"]


def test_on_delete_delete_removes_the_item_through_the_ledger(
    api: str, make_runner: Any, tmp_path: Path
) -> None:
    name = collection(api, [])
    runner: FlowRunner = make_runner(name)
    (tmp_path / "inbox" / "c.csv").write_text("code,name\nC-1,Anna\nC-2,Bob\n", encoding="utf-8")
    assert runner.run("drop-in").created == 2
    worker = Worker(runner.config, runner.engine)
    try:
        assert worker.run_once().delivered == 2
        assert sorted(i["id"] for i in httpx.get(f"{api}/open/api/{name}").json()) == ["C-1", "C-2"]
        # C-2 is removed behind the hub's back first: its delete must still be delivered.
        httpx.delete(f"{api}/open/api/{name}/C-2").raise_for_status()
        done = runner.ingest("drop-in", [{"code": "C-1"}, {"code": "C-2"}], "t", deletes=True)
        assert done.deleted == 2
        stats = worker.run_once()
        assert (stats.delivered, stats.dead, stats.retried) == (2, 0, 0)
    finally:
        worker.close()
    assert httpx.get(f"{api}/open/api/{name}").json() == []
