"""How a database channel connects: its engine, each dialect's session set-up, and what a
driver's error means, for run errors and for ``health()``.

Shared by the read-only ``sql`` transport and the ``sqlwrite`` target. Every session runs its
clock in UTC (the hub takes naive date-times as UTC); a reader's session is read-only as a whole,
besides the read-only transaction each read opens (:data:`READ_ONLY_BEGIN`).
"""

from __future__ import annotations

import importlib
import math
import re
import socket
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from datetime import time
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

import sqlalchemy as sa
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import URL

from erpbridge.errors import FatalError, ReadOnlyViolation, SourceUnavailable
from erpbridge.transports.base import HealthCategory

__all__ = [
    "READ_ONLY_BEGIN",
    "ChannelEngine",
    "SqlFatal",
    "SqlReadOnly",
    "SqlUnavailable",
    "classify",
    "error_code",
    "health_category",
    "open_channel_engine",
    "reader_session",
    "resolve_sqlite",
    "writer_session",
]

# -- per-dialect session set-up ------------------------------------------------------------------

#: Run on every connection of either transport. MySQL/MariaDB convert TIMESTAMP columns to the
#: session's zone (the server's own by default, often the plant's local time) and Oracle does so
#: for TIMESTAMP WITH LOCAL TIME ZONE: in UTC they come back as the hub reads naive values, and a
#: cursor comparison never falls into a daylight-saving gap or fold.
_UTC_SESSION = {
    "postgresql": "SET TIME ZONE 'UTC'",
    "mysql": "SET time_zone = '+00:00'",
    "mariadb": "SET time_zone = '+00:00'",
    "oracle": "ALTER SESSION SET TIME_ZONE = '+00:00'",
}
#: Run on every connection of a read-only channel, so that every later transaction is read-only
#: as well. MySQL/MariaDB need it: DDL ends a ``START TRANSACTION READ ONLY`` with an implicit
#: commit, and goes through (measured on MariaDB 10.11); a read-only session refuses it.
_READ_ONLY_SESSION = {
    "postgresql": "SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY",
    "mysql": "SET SESSION TRANSACTION READ ONLY",
    "mariadb": "SET SESSION TRANSACTION READ ONLY",
    "sqlite": "PRAGMA query_only = ON",
}
#: The first statement of every read transaction. Oracle has no session-wide read-only mode;
#: MSSQL has no read-only transaction at all: there erpbridge never commits a read (each one is
#: rolled back) and the login's rights are the guard.
READ_ONLY_BEGIN = {
    "postgresql": "SET TRANSACTION READ ONLY",
    "oracle": "SET TRANSACTION READ ONLY",
    "mysql": "START TRANSACTION READ ONLY",
    "mariadb": "START TRANSACTION READ ONLY",
}


def reader_session(dialect: str) -> tuple[str, ...]:
    """Statements that set up each connection of a read-only channel of ``dialect``."""
    found = (_UTC_SESSION.get(dialect), _READ_ONLY_SESSION.get(dialect))
    return tuple(statement for statement in found if statement is not None)


def writer_session(dialect: str) -> tuple[str, ...]:
    """Statements that set up each connection of a writable channel of ``dialect``."""
    if dialect == "sqlite":
        return ("PRAGMA foreign_keys = ON",)  # SQLite checks declared foreign keys only if asked
    found = _UTC_SESSION.get(dialect)
    return () if found is None else (found,)


# -- the engine ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ChannelEngine:
    """A database channel's engine, with what its messages need: ``where`` it points (password
    masked) and the password to scrub from the database's own words."""

    engine: sa.Engine
    where: str
    password: str | None
    sqlite_file: Path | None

    def scrub(self, message: str) -> str:
        """``message`` with the channel's password masked."""
        return message.replace(self.password, "***") if self.password else message


def open_channel_engine(
    channel: str,
    url: URL,
    sqlite_file: Path | None,
    connect_timeout: float,
    session: Callable[[str], tuple[str, ...]],
) -> ChannelEngine:
    """The engine of a database channel; ``session(dialect)`` names the statements that set up
    each new connection (:func:`reader_session` or :func:`writer_session`). Nothing connects yet.
    """
    where = str(sqlite_file or url.render_as_string(hide_password=True))
    try:
        engine = sa.create_engine(
            url, connect_args=_connect_args(url, connect_timeout), pool_pre_ping=True
        )
    except (sa_exc.ArgumentError, ImportError) as exc:
        raise FatalError(f"channel {channel}: cannot use {where}: {exc}") from exc
    statements = session(engine.dialect.name)

    def set_up(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        try:
            for statement in statements:
                cursor.execute(statement)
        finally:
            cursor.close()
        # PostgreSQL's SET is transactional: commit it, or the pool's reset would undo it.
        dbapi_connection.commit()

    if statements:
        sa.event.listen(engine, "connect", set_up)
    return ChannelEngine(engine, where, url.password, sqlite_file)


def resolve_sqlite(url: URL, base_dir: Path, mode: str) -> tuple[URL, Path | None]:
    """Anchor a relative SQLite path at ``base_dir`` and open the file in ``mode`` (``ro`` or
    ``rw``: neither creates a missing file); other URLs unchanged."""
    if url.get_backend_name() != "sqlite" or url.database in (None, "", ":memory:"):
        return url, None
    database = str(url.database)
    if database.startswith("file:"):
        database = unquote(database.removeprefix("file:"))
    path = Path(database)
    path = path if path.is_absolute() else (base_dir / path).absolute()
    if url.get_driver_name() != "pysqlite":  # other drivers: the session's PRAGMAs only
        return url.set(database=str(path)), path
    query = {**url.query, "mode": mode, "uri": "true"}
    return url.set(database=f"file:{quote(str(path))}", query=query), path


def _connect_args(url: URL, timeout: float) -> dict[str, Any]:
    backend, driver = url.get_backend_name(), url.get_driver_name()
    if backend == "postgresql" and driver in ("psycopg", "psycopg2"):
        return {"connect_timeout": max(2, math.ceil(timeout))}  # libpq: whole seconds, min 2
    if backend in ("mysql", "mariadb"):
        args: dict[str, Any] = {"connect_timeout": max(1, math.ceil(timeout))}
        if driver == "pymysql":
            args["conv"] = _pymysql_conversions()
        return args
    if backend == "mssql" and driver == "pymssql":
        return {"login_timeout": max(1, math.ceil(timeout))}
    if backend == "oracle" and driver == "oracledb":
        return {"tcp_connect_timeout": timeout}
    if backend == "sqlite":
        return {"timeout": timeout}
    return {}


def _pymysql_conversions() -> dict[Any, Any]:
    # PyMySQL hands out TIME columns as timedelta, which no other driver does and which JSON
    # cannot hold (a rejected row's payload): a time of day becomes datetime.time as elsewhere.
    # Imported here: PyMySQL is an optional extra (and ships no type stubs).
    converters = importlib.import_module("pymysql.converters")
    field_type = importlib.import_module("pymysql.constants.FIELD_TYPE")
    return {**converters.conversions, field_type.TIME: _time_of_day}


def _time_of_day(text: str) -> time | str:
    """A MySQL TIME as ``datetime.time``; an elapsed time beyond a day keeps MySQL's text."""
    try:
        return time.fromisoformat(text)
    except ValueError:
        return text  # "838:59:59", "-01:30:00": not a time of day


# -- what an error means -------------------------------------------------------------------------

_CODE_KINDS: dict[str | int, str] = {
    # PostgreSQL SQLSTATEs
    "25006": "read-only", "42P01": "schema mismatch", "42703": "schema mismatch",
    "3F000": "schema mismatch", "42883": "schema mismatch", "42501": "permission denied",
    "28P01": "auth", "28000": "auth", "3D000": "missing database", "57014": "timeout",
    # MySQL/MariaDB error numbers (2003 "can't connect" says refused, DNS or timeout in words)
    1792: "read-only", 1290: "read-only", 1836: "read-only", 1146: "schema mismatch",
    1054: "schema mismatch", 1305: "schema mismatch", 1142: "permission denied",
    1143: "permission denied", 1370: "permission denied", 1044: "permission denied",
    1045: "auth", 1049: "missing database", 2005: "dns",
    # SQLite result codes
    "SQLITE_READONLY": "read-only", "SQLITE_CANTOPEN": "cannot open", "SQLITE_AUTH": "auth",
}  # fmt: skip
_MESSAGE_KINDS = [
    (r"database \S+ does not exist|unknown database", "missing database"),
    (r"translate host|not known|nodename nor servname|unknown \w* ?server host|name resolution"
     r"|could not resolve|failed to resolve", "dns"),
    (r"authentication failed|access denied|pg_hba\.conf|role \S+ does not exist|login failed"
     r"|ORA-01017|invalid credential", "auth"),
    (r"timeout|timed out", "timeout"),
    (r"\bSSL\b|\bTLS\b|certificate", "tls"),
    (r"connection refused|could not connect|can't connect|DPY-6005", "refused"),
    # FreeTDS (pymssql) says this for a host that does not resolve; a refusal says so above.
    (r"server is unavailable or does not exist", "dns"),
    (r"read-only|readonly|read only", "read-only"),
    (r"no such (table|column)|does not exist|doesn't exist|unknown column|invalid object name"
     r"|invalid column name|invalid identifier", "schema mismatch"),
    (r"permission denied|command denied|permission was denied", "permission denied"),
]  # fmt: skip
_HEALTH: dict[str, HealthCategory] = {
    "dns": "dns",
    "refused": "refused",
    "timeout": "timeout",
    "tls": "tls",
    "auth": "auth",
    "permission denied": "forbidden",
    "read-only": "forbidden",
    "schema mismatch": "schema",
    "missing database": "schema",
}


def error_code(exc: sa_exc.SQLAlchemyError | OSError) -> str | int | None:
    """The driver's own error code: the MySQL/MariaDB (or MSSQL) error number, else the
    SQLSTATE or SQLite error name."""
    orig = getattr(exc, "orig", None)
    if orig is not None and orig.args and isinstance(orig.args[0], int):
        # MySQL drivers put the error number first; PyMySQL also sets a SQLSTATE, but one as
        # broad as 23000 for every integrity and CHECK failure.
        return int(orig.args[0])
    code: str | None = getattr(orig, "sqlstate", None) or getattr(orig, "sqlite_errorname", None)
    return code


def classify(exc: sa_exc.SQLAlchemyError | OSError) -> tuple[str, str]:
    """``(kind, message)`` of a SQLAlchemy error, from the driver's code or its words, or of
    a network error a driver let through unwrapped (python-oracledb on an unknown host)."""
    if isinstance(exc, OSError):
        return _network_kind(exc), " ".join(str(exc).split()) or type(exc).__name__
    orig = getattr(exc, "orig", None)
    message = " ".join(_words(orig if orig is not None else exc).split())
    code = error_code(exc)
    if code in _CODE_KINDS:
        return _CODE_KINDS[code], message
    if isinstance(exc, sa_exc.TimeoutError):
        return "timeout", message
    for pattern, kind in _MESSAGE_KINDS:
        if re.search(pattern, message, re.IGNORECASE):
            return kind, message
    return "database error", message


def _words(error: BaseException) -> str:
    # pymssql carries ((number, bytes),): its str() would show b'...\\n...'.
    args = error.args[0] if len(error.args) == 1 and isinstance(error.args[0], tuple) else ()
    if len(args) == 2 and isinstance(args[1], bytes):
        return f"({args[0]}) {args[1].decode(errors='replace')}"
    return str(error)


def _network_kind(exc: OSError) -> str:
    if isinstance(exc, socket.gaierror):
        return "dns"
    if isinstance(exc, TimeoutError):
        return "timeout"
    if isinstance(exc, ssl.SSLError):
        return "tls"
    return "refused"  # refused, reset, unreachable: the server cannot be talked to


def health_category(kind: str) -> HealthCategory:
    """The ``Health`` category of an error kind from :func:`classify`."""
    return _HEALTH.get(kind, "error")


# -- errors with a category ----------------------------------------------------------------------


class SqlUnavailable(SourceUnavailable):
    """A database channel could not be reached, logged in to or read for now."""

    def __init__(self, message: str, category: HealthCategory) -> None:
        super().__init__(message)
        self.category: HealthCategory = category


class SqlFatal(FatalError):
    """A database refused what erpbridge asked for in a way waiting cannot fix."""

    def __init__(self, message: str, category: HealthCategory) -> None:
        super().__init__(message)
        self.category: HealthCategory = category


class SqlReadOnly(ReadOnlyViolation):
    """A write reached a read-only channel's database and was refused there."""

    category: HealthCategory = "forbidden"
