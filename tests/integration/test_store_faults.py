"""The hub's own store going away in the middle of a sync, and under an idle worker.

Real faults on real processes: a PostgreSQL hub store of the test's own (scripts/postgres.sh on
a free port) stopped ``fast`` or ``immediate`` and started again, and a SQLite hub store whose
disk fills up (a small tmpfs, filled by another file: SQLite then fails with "database or disk
is full"; root can write through chmod, and a mount cannot go read-only while SQLite holds its
file open). The sync waits the outage out (``ERPBRIDGE_STORE_RETRY_S``) and loses nothing, or
ends with one line naming the store and the cause; the worker logs one line, then a count.
"""

from __future__ import annotations

import errno
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, func, select
from sqlalchemy.exc import OperationalError
from sqlalchemy.pool import NullPool

from engine.test_kill import CONFIG, ROWS, make_source
from erpbridge.store.tables import audit, records, runs
from hubprocess import free_port

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "postgres.sh"


@dataclass
class OwnPostgres:
    """A PostgreSQL server of this test alone, which it may stop and start."""

    url: str
    port: int
    env: dict[str, str]

    def halt(self, mode: str) -> None:
        subprocess.run(["bash", str(SCRIPT), "halt", mode], env=self.env, check=True)

    def resume(self) -> None:
        subprocess.run(["bash", str(SCRIPT), "resume"], env=self.env, check=True)


@pytest.fixture
def own_postgres() -> Iterator[OwnPostgres]:
    if not shutil.which("pg_ctl") and not list(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl")):
        pytest.skip("PostgreSQL is not installed (scripts/postgres.sh start installs it)")
    port = free_port()
    folder = tempfile.mkdtemp(prefix=f"erpbridge-pg-{port}-")  # the postgres user must reach it
    env = {**os.environ, "ERPBRIDGE_PG_PORT": str(port), "ERPBRIDGE_PG_DIR": folder}
    # Durable: with synchronous_commit=off an immediate stop loses commits PostgreSQL had
    # already acknowledged (seen: one batch of 250 rows), which no client can make up for.
    env["ERPBRIDGE_PG_DURABLE"] = "1"
    started = subprocess.run(
        ["bash", str(SCRIPT), "start"], env=env, capture_output=True, text=True, check=True
    )
    try:
        yield OwnPostgres(started.stdout.strip(), port, env)
    finally:
        subprocess.run(["bash", str(SCRIPT), "stop"], env=env, capture_output=True, check=False)
        shutil.rmtree(folder, ignore_errors=True)


def start_sync(config: Path, budget_s: float) -> subprocess.Popen[str]:
    env = {**os.environ, "ERPBRIDGE_DATABASE_URL": "", "ERPBRIDGE_STORE_RETRY_S": str(budget_s)}
    env["COLUMNS"] = "400"  # the final error on one line, as a log collector would keep it
    return subprocess.Popen(
        [sys.executable, "-m", "erpbridge", "sync", "orders-in", "-c", str(config)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def count(engine: Engine, table: object = records) -> int | None:
    """Rows in the hub store, or ``None`` while it is down."""
    try:
        with engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(table)).scalar_one())  # type: ignore[arg-type]
    except OperationalError:
        return None


def wait_for_records(engine: Engine, process: subprocess.Popen[str], at_least: int) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and process.poll() is None:
        if (count(engine) or 0) >= at_least:
            return
        time.sleep(0.05)
    raise AssertionError("the sync finished (or stalled) before the fault could be made")


def prepare(folder: Path, hub_url: str) -> tuple[Path, Engine]:
    make_source(folder / "erp.db")
    config = folder / "erpbridge.yaml"
    config.write_text(CONFIG.format(url=hub_url), encoding="utf-8")
    subprocess.run(  # create the hub store's schema before the fault tests start
        [sys.executable, "-m", "erpbridge", "runs", "-c", str(config)],
        check=True,
        capture_output=True,
    )
    # NullPool: no pooled connection outlives the server that is about to be stopped
    return config, create_engine(hub_url, poolclass=NullPool)


def statuses(engine: Engine) -> list[str]:
    with engine.connect() as conn:
        return list(conn.execute(select(runs.c.status).order_by(runs.c.id)).scalars())


def retry_line(url: str, cause: str) -> str:
    return (
        rf"flow 'orders-in': the hub store {re.escape(url)} is unavailable \({cause}\); "
        r"retrying for up to \d+ s"
    )


@pytest.mark.parametrize("mode", ["fast", "immediate"])
def test_a_sync_waits_out_a_postgresql_restart(
    tmp_path: Path, own_postgres: OwnPostgres, mode: str
) -> None:
    config, engine = prepare(tmp_path, own_postgres.url)
    sync = start_sync(config, budget_s=60)
    wait_for_records(engine, sync, 3_000)
    own_postgres.halt(mode)
    time.sleep(3)
    own_postgres.resume()
    stdout, stderr = sync.communicate(timeout=300)

    assert sync.returncode == 0, stderr
    assert "Traceback" not in stderr
    # one line when the store went away; the run then went on where it stood
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and re.fullmatch(retry_line(own_postgres.url, ".+"), lines[0]), stderr
    assert re.search(r"│ orders-in │ full +│ succeeded │ 20000 │ +20000 │", stdout), stdout
    assert count(engine) == ROWS and count(engine, audit) == ROWS  # nothing lost or doubled
    assert statuses(engine) == ["succeeded"]
    engine.dispose()


def test_a_sync_gives_up_on_a_store_that_stays_down_then_resumes(
    tmp_path: Path, own_postgres: OwnPostgres
) -> None:
    config, engine = prepare(tmp_path, own_postgres.url)
    sync = start_sync(config, budget_s=4)
    wait_for_records(engine, sync, 3_000)
    own_postgres.halt("immediate")
    began = time.monotonic()
    _, stderr = sync.communicate(timeout=120)
    took = time.monotonic() - began
    own_postgres.resume()

    assert sync.returncode == 69, stderr
    assert "Traceback" not in stderr and took < 20
    *_, last = [line for line in stderr.splitlines() if line.strip()]
    url = re.escape(own_postgres.url)
    assert re.fullmatch(
        rf"error: flow 'orders-in': the hub store {url} is unavailable: connection failed: "
        rf'connection to server at "127\.0\.0\.1", port {own_postgres.port} failed: Connection '
        r"refused .*\(gave up after [4-9] s, \d+ attempt\(s\)\); run 1 could not be marked "
        r"failed: it shows as interrupted once its lease has passed \(30 s\) and the next run "
        r"resumes after its last committed batch",
        last,
    ), stderr

    shown = subprocess.run(
        [sys.executable, "-m", "erpbridge", "runs", "-c", str(config)],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "COLUMNS": "250"},
    )
    assert re.search(r"│ 1 +│ orders-in │ full +│ interrupted │", shown.stdout), shown.stdout
    again = start_sync(config, budget_s=60)
    _, stderr = again.communicate(timeout=300)
    assert again.returncode == 0, stderr
    assert count(engine) == ROWS and count(engine, audit) == ROWS
    assert statuses(engine) == ["interrupted", "succeeded"]
    engine.dispose()


@pytest.fixture
def small_disk() -> Iterator[Path]:
    """A 64 MiB tmpfs of the test's own (needs root, as in CI's container)."""
    if os.geteuid() != 0 or not shutil.which("mount"):
        pytest.skip("mounting a tmpfs needs root")
    folder = Path(tempfile.mkdtemp(prefix="erpbridge-disk-"))
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", str(folder)], check=True)
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)
        shutil.rmtree(folder, ignore_errors=True)


def fill(disk: Path) -> Path:
    """Take every free byte of ``disk`` with a file of another process's."""
    filler = disk / "filler"
    chunk = b"\0" * 65536
    with filler.open("wb", buffering=0) as sink:
        try:
            while True:  # the sync keeps writing meanwhile: write until the disk says no
                sink.write(chunk)
        except OSError as exc:
            assert exc.errno == errno.ENOSPC, exc
    return filler


@pytest.mark.parametrize("budget_s", [60, 3])
def test_a_sync_meets_a_full_disk_under_its_sqlite_store(
    tmp_path: Path, small_disk: Path, budget_s: float
) -> None:
    url = f"sqlite:///{small_disk / 'hub.db'}"
    config, engine = prepare(tmp_path, url)
    sync = start_sync(config, budget_s=budget_s)
    wait_for_records(engine, sync, 3_000)
    filler = fill(small_disk)
    if budget_s > 10:
        time.sleep(3)
        filler.unlink()  # space again: the sync goes on
    _, stderr = sync.communicate(timeout=300)
    assert "Traceback" not in stderr
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert re.fullmatch(retry_line(url, "database or disk is full"), lines[0]), stderr
    if budget_s > 10:
        assert sync.returncode == 0 and len(lines) == 1, stderr
    else:
        assert sync.returncode == 69, stderr
        # Whether the run's own row can still be updated on the full disk depends on whether
        # SQLite needs a new page for it: either ending is exact and names what happens next.
        ending = re.fullmatch(
            rf"error: flow 'orders-in': the hub store {re.escape(url)} is unavailable: database "
            r"or disk is full \(gave up after [3-9] s, \d+ attempt\(s\)\); run 1 (?:(is marked "
            r"failed)|could not be marked failed: it shows as interrupted once its lease has "
            r"passed \(30 s\) and the next run resumes after its last committed batch)",
            lines[-1],
        )
        assert ending, stderr
        filler.unlink()
        again = start_sync(config, budget_s=60)
        _, stderr = again.communicate(timeout=300)
        assert again.returncode == 0, stderr
        first = "failed" if ending.group(1) else "interrupted"
        assert statuses(engine) == [first, "succeeded"]
    assert statuses(engine)[-1] == "succeeded"
    assert count(engine) == ROWS and count(engine, audit) == ROWS
    engine.dispose()


OUT_FLOW = """
  outbox:
    system: folder
    options: {{path: outbox}}
flows:
  - name: orders-out
    channel: outbox
    entity: order
    direction: out
    target: {{format: json, subfolder: orders}}
    mapping: {{number: number}}
"""


def test_an_idle_worker_logs_a_store_restart_once_with_a_count(
    tmp_path: Path, own_postgres: OwnPostgres
) -> None:
    text = CONFIG.replace("\nflows:\n", OUT_FLOW, 1).format(url=own_postgres.url)
    (tmp_path / "erpbridge.yaml").write_text(text, encoding="utf-8")
    log = tmp_path / "worker.log"
    with log.open("w") as sink:
        worker = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "erpbridge",
                "worker",
                "--interval",
                "0.2",
                "-c",
                "erpbridge.yaml",
            ],
            cwd=tmp_path,
            stdout=sink,
            stderr=subprocess.STDOUT,
            env={**os.environ, "ERPBRIDGE_DATABASE_URL": ""},
        )
    try:
        deadline = time.monotonic() + 60
        while "OUT flow(s)" not in log.read_text() and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(1)
        own_postgres.halt("fast")
        time.sleep(6)  # ~30 passes of the worker while the store is down
        own_postgres.resume()
        time.sleep(4)
    finally:
        worker.terminate()
        worker.wait(30)
    output = log.read_text()
    assert "Traceback" not in output
    lines = output.splitlines()
    url = re.escape(own_postgres.url)
    name = re.fullmatch(r"worker (\S+): 1 OUT flow\(s\)", lines[0])
    assert name, output
    patterns = [
        rf"worker {re.escape(name[1])}: the hub store {url} is unavailable: .+; retrying "
        r"\(repeats are counted\)",
        rf"worker {re.escape(name[1])}: working again after (\d+) failed pass\(es\) over \d+ s",
        rf"wake listener: the hub store {url} is unavailable: .+; retrying \(repeats are counted\)",
        r"wake listener: working again after (\d+) failed pass\(es\) over \d+ s",
    ]
    found = [next((m for line in lines if (m := re.fullmatch(p, line))), None) for p in patterns]
    assert all(found), output
    assert int(found[1][1]) >= 10, output  # type: ignore[index]
    # the worker's configuration poll may meet the outage too: then once down, once back
    polls = [line for line in lines if line.startswith("configuration poll: ")]
    assert len(polls) in (0, 2), output
    if polls:
        assert re.fullmatch(
            rf"configuration poll: the hub store {url} is unavailable: .+", polls[0]
        )
        assert re.fullmatch(r"configuration poll: working again after \d+ failed .+", polls[1])
    # nothing else but the start and the (graceful) stop
    assert len(lines) == 1 + len(patterns) + len(polls) + 2, output
    assert lines[-1].startswith(f"worker {name[1]}: stopped cleanly on SIGTERM"), output
