"""Records as the CLI and the API show them: a page of an entity, or one record with its
bindings and every version's lineage, within the reader's scope."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import ColumnElement, Connection, Row, TextClause, func, select

from erpbridge.store.read.scope import Scope
from erpbridge.store.states import is_deleted
from erpbridge.store.tables import audit, bindings, records, transitions

__all__ = [
    "FieldOrigin",
    "RecordView",
    "Version",
    "field_origins",
    "is_deleted",
    "record_view",
    "records_page",
]


@dataclass(frozen=True, slots=True)
class Version:
    """One version of a record (an ``audit`` row) and whether its lineage is withheld."""

    row: Row[Any]
    #: It came in through a channel outside the reader's scope: show its payload, not its
    #: run, flow, channel, external id or source position.
    withheld: bool


@dataclass(frozen=True, slots=True)
class RecordView:
    """A record, the bindings the reader may see, and its versions oldest first."""

    row: Row[Any]
    bindings: list[Row[Any]]
    versions: list[Version]
    #: Its status changes (the transition log), oldest first.
    transitions: list[Row[Any]]

    @property
    def deleted(self) -> bool:
        """Its channel deleted it: the current version is a tombstone (its payload the last
        one it had)."""
        return is_deleted(self.row.content_hash)


@dataclass(frozen=True, slots=True)
class FieldOrigin:
    """The version that last set one field of a record, and the flow it came through."""

    version: int
    at: Any
    flow: str | None
    channel: str | None
    run_id: int | None
    #: The version came through a channel outside the reader's scope: flow, channel, run hidden.
    withheld: bool


def field_origins(versions: list[Version]) -> dict[str, FieldOrigin]:
    """Per top-level field of the current record: which version (and flow) last set it.

    A created version sets every field it holds; an updated one the fields its audit row lists
    as changed (a field it removed is dropped). With merging IN flows, each field's origin is
    the flow that owns it.
    """
    origins: dict[str, FieldOrigin] = {}
    for version in versions:
        a = version.row
        hidden = version.withheld
        origin = FieldOrigin(
            a.version,
            a.at,
            None if hidden else a.flow,
            None if hidden else a.channel,
            None if hidden else a.run_id,
            hidden,
        )
        payload = orjson.loads(a.payload)
        if a.changed_fields is None:  # created (or an older row without the list): everything
            origins = dict.fromkeys(payload, origin)
            continue
        for name in orjson.loads(a.changed_fields):
            if name in payload:
                origins[name] = origin
            else:
                origins.pop(name, None)
    return origins


def record_view(conn: Connection, scope: Scope, entity: str, key: str) -> RecordView | None:
    """Record ``entity``/``key``, or ``None`` when it does not exist or is outside ``scope``."""
    query = select(records).where(records.c.entity == entity, records.c.key == key)
    visible = scope.record_condition("records.id", "records.entity")
    if visible is not None:
        query = query.where(visible)
    row = conn.execute(query).first()
    if row is None:
        return None
    links = select(bindings).where(bindings.c.record_id == row.id)
    mine = scope.channel_condition(bindings.c.channel)
    if mine is not None:
        links = links.where(mine)
    history = select(audit).where(audit.c.record_id == row.id).order_by(audit.c.id)
    moves = select(transitions).where(transitions.c.record_id == row.id)
    return RecordView(
        row,
        list(conn.execute(links.order_by(bindings.c.channel))),
        [
            Version(a, a.channel is not None and not scope.sees_channel(a.channel))
            for a in conn.execute(history)
        ],
        list(conn.execute(moves.order_by(transitions.c.id))),
    )


def records_page(
    conn: Connection, scope: Scope, entity: str, limit: int = 20
) -> tuple[int, list[Row[Any]]]:
    """How many records of ``entity`` are in scope, and the first ``limit`` of them by key."""
    visible = scope.record_condition("records.id", "records.entity")
    conditions: list[ColumnElement[bool] | TextClause] = [records.c.entity == entity]
    if visible is not None:
        conditions.append(visible)
    total = conn.execute(select(func.count()).select_from(records).where(*conditions))
    page = select(records).where(*conditions).order_by(records.c.key).limit(limit)
    return total.scalar_one(), list(conn.execute(page))
