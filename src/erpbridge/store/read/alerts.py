"""Alerts as the API, the CLI and the back office read them: firing now, and the history."""

from __future__ import annotations

from typing import Any

import orjson
from sqlalchemy import Connection, select

from erpbridge.store.tables import alert_history, alert_state
from erpbridge.store.timestamps import aware

__all__ = ["alert_history_page", "firing_alerts", "firing_pairs"]


def _iso(value: Any) -> str | None:
    stamp = aware(value)
    return None if stamp is None else stamp.isoformat()


def firing_alerts(conn: Connection, rules: set[str] | None = None) -> list[dict[str, Any]]:
    """The alerts firing now (rule, subject, since, message, notifications sent), by rule.

    ``rules``: only these (the rules the configuration still declares); ``None``: every one.
    """
    query = (
        select(alert_state)
        .where(alert_state.c.state == "firing")
        .order_by(alert_state.c.rule, alert_state.c.subject)
    )
    return [
        {
            "rule": row.rule,
            "subject": row.subject,
            "since": _iso(row.since),
            "message": row.message,
            "notifications": row.sent,
        }
        for row in conn.execute(query)
        if rules is None or row.rule in rules
    ]


def firing_pairs(conn: Connection) -> list[tuple[str, str]]:
    """(rule, subject) of every alert firing now (the metrics' gauge)."""
    return [(a["rule"], a["subject"]) for a in firing_alerts(conn)]


def alert_history_page(
    conn: Connection, *, rule: str | None = None, limit: int = 100
) -> list[dict[str, Any]]:
    """What fired, repeated and resolved, newest first, with what each notifier answered
    (``notified``: notifier → ``ok`` or the error; ``None`` while being sent)."""
    query = select(alert_history).order_by(alert_history.c.id.desc()).limit(limit)
    if rule is not None:
        query = query.where(alert_history.c.rule == rule)
    return [
        {
            "id": row.id,
            "rule": row.rule,
            "subject": row.subject,
            "kind": row.kind,
            "at": _iso(row.at),
            "message": row.message,
            "notified": orjson.loads(row.notified) if row.notified else None,
        }
        for row in conn.execute(query)
    ]
