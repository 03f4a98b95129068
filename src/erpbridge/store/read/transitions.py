"""The transition log as the CLI, the API and the back office show it: a record's status
changes, oldest first, within the reader's scope."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, Row, select

from erpbridge.store.read.scope import Scope
from erpbridge.store.tables import records, transitions

__all__ = ["record_transitions", "visible_record"]


def visible_record(conn: Connection, scope: Scope, entity: str, key: str) -> Row[Any] | None:
    """Record ``entity``/``key``, or ``None`` when it does not exist or is out of scope."""
    query = select(records).where(records.c.entity == entity, records.c.key == key)
    visible = scope.record_condition("records.id", "records.entity")
    if visible is not None:
        query = query.where(visible)
    return conn.execute(query).first()


def record_transitions(
    conn: Connection, scope: Scope, entity: str, key: str
) -> list[Row[Any]] | None:
    """The transition log of record ``entity``/``key``, oldest first; ``None`` when the record
    does not exist or is outside ``scope``."""
    record = visible_record(conn, scope, entity, key)
    if record is None:
        return None
    query = select(transitions).where(transitions.c.record_id == record.id)
    return list(conn.execute(query.order_by(transitions.c.id)))
