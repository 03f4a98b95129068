"""OUT flows end to end: a change lands IN, the outbox queues it, a worker writes it to a real
folder target; retries, dead letters, fencing and per-key order, on SQLite and PostgreSQL."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from sqlalchemy import Engine, func, select, update

from erpbridge import FlowRunner, load_config, open_store
from erpbridge.engine.worker import Failure, Worker, WorkerStats
from erpbridge.store.deliveries import claim, finish, requeue
from erpbridge.store.runs import now
from erpbridge.store.tables import bindings, deliveries, delivery_attempts

CONFIG = """
hub: {{database_url: "{url}"}}
channels:
  shop:
    system: folder
    options: {{path: inbox}}
  erp:
    system: folder
    options: {{path: "{erp_path}"}}
flows:
  - name: customers-in
    channel: shop
    entity: customer
    direction: in
    source: {{pattern: "*.csv"}}
    key: id
    mapping: {{code: id, name: name, credit_limit: limit}}
  - name: customers-to-erp
    channel: erp
    entity: customer
    direction: out
    target: {{format: json, subfolder: customers}}
    retry: {{max_attempts: 3, backoff_s: 0.001, min_delay_s: 0}}
    mapping:
      KUNNR: code
      NAME1: name
      KLIMK: {{from: credit_limit, transforms: [{{format_decimal: 2}}], default: "0.00"}}
  - name: customers-echo
    channel: shop
    entity: customer
    direction: out
    target: {{format: json, subfolder: echo}}
"""


@pytest.fixture
def hub(tmp_path: Path, hub_url: str) -> Iterator[tuple[Path, Engine]]:
    (tmp_path / "inbox").mkdir()
    (tmp_path / "erp").mkdir()
    path = tmp_path / "erpbridge.yaml"
    path.write_text(CONFIG.format(url=hub_url, erp_path=tmp_path / "erp"), encoding="utf-8")
    engine = open_store(hub_url)
    yield path, engine
    engine.dispose()


def sync(config_path: Path, engine: Engine, csv: str) -> None:
    (config_path.parent / "inbox" / "c.csv").write_text(csv, encoding="utf-8")
    result = FlowRunner(load_config(config_path), engine).run("customers-in")
    assert result.status == "succeeded"


def deliver(config_path: Path, engine: Engine) -> Any:
    worker = Worker(load_config(config_path), engine)
    try:
        return worker.run_once()
    finally:
        worker.close()


def states(engine: Engine, flow: str = "customers-to-erp") -> list[tuple[str, int, str]]:
    with engine.connect() as conn:
        rows = conn.execute(
            select(deliveries.c.key, deliveries.c.version, deliveries.c.state)
            .where(deliveries.c.flow == flow)
            .order_by(deliveries.c.id)
        )
        return [tuple(r) for r in rows]  # type: ignore[misc]


def written(config_path: Path, name: str) -> dict[str, Any]:
    data: dict[str, Any] = orjson.loads(
        (config_path.parent / "erp" / "customers" / name).read_bytes()
    )
    return data


def test_a_change_is_queued_with_it_and_delivered_mapped(hub: tuple[Path, Engine]) -> None:
    config_path, engine = hub
    sync(config_path, engine, "id,name,limit\nC1,Anna,1000.5\nC2,Bob,\n")
    assert states(engine) == [("C1", 1, "pending"), ("C2", 1, "pending")]

    stats = deliver(config_path, engine)

    assert (stats.delivered, stats.dead) == (2, 0)
    assert states(engine) == [("C1", 1, "delivered"), ("C2", 1, "delivered")]
    assert written(config_path, "customer-C1-v1.json") == {
        "KUNNR": "C1",
        "NAME1": "Anna",
        "KLIMK": "1000.50",
    }
    assert written(config_path, "customer-C2-v1.json")["KLIMK"] == "0.00"
    with engine.connect() as conn:
        bound = (
            conn.execute(select(bindings.c.external_id).where(bindings.c.channel == "erp"))
            .scalars()
            .all()
        )
    assert sorted(bound) == ["customers/customer-C1-v1.json", "customers/customer-C2-v1.json"]

    sync(config_path, engine, "id,name,limit\nC1,Anna,1000.5\nC2,Bob,\n")  # nothing changed
    assert len(states(engine)) == 2
    sync(config_path, engine, "id,name,limit\nC1,Anna Schmidt,1000.5\n")  # one change
    assert states(engine)[-1] == ("C1", 2, "pending")
    deliver(config_path, engine)
    assert written(config_path, "customer-C1-v2.json")["NAME1"] == "Anna Schmidt"


def test_no_echo_to_the_channel_a_change_came_from(hub: tuple[Path, Engine]) -> None:
    config_path, engine = hub
    sync(config_path, engine, "id,name,limit\nC1,Anna,1\n")
    assert states(engine, "customers-echo") == []
    config_path.write_text(
        config_path.read_text().replace("subfolder: echo}", "subfolder: echo}\n    echo: true")
    )
    sync(config_path, engine, "id,name,limit\nC1,Anna,2\n")
    assert states(engine, "customers-echo") == [("C1", 2, "pending")]


def test_a_failing_target_retries_then_dies_then_recovers_by_hand(
    hub: tuple[Path, Engine],
) -> None:
    config_path, engine = hub
    (config_path.parent / "erp").rmdir()  # the ERP's drop folder is gone (unmounted)
    sync(config_path, engine, "id,name,limit\nC1,Anna,1\n")

    # The retries are due a few milliseconds later: pass again until the delivery is dead.
    totals = [0, 0, 0]
    for _ in range(50):
        stats = deliver(config_path, engine)
        totals = [totals[0] + stats.retried, totals[1] + stats.dead, totals[2] + stats.delivered]
        if totals[1]:
            break
        time.sleep(0.01)

    assert totals == [2, 1, 0]
    with engine.connect() as conn:
        dead = conn.execute(select(deliveries).where(deliveries.c.flow == "customers-to-erp")).one()
        attempts = (
            conn.execute(select(delivery_attempts.c.outcome).order_by(delivery_attempts.c.id))
            .scalars()
            .all()
        )
    assert (dead.state, dead.attempts) == ("dead", 3)
    assert "erp" in dead.last_error
    assert attempts == ["retry", "retry", "dead"]

    (config_path.parent / "erp").mkdir()  # fixed
    with engine.begin() as conn:
        assert requeue(conn, None, now(), all_dead=True) == 1
    assert deliver(config_path, engine).delivered == 1
    assert states(engine) == [("C1", 1, "delivered")]


def test_a_version_that_no_longer_maps_is_dead_with_the_reason(hub: tuple[Path, Engine]) -> None:
    config_path, engine = hub
    config_path.write_text(
        config_path.read_text().replace("KUNNR: code", "KUNNR: {from: vat_id, required: true}")
    )
    sync(config_path, engine, "id,name,limit\nC1,Anna,1\n")

    stats = deliver(config_path, engine)

    assert stats.dead == 1
    with engine.connect() as conn:
        error = conn.execute(select(deliveries.c.last_error)).scalars().first()
    assert error is not None and "KUNNR" in error and "required" in error


def test_a_worker_whose_lease_was_taken_over_cannot_commit(hub: tuple[Path, Engine]) -> None:
    config_path, engine = hub
    sync(config_path, engine, "id,name,limit\nC1,Anna,1\n")
    with engine.begin() as conn:
        (slow,) = claim(conn, "slow", 10, timedelta(seconds=-1), now(), ["customers-to-erp"])
    with engine.begin() as conn:  # the lease has expired: another worker takes it over
        (fast,) = claim(conn, "fast", 10, timedelta(seconds=60), now(), ["customers-to-erp"])
    assert fast.fence == slow.fence + 1

    with engine.begin() as conn:
        assert finish(conn, slow, "slow", now(), outcome="delivered") is False
        assert finish(conn, fast, "fast", now(), outcome="delivered") is True
    with engine.connect() as conn:
        outcomes = conn.execute(
            select(delivery_attempts.c.worker, delivery_attempts.c.outcome).order_by(
                delivery_attempts.c.id
            )
        ).all()
    assert [tuple(o) for o in outcomes] == [("slow", "lost_lease"), ("fast", "delivered")]


def test_versions_of_one_key_go_out_one_at_a_time_in_order(hub: tuple[Path, Engine]) -> None:
    config_path, engine = hub
    sync(config_path, engine, "id,name,limit\nC1,Anna,1\nC2,Bob,1\n")
    sync(config_path, engine, "id,name,limit\nC1,Anna,2\n")
    with engine.begin() as conn:
        first = claim(conn, "w", 10, timedelta(seconds=60), now(), ["customers-to-erp"])
    # C1 v2 waits behind C1 v1, which is in flight
    assert [(c.key, c.version) for c in first] == [("C1", 1), ("C2", 1)]
    with engine.begin() as conn:
        assert claim(conn, "w2", 10, timedelta(seconds=60), now(), ["customers-to-erp"]) == []
        finish(conn, first[0], "w", now(), outcome="delivered")
        (second,) = claim(conn, "w2", 10, timedelta(seconds=60), now(), ["customers-to-erp"])
    assert (second.key, second.version) == ("C1", 2)


def test_deliveries_of_a_removed_flow_are_kept_not_claimed(hub: tuple[Path, Engine]) -> None:
    config_path, engine = hub
    sync(config_path, engine, "id,name,limit\nC1,Anna,1\n")
    text = config_path.read_text()
    config_path.write_text(text[: text.index("  - name: customers-to-erp")])

    stats = deliver(config_path, engine)

    assert stats.claimed == 0
    assert states(engine) == [("C1", 1, "pending")]


def test_higher_priority_flows_are_claimed_first(hub: tuple[Path, Engine]) -> None:
    config_path, engine = hub
    sync(config_path, engine, "id,name,limit\nC1,Anna,1\nC2,Bob,1\n")
    with engine.begin() as conn:
        conn.execute(update(deliveries).where(deliveries.c.key == "C2").values(priority=10))
        (first,) = claim(conn, "w", 1, timedelta(seconds=60), now(), ["customers-to-erp"])
        total = conn.execute(select(func.count()).select_from(deliveries)).scalar_one()
    assert first.key == "C2" and total == 2


def test_retry_after_is_honoured_but_never_below_the_floor(hub: tuple[Path, Engine]) -> None:
    # An HTTP target answering 429 arrives with the REST transport; the policy is the worker's
    # and is exercised here directly with the failure such a target raises.
    config_path, engine = hub
    config_path.write_text(config_path.read_text().replace("min_delay_s: 0", "min_delay_s: 2"))
    sync(config_path, engine, "id,name,limit\nC1,Anna,1\nC2,Bob,1\n")
    worker = Worker(load_config(config_path), engine)
    with engine.begin() as conn:
        first, second = claim(
            conn, worker.name, 10, timedelta(seconds=60), now(), ["customers-to-erp"]
        )
    before = now()
    stats = WorkerStats()
    worker._record(
        "customers-to-erp",
        [],
        [],
        [
            Failure(first, "retry", "429 Too Many Requests", retry_after=0),
            Failure(second, "retry", "429 Too Many Requests", retry_after=30),
        ],
        stats,
    )
    worker.close()
    with engine.connect() as conn:
        due = dict(
            conn.execute(
                select(deliveries.c.key, deliveries.c.next_attempt_at).where(
                    deliveries.c.flow == "customers-to-erp"
                )
            ).all()
        )
    floor = (due["C1"].replace(tzinfo=before.tzinfo) - before).total_seconds()
    hinted = (due["C2"].replace(tzinfo=before.tzinfo) - before).total_seconds()
    assert 2 <= floor < 3  # Retry-After: 0 is lifted to the 2 s floor: no retry storm
    assert 30 <= hinted < 31
    assert stats.retried == 2


def test_max_in_flight_caps_claims_per_channel_across_workers(hub: tuple[Path, Engine]) -> None:
    config_path, engine = hub
    config_path.write_text(
        config_path.read_text().replace(
            'options: {path: "', 'limits: {max_in_flight: 2}\n    options: {path: "'
        )
    )
    sync(config_path, engine, "id,name,limit\nC1,A,1\nC2,B,1\nC3,C,1\n")
    one = Worker(load_config(config_path), engine, name="one")
    two = Worker(load_config(config_path), engine, name="two")
    with engine.begin() as conn:
        first = one._claim(conn)
    with engine.begin() as conn:
        second = two._claim(conn)
    assert len(first) == 2 and second == []  # the erp channel's two slots are taken
    assert two.run_once().claimed == 0
    done = WorkerStats()
    one.attempt("customers-to-erp", first, done)  # the two go out: their slots free up
    stats = two.run_once()
    one.close()
    two.close()
    assert (done.delivered, stats.delivered) == (2, 1)


def test_a_claim_finds_a_head_behind_a_window_full_of_blocked_versions(
    hub: tuple[Path, Engine],
) -> None:
    config_path, engine = hub
    sync(config_path, engine, "id,name,limit\nC1,A,0\nC2,B,1\n")
    with engine.begin() as conn:
        conn.execute(update(deliveries).where(deliveries.c.key == "C2").values(priority=-1))
        (c1,) = claim(conn, "w", 1, timedelta(seconds=60), now(), ["customers-to-erp"])
    assert c1.key == "C1"
    for limit in range(1, 7):  # C1 v2 … v7 queue up behind the in-flight v1
        sync(config_path, engine, f"id,name,limit\nC1,A,{limit}\n")
    with engine.begin() as conn:
        (head,) = claim(conn, "x", 1, timedelta(seconds=60), now(), ["customers-to-erp"])
    assert (head.key, head.version) == ("C2", 1)


def test_a_worker_that_lost_its_lease_before_writing_does_not_write(
    hub: tuple[Path, Engine],
) -> None:
    config_path, engine = hub
    sync(config_path, engine, "id,name,limit\nC1,Anna,1\n")
    worker = Worker(load_config(config_path), engine)
    with engine.begin() as conn:  # a claim whose lease ran out while the worker was busy
        stale = claim(conn, worker.name, 10, timedelta(seconds=-1), now(), ["customers-to-erp"])
    stats = WorkerStats()
    worker.attempt("customers-to-erp", stale, stats)
    worker.close()
    # Nobody took it over yet: the attempt is recorded as a retry, and nothing was written.
    assert (stats.retried, stats.delivered, stats.lost) == (1, 0, 0)
    assert not (config_path.parent / "erp" / "customers").exists()
    assert states(engine) == [("C1", 1, "failed")]


def test_concurrent_workers_never_claim_the_same_delivery(tmp_path: Path, pg_database: str) -> None:
    """Three worker processes on PostgreSQL share 3 000 deliveries: each is attempted once."""
    import subprocess
    import sys

    (tmp_path / "inbox").mkdir()
    (tmp_path / "erp").mkdir()
    config_path = tmp_path / "erpbridge.yaml"
    config_path.write_text(CONFIG.format(url=pg_database, erp_path=tmp_path / "erp"))
    rows = "".join(f"C{i},N{i},{i}\n" for i in range(3000))
    engine = open_store(pg_database)
    sync(config_path, engine, "id,name,limit\n" + rows)
    command = [sys.executable, "-m", "erpbridge", "worker", "-c", str(config_path),
               "--interval", "0.05", "--batch-size", "50"]  # fmt: skip
    workers = [subprocess.Popen(command, stdout=subprocess.DEVNULL) for _ in range(3)]
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            with engine.connect() as conn:
                open_ = conn.execute(
                    select(func.count()).select_from(deliveries)
                    .where(deliveries.c.flow == "customers-to-erp",
                           deliveries.c.state != "delivered")
                ).scalar_one()  # fmt: skip
            if open_ == 0:
                break
            time.sleep(0.2)
    finally:
        for worker in workers:
            worker.terminate()
            worker.wait(timeout=30)
    with engine.connect() as conn:
        outcomes = dict(
            conn.execute(
                select(delivery_attempts.c.outcome, func.count()).group_by(
                    delivery_attempts.c.outcome
                )
            ).all()
        )
    engine.dispose()
    assert open_ == 0
    assert outcomes == {"delivered": 3000}  # no lost lease: nothing was claimed twice


def test_a_target_that_fails_for_a_while_recovers_on_its_own(hub: tuple[Path, Engine]) -> None:
    config_path, engine = hub
    config_path.write_text(config_path.read_text().replace("max_attempts: 3", "max_attempts: 50"))
    (config_path.parent / "erp").rmdir()  # the ERP's share is down
    sync(config_path, engine, "id,name,limit\nC1,Anna,1\nC2,Bob,2\n")
    first = deliver(config_path, engine)
    assert first.delivered == 0 and first.retried >= 2
    (config_path.parent / "erp").mkdir()  # and back
    delivered = 0
    for _ in range(100):
        delivered += deliver(config_path, engine).delivered
        if delivered == 2:
            break
        time.sleep(0.02)
    assert states(engine) == [("C1", 1, "delivered"), ("C2", 1, "delivered")]
    assert written(config_path, "customer-C2-v1.json")["NAME1"] == "Bob"


def test_a_claim_takes_higher_priority_first_then_the_oldest_and_a_live_lane_only_live_ones(
    hub: tuple[Path, Engine],
) -> None:
    """The claim's window is read per state and priority level (issue 21): the order across
    levels and states is still priority, then next attempt, then id; a live lane
    (``min_priority``) leaves backfilled deliveries to the other worker."""
    config_path, engine = hub
    sync(config_path, engine, "id,name,limit\n" + "".join(f"C{i},N{i},{i}\n" for i in range(6)))
    at = now()
    with engine.begin() as conn:
        ids = list(conn.execute(select(deliveries.c.id).order_by(deliveries.c.id)).scalars())
        plan = [  # (priority, state, seconds ago due)
            (-1000, "pending", 9), (5, "pending", 1), (0, "failed", 8),
            (5, "pending", 2), (-1000, "pending", 1), (0, "pending", 3),
        ]  # fmt: skip
        for delivery_id, (priority, state, ago) in zip(ids, plan, strict=True):
            conn.execute(
                update(deliveries)
                .where(deliveries.c.id == delivery_id)
                .values(priority=priority, state=state,
                        next_attempt_at=at - timedelta(seconds=ago))
            )  # fmt: skip
    lease = timedelta(seconds=30)
    with engine.begin() as conn:  # one at a time: each claim takes the first still due
        live = [claim(conn, "w", 1, lease, now(), min_priority=-999) for _ in range(5)]
        rest = [claim(conn, "w", 1, lease, now()) for _ in range(3)]
    assert [[c.id for c in got] for got in live] == [[ids[3]], [ids[1]], [ids[2]], [ids[5]], []]
    assert [[c.id for c in got] for got in rest] == [[ids[0]], [ids[4]], []]


def test_payloads_of_a_batch_of_versions_in_one_read(hub: tuple[Path, Engine]) -> None:
    from erpbridge.store.payloads import version_payloads

    config_path, engine = hub
    sync(config_path, engine, "id,name,limit\nC1,Anna,1\nC2,Ben,2\n")
    sync(config_path, engine, "id,name,limit\nC1,Anna B,1\n")
    with engine.connect() as conn:
        rows = conn.execute(select(deliveries.c.key, deliveries.c.record_id)).all()
        record: dict[str, int] = dict(rows)
        found = version_payloads(
            conn, [(record["C1"], 1), (record["C1"], 2), (record["C2"], 1), (record["C2"], 9)]
        )
    assert {pair: (p.payload["name"], p.deleted) for pair, p in found.items()} == {
        (record["C1"], 1): ("Anna", False),
        (record["C1"], 2): ("Anna B", False),
        (record["C2"], 1): ("Ben", False),
    }
