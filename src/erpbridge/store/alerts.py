"""Alert state and history writes: each (rule, subject) moves ``ok → firing → ok`` by
compare-and-set on its ``version``, so that when several schedulers evaluate the rules against
one store, exactly one of them claims each notification (the others see the version moved).

The claim is written before the notifiers are called; what they answered is added to the
history row afterwards (:func:`record_notified`). A claim whose notifications all failed is
given back (:func:`release_claim`), so the next evaluation sends it again.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import orjson
from sqlalchemy import Connection, Engine, select
from sqlalchemy.exc import IntegrityError

from erpbridge.store.tables import alert_history, alert_state
from erpbridge.store.timestamps import aware

__all__ = [
    "AlertClaim",
    "AlertRow",
    "alert_rows",
    "claim_fired",
    "claim_repeated",
    "claim_resolved",
    "record_notified",
    "release_claim",
]


@dataclass(frozen=True, slots=True)
class AlertRow:
    """The stored state of one rule for one subject."""

    rule: str
    subject: str
    state: str
    since: datetime
    last_sent_at: datetime | None
    sent: int
    message: str | None
    version: int


@dataclass(frozen=True, slots=True)
class AlertClaim:
    """A notification this process won the right to send: ``kind`` is ``fired``, ``repeated``
    or ``resolved``; ``history_id`` is its history row; ``previous_sent_at`` is what
    :func:`release_claim` puts back."""

    rule: str
    subject: str
    kind: str
    since: datetime
    message: str
    history_id: int
    version: int
    previous_sent_at: datetime | None


def alert_rows(conn: Connection, rule: str) -> dict[str, AlertRow]:
    """Every subject's stored state of ``rule``."""
    found: dict[str, AlertRow] = {}
    for row in conn.execute(select(alert_state).where(alert_state.c.rule == rule)):
        found[row.subject] = AlertRow(
            row.rule,
            row.subject,
            row.state,
            aware(row.since) or row.since,
            aware(row.last_sent_at),
            row.sent,
            row.message,
            row.version,
        )
    return found


def _history(conn: Connection, rule: str, subject: str, kind: str, at: datetime, msg: str) -> int:
    inserted = conn.execute(
        alert_history.insert().values(rule=rule, subject=subject, kind=kind, at=at, message=msg)
    )
    key = inserted.inserted_primary_key
    assert key is not None
    return int(key[0])


def claim_fired(
    engine: Engine, rule: str, subject: str, message: str, at: datetime, old: AlertRow | None
) -> AlertClaim | None:
    """``subject`` starts firing (``old``: its resolved state, or none yet). ``None``: another
    process claimed it first."""
    with engine.begin() as conn:
        values = {
            "state": "firing",
            "since": at,
            "last_sent_at": at,
            "sent": 1,
            "message": message,
        }
        if old is None:
            try:
                with conn.begin_nested():
                    conn.execute(
                        alert_state.insert().values(rule=rule, subject=subject, version=1, **values)
                    )
            except IntegrityError:
                return None
            version = 1
        else:
            version = old.version + 1
            moved = conn.execute(
                alert_state.update()
                .where(
                    alert_state.c.rule == rule,
                    alert_state.c.subject == subject,
                    alert_state.c.version == old.version,
                    alert_state.c.state == "ok",
                )
                .values(version=version, **values)
            )
            if moved.rowcount != 1:
                return None
        history_id = _history(conn, rule, subject, "fired", at, message)
    return AlertClaim(rule, subject, "fired", at, message, history_id, version, None)


def claim_repeated(
    engine: Engine, old: AlertRow, message: str, at: datetime, kind: str = "repeated"
) -> AlertClaim | None:
    """A firing alert is sent again (its cooldown passed, or its first sending failed:
    ``kind='fired'``)."""
    with engine.begin() as conn:
        moved = conn.execute(
            alert_state.update()
            .where(
                alert_state.c.rule == old.rule,
                alert_state.c.subject == old.subject,
                alert_state.c.version == old.version,
            )
            .values(version=old.version + 1, last_sent_at=at, sent=old.sent + 1, message=message)
        )
        if moved.rowcount != 1:
            return None
        history_id = _history(conn, old.rule, old.subject, kind, at, message)
    return AlertClaim(
        old.rule, old.subject, kind, old.since, message, history_id, old.version + 1,
        old.last_sent_at,
    )  # fmt: skip


def claim_resolved(engine: Engine, old: AlertRow, message: str, at: datetime) -> AlertClaim | None:
    """A firing alert cleared."""
    with engine.begin() as conn:
        moved = conn.execute(
            alert_state.update()
            .where(
                alert_state.c.rule == old.rule,
                alert_state.c.subject == old.subject,
                alert_state.c.version == old.version,
                alert_state.c.state == "firing",
            )
            .values(version=old.version + 1, state="ok", since=at, last_sent_at=at, message=message)
        )
        if moved.rowcount != 1:
            return None
        history_id = _history(conn, old.rule, old.subject, "resolved", at, message)
    return AlertClaim(
        old.rule, old.subject, "resolved", old.since, message, history_id, old.version + 1,
        old.last_sent_at,
    )  # fmt: skip


def record_notified(engine: Engine, claim: AlertClaim, answers: dict[str, str]) -> None:
    """What each notifier answered (``ok`` or the error) for the claim's history row."""
    with engine.begin() as conn:
        conn.execute(
            alert_history.update()
            .where(alert_history.c.id == claim.history_id)
            .values(notified=orjson.dumps(answers).decode())
        )


def release_claim(engine: Engine, claim: AlertClaim) -> None:
    """Every notifier failed: mark the state unsent (``last_sent_at`` back, a resolution back to
    firing) so that the next evaluation tries again. A no-op if the state moved meanwhile."""
    values: dict[str, object] = {"version": claim.version + 1}
    if claim.kind == "resolved":
        values.update(state="firing", since=claim.since, last_sent_at=claim.previous_sent_at)
    else:
        values.update(last_sent_at=claim.previous_sent_at, sent=alert_state.c.sent - 1)
    with engine.begin() as conn:
        conn.execute(
            alert_state.update()
            .where(
                alert_state.c.rule == claim.rule,
                alert_state.c.subject == claim.subject,
                alert_state.c.version == claim.version,
            )
            .values(**values)
        )
