"""How database channels connect, per dialect, with the real drivers installed (psycopg,
PyMySQL, pymssql, python-oracledb) but without a server: the session each dialect gets, the
connect arguments each driver takes, and what a failed connection is called.

The servers themselves are in tests/integration/test_sql_engines.py (PostgreSQL, MariaDB);
MSSQL and Oracle do not run here, so their part ends where a connection would begin.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import time
from pathlib import Path

import pytest

from erpbridge.transports.sql.connect import (
    READ_ONLY_BEGIN,
    _time_of_day,
    reader_session,
    writer_session,
)
from erpbridge.transports.sql.read import SqlChannelOptions, SqlTransport
from erpbridge.transports.sql.write import SqlWriteChannelOptions, SqlWriteTransport
from httpserve import silent_port

# dialect URL → (dialect, driver, reader session, first statement of every read)
WIRED = {
    "postgresql+psycopg://reader:s3cret@{host}:{port}/mes": (
        "postgresql",
        "psycopg",
        ("SET TIME ZONE 'UTC'", "SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY"),
        "SET TRANSACTION READ ONLY",
    ),
    "mysql+pymysql://reader:s3cret@{host}:{port}/mes": (
        "mysql",
        "pymysql",
        ("SET time_zone = '+00:00'", "SET SESSION TRANSACTION READ ONLY"),
        "START TRANSACTION READ ONLY",
    ),
    "mariadb+pymysql://reader:s3cret@{host}:{port}/mes": (
        "mariadb",
        "pymysql",
        ("SET time_zone = '+00:00'", "SET SESSION TRANSACTION READ ONLY"),
        "START TRANSACTION READ ONLY",
    ),
    # No read-only transaction in SQL Server: reads are rolled back, the login is the guard.
    "mssql+pymssql://reader:s3cret@{host}:{port}/mes": ("mssql", "pymssql", (), None),
    # No session-wide read-only mode in Oracle: every read transaction is made read-only.
    "oracle+oracledb://reader:s3cret@{host}:{port}/?service_name=MES": (
        "oracle",
        "oracledb",
        ("ALTER SESSION SET TIME_ZONE = '+00:00'",),
        "SET TRANSACTION READ ONLY",
    ),
}


def channel(url: str, tmp_path: Path) -> SqlTransport:
    return SqlTransport("erp", SqlChannelOptions(url=url, connect_timeout=1), tmp_path)


@pytest.mark.parametrize("url", sorted(WIRED))
def test_each_dialect_gets_its_driver_and_its_read_only_session(url: str, tmp_path: Path) -> None:
    dialect, driver, session, begin = WIRED[url]
    transport = channel(url.format(host="db.example", port=1), tmp_path)  # nothing connects yet
    try:
        engine = transport._engine
        assert (engine.dialect.name, engine.dialect.driver) == (dialect, driver)
    finally:
        transport.close()
    assert reader_session(dialect) == session
    assert READ_ONLY_BEGIN.get(dialect) == begin
    assert not any("READ ONLY" in statement for statement in writer_session(dialect))


def test_sqlite_sessions_guard_reads_and_check_foreign_keys_on_writes() -> None:
    assert reader_session("sqlite") == ("PRAGMA query_only = ON",)
    assert writer_session("sqlite") == ("PRAGMA foreign_keys = ON",)
    assert READ_ONLY_BEGIN.get("sqlite") is None  # the file is opened with mode=ro instead


@pytest.mark.parametrize("url", sorted(WIRED))
@pytest.mark.parametrize(
    ("host", "port", "category"),
    [("127.0.0.1", 1, "refused"), ("erp-db.nonexistent.invalid", 1433, "dns")],
)
def test_every_driver_names_a_refused_port_and_an_unknown_host(
    url: str, host: str, port: int, category: str, tmp_path: Path
) -> None:
    # A real connection attempt through each driver with the connect arguments erpbridge gives
    # it (a driver refusing one would fail here with a TypeError, not a category).
    reader = channel(url.format(host=host, port=port), tmp_path)
    writer = SqlWriteTransport(
        "erp", SqlWriteChannelOptions(url=url.format(host=host, port=port)), tmp_path
    )
    try:
        healths = [reader.health(), writer.health()]
    finally:
        reader.close()
        writer.close()
    for health in healths:
        assert (health.ok, health.category) == (False, category), health.detail
        assert "reader:***@" in health.detail
        assert "s3cret" not in health.detail


@pytest.fixture
def silent() -> Iterator[int]:
    """A port that accepts connections and never says a word, like a hung server."""
    with silent_port() as port:
        yield port


def test_a_server_that_never_answers_is_a_timeout(silent: int, tmp_path: Path) -> None:
    transport = channel(f"postgresql+psycopg://reader:s3cret@127.0.0.1:{silent}/mes", tmp_path)
    try:
        health = transport.health()
    finally:
        transport.close()
    assert (health.ok, health.category) == (False, "timeout")


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("06:30:00", time(6, 30)),
        ("23:59:59.250000", time(23, 59, 59, 250000)),
        ("838:59:59", "838:59:59"),  # MySQL TIME is also an elapsed time: kept as its text
        ("-01:30:00", "-01:30:00"),
    ],
)
def test_mysql_time_columns_become_times_of_day(text: str, value: object) -> None:
    assert _time_of_day(text) == value
