"""Reconciliations as the CLI, the API, the back office and the alert rules read them."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, Row, func, select

from erpbridge.store.read.scope import Scope
from erpbridge.store.tables import reconciliations

__all__ = ["latest_reconciliations", "reconciliation_by_id", "reconciliations_page"]


def reconciliations_page(
    conn: Connection,
    scope: Scope,
    *,
    flow: str | None = None,
    limit: int = 50,
    before_id: int | None = None,
) -> list[Row[Any]]:
    """Reconciliations, newest first (``before_id``: the keyset of the next page)."""
    table = reconciliations
    conditions = [
        c
        for c in (
            table.c.flow == flow if flow else None,
            table.c.id < before_id if before_id else None,
            scope.channel_condition(table.c.channel),
        )
        if c is not None
    ]
    query = select(table).where(*conditions).order_by(table.c.id.desc()).limit(limit)
    return list(conn.execute(query))


def reconciliation_by_id(conn: Connection, scope: Scope, row_id: int) -> Row[Any] | None:
    """One reconciliation, or ``None`` when it does not exist or is outside ``scope``."""
    table = reconciliations
    conditions = [table.c.id == row_id]
    visible = scope.channel_condition(table.c.channel)
    if visible is not None:
        conditions.append(visible)
    return conn.execute(select(table).where(*conditions)).first()


def latest_reconciliations(conn: Connection) -> list[Row[Any]]:
    """The newest reconciliation of each flow."""
    table = reconciliations
    newest = select(func.max(table.c.id)).group_by(table.c.flow).scalar_subquery()
    return list(conn.execute(select(table).where(table.c.id.in_(newest)).order_by(table.c.flow)))
