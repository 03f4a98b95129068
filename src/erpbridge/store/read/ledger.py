"""Runs, deliveries, rejected records and conflicts as the CLI and the API list them.

One query per listing, every filter (the reader's channels included) in SQL before ``LIMIT``.
A row outside the reader's scope is not found, exactly like a row that does not exist.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, Literal

from sqlalchemy import ColumnElement, Connection, Row, Table, and_, not_, or_, select

from erpbridge.store.read.scope import Scope
from erpbridge.store.states import ConflictStatus, DeliveryState, RejectionStatus, RunStatus
from erpbridge.store.tables import conflicts, deliveries, delivery_attempts, rejected, runs

__all__ = [
    "Order",
    "conflict_by_id",
    "conflicts_page",
    "deliveries_page",
    "delivery_attempts_of",
    "delivery_by_id",
    "rejected_by_id",
    "rejected_page",
    "run_by_id",
    "runs_page",
]

#: Newest rows first (the default everywhere), or oldest first (a work list to go through).
Order = Literal["newest", "oldest"]


def _page(
    conn: Connection,
    table: Table,
    scope: Scope,
    conditions: Sequence[ColumnElement[bool] | None],
    limit: int | None,
    order: Order,
) -> list[Row[Any]]:
    """The rows of ``table`` that match every condition and the scope, ``limit`` of them."""
    wanted = [c for c in (*conditions, scope.channel_condition(table.c.channel)) if c is not None]
    sort = table.c.id.desc() if order == "newest" else table.c.id.asc()
    query = select(table).where(*wanted).order_by(sort)
    if limit is not None:
        query = query.limit(limit)
    return list(conn.execute(query))


def _by_id(conn: Connection, table: Table, scope: Scope, row_id: int) -> Row[Any] | None:
    rows = _page(conn, table, scope, [table.c.id == row_id], 1, "newest")
    return rows[0] if rows else None


def runs_page(
    conn: Connection,
    scope: Scope,
    *,
    flow: str | None = None,
    status: RunStatus | None = None,
    limit: int = 50,
    before_id: int | None = None,
) -> list[Row[Any]]:
    """Recent runs, newest first (``before_id``: the keyset of the next page)."""
    conditions = [
        runs.c.flow == flow if flow else None,
        _run_status(status),
        runs.c.id < before_id if before_id else None,
    ]
    return _page(conn, runs, scope, conditions, limit, "newest")


def _run_status(status: RunStatus | None) -> ColumnElement[bool] | None:
    """Runs whose status is shown as ``status``: a ``running`` run past its lease has lost its
    process and is ``interrupted`` (see store.runlease; the same-host check of a dead process
    id is left to the display, so a filter may lag it by one lease)."""
    if status is None:
        return None
    moment = datetime.now(UTC)
    alive = and_(runs.c.lease_until.is_not(None), runs.c.lease_until >= moment)
    if status == "running":
        return and_(runs.c.status == "running", alive)
    if status == "interrupted":
        return or_(runs.c.status == "interrupted", and_(runs.c.status == "running", not_(alive)))
    return runs.c.status == status


def run_by_id(conn: Connection, scope: Scope, run_id: int) -> Row[Any] | None:
    """One run, or ``None`` when it does not exist or is outside ``scope``."""
    return _by_id(conn, runs, scope, run_id)


def deliveries_page(
    conn: Connection,
    scope: Scope,
    *,
    state: DeliveryState | None = None,
    flow: str | None = None,
    limit: int = 50,
    created_before: datetime | None = None,
    before_id: int | None = None,
) -> list[Row[Any]]:
    """The delivery ledger, newest first; ``created_before`` keeps those at least that old,
    ``before_id`` is the keyset of the next page (ids below it)."""
    conditions = [
        deliveries.c.state == state if state else None,
        deliveries.c.flow == flow if flow else None,
        deliveries.c.created_at <= created_before if created_before else None,
        deliveries.c.id < before_id if before_id else None,
    ]
    return _page(conn, deliveries, scope, conditions, limit, "newest")


def delivery_attempts_of(conn: Connection, delivery_id: int) -> list[Row[Any]]:
    """Every attempt of one delivery, first first (look the delivery up in scope before)."""
    query = (
        select(delivery_attempts)
        .where(delivery_attempts.c.delivery_id == delivery_id)
        .order_by(delivery_attempts.c.attempt, delivery_attempts.c.id)
    )
    return list(conn.execute(query))


def delivery_by_id(conn: Connection, scope: Scope, delivery_id: int) -> Row[Any] | None:
    """One delivery, or ``None`` when it does not exist or is outside ``scope``."""
    return _by_id(conn, deliveries, scope, delivery_id)


def rejected_page(
    conn: Connection,
    scope: Scope,
    *,
    flow: str | None = None,
    status: RejectionStatus = "open",
    limit: int | None = 50,
    order: Order = "newest",
    before_id: int | None = None,
) -> list[Row[Any]]:
    """Rejected records of one status (open by default; ``before_id``: the next page's keyset;
    ``limit=None``: all of them)."""
    conditions = [
        rejected.c.status == status,
        rejected.c.flow == flow if flow else None,
        rejected.c.id < before_id if before_id else None,
    ]
    return _page(conn, rejected, scope, conditions, limit, order)


def rejected_by_id(conn: Connection, scope: Scope, rejection_id: int) -> Row[Any] | None:
    """One rejected record (with its payload), if the reader's scope covers it."""
    return _by_id(conn, rejected, scope, rejection_id)


def conflict_by_id(conn: Connection, scope: Scope, conflict_id: int) -> Row[Any] | None:
    """One two-way conflict (with the incoming payload), if the reader's scope covers it."""
    return _by_id(conn, conflicts, scope, conflict_id)


def conflicts_page(
    conn: Connection,
    scope: Scope,
    *,
    flow: str | None = None,
    status: ConflictStatus | None = "open",
    limit: int | None = 50,
    order: Order = "newest",
    before_id: int | None = None,
) -> list[Row[Any]]:
    """Two-way conflicts (open ones by default; ``status=None``: settled ones too)."""
    conditions = [
        conflicts.c.status == status if status else None,
        conflicts.c.flow == flow if flow else None,
        conflicts.c.id < before_id if before_id else None,
    ]
    return _page(conn, conflicts, scope, conditions, limit, order)
