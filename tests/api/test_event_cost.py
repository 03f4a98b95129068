"""What one event costs the store: transactions and statements of a single-record event and a
webhook, counted with SQLAlchemy's event hooks. The bounds keep the per-event cost from creeping
back (issue 16: it was 6 transactions and 24 statements)."""

from __future__ import annotations

import hashlib
import hmac
import json
import sqlite3
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine, event, select

from api.conftest import HOOK_SECRET, ApiClient, Project
from erpbridge.store.tables import records


@dataclass
class Tally:
    transactions: int = 0
    statements: list[str] = field(default_factory=list)


@contextmanager
def _tally(engine: Engine) -> Iterator[Tally]:
    tally = Tally()

    def on_begin(_conn: Any) -> None:
        tally.transactions += 1

    def on_execute(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        tally.statements.append(" ".join(statement.split())[:90])

    event.listen(engine, "begin", on_begin)
    event.listen(engine, "before_cursor_execute", on_execute)
    try:
        yield tally
    finally:
        event.remove(engine, "begin", on_begin)
        event.remove(engine, "before_cursor_execute", on_execute)


def _post(http: ApiClient, key: str) -> None:
    answer = http.post("/api/v1/events/customers-in", json={"id": key, "name": "Muster"})
    assert answer.status_code == 202, answer.text
    body = answer.json()
    assert body["created"] == 1 and [r["key"] for r in body["records"]] == [key], body


def _sender(project: Project) -> ApiClient:
    """One app for every request of a test: the app builds its middleware at the first."""
    return project.client(**{"X-API-Key": project.keys["shop"]})


def test_one_event_costs_one_transaction(project: Project) -> None:
    http = _sender(project)
    _post(http, "C-0")  # warm: plans compiled, the key remembered, its last use recorded
    with _tally(project.engine) as tally:
        _post(http, "C-1")
    # The key is not looked up in a transaction of its own: its client is read again in the
    # event's transaction (api.keycache). 17 statements: the flow's switch, the client, the run
    # opened and closed, the read-back, and the store's upsert of one record (12).
    assert tally.transactions == 1, tally.statements
    assert len(tally.statements) <= 17, tally.statements


def test_events_arriving_together_share_one_upsert(project: Project) -> None:
    http = _sender(project)
    _post(http, "C-0")
    # Hold the store's write lock: the first event waits in its transaction, the next ten
    # gather behind it in the next group (engine.groupcommit), which is written as one batch.
    blocker = sqlite3.connect(project.root / "hub.db", timeout=30)
    blocker.execute("BEGIN IMMEDIATE")
    with _tally(project.engine) as tally, ThreadPoolExecutor(11) as pool:
        first = pool.submit(_post, http, "C-1")
        time.sleep(0.5)
        rest = [pool.submit(_post, http, f"C-{i}") for i in range(2, 12)]
        time.sleep(0.5)
        blocker.rollback()
        first.result()
        for done in rest:
            done.result()
    blocker.close()
    # Two groups (three on a slow machine, when a straggler misses the second): one event alone
    # takes 17 statements, ten together 18 (the records read before the upsert; the client is
    # read once per group), not 170.
    assert tally.transactions <= 3
    assert len(tally.statements) <= 3 * 17 + 3, tally.statements
    with project.engine.connect() as conn:
        stored = conn.execute(select(records.c.key, records.c.version)).all()
    assert sorted(stored) == sorted((f"C-{i}", 1) for i in range(12))


def _answer(http: ApiClient, key: str, name: str) -> dict[str, Any]:
    answer = http.post("/api/v1/events/customers-in", json={"id": key, "name": name})
    assert answer.status_code == 202, answer.text
    body: dict[str, Any] = answer.json()
    return body


def test_each_event_of_a_merged_group_gets_its_own_counters(project: Project) -> None:
    http = _sender(project)
    for key in ("SAME", "CHANGED"):
        _answer(http, key, "first")
    blocker = sqlite3.connect(project.root / "hub.db", timeout=30)
    blocker.execute("BEGIN IMMEDIATE")
    sends = [("SAME", "first"), ("CHANGED", "second"), ("NEW", "first")]
    with ThreadPoolExecutor(4) as pool:
        lone = pool.submit(_answer, http, "LONE", "first")
        time.sleep(0.5)
        group = [pool.submit(_answer, http, key, name) for key, name in sends]
        time.sleep(0.5)
        blocker.rollback()
        answers = [done.result() for done in group]
        lone.result()
    blocker.close()
    counters = [(a["created"], a["updated"], a["unchanged"], a["stale"]) for a in answers]
    assert counters == [(0, 0, 1, 0), (0, 1, 0, 0), (1, 0, 0, 0)]
    versions = [[(r["key"], r["version"]) for r in a["records"]] for a in answers]
    assert versions == [[("SAME", 1)], [("CHANGED", 2)], [("NEW", 1)]]
    # The same key twice in one group is not merged: each event is written on its own, in order.
    blocker = sqlite3.connect(project.root / "hub.db", timeout=30)
    blocker.execute("BEGIN IMMEDIATE")
    with ThreadPoolExecutor(3) as pool:
        lone = pool.submit(_answer, http, "LONE", "second")
        time.sleep(0.5)
        twice = [pool.submit(_answer, http, "TWICE", name) for name in ("first", "second")]
        time.sleep(0.5)
        blocker.rollback()
        answers = [done.result() for done in twice]
        lone.result()
    blocker.close()
    assert sorted(a["records"][0]["version"] for a in answers) == [1, 2]
    with project.engine.connect() as conn:
        stored = dict(conn.execute(select(records.c.key, records.c.version)).all())
    assert stored == {"SAME": 1, "CHANGED": 2, "NEW": 1, "LONE": 2, "TWICE": 2}


def _hook(project: Project, key: str) -> None:
    body = json.dumps({"data": [{"id": key, "name": "Hook"}]}).encode()
    stamp = str(int(time.time()))
    mac = hmac.new(HOOK_SECRET.encode(), stamp.encode() + b"." + body, hashlib.sha256)
    headers = {"X-Timestamp": stamp, "X-Signature": f"sha256={mac.hexdigest()}"}
    with project.client(**headers) as http:
        answer = http.post("/hooks/shop", content=body)
    assert answer.status_code == 202, answer.text


def test_one_webhook_costs_one_transaction(project: Project) -> None:
    _hook(project, "C-0")
    with _tally(project.engine) as tally:
        _hook(project, "C-1")
    # The signature spent (expired ones dropped, this one claimed) instead of a client check.
    assert tally.transactions == 1, tally.statements
    assert len(tally.statements) <= 18, tally.statements
