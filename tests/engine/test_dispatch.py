"""The scaled-out shape on PostgreSQL: procrastinate jobs carry ledger ids, are written in the
ledger's transaction, are run by ``erpbridge worker`` processes, and survive ``kill -9``."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, func, select, text

from erpbridge import FlowRunner, load_config, open_store
from erpbridge.engine.dispatch import JOB_SIZE, QUEUE, NotReady, defer_deliveries, deliver
from erpbridge.engine.dispatcher import DISPATCHER_ENV
from erpbridge.engine.worker import Worker
from erpbridge.store.deliveries import NewVersion, Subscriber, claim, enqueue
from erpbridge.store.deliveries import finish as finish_delivery
from erpbridge.store.runs import now
from erpbridge.store.tables import deliveries, records

CONFIG = """
hub: {{database_url: "{url}"}}
channels:
  shop:
    system: folder
    options: {{path: inbox}}
  erp:
    system: folder
    options: {{path: erp}}
flows:
  - name: customers-in
    channel: shop
    entity: customer
    direction: in
    source: {{pattern: "*.csv"}}
    key: id
    mapping: {{code: id, name: name}}
  - name: customers-to-erp
    channel: erp
    entity: customer
    direction: out
    target: {{format: json, subfolder: customers}}
    retry: {{max_attempts: 5, backoff_s: 0.2, min_delay_s: 0}}
    mapping: {{KUNNR: code, NAME1: name}}
"""

FLOW = "customers-to-erp"


@pytest.fixture
def hub(
    tmp_path: Path, pg_database: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[Path, Engine]]:
    monkeypatch.setenv(DISPATCHER_ENV, "procrastinate")
    (tmp_path / "inbox").mkdir()
    (tmp_path / "erp").mkdir()
    path = tmp_path / "erpbridge.yaml"
    path.write_text(CONFIG.format(url=pg_database), encoding="utf-8")
    engine = open_store(pg_database)
    yield path, engine
    engine.dispose()


def sync(config_path: Path, engine: Engine, rows: list[tuple[str, str]]) -> None:
    csv = "id,name\n" + "".join(f"{key},{name}\n" for key, name in rows)
    (config_path.parent / "inbox" / "c.csv").write_text(csv, encoding="utf-8")
    result = FlowRunner(load_config(config_path), engine).run("customers-in")
    assert result.status == "succeeded", result.error


def jobs(engine: Engine) -> list[Any]:
    with engine.connect() as conn:
        return list(
            conn.execute(
                text(
                    "SELECT id, status, lock, queueing_lock, args, queue_name "
                    "FROM procrastinate_jobs WHERE task_name <> 'erpbridge.retry_stalled_jobs' "
                    "ORDER BY id"
                )
            )
        )


def ledger(engine: Engine) -> list[tuple[int, str]]:
    with engine.connect() as conn:
        rows = conn.execute(
            select(deliveries.c.id, deliveries.c.state)
            .where(deliveries.c.flow == FLOW)
            .order_by(deliveries.c.id)
        )
        return [(r.id, r.state) for r in rows]


def explain(engine: Engine) -> str:
    """What is stuck, for the failure message: open deliveries, jobs, workers."""
    with engine.connect() as conn:
        open_ = conn.execute(
            select(deliveries.c.state, func.count(), func.min(deliveries.c.lease_expires_at))
            .where(deliveries.c.state != "delivered")
            .group_by(deliveries.c.state)
        ).all()
        queued = conn.execute(
            text(
                "SELECT id, task_name, status, attempts, scheduled_at, worker_id "
                "FROM procrastinate_jobs WHERE status IN ('todo', 'doing') ORDER BY id"
            )
        ).all()
        workers = conn.execute(text("SELECT * FROM procrastinate_workers")).all()
    return f"open deliveries {open_}; jobs {queued}; workers {workers}; now {now()}"


def wait_for(
    condition: Callable[[], bool], seconds: float, what: str, engine: Engine | None = None
) -> float:
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > seconds:
            raise AssertionError(
                f"not within {seconds} s: {what}" + (f"\n{explain(engine)}" if engine else "")
            )
        time.sleep(0.05)
    return time.monotonic() - started


def start_worker(config_path: Path, *options: str, **env: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "erpbridge", "worker", "-c", str(config_path), *options],
        cwd=config_path.parent,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env={**os.environ, DISPATCHER_ENV: "procrastinate", "ERPBRIDGE_DATABASE_URL": "", **env},
    )


def stop(process: subprocess.Popen[bytes], sig: int = signal.SIGTERM) -> str:
    if process.poll() is None:
        process.send_signal(sig)
    try:
        _, stderr = process.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        _, stderr = process.communicate()
    return stderr.decode(errors="replace")


def test_jobs_commit_and_roll_back_with_the_ledger_rows(hub: tuple[Path, Engine]) -> None:
    config_path, engine = hub
    sync(config_path, engine, [(f"C{i:03d}", "x") for i in range(250)])

    queued = jobs(engine)
    ids = [i for i, _ in ledger(engine)]
    # one job per batch of a flow, never one per row; together they carry every ledger id
    assert len(queued) == 3
    assert [len(j.args["ledger_ids"]) for j in queued] == [JOB_SIZE, JOB_SIZE, 50]
    assert sorted(i for j in queued for i in j.args["ledger_ids"]) == ids
    assert {(j.status, j.queue_name) for j in queued} == {("todo", QUEUE)}
    assert queued[0].lock == f"{FLOW}|{ids[0]}-{ids[JOB_SIZE - 1]}"
    assert queued[0].queueing_lock is not None and queued[0].queueing_lock.startswith(FLOW)

    subscriber = Subscriber(FLOW, "erp", 0, 5, False)
    with engine.connect() as conn:
        record_id = conn.execute(select(func.min(records.c.id))).scalar_one()
    with engine.connect() as conn:
        transaction = conn.begin()
        assert enqueue(conn, [subscriber], "shop", [NewVersion(record_id, "customer", "C000", 9)],
                       now(), defer_deliveries) == 1  # fmt: skip
        inside = conn.execute(text("SELECT count(*) FROM procrastinate_jobs")).scalar_one()
        transaction.rollback()
    assert inside == 4  # visible in the ledger's transaction …
    assert len(jobs(engine)) == 3  # … and gone with it
    assert len(ledger(engine)) == 250

    with engine.begin() as conn:
        version = NewVersion(record_id, "customer", "C000", 9)
        enqueue(conn, [subscriber], "shop", [version], now(), defer_deliveries)
    (new_job,) = jobs(engine)[3:]
    (new_id,) = [i for i, _ in ledger(engine)][250:]
    assert new_job.args == {"ledger_ids": [new_id]}


def test_a_job_waits_for_an_earlier_version_of_its_key(hub: tuple[Path, Engine]) -> None:
    config_path, engine = hub
    sync(config_path, engine, [("C1", "Anna")])
    sync(config_path, engine, [("C1", "Anna Schmidt")])
    (v1, _), (v2, _) = ledger(engine)
    with engine.begin() as conn:  # another worker holds v1
        (held,) = claim(conn, "other", 10, timedelta(seconds=30), now(), [FLOW])
    worker = Worker(load_config(config_path), engine)
    try:
        with pytest.raises(NotReady) as waiting:
            deliver(worker, [v2])
        assert timedelta(0) < waiting.value.retry_at - now() <= timedelta(seconds=31)
        assert ledger(engine) == [(v1, "in_flight"), (v2, "pending")]

        with engine.begin() as conn:
            finish_delivery(conn, held, "other", now(), outcome="delivered")
        assert deliver(worker, [v2]).delivered == 1  # the job's retry
        assert ledger(engine) == [(v1, "delivered"), (v2, "delivered")]
        assert deliver(worker, [v2]).claimed == 0  # run again: nothing left, no NotReady
    finally:
        worker.close()


def test_a_job_keeps_to_its_channels_in_flight_cap(hub: tuple[Path, Engine]) -> None:
    config_path, engine = hub
    config_path.write_text(
        config_path.read_text().replace(
            "options: {path: erp}", "options: {path: erp}\n    limits: {max_in_flight: 1}"
        )
    )
    sync(config_path, engine, [("C1", "Anna"), ("C2", "Bob"), ("C3", "Cem")])
    ids = [i for i, _ in ledger(engine)]
    with engine.begin() as conn:  # another worker fills the only slot
        (held,) = claim(conn, "other", 1, timedelta(seconds=30), now(), [FLOW])
    worker = Worker(load_config(config_path), engine)
    try:
        with pytest.raises(NotReady):
            deliver(worker, ids)
        assert worker.run_ids(ids).claimed == 0

        with engine.begin() as conn:
            finish_delivery(conn, held, "other", now(), outcome="delivered")
        with pytest.raises(NotReady):  # one slot: one goes out, the last one waits
            deliver(worker, ids)
        assert [state for _, state in ledger(engine)] == ["delivered", "delivered", "pending"]
        assert deliver(worker, ids).delivered == 1
    finally:
        worker.close()


def test_worker_processes_deliver_and_survive_kill_9(hub: tuple[Path, Engine]) -> None:
    config_path, engine = hub
    count = 1500
    sync(config_path, engine, [(f"C{i:04d}", "x") for i in range(count)])
    folder = config_path.parent / "erp" / "customers"

    def delivered() -> int:
        return sum(1 for _, state in ledger(engine) if state == "delivered")

    def doing() -> int:
        with engine.connect() as conn:
            query = (
                "SELECT count(*) FROM procrastinate_jobs WHERE status = 'doing' AND task_name = :t"
            )
            return int(
                conn.execute(text(query), {"t": "erpbridge.deliver_ledger_ids"}).scalar_one()
            )

    # the sweep is far away: only jobs (and their stalled-job recovery) can deliver here
    options = ("--concurrency", "4", "--lease", "3", "--stalled-after", "2")
    env = {"ERPBRIDGE_SWEEP_INTERVAL_S": "600"}
    first = start_worker(config_path, *options, **env)
    try:
        wait_for(lambda: delivered() >= 200 and doing() > 0, 60, "first worker busy", engine)
        first.send_signal(signal.SIGKILL)
        first.wait()
    finally:
        stop(first)
    stalled = doing()
    assert stalled > 0, "kill -9 left no job running: nothing to recover"
    assert delivered() < count

    started = time.monotonic()
    second = start_worker(config_path, *options, **env)
    try:
        wait_for(lambda: delivered() == count, 90, f"{count} deliveries after kill -9", engine)
        recovered_s = time.monotonic() - started

        # a change while the worker runs goes out at once (LISTEN/NOTIFY), not at a poll
        sync(config_path, engine, [("C0001", "changed")])
        latency = wait_for(lambda: delivered() == count + 1, 10, "a live change", engine)
    finally:
        log = stop(second)
    assert second.returncode == 0, log
    assert "dead worker goes back in the queue" in log
    assert {state for _, state in ledger(engine)} == {"delivered"}
    assert len(list(folder.glob("customer-*.json"))) == count + 1
    assert [j for j in jobs(engine) if j.status in ("todo", "doing")] == []
    print(f"\n{stalled} stalled job(s) recovered, all delivered {recovered_s:.1f} s after restart;"
          f" a live change delivered in {latency * 1000:.0f} ms")  # fmt: skip


def test_the_sweep_delivers_what_has_no_job(
    hub: tuple[Path, Engine], monkeypatch: pytest.MonkeyPatch
) -> None:
    config_path, engine = hub
    monkeypatch.delenv(DISPATCHER_ENV)  # queued before the switch: no jobs
    sync(config_path, engine, [("C1", "Anna"), ("C2", "Bob")])
    worker = start_worker(config_path, "--sweep-interval", "0.5")
    try:
        wait_for(lambda: {s for _, s in ledger(engine)} == {"delivered"}, 30, "sweep", engine)
    finally:
        log = stop(worker)
    assert worker.returncode == 0, log
