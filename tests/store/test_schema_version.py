"""The hub's schema is upgraded as an explicit step: processes refuse an older or a newer schema
with a message that says what to do, ``erpbridge db upgrade`` (or ``hub.auto_upgrade``) brings
an older one up, and a new store is simply created. Run through the real command line."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import text

from erpbridge.store import create_hub_engine, migrate, open_store
from erpbridge.store.database import SchemaMismatch, schema_state

CONFIG = """
hub: {{database_url: "{url}"}}
channels:
  plm: {{system: sql, options: {{url: "sqlite:///plm.db"}}}}
flows:
  - {{name: products-in, channel: plm, entity: product, direction: in, key: sku,
     source: {{table: products}}, cursor: {{column: id, tiebreaker: id}},
     mapping: {{sku: sku, name: name}}}}
"""


def erpbridge(root: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "erpbridge", *args, "-c", str(root / "erpbridge.yaml")],
        cwd=root,
        env={**os.environ, "ERPBRIDGE_DATABASE_URL": "", "COLUMNS": "200", **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture
def root(tmp_path: Path, hub_url: str) -> Path:
    with sqlite3.connect(tmp_path / "plm.db") as db:
        db.execute("CREATE TABLE products (id INTEGER PRIMARY KEY, sku TEXT, name TEXT)")
        db.executemany("INSERT INTO products VALUES (?, ?, ?)", [(1, "P-1", "one")])
    db.close()
    (tmp_path / "erpbridge.yaml").write_text(CONFIG.format(url=hub_url), encoding="utf-8")
    return tmp_path


def test_a_new_store_is_created_at_the_newest_schema(hub_url: str) -> None:
    engine = open_store(hub_url)
    try:
        assert schema_state(engine).at_head
    finally:
        engine.dispose()


def test_an_older_schema_is_refused_until_db_upgrade(root: Path, hub_url: str) -> None:
    engine = create_hub_engine(hub_url)
    migrate(engine, "0001")
    head = schema_state(engine).head
    engine.dispose()
    with pytest.raises(SchemaMismatch, match=r"has schema 0001, this erpbridge needs "):
        open_store(hub_url)

    for command in (["sync", "products-in"], ["worker", "--once"], ["runs"]):
        refused = erpbridge(root, *command)
        assert refused.returncode == 1, refused.stdout + refused.stderr
        assert "Traceback" not in refused.stderr
        assert f"has schema 0001, this erpbridge needs {head}" in refused.stderr
        assert "'erpbridge db upgrade'" in refused.stderr

    current = erpbridge(root, "db", "current")
    assert current.returncode == 1
    assert f"schema 0001, this erpbridge {head}: run 'erpbridge db upgrade'" in current.stdout
    upgraded = erpbridge(root, "db", "upgrade")
    assert upgraded.returncode == 0, upgraded.stderr
    assert f"upgraded from 0001 to {head}" in upgraded.stdout
    assert erpbridge(root, "db", "upgrade").stdout.strip().endswith(f"already at schema {head}")
    assert erpbridge(root, "db", "current").returncode == 0
    synced = erpbridge(root, "sync", "products-in")
    assert synced.returncode == 0, synced.stderr


def test_auto_upgrade_takes_an_older_schema_up_on_open(root: Path, hub_url: str) -> None:
    engine = create_hub_engine(hub_url)
    migrate(engine, "0001")
    engine.dispose()
    synced = erpbridge(root, "sync", "products-in", ERPBRIDGE_AUTO_UPGRADE="1")
    assert synced.returncode == 0, synced.stderr
    engine = create_hub_engine(hub_url)
    try:
        assert schema_state(engine).at_head
    finally:
        engine.dispose()


def test_a_newer_schema_is_refused_and_not_downgraded(root: Path, hub_url: str) -> None:
    engine = open_store(hub_url)
    head = schema_state(engine).head
    with engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '9000_from_the_future'"))
    engine.dispose()
    refused = erpbridge(root, "sync", "products-in")
    assert refused.returncode == 1
    assert (
        f"has schema 9000_from_the_future, newer than this erpbridge knows (its newest is {head})"
        in refused.stderr
    )
    upgrade = erpbridge(root, "db", "upgrade")
    assert upgrade.returncode == 1
    assert "nothing to upgrade; run the erpbridge that wrote it" in upgrade.stderr
    assert erpbridge(root, "sync", "products-in", ERPBRIDGE_AUTO_UPGRADE="1").returncode == 1
