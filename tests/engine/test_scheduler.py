"""Scheduled flows: each fire time runs once across schedulers; scheduled OUT flows wait for
their fire; ``erpbridge run`` moves a dropped file IN and OUT on its own and answers /healthz;
on PostgreSQL a worker polling once a minute is woken at once by the outbox's NOTIFY."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import orjson
import pytest
from sqlalchemy import Engine, select

from erpbridge import FlowRunner, load_config, open_store
from erpbridge.engine.scheduler import Scheduler
from erpbridge.store.tables import deliveries, schedule_fires

CONFIG = """
hub: {{database_url: "{url}"}}
channels:
  shop: {{system: folder, options: {{path: inbox}}}}
  erp: {{system: folder, options: {{path: erp}}}}
flows:
  - name: customers-in
    channel: shop
    entity: customer
    direction: in
    trigger: {{interval: 1s}}
    source: {{pattern: "*.csv"}}
    mapping: {{code: id, name: name}}
  - name: customers-now
    channel: erp
    entity: customer
    direction: out
    trigger: immediate
    target: {{subfolder: now}}
  - name: customers-nightly
    channel: erp
    entity: customer
    direction: out
    trigger: {{schedule: "0 2 * * *"}}
    target: {{subfolder: nightly}}
"""


@pytest.fixture
def hub(tmp_path: Path, hub_url: str) -> Iterator[tuple[Path, Engine]]:
    (tmp_path / "inbox").mkdir()
    (tmp_path / "erp").mkdir()
    path = tmp_path / "erpbridge.yaml"
    path.write_text(CONFIG.format(url=hub_url), encoding="utf-8")
    engine = open_store(hub_url)
    yield path, engine
    engine.dispose()


def test_each_fire_time_runs_once_whatever_the_number_of_schedulers(
    hub: tuple[Path, Engine],
) -> None:
    config_path, engine = hub
    config = load_config(config_path)
    a = Scheduler(config, engine, FlowRunner(config, engine), "a")
    b = Scheduler(config, engine, FlowRunner(config, engine), "b")
    start = datetime(2026, 11, 27, 10, 0, 0, 200_000, tzinfo=UTC)
    assert a.tick(start) == [] and b.tick(start) == []  # started between fires: wait

    fired = start + timedelta(seconds=3)  # fires at :01, :02, :03 missed: one run for :03
    runs = a.tick(fired) + b.tick(fired)

    assert [r.flow for r in runs] == ["customers-in"]
    with engine.connect() as conn:
        fires = conn.execute(select(schedule_fires.c.fire_time, schedule_fires.c.scheduler)).all()
    assert len(fires) == 1 and fires[0].scheduler == "a"
    assert fires[0].fire_time.replace(tzinfo=UTC) == datetime(2026, 11, 27, 10, 0, 3, tzinfo=UTC)


def test_a_scheduled_out_flow_waits_for_its_fire_time(hub: tuple[Path, Engine]) -> None:
    config_path, engine = hub
    (config_path.parent / "inbox" / "c.csv").write_text("id,name\nC1,Anna\n")
    FlowRunner(load_config(config_path), engine).run("customers-in")
    with engine.connect() as conn:
        rows = {r.flow: r.next_attempt_at for r in conn.execute(select(deliveries))}
    nightly = rows["customers-nightly"].replace(tzinfo=UTC)
    assert (nightly.hour, nightly.minute) == (2, 0) and nightly > datetime.now(UTC)
    assert rows["customers-now"].replace(tzinfo=UTC) <= datetime.now(UTC)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(predicate: object, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return True
        time.sleep(0.05)
    return False


def test_run_moves_a_dropped_file_in_and_out_and_reports_health(
    hub: tuple[Path, Engine],
) -> None:
    config_path, _ = hub
    port = free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "erpbridge",
            "run",
            "-c",
            str(config_path),
            "--port",
            str(port),
            "--interval",
            "5",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env={**os.environ},
    )
    try:

        def healthy() -> bool:
            try:
                return httpx.get(f"http://127.0.0.1:{port}/healthz").status_code == 200
            except httpx.TransportError:
                return False

        assert wait_for(healthy, 30), "no healthy /healthz within 30 s"
        report = httpx.get(f"http://127.0.0.1:{port}/healthz").json()
        assert report["checks"]["store"] == "ok"

        (config_path.parent / "inbox" / "c.csv").write_text("id,name\nC7,Cleo\n")
        out = config_path.parent / "erp" / "now" / "customer-C7-v1.json"
        # the interval trigger fires within a second; the commit wakes the worker at once,
        # well before its 5 s poll
        assert wait_for(out.exists, 20), "the immediate OUT flow did not deliver"
        assert orjson.loads(out.read_bytes())["name"] == "Cleo"
        assert not (config_path.parent / "erp" / "nightly").exists()
    finally:
        process.terminate()
        _, stderr = process.communicate(timeout=30)
    assert process.returncode == 0, stderr.decode()


def test_postgres_notify_wakes_a_polling_worker_at_once(tmp_path: Path, pg_database: str) -> None:
    (tmp_path / "inbox").mkdir()
    (tmp_path / "erp").mkdir()
    config_path = tmp_path / "erpbridge.yaml"
    config_path.write_text(CONFIG.format(url=pg_database), encoding="utf-8")
    engine = open_store(pg_database)
    worker = subprocess.Popen(
        [sys.executable, "-m", "erpbridge", "worker", "-c", str(config_path), "--interval", "120"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        time.sleep(2)  # the worker's first pass finds nothing; now it sleeps for two minutes
        (tmp_path / "inbox" / "c.csv").write_text("id,name\nC8,Dora\n")
        FlowRunner(load_config(config_path), engine).run("customers-in")
        out = tmp_path / "erp" / "now" / "customer-C8-v1.json"
        assert wait_for(out.exists, 20), "NOTIFY did not wake the worker"
    finally:
        worker.terminate()
        worker.communicate(timeout=30)
        engine.dispose()
