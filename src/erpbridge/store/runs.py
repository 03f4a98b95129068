"""Runs, cursors and rejected records: the bookkeeping around every flow execution."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from sqlalchemy import Connection, Engine, bindparam, delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from erpbridge.pci import (
    mask_card_numbers,
    redact_card_numbers,
    scrub_card_numbers,
)
from erpbridge.store.records import UpsertCounts
from erpbridge.store.runlease import busy, settle_interrupted, take_flow, this_process
from erpbridge.store.tables import cursors, flow_locks, rejected, runs

__all__ = [
    "DEFAULT_RUN_LEASE",
    "BatchCounts",
    "CursorState",
    "Rejection",
    "add_batch",
    "add_rejections",
    "close_run",
    "finish_run",
    "insert_run",
    "load_cursor",
    "open_rejections",
    "problems_json",
    "problems_of",
    "resolve_rejections",
    "restate_rejections",
    "save_cursor",
    "set_start",
    "start_run",
]


#: A run's lease unless the caller says otherwise (``hub.run_lease_s``'s default).
DEFAULT_RUN_LEASE = timedelta(seconds=30)


def now() -> datetime:
    """The store's clock: aware UTC."""
    return datetime.now(UTC)


def _json(value: Any) -> str | None:
    return None if value is None else orjson.dumps(value).decode()


def _unjson(text: str | None) -> Any:
    return None if text is None else orjson.loads(text)


@dataclass(frozen=True, slots=True)
class CursorState:
    """A flow's committed cursor, and the checkpoint of an unfinished full pass if any."""

    value: Any
    full_pass: Any
    full_pass_open: bool
    #: A run has committed an incremental cursor or completed a full pass.
    completed_once: bool


@dataclass(slots=True, kw_only=True)
class BatchCounts(UpsertCounts):
    """The counters one committed batch adds to its run: what it did to the records (two-way
    ``conflicts`` are not a column of the runs table: see the conflicts table), what it read and
    what it rejected."""

    read: int = 0
    rejected: int = 0
    #: Channel ids of deletes naming no record the channel had bound (``store.tombstones``):
    #: nothing to delete (counted unchanged); an event's answer and run warnings name them.
    unknown_deletes: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Rejection:
    """A record (or a whole file) the flow could not take, with where and why."""

    position: str
    reason: str
    field_path: str = ""
    payload: Mapping[str, Any] | None = None
    external_id: str | None = None
    #: Every failing field as ``(path, reason)``; empty: just ``field_path`` and ``reason``.
    problems: tuple[tuple[str, str], ...] = ()

    def all_problems(self) -> tuple[tuple[str, str], ...]:
        """Every failing field, at least the one of ``field_path`` and ``reason``."""
        return self.problems or ((self.field_path, self.reason),)


def start_run(
    engine: Engine,
    *,
    flow: str,
    channel: str,
    entity: str,
    mode: str,
    dry_run: bool,
    cursor_before: Any,
    lease: timedelta = DEFAULT_RUN_LEASE,
    lock: bool = False,
) -> int:
    """Record a run as started, in its own transaction, so a crash still leaves a trace.

    The run holds a lease of ``lease`` (its heartbeat renews it). ``lock``: take the flow's run
    lock in the same transaction, or raise :class:`~erpbridge.errors.FlowBusy` and record
    nothing. Runs whose process is gone are settled as ``interrupted`` first.
    """
    try:
        with engine.begin() as conn:
            at = now()
            settle_interrupted(conn, at)
            run_id = insert_run(
                conn,
                flow=flow,
                channel=channel,
                entity=entity,
                mode=mode,
                at=at,
                lease=lease,
                dry_run=dry_run,
                cursor_before=cursor_before,
            )
            if lock:
                take_flow(conn, flow, run_id, at, lease)
            return run_id
    except IntegrityError:
        if not lock:
            raise
        # Another process took the free lock at the same moment: say which.
        with engine.connect() as conn:
            holder = busy(conn, flow, now())
        if holder is None:
            raise
        raise holder from None


def insert_run(
    conn: Connection,
    *,
    flow: str,
    channel: str,
    entity: str,
    mode: str,
    at: datetime,
    lease: timedelta = DEFAULT_RUN_LEASE,
    dry_run: bool = False,
    cursor_before: Any = None,
) -> int:
    """Insert a ``running`` run of this process in the caller's transaction; return its id.
    (:func:`start_run` commits it alone; a group of events records its run in the transaction
    of its records, and closes it there with :func:`close_run`.)"""
    me = this_process()
    result = conn.execute(
        insert(runs).returning(runs.c.id),
        {
            "flow": flow,
            "channel": channel,
            "entity": entity,
            "mode": mode,
            "status": "running",
            "dry_run": dry_run,
            "started_at": at,
            "cursor_before": _json(cursor_before),
            "host": me.host,
            "pid": me.pid,
            "node": me.node,
            "lease_until": at + lease,
        },
    )
    return int(result.scalar_one())


def close_run(
    conn: Connection,
    run_id: int,
    counts: BatchCounts,
    *,
    started: datetime,
    warnings: Sequence[str] = (),
) -> None:
    """Close run ``run_id`` as ``succeeded`` with its counters, in the caller's transaction."""
    finished = now()
    conn.execute(
        update(runs)
        .where(runs.c.id == run_id)
        .values(
            status="succeeded",
            finished_at=finished,
            duration_s=(finished - started).total_seconds(),
            read=counts.read,
            created=counts.created,
            updated=counts.updated,
            unchanged=counts.unchanged,
            rejected=counts.rejected,
            stale=counts.stale,
            deleted=counts.deleted,
            warnings=_json([redact_card_numbers(w) for w in warnings]) if warnings else None,
        )
    )


def set_start(conn: Connection, run_id: int, mode: str, cursor_before: Any) -> None:
    """Record where a run starts, once it has read its flow's cursor under the run lock."""
    conn.execute(
        update(runs)
        .where(runs.c.id == run_id)
        .values(mode=mode, cursor_before=_json(cursor_before))
    )


def add_batch(conn: Connection, run_id: int, counts: BatchCounts, cursor_after: Any) -> None:
    """Add one batch's counters to its run, in the batch's transaction."""
    conn.execute(
        update(runs)
        .where(runs.c.id == run_id)
        .values(
            read=runs.c.read + counts.read,
            created=runs.c.created + counts.created,
            updated=runs.c.updated + counts.updated,
            unchanged=runs.c.unchanged + counts.unchanged,
            rejected=runs.c.rejected + counts.rejected,
            stale=runs.c.stale + counts.stale,
            deleted=runs.c.deleted + counts.deleted,
            cursor_after=_json(cursor_after),
        )
    )


def count_deleted(conn: Connection, run_id: int, deleted: int) -> None:
    """Add records a run turned into tombstones outside its batches (a key sweep's end)."""
    if deleted:
        conn.execute(
            update(runs).where(runs.c.id == run_id).values(deleted=runs.c.deleted + deleted)
        )


def finish_run(
    engine: Engine, run_id: int, *, status: str, error: str | None, warnings: Sequence[str]
) -> Any:
    """Close a run with its status, duration, error summary and warnings; return its row."""
    with engine.begin() as conn:
        started = conn.execute(select(runs.c.started_at).where(runs.c.id == run_id)).scalar_one()
        finished = now()
        if started.tzinfo is None:  # SQLite hands back naive timestamps
            started = started.replace(tzinfo=UTC)
        conn.execute(
            update(runs)
            .where(runs.c.id == run_id)
            .values(
                status=status,
                error=None if error is None else redact_card_numbers(error),
                finished_at=finished,
                duration_s=(finished - started).total_seconds(),
                warnings=_json([redact_card_numbers(w) for w in warnings]) if warnings else None,
            )
        )
        conn.execute(delete(flow_locks).where(flow_locks.c.run_id == run_id))
        return conn.execute(select(runs).where(runs.c.id == run_id)).one()


def load_cursor(conn: Connection, flow: str) -> CursorState:
    """The committed cursor of ``flow`` (``None`` values before its first run)."""
    row = conn.execute(select(cursors).where(cursors.c.flow == flow)).first()
    if row is None:
        return CursorState(None, None, False, False)
    open_pass = row.full_pass is not None
    return CursorState(_unjson(row.value), _unjson(row.full_pass), open_pass, not open_pass)


def save_cursor(
    conn: Connection,
    flow: str,
    run_id: int,
    *,
    value: Any = None,
    full_pass: Any = None,
    keep_value: bool = False,
) -> None:
    """Write ``flow``'s cursor in the caller's transaction.

    ``full_pass`` set: a full pass is under way and stands there (``value`` untouched).
    ``full_pass`` ``None``: the incremental cursor becomes ``value`` and no full pass is open.
    """
    values: dict[str, Any] = {"run_id": run_id, "updated_at": now()}
    if full_pass is not None:
        values["full_pass"] = _json(full_pass)
    else:
        values["full_pass"] = None
        if not keep_value:
            values["value"] = _json(value)
    result = conn.execute(update(cursors).where(cursors.c.flow == flow).values(**values))
    if result.rowcount == 0:
        values.setdefault("value", _json(value) if full_pass is None else None)
        conn.execute(insert(cursors).values(flow=flow, **values))


def add_rejections(
    conn: Connection,
    *,
    flow: str,
    channel: str,
    entity: str,
    run_id: int,
    items: Sequence[Rejection],
) -> None:
    """Store rejected records with their reasons; they stay ``open`` until replayed."""
    if not items:
        return
    at = now()
    conn.execute(
        insert(rejected),
        [
            {
                "flow": flow,
                "channel": channel,
                "entity": entity,
                "run_id": run_id,
                # Cleaned here too, whatever the caller did: no table ever holds a card number.
                # The position is the channel's name for the place (file, row, IDoc number): kept
                # as it is, so a rejection can be found and replayed; see docs/security.md.
                "position": r.position[:512],
                "external_id": None if r.external_id is None else mask_card_numbers(r.external_id),
                "payload": None
                if r.payload is None
                else _json(scrub_card_numbers(dict(r.payload))),
                "field_path": redact_card_numbers(r.field_path),
                "reason": redact_card_numbers(r.reason),
                "problems": problems_json(r.all_problems()),
                "status": "open",
                "created_at": at,
            }
            for r in items
        ],
    )


def open_rejections(
    conn: Connection, flow: str | None = None, ids: Sequence[int] | None = None
) -> list[Any]:
    """Open rejections, oldest first, optionally of one flow and/or only ``ids``."""
    query = select(rejected).where(rejected.c.status == "open").order_by(rejected.c.id)
    if flow is not None:
        query = query.where(rejected.c.flow == flow)
    if ids is not None:
        query = query.where(rejected.c.id.in_(list(ids)))
    return list(conn.execute(query))


def resolve_rejections(conn: Connection, ids: Sequence[int], run_id: int, status: str) -> None:
    """Close rejections (``replayed`` or ``superseded``) by run ``run_id``."""
    if ids:
        conn.execute(
            update(rejected)
            .where(rejected.c.id.in_(list(ids)))
            .values(status=status, resolved_at=now(), resolved_run_id=run_id)
        )


def restate_rejections(conn: Connection, items: Sequence[tuple[int, Rejection]]) -> None:
    """Give open rejections the problems of their latest attempt: ``(id, rejection)``."""
    if items:
        conn.execute(
            update(rejected)
            .where(rejected.c.id == bindparam("b_id"))
            .values(
                field_path=bindparam("b_path"),
                reason=bindparam("b_reason"),
                problems=bindparam("b_problems"),
            ),
            [
                {
                    "b_id": i,
                    "b_path": redact_card_numbers(r.field_path),
                    "b_reason": redact_card_numbers(r.reason),
                    "b_problems": problems_json(r.all_problems()),
                }
                for i, r in items
            ],
        )


def problems_json(problems: Sequence[tuple[str, str]]) -> str:
    """Failing fields as the ``problems`` column keeps them: ``[{"path", "reason"}]``."""
    return orjson.dumps(
        [{"path": redact_card_numbers(p), "reason": redact_card_numbers(r)} for p, r in problems]
    ).decode()


def problems_of(row: Any) -> list[dict[str, str]]:
    """A rejection row's failing fields; rows from before the column: the one it names."""
    if row.problems:
        found: list[dict[str, str]] = orjson.loads(row.problems)
        return found
    return [{"path": row.field_path, "reason": row.reason}]


def decode(text: str | None) -> Any:
    """Decode a JSON column."""
    return _unjson(text)
