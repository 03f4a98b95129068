"""Firing transitions (``engine.transitions``) on SQLite and PostgreSQL: the new version, its
transition log row and the deliveries its OUT flows' ``when:`` take are written together or not
at all; every refusal names its cause and writes nothing; of two racing transitions one wins and
the other is told the state the record is in now; IN flows' status changes pass the workflow by
their ``status_policy``."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest
from sqlalchemy import Connection, Engine, func, select
from sqlalchemy.exc import DBAPIError

import erpbridge.engine.transitions as engine_transitions
import erpbridge.store.transitions as store_transitions
from erpbridge.config import load_config
from erpbridge.config.loaded import LoadedConfig
from erpbridge.engine.runner import EventRejected, FlowRunner
from erpbridge.engine.transitions import (
    CardNumberInReason,
    Fired,
    IdempotencyKeyReused,
    InvalidFields,
    RecordNotFound,
    StaleVersion,
    fire_transition,
)
from erpbridge.store import open_store
from erpbridge.store.read import EVERYTHING, record_transitions
from erpbridge.store.tables import audit, deliveries, records, rejected, transitions
from erpbridge.workflows.machine import Actor, TransitionRefused
from workflows.claims import config

CLIENT = Actor("client", "portal", frozenset({"write"}))
ADMIN = Actor("client", "back-office", frozenset({"admin"}))
CLAIM = {"number": "W-1", "status": "submitted", "amount": "120.00", "dealer": "D-7"}


@dataclass
class Hub:
    config: LoadedConfig
    engine: Engine
    runner: FlowRunner

    def fire(self, name: str, actor: Actor = CLIENT, key: str = "W-1", **kw: Any) -> Fired:
        return fire_transition(self.engine, self.config, "warranty_claim", key, name, actor, **kw)

    def ingest(self, flow: str, *claims: dict[str, Any]) -> None:
        self.runner.ingest(flow, list(claims), "test")

    def snapshot(self, key: str = "W-1") -> tuple[Any, ...]:
        """What a refused or failed transition must leave as it was."""
        with self.engine.connect() as conn:
            row = conn.execute(
                select(records.c.version, records.c.payload).where(records.c.key == key)
            ).one()
            return (
                row.version,
                orjson.loads(row.payload),
                _count(conn, transitions.c.key == key),
                _count(conn, deliveries.c.key == key),
                _count(conn, audit.c.key == key),
            )

    def queued(self, key: str = "W-1") -> dict[int, list[str]]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(deliveries.c.version, deliveries.c.flow)
                .where(deliveries.c.key == key)
                .order_by(deliveries.c.version, deliveries.c.flow)
            )
            found: dict[int, list[str]] = {}
            for version, flow in rows:
                found.setdefault(version, []).append(flow)
            return found

    def log(self, key: str = "W-1") -> list[tuple[Any, ...]]:
        with self.engine.connect() as conn:
            rows = record_transitions(conn, EVERYTHING, "warranty_claim", key) or []
        return [
            (r.version, r.from_state, r.to_state, r.transition, r.actor_kind, r.actor, r.reason)
            for r in rows
        ]


def _count(conn: Connection, where: Any) -> int:
    table = where.left.table
    return int(conn.execute(select(func.count()).select_from(table).where(where)).scalar_one())


@pytest.fixture
def hub(tmp_path: Path, hub_url: str) -> Iterator[Hub]:
    path = tmp_path / "erpbridge.yaml"
    path.write_text(config(), encoding="utf-8")
    loaded = load_config(path, env={})
    engine = open_store(hub_url)
    hub = Hub(loaded, engine, FlowRunner(loaded, engine))
    hub.ingest("claims-vms", CLAIM)
    try:
        yield hub
    finally:
        engine.dispose()


def test_a_transition_writes_its_version_log_row_and_deliveries(hub: Hub) -> None:
    review = hub.fire("review")
    assert (review.before, review.after, review.version, review.deliveries) == (
        "submitted", "in_review", 2, 1,
    )  # fmt: skip
    approve = hub.fire("approve", fields={"approved_amount": "110.50"}, reason="checked")
    assert (approve.before, approve.after, approve.version, approve.deliveries) == (
        "in_review", "approved", 3, 4,
    )  # fmt: skip
    claim = {**CLAIM, "amount": "120", "status": "approved", "approved_amount": "110.5"}
    assert hub.snapshot()[1] == claim  # decimals as the entity's rules keep them
    assert hub.queued() == {
        1: ["every-version"],
        2: ["every-version"],
        3: ["archive", "credit-memo-sap", "credit-note-dealer", "every-version"],
    }
    assert hub.log() == [
        (1, None, "submitted", None, "flow", "claims-vms", None),
        (2, "submitted", "in_review", "review", "client", "portal", None),
        (3, "in_review", "approved", "approve", "client", "portal", "checked"),
    ]


def _refused(hub: Hub, code: str, name: str, **kw: Any) -> str:
    before = hub.snapshot()
    with pytest.raises(TransitionRefused) as info:
        hub.fire(name, **kw)
    assert info.value.code == code
    assert hub.snapshot() == before
    return str(info.value)


def _invalid(hub: Hub, error: type[Exception], name: str, **kw: Any) -> str:
    before = hub.snapshot()
    with pytest.raises(error) as info:
        hub.fire(name, **kw)
    assert hub.snapshot() == before
    return str(info.value)


def test_every_refusal_names_its_cause_and_writes_nothing(hub: Hub) -> None:
    assert _refused(hub, "unknown_transition", "aprove") == (
        "warranty_claim has no transition 'aprove'; did you mean 'approve'? "
        "(transitions: review, approve, reject, credit, close)"
    )
    assert _refused(hub, "illegal_transition", "approve") == (
        "'approve' cannot fire from submitted; allowed: review, reject"
    )
    assert _refused(hub, "reason_required", "reject") == "'reject' needs a reason"
    assert _refused(hub, "reason_required", "reject", reason="   ") == "'reject' needs a reason"
    card = _invalid(hub, CardNumberInReason, "reject", reason="refund to 4111 1111 1111 1111")
    assert "card number" in card and "4111" not in card
    hub.fire("review")
    assert _refused(hub, "required_missing", "approve") == "'approve' needs approved_amount: empty"
    guard = _refused(hub, "guard_failed", "approve",
                     fields={"approved_amount": "100", "amount": "9000"})  # fmt: skip
    assert guard == "guard of 'approve' failed: amount <= 5000 (amount is '9000')"
    assert _invalid(hub, InvalidFields, "approve", fields={"status": "approved"}) == (
        "'status' changes only by a transition, not as a field"
    )
    assert _invalid(hub, InvalidFields, "approve", fields={"number": "W-2"}) == (
        "'number' is part of the record's key: it cannot change"
    )
    bad = _invalid(hub, InvalidFields, "approve", fields={"approved_amount": "lots"})
    assert bad.startswith("approved_amount: ")
    hub.fire("approve", fields={"approved_amount": "100"})
    assert _refused(hub, "not_allowed", "credit") == (
        "client 'portal' may not fire 'credit' (allowed: scopes admin; flows claims-erp)"
    )
    assert hub.fire("credit", ADMIN).after == "credited"
    with pytest.raises(RecordNotFound, match="no warranty_claim record with key 'W-404'"):
        hub.fire("review", key="W-404")


def test_a_failure_after_the_state_change_leaves_neither_state_nor_deliveries(
    hub: Hub, monkeypatch: pytest.MonkeyPatch
) -> None:
    hub.fire("review")
    before = hub.snapshot()

    def enqueue_then_fail(*args: Any, **kw: Any) -> int:
        written = real(*args, **kw)
        assert written == 4  # the record's new state and its four deliveries are written ...
        raise RuntimeError("the hub's process died here")  # ... then the transaction fails

    real = store_transitions.enqueue
    monkeypatch.setattr(store_transitions, "enqueue", enqueue_then_fail)
    with pytest.raises(RuntimeError):
        hub.fire("approve", fields={"approved_amount": "100"})
    assert hub.snapshot() == before  # still in_review; no log row, no delivery, no audit row
    monkeypatch.setattr(store_transitions, "enqueue", real)
    assert hub.fire("approve", fields={"approved_amount": "100"}).deliveries == 4


def test_of_two_racing_transitions_one_wins_the_other_learns_the_state(
    hub: Hub, monkeypatch: pytest.MonkeyPatch
) -> None:
    hub.fire("review")
    real = engine_transitions.apply_transition

    def slow(*args: Any) -> tuple[int, int]:
        time.sleep(0.3)  # both have read the record (PostgreSQL) before either writes
        return real(*args)

    monkeypatch.setattr(engine_transitions, "apply_transition", slow)
    outcomes: dict[str, Fired | Exception] = {}

    def fire(name: str, **kw: Any) -> None:
        try:
            outcomes[name] = hub.fire(name, **kw)
        except (TransitionRefused, StaleVersion) as exc:
            outcomes[name] = exc

    approve = {"fields": {"approved_amount": "1"}}
    threads = [
        threading.Thread(target=fire, args=("approve",), kwargs=approve),
        threading.Thread(target=fire, args=("reject",), kwargs={"reason": "no receipt"}),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    won = [o for o in outcomes.values() if isinstance(o, Fired)]
    lost = [o for o in outcomes.values() if not isinstance(o, Fired)]
    assert len(won) == 1 and len(lost) == 1
    state = won[0].after
    assert f"is now {state}" in str(lost[0]) or f"cannot fire from {state}" in str(lost[0])
    if hub.engine.dialect.name == "postgresql":
        assert isinstance(lost[0], StaleVersion)  # read the same version; the update found it moved
    version, payload, logged, _, _ = hub.snapshot()
    assert (version, payload["status"], logged) == (3, state, 3)
    assert hub.log()[-1][2:4] == (state, won[0].transition)
    assert list(hub.queued()) == [1, 2, 3]  # only the winner's version has deliveries


def test_an_idempotency_key_answers_a_retry_with_the_first_result(hub: Hub) -> None:
    first = hub.fire("review", idempotency_key="k-1")
    again = hub.fire("review", idempotency_key="k-1")
    assert (again.replayed, again.version, again.after, again.deliveries) == (
        True, first.version, "in_review", 0,
    )  # fmt: skip
    assert len(hub.log()) == 2
    with pytest.raises(IdempotencyKeyReused, match="used before on this record for 'review'"):
        hub.fire("reject", reason="x", idempotency_key="k-1")


def test_a_stale_expected_version_is_refused_with_the_state_now(hub: Hub) -> None:
    hub.fire("review")
    with pytest.raises(StaleVersion) as info:
        hub.fire("reject", reason="late", expected_version=1)
    assert str(info.value) == (
        "warranty_claim 'W-1' is at version 2, not 1; warranty_claim 'W-1' is now in_review "
        "(version 2); allowed: approve, reject"
    )


def test_in_flow_status_changes_pass_the_workflow_by_status_policy(hub: Hub) -> None:
    # enforce (claims-vms): an illegal jump is refused, nothing of the event is stored.
    with pytest.raises(EventRejected) as info:
        hub.ingest("claims-vms", {**CLAIM, "status": "credited"})
    assert info.value.problems == [
        (0, "status", "cannot go from submitted to credited; allowed: review, reject")
    ]
    # A legal change is recognised as its transition, fired by the flow.
    hub.ingest("claims-vms", {**CLAIM, "status": "in_review"})
    assert hub.log()[-1] == (2, "submitted", "in_review", "review", "flow", "claims-vms", None)
    # A source that does not carry the state leaves it as it is.
    hub.ingest("claims-vms", {"number": "W-1", "amount": "130.00"})
    assert hub.snapshot()[1]["status"] == "in_review"
    # record (claims-erp, the ERP is master): taken, with a note in the log.
    hub.ingest("claims-erp", {**CLAIM, "status": "closed"})
    with hub.engine.connect() as conn:
        rows = record_transitions(conn, EVERYTHING, "warranty_claim", "W-1") or []
    last = rows[-1]
    assert (last.from_state, last.to_state, last.transition) == ("in_review", "closed", None)
    assert last.note.startswith("not allowed by workflow 'claim': cannot go from in_review to")
    assert last.note.endswith("taken (status_policy: record)")
    # A new record enters the initial state; one starting elsewhere is refused under enforce.
    hub.ingest("claims-vms", {"number": "W-2", "amount": "1"})
    assert hub.log("W-2") == [(1, None, "submitted", None, "flow", "claims-vms", None)]
    with pytest.raises(EventRejected) as info:
        hub.ingest("claims-vms", {"number": "W-3", "status": "approved"})
    assert info.value.problems == [
        (0, "status", "a new warranty_claim starts in submitted, not approved")
    ]


def test_the_transition_log_is_append_only_in_the_database(hub: Hub) -> None:
    refused = pytest.raises(DBAPIError, match="the transition log is append-only")
    with refused, hub.engine.begin() as conn:
        conn.execute(transitions.update().values(reason="rewritten"))
    with refused, hub.engine.begin() as conn:
        conn.execute(transitions.delete())
    assert len(hub.log()) == 1


def test_a_run_under_enforce_rejects_an_illegal_jump_and_stores_the_rest(
    hub: Hub, tmp_path: Path
) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir(exist_ok=True)
    claims = [{**CLAIM, "status": "closed"}, {"number": "W-5", "amount": "3"}]
    (inbox / "claims.json").write_text(orjson.dumps(claims).decode(), encoding="utf-8")
    result = hub.runner.run("claims-vms")
    assert (result.status, result.rejected) == ("succeeded", 1)
    with hub.engine.connect() as conn:
        rows = conn.execute(select(rejected).where(rejected.c.flow == "claims-vms")).all()
    assert [(r.field_path, r.reason, r.status) for r in rows] == [
        ("status", "cannot go from submitted to closed; allowed: review, reject", "open")
    ]
    assert hub.snapshot()[0] == 1  # W-1 as it was
    assert hub.log("W-5") == [(1, None, "submitted", None, "flow", "claims-vms", None)]
    # The ERP is master (record): the same jump is taken, with a warning on the run.
    erp = tmp_path / "erp-inbox"
    erp.mkdir(exist_ok=True)
    (erp / "claims.json").write_text(orjson.dumps(claims[:1]).decode(), encoding="utf-8")
    taken = hub.runner.run("claims-erp")
    assert taken.status == "succeeded" and taken.rejected == 0
    assert taken.warnings == [
        "1 status change(s) the workflow does not allow, taken (status_policy: record): see the "
        "transition log"
    ]
    assert hub.snapshot()[1]["status"] == "closed"
