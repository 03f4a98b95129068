"""Online backup and restore through the command line, on both dialects.

A worker delivers while ``erpbridge db backup`` copies the hub; more rows arrive at the source
after the backup; the backup is restored into a new, empty store and the flows go on from the
cursors it holds: the target ends with every source row at its newest value (the deliveries open
at the backup go out again, at least once, which the upsert target absorbs).
"""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from conftest import fresh_pg_database

CONFIG = """
hub: {{database_url: "{url}"}}
channels:
  plm: {{system: sql, options: {{url: "sqlite:///plm.db"}}}}
  erp: {{system: sql, transport: sqlwrite, options: {{url: "sqlite:///erp.db"}}}}
flows:
  - name: products-in
    channel: plm
    entity: product
    direction: in
    source: {{table: products}}
    key: sku
    cursor: {{column: updated_at, tiebreaker: id}}
    batch_size: 50
    mapping: {{sku: sku, name: name}}
  - name: products-out
    channel: erp
    entity: product
    direction: out
    target: {{table: staging, key: [sku]}}
    mapping: {{sku: sku, name: name}}
"""


def erpbridge(root: Path, config: str, *args: str) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [sys.executable, "-m", "erpbridge", *args, "-c", config],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, f"erpbridge {' '.join(args)}: {done.stdout}{done.stderr}"
    return done


def add_products(root: Path, numbers: range, name: str) -> None:
    with sqlite3.connect(root / "plm.db") as db:
        db.executemany(
            "INSERT INTO products (sku, name, updated_at) VALUES (?, ?, ?)"
            " ON CONFLICT (sku) DO UPDATE SET name = excluded.name,"
            " updated_at = excluded.updated_at",
            [(f"P-{n:04d}", f"{name} {n}", f"2026-12-07T10:{n // 60:02d}:{n % 60:02d}")
             for n in numbers],
        )  # fmt: skip
    db.close()


def staged(root: Path) -> dict[str, str]:
    with sqlite3.connect(root / "erp.db") as db:
        rows = dict(db.execute("SELECT sku, name FROM staging").fetchall())
    db.close()
    return rows


@contextmanager
def second_store(hub_url: str, root: Path) -> Iterator[str]:
    """An empty store beside the first, on the same dialect."""
    if hub_url.startswith("sqlite"):
        yield f"sqlite:///{root / 'restored.db'}"
    else:
        with fresh_pg_database() as url:
            yield url


def test_flows_resume_from_a_restored_online_backup(hub_url: str, tmp_path: Path) -> None:
    root = tmp_path
    (root / "hub.yaml").write_text(CONFIG.format(url=hub_url))
    with sqlite3.connect(root / "plm.db") as db:
        db.execute(
            "CREATE TABLE products (id INTEGER PRIMARY KEY, sku TEXT UNIQUE, name TEXT,"
            " updated_at TEXT)"
        )
    db.close()
    with sqlite3.connect(root / "erp.db") as db:
        db.execute("CREATE TABLE staging (sku TEXT PRIMARY KEY, name TEXT)")
    db.close()
    add_products(root, range(300), "first")
    erpbridge(root, "hub.yaml", "sync", "products-in")

    worker = subprocess.Popen(
        [sys.executable, "-m", "erpbridge", "worker", "--interval", "0.1", "--batch-size", "20",
         "-c", "hub.yaml"],
        cwd=root, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while not staged(root) and time.monotonic() < deadline:
            time.sleep(0.05)
        backup = erpbridge(root, "hub.yaml", "db", "backup", "hub.backup")  # while it delivers
    finally:
        worker.terminate()
        worker.wait(30)
    assert "backed" in backup.stdout and (root / "hub.backup").stat().st_size > 0

    add_products(root, range(250, 400), "second")  # 50 renamed, 100 new after the backup
    with second_store(hub_url, root) as url:
        (root / "restored.yaml").write_text(CONFIG.format(url=url))
        erpbridge(root, "restored.yaml", "db", "restore", "hub.backup")
        current = erpbridge(root, "restored.yaml", "db", "current")
        assert "(current)" in current.stdout
        erpbridge(root, "restored.yaml", "sync", "products-in")
        erpbridge(root, "restored.yaml", "worker", "--once")

        refused = subprocess.run(
            [sys.executable, "-m", "erpbridge", "db", "restore", "hub.backup", "-c",
             "restored.yaml"],
            cwd=root, capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
    assert refused.returncode == 1
    assert "--force" in refused.stderr + refused.stdout
    assert "Traceback" not in refused.stderr

    expected = {f"P-{n:04d}": f"{'second' if n >= 250 else 'first'} {n}" for n in range(400)}
    assert staged(root) == expected
