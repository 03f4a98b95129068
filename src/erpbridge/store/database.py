"""Open the hub store: engine settings per dialect, and its schema checked against the code's.

A new (empty) store is created at the newest schema. An existing store at an older schema is
upgraded only when asked (``erpbridge db upgrade``, or ``hub.auto_upgrade: true``): every
process that opens it otherwise refuses to run, as it does against a schema newer than its own
(an upgrade made by a newer erpbridge). So an upgrade is an explicit, single step taken with the
processes stopped and a backup at hand, never a side effect of whichever worker starts first.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event, inspect, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from erpbridge.errors import StoreError

__all__ = [
    "READ_ONLY",
    "SchemaMismatch",
    "SchemaState",
    "create_hub_engine",
    "include_name",
    "migrate",
    "open_store",
    "reading",
    "schema_state",
]

#: Execution option of a connection that only reads (``conn.execution_options(**{READ_ONLY:
#: True})``): on SQLite its transactions begin DEFERRED, so it never waits for the write lock
#: (WAL lets it read beside a writer).
READ_ONLY = "erpbridge_read_only"

_MIGRATIONS = Path(__file__).parent / "migrations"
# The search help's dialect-specific structures beside the declared ``search_index``: SQLite's
# FTS5 tables per entity (and their shadow tables), PostgreSQL's trigram index (migration 0007).
_UNDECLARED_TABLE_PREFIX = "search_fts_"
_UNDECLARED_INDEXES = frozenset({"ix_search_index_text_trgm"})


def include_name(name: str | None, type_: str, _parent_names: Any) -> bool:
    """Alembic ``include_name``: leave what tables.py cannot declare (the search help's FTS5
    tables and trigram index) out of autogenerate's comparison."""
    if name is None:
        return True
    if type_ == "table":
        return not name.startswith(_UNDECLARED_TABLE_PREFIX)
    return not (type_ == "index" and name in _UNDECLARED_INDEXES)


@contextlib.contextmanager
def reading(engine: Engine) -> Iterator[Connection]:
    """A connection for reads only: on SQLite its transaction begins DEFERRED (no write lock,
    no wait behind a writer: WAL reads beside it); elsewhere a plain connection."""
    with engine.connect() as conn:
        yield conn.execution_options(**{READ_ONLY: True})


def _sqlite_setup(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy, not the driver, decide when transactions begin (see "begin" below).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        # 16 MiB of page cache (default 2 MiB). 64 MiB cost 55 MB of RSS in an initial migration
        # and saved no CPU: 1 M records and a 10 % change wrote in 16.7 and 6.9 s of CPU with
        # 64 MiB, 16.8 and 6.8 s with 16 MiB (bench/store_write.py); the OS caches the file.
        cursor.execute("PRAGMA cache_size=-16384")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        # IMMEDIATE takes the write lock up front: two writers queue on busy_timeout instead of
        # one failing with "database is locked" when a read transaction tries to upgrade.
        if connection.get_execution_options().get(READ_ONLY):
            connection.exec_driver_sql("BEGIN")
        else:
            connection.exec_driver_sql("BEGIN IMMEDIATE")


def create_hub_engine(url: str) -> Engine:
    """An engine for the hub store at ``url`` (SQLite gets WAL and immediate transactions)."""
    try:
        parsed = make_url(url)
    except Exception as exc:  # noqa: BLE001 - SQLAlchemy raises ArgumentError or ValueError
        raise StoreError(f"invalid database URL {url!r}: {exc}") from None
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database
        if database and database != ":memory:" and not database.startswith("file:"):
            Path(database).parent.mkdir(parents=True, exist_ok=True)
            _create_private(Path(database))
        engine = create_engine(parsed, connect_args={"timeout": 30})
        _sqlite_setup(engine)
        return engine
    return create_engine(parsed, pool_pre_ping=True)


def _create_private(path: Path) -> None:
    """Create the SQLite file empty with mode 0600 (like the key file), whatever the umask; an
    existing file keeps its mode. SQLite gives its ``-wal`` and ``-shm`` files the mode of the
    database file, so they are 0600 too. The store holds records, audit and encrypted secrets:
    no other local account has any business reading it."""
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))


def migrate(engine: Engine, revision: str = "head") -> None:
    """Bring the store's schema to ``revision`` with Alembic."""
    from alembic import command  # Alembic costs ~0.3 s to import: only when there is work
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(_MIGRATIONS))
    try:
        with engine.begin() as connection:
            config.attributes["connection"] = connection
            command.upgrade(config, revision)
    except SQLAlchemyError as exc:
        masked = engine.url.render_as_string(hide_password=True)
        cause = getattr(exc, "orig", None) or exc
        raise StoreError(f"cannot open the hub store {masked}: {cause}") from None


class SchemaMismatch(StoreError):
    """The store's schema is not the one this erpbridge was built for (older or newer)."""


@dataclass(frozen=True)
class SchemaState:
    """Where a store's schema stands: ``current`` is ``None`` for a new, empty store."""

    current: str | None
    head: str
    known: bool  # whether this erpbridge's migrations contain ``current``

    @property
    def at_head(self) -> bool:
        return self.current == self.head

    @property
    def older(self) -> bool:
        """At a revision this erpbridge knows and can upgrade from."""
        return self.current is not None and self.known and not self.at_head


def open_store(url: str, *, upgrade: bool = False) -> Engine:
    """Create the engine for ``url``; a new store is created at the newest schema.

    An older schema is upgraded with ``upgrade``, else :class:`SchemaMismatch`, as for a newer
    one (which no erpbridge can downgrade by itself).
    """
    engine = create_hub_engine(url)
    state = schema_state(engine)
    if state.at_head:
        return engine
    if state.current is None or (state.older and upgrade):
        migrate(engine)
        return engine
    engine.dispose()
    raise SchemaMismatch(_mismatch(engine, state))


def _mismatch(engine: Engine, state: SchemaState) -> str:
    where = f"the hub store {engine.url.render_as_string(hide_password=True)}"
    if state.older:
        return (
            f"{where} has schema {state.current}, this erpbridge needs {state.head}: stop the "
            "hub's processes, back the store up (erpbridge db backup) and run "
            "'erpbridge db upgrade' (or set hub.auto_upgrade: true)"
        )
    return (
        f"{where} has schema {state.current}, newer than this erpbridge knows (its newest is "
        f"{state.head}): a newer erpbridge upgraded it; run that version"
    )


_REVISION = re.compile(r'^(down_revision|revision)\s*(?::[^=]*)?=\s*"?([^"\s]+)"?', re.M)


@cache
def _revisions() -> tuple[frozenset[str], str | None]:
    """Every migration's revision, and the newest (``None`` unless exactly one head), read from
    the migration files (not Alembic: a command that only reads the store should not pay for
    importing it)."""
    revisions, parents = set(), set()
    for file in (_MIGRATIONS / "versions").glob("*.py"):
        found = dict(_REVISION.findall(file.read_text(encoding="utf-8")))
        if "revision" in found:
            revisions.add(found["revision"])
            parents.add(found.get("down_revision"))
    heads = revisions - parents
    return frozenset(revisions), heads.pop() if len(heads) == 1 else None


def schema_state(engine: Engine) -> SchemaState:
    """The store's schema revision beside this erpbridge's newest.

    Raises :class:`StoreError` when the store cannot be read, or the migrations do not name
    exactly one newest revision (a broken installation).
    """
    revisions, head = _revisions()
    if head is None:
        raise StoreError(f"the hub's migrations in {_MIGRATIONS} do not end in one revision")
    try:
        with engine.connect() as connection:
            connection = connection.execution_options(**{READ_ONLY: True})
            if not inspect(connection).has_table("alembic_version"):
                return SchemaState(current=None, head=head, known=True)
            rows = connection.execute(text("SELECT version_num FROM alembic_version")).all()
    except SQLAlchemyError as exc:
        masked = engine.url.render_as_string(hide_password=True)
        cause = getattr(exc, "orig", None) or exc
        raise StoreError(f"cannot open the hub store {masked}: {cause}") from None
    current = rows[0][0] if len(rows) == 1 else None
    if current is None:  # a table without its one row: let Alembic look (and report)
        return SchemaState(current=None, head=head, known=True)
    return SchemaState(current=current, head=head, known=current in revisions)
