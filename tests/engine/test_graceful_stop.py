"""SIGTERM, as a service manager stops a service, to ``erpbridge worker`` and ``erpbridge run``
in the middle of a batch of deliveries: the batch being written finishes and is recorded, the
claims not yet written are released (claimable at once), the process says it stopped cleanly
and exits 0 within the bound; nothing is lost or left leased.

The batch is caught mid-write by holding the target database's write lock: the worker's write
waits for it; the signal comes while it waits; the lock goes a second later.
"""

from __future__ import annotations

import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import Engine, func, select

from engine.test_worker_crash import CONFIG, TARGET, make_source
from erpbridge.engine.shutdown import DEFAULT_STOP_TIMEOUT_S
from erpbridge.store import open_store
from erpbridge.store.runs import now
from erpbridge.store.tables import deliveries
from hubprocess import serve_hub

PRODUCTS = 300


def erpbridge(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "erpbridge", *args, "-c", str(root / "erpbridge.yaml")],
        capture_output=True,
        text=True,
        cwd=root,
        timeout=300,
        env={**os.environ, "ERPBRIDGE_DATABASE_URL": ""},
        check=False,
    )


def prepare(root: Path, hub_url: str) -> None:
    root.mkdir(parents=True, exist_ok=True)
    make_source(root / "plm.db", PRODUCTS)
    with sqlite3.connect(root / "erp.db") as db:
        db.executescript(TARGET)
    db.close()
    (root / "erpbridge.yaml").write_text(CONFIG.format(url=hub_url), encoding="utf-8")


@contextmanager
def target_locked(root: Path) -> Iterator[sqlite3.Connection]:
    """Hold the target's write lock: writes to it wait (the sqlwrite channel waits up to 30 s)."""
    db = sqlite3.connect(root / "erp.db", isolation_level=None)
    db.execute("BEGIN IMMEDIATE")
    try:
        yield db
    finally:
        if db.in_transaction:
            db.execute("COMMIT")
        db.close()


def in_flight(engine: Engine) -> int:
    with engine.connect() as conn:
        query = select(func.count()).where(deliveries.c.state == "in_flight")
        return int(conn.execute(query).scalar_one())


def wait_until_claimed(engine: Engine, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while in_flight(engine) == 0:
        assert process.poll() is None, "the worker ended before it claimed anything"
        assert time.monotonic() < deadline, "the worker claimed nothing"
        time.sleep(0.05)
    time.sleep(0.5)  # its write is waiting for the target's lock now


def check_ledger(root: Path, engine: Engine) -> int:
    """Nothing leased, every written row recorded delivered, the rest due now; return how many
    were delivered."""
    with engine.connect() as conn:
        rows = conn.execute(
            select(deliveries.c.flow, deliveries.c.state, deliveries.c.next_attempt_at)
        ).all()
    states = {r.state for r in rows}
    assert "in_flight" not in states, states
    assert states <= {"delivered", "pending"}, states
    moment = now()
    due = [r for r in rows if r.state == "pending"]
    assert all(r.next_attempt_at.replace(tzinfo=moment.tzinfo) <= moment for r in due)
    with sqlite3.connect(root / "erp.db") as db:
        logged = db.execute("SELECT count(*), count(DISTINCT sku) FROM import_log").fetchone()
        staged = db.execute("SELECT count(*) FROM staging").fetchone()[0]
    db.close()
    delivered = Counter(r.flow for r in rows if r.state == "delivered")
    assert logged == (delivered["products-log"], delivered["products-log"])  # no double write
    assert staged == delivered["products-staging"]
    return sum(delivered.values())


def drain(root: Path, engine: Engine) -> None:
    """Another worker takes the released claims at once and delivers everything exactly once."""
    done = erpbridge(root, "worker", "--once")
    assert done.returncode == 0, done.stderr
    assert check_ledger(root, engine) == 2 * PRODUCTS


def test_sigterm_stops_a_worker_mid_batch_cleanly(tmp_path: Path, hub_url: str) -> None:
    prepare(tmp_path, hub_url)
    engine = open_store(hub_url)
    assert erpbridge(tmp_path, "sync", "products-in").returncode == 0
    log = tmp_path / "worker.log"
    with target_locked(tmp_path), log.open("wb") as sink:
        process = subprocess.Popen(
            [sys.executable, "-m", "erpbridge", "worker", "-c", "erpbridge.yaml"],
            cwd=tmp_path,
            stdout=sink,
            stderr=subprocess.STDOUT,
            env={**os.environ, "ERPBRIDGE_DATABASE_URL": ""},
        )
        wait_until_claimed(engine, process)
        process.send_signal(signal.SIGTERM)
        signalled = time.monotonic()
        time.sleep(1)
    code = process.wait(30)
    took = time.monotonic() - signalled
    output = log.read_text()
    assert code == 0, output
    assert took < DEFAULT_STOP_TIMEOUT_S, (took, output)
    assert "Traceback" not in output
    name = re.match(r"worker (\S+): 2 OUT flow\(s\)\n", output)
    assert name, output
    assert output.splitlines()[1:] == [
        f"worker {name[1]}: SIGTERM: finishing the current batch, then stopping (at most 8 s)",
        f"worker {name[1]}: stopped cleanly on SIGTERM (claims finished or released, transports "
        "closed)",
    ], output
    delivered = check_ledger(tmp_path, engine)
    assert 0 < delivered < 2 * PRODUCTS  # the batch in hand went out, the rest was released
    drain(tmp_path, engine)
    engine.dispose()


def test_sigterm_stops_the_served_hub_mid_batch_cleanly(tmp_path: Path) -> None:
    root = tmp_path / "hub"
    prepare(root, "sqlite:///erpbridge.db")
    config = (root / "erpbridge.yaml").read_text(encoding="utf-8")
    with serve_hub(root, config, command="run") as hub:
        engine = open_store(f"sqlite:///{hub.database}")
        with target_locked(root):
            assert erpbridge(root, "sync", "products-in").returncode == 0  # wakes the worker
            wait_until_claimed(engine, hub.process)
            hub.process.send_signal(signal.SIGTERM)
            signalled = time.monotonic()
            time.sleep(1)
        code = hub.process.wait(30)
        took = time.monotonic() - signalled
        output = hub.output()
    assert code == 0, output
    assert took < DEFAULT_STOP_TIMEOUT_S, (took, output)
    assert "Traceback" not in output
    assert re.search(
        r"erpbridge \S+: stopped cleanly \(runs and claims finished or released, transports "
        r"closed\)\n$",
        output,
    ), output
    delivered = check_ledger(root, engine)
    assert 0 < delivered < 2 * PRODUCTS
    drain(root, engine)
    engine.dispose()
