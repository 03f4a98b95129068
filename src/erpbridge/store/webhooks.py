"""Signatures of accepted webhooks, so that a replay inside the timestamp tolerance is refused.

A signed webhook carries its signing time; outside the tolerance it is refused as stale. Inside,
the same signature again is a captured request sent a second time: :func:`claim_signature`
records each accepted signature until it expires (its signing time plus the tolerance) in the
hub store, so every API process sees it, and answers ``False`` for one already there. Expired
rows are deleted as new ones arrive.
"""

from __future__ import annotations

import hashlib
from datetime import datetime

from sqlalchemy import Connection, Engine, delete

from erpbridge.store.seenonce import record_once, record_once_in
from erpbridge.store.tables import webhook_signatures

__all__ = ["claim_signature", "claim_signature_in", "release_signature"]


def _digest(signature: str) -> str:
    return hashlib.sha256(signature.encode()).hexdigest()


def claim_signature(
    engine: Engine, channel: str, signature: str, *, at: datetime, expires_at: datetime
) -> bool:
    """Record ``signature`` of ``channel`` until ``expires_at``; ``False`` when it is recorded
    already (a replay). Atomic across processes: the primary key decides. Rows expired at
    ``at`` are deleted first."""
    row = {"channel": channel, "digest": _digest(signature), "expires_at": expires_at}
    return record_once(engine, webhook_signatures, row, at=at)


def claim_signature_in(
    conn: Connection, channel: str, signature: str, *, at: datetime, expires_at: datetime
) -> bool:
    """:func:`claim_signature` in the caller's transaction (the one storing the webhook's
    records, so that a webhook whose records are not stored has not spent its signature)."""
    row = {"channel": channel, "digest": _digest(signature), "expires_at": expires_at}
    return record_once_in(conn, webhook_signatures, row, at=at)


def release_signature(engine: Engine, channel: str, signature: str) -> None:
    """Forget ``signature`` again: its webhook was not accepted (rejected by the mapping, flow
    paused), so the sender may send it once more."""
    with engine.begin() as conn:
        conn.execute(
            delete(webhook_signatures).where(
                webhook_signatures.c.channel == channel,
                webhook_signatures.c.digest == _digest(signature),
            )
        )
