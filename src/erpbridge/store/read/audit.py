"""The admin audit as the API lists it, within the reader's scope.

An audit row names its target as a string whose meaning depends on the action; a restricted
reader sees a row when it is their own action or its target is theirs:

- ``channel.*``: the target is a channel, or ``channel/credential``;
- ``flow.*``, ``delivery.retry_dead``, ``rejected.replay`` and ``conflict.resolve``: the target
  is a flow (of its channels, by the
  configuration);
- ``delivery.retry`` and ``delivery.cancel``: the target is a delivery id (of its channels).

Any other action (clients, secrets, whatever comes later) is visible to unrestricted readers
and to its own actor only: unknown means not theirs.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, Connection, Row, String, cast, false, or_, select

from erpbridge.store.read.scope import Scope
from erpbridge.store.tables import admin_audit, deliveries

__all__ = ["audit_page"]

_FLOW_ACTIONS = (
    "flow.enable",
    "flow.disable",
    "flow.pause",
    "flow.resume",
    "flow.run",
    "flow.cursor_reset",
    "delivery.retry_dead",
    "rejected.replay",
    "conflict.resolve",
)
_DELIVERY_ACTIONS = ("delivery.retry", "delivery.cancel")


def _theirs(scope: Scope) -> ColumnElement[bool] | None:
    if scope.channels is None:
        return None
    action, target = admin_audit.c.action, admin_audit.c.target
    channels = sorted(scope.channels)
    about_channel = or_(
        target.in_(channels), *(target.startswith(f"{c}/", autoescape=True) for c in channels)
    )
    own_deliveries = select(cast(deliveries.c.id, String)).where(deliveries.c.channel.in_(channels))
    return or_(
        admin_audit.c.actor == scope.actor if scope.actor else false(),
        action.startswith("channel.", autoescape=True) & about_channel,
        action.in_(_FLOW_ACTIONS) & target.in_(sorted(scope.flows)),
        action.in_(_DELIVERY_ACTIONS) & target.in_(own_deliveries),
    )


def audit_page(
    conn: Connection,
    scope: Scope,
    *,
    actor: str | None = None,
    action: str | None = None,
    target: str | None = None,
    limit: int = 100,
    before_id: int | None = None,
) -> list[Row[Any]]:
    """Administrative actions, newest first (``before_id``: the next page's keyset)."""
    conditions = [
        admin_audit.c.actor == actor if actor else None,
        admin_audit.c.action == action if action else None,
        admin_audit.c.target == target if target else None,
        admin_audit.c.id < before_id if before_id else None,
        _theirs(scope),
    ]
    query = (
        select(admin_audit)
        .where(*(c for c in conditions if c is not None))
        .order_by(admin_audit.c.id.desc())
        .limit(limit)
    )
    return list(conn.execute(query))
