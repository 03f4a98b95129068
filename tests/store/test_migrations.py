"""The migrations build exactly the schema the code declares, on both dialects."""

from __future__ import annotations

from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

import erpbridge.store
from erpbridge.store import metadata, open_store
from erpbridge.store.database import include_name


def test_migrations_match_the_declared_tables(hub_url: str) -> None:
    engine = open_store(hub_url)
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"include_name": include_name})
            diff = compare_metadata(context, metadata)
            tables = set(inspect(conn).get_table_names())
        assert diff == []
        assert {"records", "bindings", "cursors", "runs", "rejected", "audit"} <= tables
    finally:
        engine.dispose()


def test_opening_twice_is_harmless(hub_url: str) -> None:
    first = open_store(hub_url)
    first.dispose()
    second = open_store(hub_url)
    with second.connect() as conn:
        version = conn.exec_driver_sql("SELECT version_num FROM alembic_version").scalar_one()
    second.dispose()
    versions = Path(erpbridge.store.__file__).parent / "migrations" / "versions"
    assert version == max(path.name[:4] for path in versions.glob("[0-9]*.py"))


def test_sqlite_store_runs_in_wal_mode(tmp_path) -> None:  # type: ignore[no-untyped-def]
    engine = open_store(f"sqlite:///{tmp_path / 'hub.db'}")
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar_one() == "wal"
    engine.dispose()
