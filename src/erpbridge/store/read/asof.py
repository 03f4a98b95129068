"""The hub as of a moment: records rebuilt from the audit trail, and what changed between two.

Every version a record ever had is an ``audit`` row with its payload and the time it was
written, so a record as of T is its newest version written at or before T (none: it did not
exist yet). The current version's payload is the record's, read through the column's
``COALESCE`` (``store.tables.AuditPayload``). Within the reader's scope, like every read
(``store.read.scope``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import Connection, Row, func, select

from erpbridge.store.read.scope import Scope
from erpbridge.store.states import TOMBSTONE_HASH
from erpbridge.store.tables import audit, records

__all__ = [
    "FieldChange",
    "RecordAsOf",
    "changed_between",
    "diff_payloads",
    "record_as_of",
    "records_as_of",
]


@dataclass(frozen=True, slots=True)
class RecordAsOf:
    """A record as it was: its version then, when that version was written, its payload."""

    entity: str
    key: str
    version: int
    at: datetime
    payload: dict[str, Any]


@dataclass(frozen=True, slots=True)
class FieldChange:
    """One field that differs between two moments (``None``: absent then)."""

    path: str
    before: Any
    after: Any


def _as_of(row: Row[Any]) -> RecordAsOf:
    return RecordAsOf(row.entity, row.key, row.version, row.at, orjson.loads(row.payload))


def _newest_then(at: datetime) -> Any:
    """The version of the record in the outer query that stood at ``at`` (its audit rows are
    read through their ``(record_id, version)`` index)."""
    then = audit.alias("then")
    return (
        select(func.max(then.c.version))
        .where(then.c.record_id == records.c.id, then.c.at <= at)
        .scalar_subquery()
    )


def _query(entity: str, at: datetime, scope: Scope) -> Any:
    query = (
        select(audit.c.entity, audit.c.key, audit.c.version, audit.c.at, audit.c.payload)
        .select_from(records.join(audit, audit.c.record_id == records.c.id))
        .where(records.c.entity == entity, audit.c.version == _newest_then(at))
        # Deleted then: absent, as before it was created.
        .where(audit.c.content_hash != TOMBSTONE_HASH)
    )
    visible = scope.record_condition("records.id", "records.entity")
    return query if visible is None else query.where(visible)


def record_as_of(
    conn: Connection, scope: Scope, entity: str, key: str, at: datetime
) -> RecordAsOf | None:
    """Record ``entity``/``key`` as of ``at``; ``None`` if it did not exist then (or is
    outside ``scope``)."""
    row = conn.execute(_query(entity, at, scope).where(records.c.key == key)).first()
    return None if row is None else _as_of(row)


def records_as_of(
    conn: Connection, scope: Scope, entity: str, at: datetime, limit: int = 20, after: str = ""
) -> list[RecordAsOf]:
    """The first ``limit`` records of ``entity`` (by key, after key ``after``) as of ``at``:
    those that existed then."""
    query = _query(entity, at, scope).where(records.c.key > after)
    return [_as_of(r) for r in conn.execute(query.order_by(records.c.key).limit(limit))]


def changed_between(
    conn: Connection, scope: Scope, entity: str, start: datetime, end: datetime, limit: int = 20
) -> list[str]:
    """Keys of the first ``limit`` records of ``entity`` (by key) with a version written after
    ``start`` and at or before ``end``."""
    query = (
        select(records.c.key)
        .where(
            records.c.entity == entity,
            select(audit.c.id)
            .where(audit.c.record_id == records.c.id, audit.c.at > start, audit.c.at <= end)
            .exists(),
        )
        .order_by(records.c.key)
        .limit(limit)
    )
    visible = scope.record_condition("records.id", "records.entity")
    if visible is not None:
        query = query.where(visible)
    return list(conn.execute(query).scalars())


def _flatten(value: Any, prefix: str, out: dict[str, Any]) -> None:
    if isinstance(value, dict) and value:
        for name, inner in value.items():
            _flatten(inner, f"{prefix}.{name}" if prefix else str(name), out)
    else:
        out[prefix] = value


def diff_payloads(before: dict[str, Any] | None, after: dict[str, Any] | None) -> list[FieldChange]:
    """The fields (dotted paths into objects; lists compared whole) that differ, by path."""
    old: dict[str, Any] = {}
    new: dict[str, Any] = {}
    _flatten(before or {}, "", old)
    _flatten(after or {}, "", new)
    return [
        FieldChange(path, old.get(path), new.get(path))
        for path in sorted(old.keys() | new.keys())
        if old.get(path) != new.get(path) or (path in old) != (path in new)
    ]
