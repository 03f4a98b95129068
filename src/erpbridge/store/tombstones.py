"""Deletes as versions: a record a channel deleted gets a tombstone version, never vanishes.

A tombstone is the record's next version with the content hash :data:`TOMBSTONE_HASH` and its
last payload kept (so the read model shows what was deleted, and an OUT flow can still name it in
its channel); its audit row says ``deleted``. Deliveries follow for the OUT flows that take
deletes, in the same transaction, as for any version. A later record with the same business key
recreates it (``store.records``): version after version, its history stays one.

A delete names the record by the channel's id (the binding's external id), because a source that
lost a record can name only that (a key-set comparison, an OData ``@removed``). An id the channel
never bound is an *unknown* delete: nothing to do, reported to the caller and never an error.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, bindparam, func, select, update

from erpbridge.store.bulk import copy_rows, key_chunks, one_of, timestamp
from erpbridge.store.deliveries import NewVersion, enqueue
from erpbridge.store.records import Lineage
from erpbridge.store.searchindex import unindex
from erpbridge.store.states import TOMBSTONE_HASH, is_deleted
from erpbridge.store.tables import audit, bindings, records, runs

__all__ = ["Gone", "Tombstoned", "bound_ids", "sweep_due", "tombstone"]


@dataclass(frozen=True, slots=True)
class Gone:
    """A record a channel says is deleted: its id in the channel and where the news came from."""

    external_id: str
    position: str


@dataclass(slots=True)
class Tombstoned:
    """What a batch of deletes did: the records deleted now (key, id, version), those deleted
    before (unchanged), and the deletes naming no record the channel had bound."""

    deleted: list[tuple[str, int, int]] = field(default_factory=list)
    already: list[tuple[str, int, int]] = field(default_factory=list)
    unknown: list[Gone] = field(default_factory=list)


def _bound(conn: Connection, lineage: Lineage, ids: list[str]) -> dict[str, Any]:
    """The records bound to ``ids`` of the lineage's channel, by external id."""
    found: dict[str, Any] = {}
    cols = (bindings.c.external_id, records.c.id, records.c.key, records.c.version,
            records.c.content_hash)  # fmt: skip
    for chunk in key_chunks(conn, ids):
        query = (
            select(*cols)
            .join(records, records.c.id == bindings.c.record_id)
            .where(
                bindings.c.channel == lineage.channel,
                bindings.c.entity == lineage.entity,
                one_of(conn, bindings.c.external_id, chunk),
            )
        )
        for row in conn.execute(query):
            found[row.external_id] = row
    return found


def tombstone(conn: Connection, lineage: Lineage, gone: Iterable[Gone]) -> Tombstoned:
    """Write a tombstone version (and its audit row and deliveries) for each record of
    ``gone`` that is alive, in the caller's transaction."""
    items = list({g.external_id: g for g in gone}.values())
    result = Tombstoned()
    found = _bound(conn, lineage, [g.external_id for g in items])
    alive: dict[int, tuple[Gone, Any]] = {}
    for item in items:
        row = found.get(item.external_id)
        if row is None:
            result.unknown.append(item)
        elif is_deleted(row.content_hash):
            result.already.append((row.key, row.id, row.version))
        else:
            alive.setdefault(row.id, (item, row))  # two ids of one record: one tombstone
    if not alive:
        return result
    at = timestamp(conn, lineage.at)
    conn.execute(
        update(records)
        .where(records.c.id == bindparam("b_id"))
        .values(
            version=bindparam("b_version"),
            content_hash=TOMBSTONE_HASH,
            origin_channel=lineage.channel,
            updated_at=lineage.at,
        ),
        [{"b_id": row.id, "b_version": row.version + 1} for _, row in alive.values()],
    )
    history = [
        (row.id, lineage.entity, row.key, row.version + 1, "deleted", TOMBSTONE_HASH, None,
         "[]", lineage.run_id, lineage.flow, lineage.channel, item.external_id,
         item.position[:512], at)
        for item, row in alive.values()
    ]  # fmt: skip
    copy_rows(conn, audit, _AUDIT_COLUMNS, history)
    result.deleted = [(row.key, row.id, row.version + 1) for _, row in alive.values()]
    if lineage.search is not None:
        unindex(conn, lineage.entity, list(alive))
    if any(s.deletes for s in lineage.subscribers):
        versions = [
            NewVersion(row.id, lineage.entity, row.key, row.version + 1, deleted=True)
            for _, row in alive.values()
        ]
        enqueue(conn, lineage.subscribers, lineage.channel, versions, lineage.at, lineage.dispatch)
    return result


def bound_ids(conn: Connection, channel: str, entity: str) -> dict[str, int]:
    """The external ids ``channel`` has bound to live records of ``entity`` (a key sweep's
    other side), with their record ids."""
    query = (
        select(bindings.c.external_id, bindings.c.record_id)
        .join(records, records.c.id == bindings.c.record_id)
        .where(
            bindings.c.channel == channel,
            bindings.c.entity == entity,
            records.c.content_hash != TOMBSTONE_HASH,
        )
    )
    return {row.external_id: row.record_id for row in conn.execute(query)}


def sweep_due(conn: Connection, flow: str, every: timedelta, at: datetime) -> bool:
    """Whether IN flow ``flow``'s key sweep is due: no sweep run of it succeeded in the last
    ``every`` before ``at``."""
    last = conn.execute(
        select(func.max(runs.c.started_at)).where(
            runs.c.flow == flow, runs.c.mode == "sweep", runs.c.status == "succeeded"
        )
    ).scalar_one()
    if last is None:
        return True
    return bool(last.replace(tzinfo=last.tzinfo or UTC) + every <= at)


_AUDIT_COLUMNS = (
    "record_id", "entity", "key", "version", "action", "content_hash", "payload",
    "changed_fields", "run_id", "flow", "channel", "external_id", "source_position", "at",
)  # fmt: skip
