"""Shared fixtures: a hub store on SQLite and on PostgreSQL for every test that asks for one.

PostgreSQL comes from ``scripts/postgres.sh`` (``make test`` starts it and sets
``ERPBRIDGE_TEST_PG_URL``). Without it the PostgreSQL half is skipped on a developer's machine,
but fails under CI or ``make test`` (``CI`` / ``ERPBRIDGE_REQUIRE_SERVERS``): never a silent skip.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy import create_engine
from sqlalchemy.engine import make_url

from integration.servers import require_server


@contextmanager
def fresh_pg_database() -> Iterator[str]:
    """A new, empty PostgreSQL database on the test server, dropped on leaving."""
    base = require_server("ERPBRIDGE_TEST_PG_URL", "PostgreSQL")
    name = f"t_{uuid.uuid4().hex[:16]}"
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    try:
        yield make_url(base).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


@pytest.fixture
def pg_database() -> Iterator[str]:
    """A fresh, empty PostgreSQL database; dropped afterwards."""
    with fresh_pg_database() as url:
        yield url


@pytest.fixture(scope="module")
def module_pg_database() -> Iterator[str]:
    """A fresh PostgreSQL database shared by a module's tests (a served hub's store)."""
    with fresh_pg_database() as url:
        yield url


@pytest.fixture(params=["sqlite", "postgresql"])
def hub_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The hub store's URL, once per dialect."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'hub.db'}"
    url: str = request.getfixturevalue("pg_database")
    return url
