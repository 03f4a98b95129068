"""Prune what only history needs, in short transactions the workers never wait long behind.

Each rule of ``hub.retention`` (:mod:`erpbridge.config.retention`, whose fields are named after
:data:`RULES`) names a table, an age and what stays whatever its age: an open delivery, the
newest delivered version of each ordering key (a retry of an older version is refused by it),
each flow's latest run, the latest attempt of each delivery, an open rejection, each record's
current version, each alert's latest entry. A batch selects at most ``batch_size`` candidate ids
(locked on PostgreSQL, inside SQLite's immediate transaction) and deletes them in the same
transaction, so a row that changed meanwhile (a cancelled delivery retried) is either seen
changed or not touched.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    Engine,
    Select,
    Table,
    and_,
    delete,
    exists,
    func,
    or_,
    select,
)
from sqlalchemy.orm import aliased

from erpbridge.store.runs import now as utc_now
from erpbridge.store.tables import (
    admin_audit,
    alert_history,
    audit,
    deliveries,
    delivery_attempts,
    idempotency_keys,
    reconciliations,
    records,
    rejected,
    runs,
    schedule_fires,
    seen_assertions,
    ui_sessions,
    webhook_signatures,
)

__all__ = ["RULES", "Pruned", "prune"]

#: Tables whose rows carry their own expiry: every expired row goes at each prune.
_EXPIRING: tuple[Table, ...] = (seen_assertions, webhook_signatures, ui_sessions)


@dataclass(frozen=True)
class Pruned:
    """One rule's outcome: rows deleted (or, in a dry run, that would be), older than ``cutoff``.

    ``done`` is false when the time budget ran out first; the next prune goes on from there.
    """

    rule: str
    cutoff: datetime | None
    rows: int
    done: bool = True


def _deliveries(cutoff: datetime) -> tuple[Table, ColumnElement[bool]]:
    newer = aliased(deliveries)
    delivered_later = exists().where(  # later ids too: the planner walks (ordering_key, id)
        newer.c.ordering_key == deliveries.c.ordering_key,
        newer.c.id > deliveries.c.id,
        newer.c.version > deliveries.c.version,
        newer.c.state == "delivered",
    )
    # coalesce() keeps the planner off the state index, whose rows are not in id order: the
    # batches then walk the primary key from where the last one ended, not every state again
    state = func.coalesce(deliveries.c.state, "")
    finished = or_(state == "cancelled", and_(state == "delivered", delivered_later))
    return deliveries, and_(deliveries.c.updated_at < cutoff, finished)


def _attempts(cutoff: datetime) -> tuple[Table, ColumnElement[bool]]:
    later = aliased(delivery_attempts)
    superseded = exists().where(
        later.c.delivery_id == delivery_attempts.c.delivery_id,
        later.c.attempt > delivery_attempts.c.attempt,
    )
    return delivery_attempts, and_(delivery_attempts.c.finished_at < cutoff, superseded)


def _runs(cutoff: datetime) -> tuple[Table, ColumnElement[bool]]:
    later = aliased(runs)
    superseded = exists().where(later.c.flow == runs.c.flow, later.c.id > runs.c.id)
    return runs, and_(runs.c.status != "running", runs.c.started_at < cutoff, superseded)


def _rejections(cutoff: datetime) -> tuple[Table, ColumnElement[bool]]:
    return rejected, and_(rejected.c.status != "open", rejected.c.resolved_at < cutoff)


def _audit(cutoff: datetime) -> tuple[Table, ColumnElement[bool]]:
    current = select(records.c.version).where(records.c.id == audit.c.record_id).scalar_subquery()
    return audit, and_(audit.c.at < cutoff, audit.c.version < current)


def _idempotency_keys(cutoff: datetime) -> tuple[Table, ColumnElement[bool]]:
    return idempotency_keys, idempotency_keys.c.created_at < cutoff


def _schedule_fires(cutoff: datetime) -> tuple[Table, ColumnElement[bool]]:
    return schedule_fires, schedule_fires.c.claimed_at < cutoff


def _alert_history(cutoff: datetime) -> tuple[Table, ColumnElement[bool]]:
    later = aliased(alert_history)
    superseded = exists().where(
        later.c.rule == alert_history.c.rule,
        later.c.subject == alert_history.c.subject,
        later.c.id > alert_history.c.id,
    )
    return alert_history, and_(alert_history.c.at < cutoff, superseded)


def _admin_audit(cutoff: datetime) -> tuple[Table, ColumnElement[bool]]:
    return admin_audit, admin_audit.c.at < cutoff


def _reconciliations(cutoff: datetime) -> tuple[Table, ColumnElement[bool]]:
    # each flow's newest stays: the reconcile_differences alert rule reads it
    later = aliased(reconciliations)
    superseded = exists().where(
        later.c.flow == reconciliations.c.flow, later.c.id > reconciliations.c.id
    )
    return reconciliations, and_(reconciliations.c.started_at < cutoff, superseded)


_CANDIDATES: dict[str, Callable[[datetime], tuple[Table, ColumnElement[bool]]]] = {
    "deliveries": _deliveries,
    "attempts": _attempts,
    "runs": _runs,
    "rejections": _rejections,
    "audit": _audit,
    "idempotency_keys": _idempotency_keys,
    "schedule_fires": _schedule_fires,
    "alert_history": _alert_history,
    "admin_audit": _admin_audit,
    "reconciliations": _reconciliations,
}

#: The rules in the order a prune applies them: deliveries (with their attempts) first.
RULES: tuple[str, ...] = tuple(_CANDIDATES)


def prune(
    engine: Engine,
    ages: Mapping[str, timedelta | None],
    *,
    batch_size: int = 1000,
    dry_run: bool = False,
    at: datetime | None = None,
    budget_s: float | None = None,
    pause_s: float = 0.0,
    stop: threading.Event | None = None,
) -> list[Pruned]:
    """Apply the rules (name → age, ``None`` or missing: off); one :class:`Pruned` per rule of
    :data:`RULES`, then one for expired rows.

    ``budget_s`` bounds the time spent, ``stop`` ends it early (a rule left unfinished says
    so); ``pause_s`` is slept between batches so that writers on a SQLite store get the lock in
    between.
    """
    at = at or utc_now()
    deadline = None if budget_s is None else time.monotonic() + budget_s
    report: list[Pruned] = []
    for rule in RULES:
        age = ages.get(rule)
        if age is None:
            report.append(Pruned(rule, None, 0))
            continue
        table, where = _CANDIDATES[rule](at - age)
        if dry_run:
            with engine.connect() as conn:
                count = conn.execute(select(func.count()).select_from(table).where(where))
                report.append(Pruned(rule, at - age, int(count.scalar_one())))
            continue
        deleted, done = _in_batches(engine, table, where, batch_size, deadline, pause_s, stop)
        report.append(Pruned(rule, at - age, deleted, done))
    report.append(Pruned("expired", at, _expired(engine, at, dry_run)))
    return report


def _in_batches(
    engine: Engine,
    table: Table,
    where: ColumnElement[bool],
    batch_size: int,
    deadline: float | None,
    pause_s: float,
    stop: threading.Event | None,
) -> tuple[int, bool]:
    deleted = 0
    after = 0  # keyset: each batch goes on past the last id looked at, never rescans
    while True:
        if (deadline is not None and time.monotonic() >= deadline) or (stop and stop.is_set()):
            return deleted, False
        with engine.begin() as conn:
            batch = _batch(conn, table, and_(table.c.id > after, where), batch_size)
            ids = [int(row) for row in conn.execute(batch).scalars()]
            if ids:
                if table is deliveries:
                    conn.execute(
                        delete(delivery_attempts).where(delivery_attempts.c.delivery_id.in_(ids))
                    )
                conn.execute(delete(table).where(table.c.id.in_(ids)))
        deleted += len(ids)
        after = max(ids, default=after)
        if len(ids) < batch_size:
            return deleted, True
        if pause_s and stop is not None:
            stop.wait(pause_s)
        elif pause_s:
            time.sleep(pause_s)


def _batch(conn: Connection, table: Table, where: ColumnElement[bool], size: int) -> Select[Any]:
    query = select(table.c.id).where(where).order_by(table.c.id).limit(size)
    if conn.dialect.name == "postgresql":  # a row a worker or a retry holds is left for later
        query = query.with_for_update(of=table, skip_locked=True)
    return query


def _expired(engine: Engine, at: datetime, dry_run: bool) -> int:
    total = 0
    with engine.begin() if not dry_run else engine.connect() as conn:
        for table in _EXPIRING:
            gone = table.c.expires_at < at
            if dry_run:
                total += int(
                    conn.execute(select(func.count()).select_from(table).where(gone)).scalar_one()
                )
            else:
                total += int(conn.execute(delete(table).where(gone)).rowcount)
    return total
