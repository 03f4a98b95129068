"""One run per flow at a time, and runs whose process died shown as ``interrupted``.

Through real processes: two ``erpbridge sync`` of the same flow (the second is refused with the
holder's run, pid, host and start), ``kill -9`` of a sync (``erpbridge runs`` then shows its run
interrupted and the next sync takes the flow at once). Leases of processes on other machines
(which this machine cannot see die) are checked in the store directly.
"""

from __future__ import annotations

import logging
import os
import re
import signal
import socket
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, insert, select, update

from engine.test_kill import CONFIG, ROWS, make_source, sync
from erpbridge.config.loader import load_config
from erpbridge.engine.runner import FlowRunner
from erpbridge.engine.scheduler import Scheduler
from erpbridge.errors import FlowBusy
from erpbridge.store import open_store
from erpbridge.store.runlease import settle_interrupted, shown_status
from erpbridge.store.runs import finish_run, now, start_run
from erpbridge.store.tables import audit, flow_locks, records, runs

LEASE = timedelta(seconds=30)


def cli(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "erpbridge", *args, "-c", str(config)],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "ERPBRIDGE_DATABASE_URL": "", "COLUMNS": "250"},
        check=False,
    )


def wait_for_records(engine: Engine, process: subprocess.Popen[bytes], at_least: int) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and process.poll() is None:
        with engine.connect() as conn:
            if conn.execute(select(func.count()).select_from(records)).scalar_one() >= at_least:
                return
        time.sleep(0.05)
    raise AssertionError("the sync finished (or stalled) before the test could act")


@pytest.fixture
def hub(tmp_path: Path, hub_url: str) -> tuple[Path, Engine]:
    make_source(tmp_path / "erp.db")
    config = tmp_path / "erpbridge.yaml"
    config.write_text(CONFIG.format(url=hub_url), encoding="utf-8")
    return config, open_store(hub_url)


def test_a_second_sync_of_a_running_flow_is_refused(hub: tuple[Path, Engine]) -> None:
    config, engine = hub
    # small batches: the sync lasts long enough for a second process to start beside it
    text = config.read_text(encoding="utf-8").replace("batch_size: 250", "batch_size: 40")
    config.write_text(text, encoding="utf-8")
    first = sync(config)
    try:
        wait_for_records(engine, first, 1_000)
        second = cli(config, "sync", "orders-in")
    finally:
        _, stderr = first.communicate(timeout=300)
    assert first.returncode == 0, stderr.decode()
    assert second.returncode == 75, second.stderr
    pattern = (
        rf"error: flow 'orders-in' is already running in run 1 \(pid {first.pid}, host "
        rf"{re.escape(socket.gethostname())}, since \d{{4}}-\d\d-\d\d \d\d:\d\d:\d\d UTC\)"
    )
    assert re.fullmatch(pattern, second.stderr.strip()), second.stderr
    assert second.stdout.strip() == ""  # no run table: nothing ran
    with engine.connect() as conn:
        assert conn.execute(select(runs.c.status)).scalars().all() == ["succeeded"]
        assert conn.execute(select(func.count()).select_from(audit)).scalar_one() == ROWS
        assert conn.execute(select(func.count()).select_from(flow_locks)).scalar_one() == 0
    engine.dispose()


def test_a_killed_sync_shows_interrupted_and_frees_its_flow(hub: tuple[Path, Engine]) -> None:
    config, engine = hub
    killed = sync(config)
    wait_for_records(engine, killed, 2_000)
    killed.send_signal(signal.SIGKILL)
    killed.wait()
    assert killed.stderr is not None
    killed.stderr.close()

    shown = cli(config, "runs")
    assert shown.returncode == 0, shown.stderr
    row = next(line for line in shown.stdout.splitlines() if "orders-in" in line)
    assert re.search(r"│ 1 +│ orders-in │ full +│ interrupted │", row), shown.stdout

    again = cli(config, "sync", "orders-in")  # the lock of the dead pid is free at once
    assert again.returncode == 0, again.stderr
    with engine.connect() as conn:
        settled = conn.execute(select(runs).order_by(runs.c.id)).all()
        assert conn.execute(select(func.count()).select_from(audit)).scalar_one() == ROWS
    assert [r.status for r in settled] == ["interrupted", "succeeded"]
    assert settled[0].error.startswith(
        f"interrupted: its process (pid {killed.pid} on host {socket.gethostname()}) stopped "
        "without closing the run"
    )
    engine.dispose()


def _foreign(engine: Engine, run_id: int, lease_left: timedelta) -> None:
    """Make a run and its lock look held by a process on another machine."""
    with engine.begin() as conn:
        until = now() + lease_left
        conn.execute(
            update(runs)
            .where(runs.c.id == run_id)
            .values(host="elsewhere", pid=1, node="elsewhere|boot|pid:[1]", lease_until=until)
        )
        conn.execute(
            update(flow_locks)
            .where(flow_locks.c.run_id == run_id)
            .values(host="elsewhere", pid=1, node="elsewhere|boot|pid:[1]", expires_at=until)
        )


def _start(engine: Engine, flow: str = "orders-in") -> int:
    return start_run(
        engine,
        flow=flow,
        channel="erp",
        entity="order",
        mode="incremental",
        dry_run=False,
        cursor_before=None,
        lease=LEASE,
        lock=True,
    )


def test_a_lock_of_another_machine_holds_until_its_lease_ends(hub_url: str) -> None:
    engine = open_store(hub_url)
    first = _start(engine)
    _foreign(engine, first, timedelta(seconds=20))
    with pytest.raises(FlowBusy, match=r"already running in run 1 \(pid 1, host elsewhere"):
        _start(engine)
    other = _start(engine, "customers-in")  # other flows are not held up
    with engine.connect() as conn:
        row = conn.execute(select(runs).where(runs.c.id == first)).one()
        assert shown_status(row, now()) == "running"
        assert shown_status(row, now() + timedelta(seconds=21)) == "interrupted"

    _foreign(engine, first, timedelta(seconds=-1))  # its heartbeat stopped a lease ago
    second = _start(engine)
    with engine.connect() as conn:
        status = {r.id: r.status for r in conn.execute(select(runs.c.id, runs.c.status))}
        holder = conn.execute(select(flow_locks.c.run_id).where(flow_locks.c.flow == "orders-in"))
        assert holder.scalar_one() == second
    assert status == {first: "interrupted", other: "running", second: "running"}
    finish_run(engine, second, status="succeeded", error=None, warnings=[])
    with engine.begin() as conn:
        assert settle_interrupted(conn, now()) == []  # runs of live processes stay running
    engine.dispose()


def test_runs_from_before_leases_show_interrupted(hub_url: str) -> None:
    engine = open_store(hub_url)
    with engine.begin() as conn:
        conn.execute(
            insert(runs).values(
                flow="f", channel="c", entity="e", mode="full", status="running",
                dry_run=False, started_at=now(), read=0, created=0, updated=0, unchanged=0,
                rejected=0,
            )
        )  # fmt: skip
        row = conn.execute(select(runs)).one()
    assert shown_status(row, now()) == "interrupted"
    engine.dispose()


def test_the_scheduler_skips_a_fire_whose_flow_is_running(
    tmp_path: Path, hub_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    make_source(tmp_path / "erp.db")
    path = tmp_path / "erpbridge.yaml"
    text = CONFIG.format(url=hub_url).replace(
        "trigger: initial", 'trigger: {schedule: "* * * * *"}'
    )
    path.write_text(text, encoding="utf-8")
    config = load_config(path)
    engine = open_store(config.database_url())
    runner = FlowRunner(config, engine)
    scheduler = Scheduler(config, engine, runner, "test")
    holder = _start(engine)
    moment = now()
    scheduler.tick(moment)  # learns the next fire time
    with caplog.at_level(logging.WARNING, logger="erpbridge.engine.scheduler"):
        assert scheduler.tick(moment + timedelta(seconds=120)) == []
    assert re.search(
        r"scheduler: fire .* of flow 'orders-in' skipped: flow 'orders-in' is already running "
        rf"in run {holder} \(pid {os.getpid()}, host ",
        caplog.text,
    )
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(runs)).scalar_one() == 1
    engine.dispose()
