"""Backfill and replay: queue what the hub already holds for an OUT flow, in bounded batches.

A backfill queues one delivery per record's current version that the flow has not had queued
yet (its idempotency key ``flow|record|version`` already in the ledger means queued or
delivered); a replay queues every version the audit trail holds in a time range, in order,
then each touched record's current version when it is newer, so a replayed target never ends
behind the hub. Both write at a priority below every flow's own (``priority`` is -100..100),
so the claim, which takes higher priority first, always prefers live changes.

Per-key order with live traffic: a batch reads the records it queues under a share lock on
PostgreSQL (SQLite runs one writer at a time), so a live version committed meanwhile is the
one read and queued after it can only be newer. A live version queued while a backfilled
version of the same key still waits supersedes it (``store.superseding``, called by the
outbox): versions are full snapshots, and the live one must not wait behind the backfill.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import Connection, Select, func, select

from erpbridge.store.bulk import copy_rows, key_chunks, one_of, timestamp
from erpbridge.store.deliveries import WAKE_CHANNEL, Dispatcher
from erpbridge.store.states import OPEN_DELIVERY_STATES, TOMBSTONE_HASH
from erpbridge.store.superseding import BACKFILL_PRIORITY
from erpbridge.store.tables import audit, deliveries, records, runs

__all__ = [
    "BACKFILL_PRIORITY",
    "REPLAY_PRIORITY",
    "RecordFilter",
    "Step",
    "Target",
    "backfill_step",
    "catch_up_step",
    "open_deliveries",
    "progress",
    "redeliver_keys",
    "replay_step",
    "resume_point",
]

#: Replayed deliveries: below live traffic too, and never superseded (an archive wants each).
REPLAY_PRIORITY = -1001

#: Given a record's payload, whether a backfill takes it (``--where``).
RecordFilter = Callable[[Mapping[str, Any]], bool]

#: Given a version's payload, whether the flow's ``when:`` takes it (as if the record were new).
VersionWanted = Callable[[Mapping[str, Any]], bool]


@dataclass(frozen=True, slots=True)
class Target:
    """The OUT flow a backfill or replay fills."""

    flow: str
    channel: str
    entity: str
    max_attempts: int
    echo: bool
    #: The flow's ``when:``; ``None``: every version.
    wanted: VersionWanted | None = None


@dataclass(frozen=True, slots=True)
class Step:
    """What one batch did, and where the next one starts (``None``: nothing left)."""

    scanned: int
    queued: int
    #: Already queued or delivered at that version, or not for this flow (echo, when, where).
    skipped: int
    after: int | None


_COLUMNS = (
    "flow", "channel", "entity", "record_id", "key", "version", "ordering_key",
    "idempotency_key", "priority", "state", "attempts", "max_attempts", "next_attempt_at",
    "fence", "created_at", "updated_at", "run_id",
)  # fmt: skip


def _queue(
    conn: Connection,
    target: Target,
    run_id: int,
    items: Sequence[tuple[int, str, int, str]],
    priority: int,
    at: datetime,
    dry_run: bool,
    dispatch: Dispatcher | None,
) -> int:
    """Insert deliveries for ``items`` (record id, key, version, idempotency key) not in the
    ledger yet; return how many are (or would be) new. On PostgreSQL workers are woken and
    ``dispatch`` (the engine's hook, if any) gets the new ones in this transaction."""
    keys = [i[3] for i in items]
    known: set[str] = set()
    for chunk in key_chunks(conn, keys):
        found = select(deliveries.c.idempotency_key).where(
            one_of(conn, deliveries.c.idempotency_key, chunk)
        )
        known.update(conn.execute(found).scalars())
    fresh = [i for i in items if i[3] not in known]
    if dry_run or not fresh:
        return len(fresh)
    stamp = timestamp(conn, at)
    rows = [
        (target.flow, target.channel, target.entity, rid, key, version,
         f"{target.flow}|{target.entity}|{key}"[:800], idem, priority, "pending", 0,
         target.max_attempts, stamp, 0, stamp, stamp, run_id)
        for rid, key, version, idem in fresh
    ]  # fmt: skip
    copy_rows(conn, deliveries, _COLUMNS, rows)
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql(f"NOTIFY {WAKE_CHANNEL}")
        if dispatch is not None:
            dispatch(conn, [row[7] for row in rows], at)
    return len(rows)


def _locked(conn: Connection, query: Select[Any]) -> Select[Any]:
    """``query`` with a share lock on the records it reads (PostgreSQL): a live change to one
    of them waits for this batch, or this batch reads the change once it is committed."""
    if conn.dialect.name == "postgresql":
        return query.with_for_update(read=True, of=records)
    return query


def _takes(target: Target, origin: str | None, payload: Mapping[str, Any]) -> bool:
    if not target.echo and origin == target.channel:
        return False  # no echo: it came from this channel
    return target.wanted is None or target.wanted(payload)


def backfill_step(
    conn: Connection,
    target: Target,
    run_id: int,
    after: int,
    limit: int,
    at: datetime,
    *,
    changed_since: datetime | None = None,
    keep: RecordFilter | None = None,
    dry_run: bool = False,
    dispatch: Dispatcher | None = None,
) -> Step:
    """Queue the current versions of the next ``limit`` records of the entity after record id
    ``after`` (those changed since ``changed_since`` and kept by ``keep``), in the caller's
    transaction."""
    query = (
        select(records.c.id, records.c.key, records.c.version, records.c.payload,
               records.c.origin_channel)
        .where(records.c.entity == target.entity, records.c.id > after)
        # Deleted in the hub: a target that has not had it has nothing to delete.
        .where(records.c.content_hash != TOMBSTONE_HASH)
        .order_by(records.c.id)
        .limit(limit)
    )  # fmt: skip
    if changed_since is not None:
        query = query.where(records.c.updated_at >= changed_since)
    rows = conn.execute(_locked(conn, query)).all()
    if not rows:
        return Step(0, 0, 0, None)
    parse = keep is not None or target.wanted is not None
    items = []
    for r in rows:
        payload = orjson.loads(r.payload) if parse else {}
        if (keep is None or keep(payload)) and _takes(target, r.origin_channel, payload):
            items.append((r.id, r.key, r.version, f"{target.flow}|{r.id}|{r.version}"))
    queued = _queue(conn, target, run_id, items, BACKFILL_PRIORITY, at, dry_run, dispatch)
    return Step(len(rows), queued, len(rows) - queued, rows[-1].id)


def _replay_key(target: Target, run_id: int, record_id: int, version: int) -> str:
    # Its own key: a replay sends again what the flow may have delivered already.
    return f"{target.flow}|{record_id}|{version}|replay{run_id}"


def replay_step(
    conn: Connection,
    target: Target,
    run_id: int,
    after: int,
    limit: int,
    at: datetime,
    *,
    start: datetime,
    end: datetime,
    dry_run: bool = False,
    dispatch: Dispatcher | None = None,
) -> Step:
    """Queue the next ``limit`` versions written between ``start`` and ``end`` (audit rows after
    id ``after``), in the order they were written."""
    query = (
        select(audit.c.id, audit.c.record_id, audit.c.key, audit.c.version, audit.c.payload,
               audit.c.channel)
        .where(audit.c.entity == target.entity, audit.c.id > after, audit.c.at >= start,
               audit.c.at <= end)
        .order_by(audit.c.id)
        .limit(limit)
    )  # fmt: skip
    rows = conn.execute(query).all()
    if not rows:
        return Step(0, 0, 0, None)
    items = [
        (r.record_id, r.key, r.version, _replay_key(target, run_id, r.record_id, r.version))
        for r in rows
        if _takes(target, r.channel, orjson.loads(r.payload) if target.wanted else {})
    ]
    queued = _queue(conn, target, run_id, items, REPLAY_PRIORITY, at, dry_run, dispatch)
    return Step(len(rows), queued, len(rows) - queued, rows[-1].id)


def redeliver_keys(
    conn: Connection,
    target: Target,
    run_id: int,
    keys: Sequence[str],
    at: datetime,
    dispatch: Dispatcher | None = None,
) -> int:
    """Queue the current version of the records with these ``keys`` again (a reconciliation
    found the target lacking them or holding them stale), whether or not the flow delivered
    that version before: each gets its own idempotency key, so the target is written again.
    Below live traffic, like a backfill. Returns how many were queued."""
    items = []
    for chunk in key_chunks(conn, list(keys)):
        query = select(records.c.id, records.c.key, records.c.version).where(
            records.c.entity == target.entity, one_of(conn, records.c.key, chunk)
        )
        items += [
            (r.id, r.key, r.version, f"{target.flow}|{r.id}|{r.version}|reconcile{run_id}")
            for r in conn.execute(_locked(conn, query))
        ]
    return _queue(conn, target, run_id, items, BACKFILL_PRIORITY, at, False, dispatch)


def catch_up_step(
    conn: Connection,
    target: Target,
    run_id: int,
    after: int,
    limit: int,
    at: datetime,
    *,
    start: datetime,
    end: datetime,
    dry_run: bool = False,
    dispatch: Dispatcher | None = None,
) -> Step:
    """After a replay's range: queue the current version of each record the range touched
    whose current version is newer than the range's last, after record id ``after``."""
    last = (
        select(audit.c.record_id, func.max(audit.c.version).label("version"))
        .where(audit.c.entity == target.entity, audit.c.at >= start, audit.c.at <= end)
        .group_by(audit.c.record_id)
        .subquery()
    )
    query = (
        select(records.c.id, records.c.key, records.c.version, records.c.payload,
               records.c.origin_channel)
        .join(last, last.c.record_id == records.c.id)
        .where(records.c.id > after, records.c.version > last.c.version)
        .order_by(records.c.id)
        .limit(limit)
    )  # fmt: skip
    rows = conn.execute(_locked(conn, query)).all()
    if not rows:
        return Step(0, 0, 0, None)
    items = [
        (r.id, r.key, r.version, _replay_key(target, run_id, r.id, r.version))
        for r in rows
        if _takes(target, r.origin_channel, orjson.loads(r.payload) if target.wanted else {})
    ]
    queued = _queue(conn, target, run_id, items, REPLAY_PRIORITY, at, dry_run, dispatch)
    return Step(len(rows), queued, len(rows) - queued, rows[-1].id)


def progress(conn: Connection, run_id: int) -> dict[str, int]:
    """The deliveries a backfill or replay run queued, by state."""
    query = (
        select(deliveries.c.state, func.count())
        .where(deliveries.c.run_id == run_id)
        .group_by(deliveries.c.state)
    )
    return {state: int(count) for state, count in conn.execute(query).all()}


def open_deliveries(conn: Connection, run_id: int) -> int:
    """How many deliveries the run queued are still to go out."""
    query = (
        select(func.count())
        .select_from(deliveries)
        .where(deliveries.c.run_id == run_id, deliveries.c.state.in_(OPEN_DELIVERY_STATES))
    )
    return int(conn.execute(query).scalar_one())


def resume_point(conn: Connection, flow: str, mode: str, params: Any) -> tuple[int, Any] | None:
    """Where an unfinished run of ``flow`` (``mode``, same ``params``) stopped: its id and its
    last committed cursor; ``None`` when the newest such run finished or none exists."""
    row = conn.execute(
        select(runs.c.id, runs.c.status, runs.c.dry_run, runs.c.cursor_before,
               runs.c.cursor_after)
        .where(runs.c.flow == flow, runs.c.mode == mode, runs.c.dry_run.is_(False))
        .order_by(runs.c.id.desc())
        .limit(1)
    ).first()  # fmt: skip
    if row is None or row.status == "succeeded" or row.cursor_after is None:
        return None
    if orjson.loads(row.cursor_before or "null") != params:
        return None
    return int(row.id), orjson.loads(row.cursor_after)
