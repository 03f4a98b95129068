"""A real crash: ``erpbridge sync`` is killed with SIGKILL in the middle of a migration, then run
again. Every source row must end up in the hub exactly once, with one binding and one audit row."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from sqlalchemy import func, select

from erpbridge.store import open_store
from erpbridge.store.tables import audit, bindings, records, runs

ROWS = 20_000

CONFIG = """
hub: {{database_url: "{url}"}}
channels:
  erp:
    system: sql
    options: {{url: "sqlite:///erp.db"}}
flows:
  - name: orders-in
    channel: erp
    entity: order
    direction: in
    trigger: initial
    source: {{table: orders}}
    key: id
    cursor: {{column: updated_at, tiebreaker: id}}
    batch_size: 250
    mapping:
      number: number
      customer_code: customer
      total: {{from: total, transforms: [decimal]}}
      currency: {{value: EUR}}
"""


def make_source(path: Path) -> None:
    with sqlite3.connect(path) as db:
        db.execute(
            "CREATE TABLE orders (id INTEGER PRIMARY KEY, number TEXT, customer TEXT, "
            "total TEXT, updated_at TEXT)"
        )
        db.executemany(
            "INSERT INTO orders VALUES (?, ?, ?, ?, ?)",
            # a few hundred rows share each timestamp: ties across batch boundaries
            (
                (i, f"SO-{i:06d}", f"C-{i % 97}", f"{i}.50", f"2024-01-01T00:{i // 400:02d}:00")
                for i in range(1, ROWS + 1)
            ),
        )


def sync(config: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "erpbridge", "sync", "orders-in", "-c", str(config)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env={**os.environ, "ERPBRIDGE_DATABASE_URL": ""},
    )


def test_sigkill_mid_migration_loses_and_duplicates_nothing(tmp_path: Path, hub_url: str) -> None:
    make_source(tmp_path / "erp.db")
    config = tmp_path / "erpbridge.yaml"
    config.write_text(CONFIG.format(url=hub_url), encoding="utf-8")
    engine = open_store(hub_url)
    try:
        for target in (3_000, 11_000):  # two crashes at different depths
            process = sync(config)
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline and process.poll() is None:
                with engine.connect() as conn:
                    done = conn.execute(select(func.count()).select_from(records)).scalar_one()
                if done >= target:
                    break
                time.sleep(0.05)
            assert process.poll() is None, "the sync finished before it could be killed"
            process.send_signal(signal.SIGKILL)
            process.wait()
            assert process.stderr is not None
            process.stderr.close()

        final = sync(config)
        _, stderr = final.communicate(timeout=300)
        assert final.returncode == 0, stderr.decode()

        with engine.connect() as conn:
            assert conn.execute(select(func.count()).select_from(records)).scalar_one() == ROWS
            assert conn.execute(select(func.count()).select_from(bindings)).scalar_one() == ROWS
            # exactly one 'created' version per record: nothing written twice
            assert conn.execute(select(func.count()).select_from(audit)).scalar_one() == ROWS
            assert conn.execute(select(func.max(records.c.version))).scalar_one() == 1
            statuses = [r.status for r in conn.execute(select(runs.c.status).order_by(runs.c.id))]
        # killed runs stay visible: the next run settles them as interrupted (their pid is gone)
        assert statuses == ["interrupted", "interrupted", "succeeded"]
    finally:
        engine.dispose()
