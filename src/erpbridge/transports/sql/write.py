"""SQL write target: OUT flows upsert or append rows into a table of a database the channel owns.

Made for staging tables an ERP imports from and for import logs or queues. Every call of
:meth:`SqlWriteTransport.write` is one transaction: all of its records land, or none do. An
upsert uses the dialect's own statement (``INSERT … ON CONFLICT … DO UPDATE`` on PostgreSQL and
SQLite; ``ON DUPLICATE KEY UPDATE`` on MySQL/MariaDB); with a ``version_column`` a row holding a
newer version is never replaced, so a stale retry cannot go backwards.

URL resolution, session set-up (UTC clock) and error classification are shared with the read-only
SQL transport (:mod:`erpbridge.transports.sql.connect`); the SQLite open mode is ``rw``: writable,
and never creating a missing file.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from pathlib import Path
from typing import Any, Literal, Self

import orjson
import sqlalchemy as sa
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from sqlalchemy import exc as sa_exc
from sqlalchemy.dialects import mysql, postgresql, sqlite
from sqlalchemy.engine import Connection, make_url

from erpbridge.connectors import Sink, Source
from erpbridge.errors import ErpbridgeError, FatalError
from erpbridge.transports.base import (
    Batch,
    CursorValue,
    Health,
    OutgoingRecord,
    StreamOptions,
    TargetOptions,
)
from erpbridge.transports.sql.connect import (
    SqlFatal,
    SqlUnavailable,
    classify,
    error_code,
    health_category,
    open_channel_engine,
    resolve_sqlite,
    writer_session,
)

__all__ = [
    "SqlWriteChannelOptions",
    "SqlWriteStreamOptions",
    "SqlWriteTargetOptions",
    "SqlWriteTransport",
]


class SqlWriteChannelOptions(BaseModel):
    """A writable database channel's ``options:``; the URL stays out of reprs and errors."""

    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)

    url: str = Field(repr=False)
    """SQLAlchemy URL; a relative SQLite path is resolved against the configuration's folder."""
    schema_: str | None = Field(None, alias="schema")
    """Schema of ``table:`` targets that name none."""
    connect_timeout: float = Field(10, gt=0)
    """Seconds to wait for a connection (PostgreSQL, MySQL/MariaDB; SQLite: busy timeout)."""

    @field_validator("url")
    @classmethod
    def _is_url(cls, value: str) -> str:
        try:
            make_url(value)
        except (sa_exc.ArgumentError, ValueError):
            raise ValueError("not a SQLAlchemy URL (dialect+driver://user@host/db)") from None
        return value


class SqlWriteStreamOptions(StreamOptions):
    """Nothing: the channel is write-only, IN flows read through the ``sql`` transport."""


class SqlWriteTargetOptions(TargetOptions):
    """A flow's ``target:`` block: which table, and how a record version becomes a row."""

    model_config = ConfigDict(use_attribute_docstrings=True)

    table: str = Field(min_length=1)
    """The table, optionally schema-qualified (``schema.table``)."""
    key: list[str] = Field(default_factory=list)
    """Columns of the table's primary key or of one unique constraint; needed for ``upsert``."""
    mode: Literal["upsert", "append"] = "upsert"
    """``upsert``: one row per key, updated in place; ``append``: a plain INSERT per version."""
    version_column: str | None = None
    """Receives the record version; an upsert never replaces a row holding a newer one."""
    delivery_id_column: str | None = None
    """Receives the ledger's delivery id, to trace a row back to its delivery."""
    columns: dict[str, str] | None = None
    """Mapped field → column; a listed column a record lacks is written as NULL."""

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.mode == "upsert" and not self.key:
            raise ValueError("mode upsert needs `key`: the target's unique key columns")
        if self.mode == "append" and self.key:
            raise ValueError("mode append inserts every version; `key` is for mode upsert")
        written = list((self.columns or {}).values())
        if len(set(written)) != len(written):
            raise ValueError("`columns` maps two fields to one column")
        own = [c for c in (self.version_column, self.delivery_id_column) if c is not None]
        if len(set(own)) != len(own) or set(own) & set(self.key):
            raise ValueError("version_column, delivery_id_column and key must be distinct")
        return self


# -- errors --------------------------------------------------------------------------------------

#: Errors that say the record (or the statement built for it), not the database, is wrong.
_RECORD_ERRORS = (sa_exc.IntegrityError, sa_exc.DataError, sa_exc.ProgrammingError)
_LOCK_CODES = {"SQLITE_BUSY", "SQLITE_LOCKED", "55P03", "40001", "40P01", 1205, 1213}
#: MySQL/MariaDB refusals of a row that their drivers raise as OperationalError: a failed CHECK
#: (4025 MariaDB, 3819 MySQL), an impossible value (1292, 1366, 1265), a column without default
#: (1364).
_ROW_CODES = {4025, 3819, 1292, 1366, 1265, 1364}
_SCHEMA_KINDS = ("schema mismatch", "permission denied", "read-only")
#: Categories waiting cannot fix: the delivery becomes dead with the message.
_FATAL_KINDS = (*_SCHEMA_KINDS, "invalid row", "unwritable value")


@dataclass(frozen=True, slots=True)
class _Target:
    """A reflected table and what writing into it needs; reflected once per transport."""

    table: sa.Table
    label: str
    #: Columns with a database default or an autoincrement: left to the database when absent.
    defaulted: frozenset[str]
    #: Column sets of the primary key and of each unique constraint or index.
    unique: frozenset[frozenset[str]]


class SqlWriteTransport(Source[SqlWriteStreamOptions], Sink[SqlWriteTargetOptions]):
    """Writes record versions of OUT flows into tables of one database channel."""

    channel_options = SqlWriteChannelOptions
    stream_options: type[StreamOptions] = SqlWriteStreamOptions
    target_options: type[TargetOptions] = SqlWriteTargetOptions

    def __init__(self, channel: str, options: SqlWriteChannelOptions, base_dir: Path) -> None:
        self._channel = channel
        self._options = options
        url, sqlite_file = resolve_sqlite(make_url(options.url), base_dir, "rw")
        self._targets: dict[tuple[str | None, str], _Target] = {}
        self._db = open_channel_engine(
            channel, url, sqlite_file, options.connect_timeout, writer_session
        )
        self._engine = self._db.engine

    def read(
        self,
        stream: StreamOptions,
        cursor: CursorValue,
        batch_size: int,
        required_fields: frozenset[str],
    ) -> Iterator[Batch]:
        """Refused: this transport only writes."""
        raise FatalError(
            f"channel {self._channel}: the sqlwrite transport is write-only; "
            "use the sql transport to read"
        )

    def health(self) -> Health:
        """Run ``SELECT 1``; report dialect, server version and the masked URL, or what failed
        (``dns``, ``refused``, ``timeout``, ``tls``, ``auth``, ``forbidden``, ``schema``)."""
        try:
            with self._engine.connect() as conn:
                conn.execute(sa.select(sa.literal_column("1"))).scalar_one()
                dialect = conn.dialect
        except (sa_exc.SQLAlchemyError, OSError) as exc:
            kind = self._explain(exc)[0]
            return Health(
                ok=False, detail=str(self._translate(exc)), category=health_category(kind)
            )
        version = ".".join(str(part) for part in dialect.server_version_info or ())
        return Health(ok=True, detail=f"{dialect.name} {version} at {self._db.where}")

    def close(self) -> None:
        """Close every pooled connection."""
        self._engine.dispose()

    def write(self, target: TargetOptions, records: list[OutgoingRecord]) -> list[str | None]:
        """Write ``records`` in one transaction; return each one's key values joined by ``|``
        (``None`` in append mode).

        A record the database refuses (NOT NULL, CHECK, foreign key, a value of the wrong type)
        is a :class:`FatalError` naming it; an unreachable or locked database is
        :class:`SourceUnavailable`. Either way nothing of the call is written.
        """
        if not isinstance(target, SqlWriteTargetOptions):
            raise TypeError(f"expected SqlWriteTargetOptions, got {type(target).__name__}")
        if not records:
            return []
        found = self._target(target)
        rows = [self._row(found, target, record) for record in records]
        ids: list[str | None] = [None] * len(records)
        if target.mode == "upsert":
            ids = ["|".join(str(row[column]) for column in target.key) for row in rows]
        try:
            with self._engine.connect() as conn, conn.begin():
                # Consecutive rows with the same columns share one executemany, in order.
                for columns, group in itertools.groupby(rows, key=_columns):
                    conn.execute(self._statement(found, target, columns), list(group))
        except sa_exc.StatementError as exc:
            if self._explain(exc)[0] not in _FATAL_KINDS:
                raise self._translate(exc) from exc
            raise self._refused(found, target, records, rows, exc) from exc
        except (sa_exc.SQLAlchemyError, OSError) as exc:
            raise self._translate(exc) from exc
        return ids

    def delete(self, target: TargetOptions, records: list[OutgoingRecord]) -> list[str | None]:
        """Delete each record's row by the target's key, in one transaction; return the keys.

        A row that is not there counts as deleted. With a ``version_column``, a row holding a
        newer version than the delete (written by a later delivery that overtook it) stays.
        """
        if not isinstance(target, SqlWriteTargetOptions):
            raise TypeError(f"expected SqlWriteTargetOptions, got {type(target).__name__}")
        if target.mode != "upsert":
            why = "mode append keeps every version: no row of a record to delete"
            raise SqlFatal(f"channel {self._channel}: {why} (use on_delete: deactivate)", "schema")
        if not records:
            return []
        found = self._target(target)
        table = found.table
        keys = [{c: self._row(found, target, r)[c] for c in target.key} for r in records]
        condition = sa.and_(*(table.c[c] == sa.bindparam(f"k_{c}") for c in target.key))
        params = [{f"k_{c}": key[c] for c in target.key} for key in keys]
        if target.version_column is not None:
            version = table.c[target.version_column]
            condition = sa.and_(
                condition, sa.or_(version.is_(None), version <= sa.bindparam("k_v"))
            )
            for param, record in zip(params, records, strict=True):
                param["k_v"] = record.version
        try:
            with self._engine.connect() as conn, conn.begin():
                conn.execute(sa.delete(table).where(condition), params)
        except (sa_exc.SQLAlchemyError, OSError) as exc:
            raise self._translate(exc) from exc
        return ["|".join(str(key[c]) for c in target.key) for key in keys]

    # -- the table -------------------------------------------------------------------------------

    def _target(self, target: SqlWriteTargetOptions) -> _Target:
        schema, _, name = target.table.rpartition(".")
        place = (schema or self._options.schema_, name)
        if place not in self._targets:
            self._targets[place] = self._reflect(*place)
        found = self._targets[place]
        named = [*target.key, target.version_column, target.delivery_id_column]
        named += list((target.columns or {}).values())
        columns = found.table.c.keys()
        if missing := sorted({c for c in named if c is not None} - set(columns)):
            raise SqlFatal(
                f"channel {self._channel}: table {found.label} has no column(s) "
                f"{', '.join(missing)} named in the target; columns found: {', '.join(columns)}",
                "schema",
            )
        if target.mode == "upsert" and frozenset(target.key) not in found.unique:
            raise SqlFatal(
                f"channel {self._channel}: key ({', '.join(target.key)}) of table {found.label} "
                "is neither its primary key nor a unique constraint, which an upsert needs",
                "schema",
            )
        return found

    def _reflect(self, schema: str | None, name: str) -> _Target:
        label = f"{schema}.{name}" if schema else name
        try:
            with self._connection() as conn:
                table = sa.Table(name, sa.MetaData(), schema=schema, autoload_with=conn)
                inspector = sa.inspect(conn)
                primary = inspector.get_pk_constraint(name, schema)["constrained_columns"]
                constraints = inspector.get_unique_constraints(name, schema)
                indexes = inspector.get_indexes(name, schema)
        except sa_exc.NoSuchTableError:
            raise SqlFatal(
                f"channel {self._channel}: table {label} does not exist in {self._db.where}",
                "schema",
            ) from None
        unique = {frozenset(primary), *(frozenset(u["column_names"]) for u in constraints)}
        unique |= {frozenset(str(c) for c in i["column_names"]) for i in indexes if i["unique"]}
        defaulted = {c.name for c in table.c if c.server_default is not None or c.identity}
        if table.autoincrement_column is not None:
            defaulted.add(table.autoincrement_column.name)
        return _Target(table, label, frozenset(defaulted), frozenset(unique - {frozenset()}))

    def _row(
        self, found: _Target, target: SqlWriteTargetOptions, record: OutgoingRecord
    ) -> dict[str, Any]:
        """The record as ``{column: value}``: renamed, with the version and delivery columns."""
        rename = target.columns or {}
        row = {rename.get(name, name): value for name, value in record.data.items()}
        own = {target.version_column: record.version, target.delivery_id_column: record.delivery_id}
        for column, value in own.items():
            if column is None:
                continue
            if column in row:
                raise FatalError(self._about(record, f"the mapping also writes column {column}"))
            row[column] = value
        table = found.table
        if unknown := sorted(set(row) - set(table.c.keys())):
            raise FatalError(
                self._about(
                    record,
                    f"table {found.label} has no column(s) {', '.join(unknown)}; "
                    f"columns found: {', '.join(table.c.keys())}",
                )
            )
        for column in rename.values():
            if column not in row and column not in found.defaulted:
                row[column] = None  # the flow owns this column: a cleared value is cleared
        for column in target.key:
            if row.get(column) is None:
                raise FatalError(self._about(record, f"key column {column} has no value"))
        return {
            column: self._value(record, table.c[column], value) for column, value in row.items()
        }

    def _value(self, record: OutgoingRecord, column: sa.Column[Any], value: Any) -> Any:
        # Canonical payloads carry dates and times as ISO text, which SQLite's date types refuse.
        kind = column.type
        try:
            if isinstance(value, str) and isinstance(kind, sa.DateTime):
                value = datetime.fromisoformat(value)
            if isinstance(value, datetime) and value.tzinfo is not None:
                # In UTC, as the session's clock: drivers that drop the offset (PyMySQL) then
                # still write the right moment into TIMESTAMP and naive DATETIME columns.
                return value.astimezone(UTC)
            if isinstance(value, datetime):
                return value
            if isinstance(value, str) and isinstance(kind, sa.Date):
                return date.fromisoformat(value)
            if isinstance(value, str) and isinstance(kind, sa.Time):
                return time.fromisoformat(value)
        except ValueError as exc:
            raise FatalError(self._about(record, f"column {column.name}: {exc}")) from None
        if isinstance(value, dict | list) and not isinstance(kind, sa.JSON):
            return orjson.dumps(value).decode()  # nested values land as JSON text
        return value

    # -- statements ------------------------------------------------------------------------------

    def _statement(
        self, found: _Target, target: SqlWriteTargetOptions, columns: Sequence[str]
    ) -> sa.Executable:
        table = found.table
        if target.mode == "append":
            return sa.insert(table)
        dialect = self._engine.dialect.name
        update = [c for c in columns if c not in target.key]
        version = target.version_column
        if dialect in ("postgresql", "sqlite"):
            statement: postgresql.Insert | sqlite.Insert = (
                postgresql.insert(table) if dialect == "postgresql" else sqlite.insert(table)
            )
            if not update:
                return statement.on_conflict_do_nothing(index_elements=target.key)
            newer = None
            if version is not None:
                stored = table.c[version]
                newer = sa.or_(stored.is_(None), stored < statement.excluded[version])
            return statement.on_conflict_do_update(
                index_elements=target.key,
                set_={c: statement.excluded[c] for c in update},
                where=newer,
            )
        if dialect in ("mysql", "mariadb"):
            upsert = mysql.insert(table)
            incoming = upsert.inserted
            if version is None:
                return upsert.on_duplicate_key_update({c: incoming[c] for c in update})
            later = sa.or_(table.c[version].is_(None), table.c[version] < incoming[version])
            # MySQL assigns left to right: the version column goes last, so the comparison
            # of every other column still sees the stored version.
            ordered = [c for c in update if c != version] + [version]
            return upsert.on_duplicate_key_update(
                [(c, sa.case((later, incoming[c]), else_=table.c[c])) for c in ordered]
            )
        raise FatalError(
            f"channel {self._channel}: upsert is not available for {dialect}; use mode: append"
        )

    # -- connections and errors ------------------------------------------------------------------

    @contextmanager
    def _connection(self) -> Iterator[Connection]:
        """A connection whose database errors come out as erpbridge errors."""
        try:
            with self._engine.connect() as conn:
                yield conn
        except (sa_exc.DBAPIError, OSError) as exc:
            raise self._translate(exc) from exc

    def _explain(self, exc: sa_exc.SQLAlchemyError | OSError) -> tuple[str, str]:
        """``(kind, message)``; the kind says whether waiting can help."""
        if not isinstance(exc, sa_exc.DBAPIError) and isinstance(exc, sa_exc.StatementError):
            return "unwritable value", " ".join(str(exc.orig).split())
        kind, message = classify(exc)
        code = error_code(exc)
        sqlite_file = self._db.sqlite_file
        if code in _LOCK_CODES:
            kind = "locked"
        elif code in _ROW_CODES or (isinstance(exc, _RECORD_ERRORS) and kind not in _SCHEMA_KINDS):
            kind = "invalid row"
        elif kind == "cannot open" and sqlite_file and not sqlite_file.exists():
            kind = "missing database"
        return kind, self._db.scrub(message)

    def _translate(self, exc: sa_exc.SQLAlchemyError | OSError) -> ErpbridgeError:
        kind, message = self._explain(exc)
        where = f"channel {self._channel}"
        if kind in _FATAL_KINDS:
            return SqlFatal(f"{where}: {kind}: {message}", health_category(kind))
        return SqlUnavailable(
            f"{where}: {kind} at {self._db.where}: {message}", health_category(kind)
        )

    def _refused(
        self,
        found: _Target,
        target: SqlWriteTargetOptions,
        records: Sequence[OutgoingRecord],
        rows: Sequence[Mapping[str, Any]],
        exc: sa_exc.StatementError,
    ) -> ErpbridgeError:
        """The error of a refused write, naming the record: found by writing the records one by
        one in a transaction that is rolled back."""
        try:
            with self._engine.connect() as conn, conn.begin() as transaction:
                try:
                    for record, row in zip(records, rows, strict=True):
                        try:
                            conn.execute(self._statement(found, target, tuple(row)), [dict(row)])
                        except sa_exc.StatementError as single:
                            category, message = self._explain(single)
                            if category not in _FATAL_KINDS:
                                return self._translate(single)
                            problem = f"{found.label}: {category}: {message}"
                            return FatalError(self._about(record, problem))
                finally:
                    transaction.rollback()
        except (sa_exc.SQLAlchemyError, OSError) as other:
            return self._translate(other)
        category, message = self._explain(exc)  # gone on its own: name every record of the call
        keys = ", ".join(repr(r.key) for r in records)
        return FatalError(
            f"channel {self._channel}: {found.label}: {category} writing {keys}: {message}"
        )

    def _about(self, record: OutgoingRecord, problem: str) -> str:
        return (
            f"channel {self._channel}: {record.entity} {record.key!r} v{record.version} "
            f"(delivery {record.delivery_id}): {problem}"
        )


def _columns(row: Mapping[str, Any]) -> tuple[str, ...]:
    return tuple(row)
