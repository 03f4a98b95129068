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

from sqlalchemy import Engine, delete
from sqlalchemy.exc import IntegrityError

from erpbridge.store.tables import webhook_signatures

__all__ = ["claim_signature", "release_signature"]


def _digest(signature: str) -> str:
    return hashlib.sha256(signature.encode()).hexdigest()


def claim_signature(
    engine: Engine, channel: str, signature: str, *, at: datetime, expires_at: datetime
) -> bool:
    """Record ``signature`` of ``channel`` until ``expires_at``; ``False`` when it is recorded
    already (a replay). Atomic across processes: the primary key decides. Rows expired at
    ``at`` are deleted first."""
    try:
        with engine.begin() as conn:
            conn.execute(delete(webhook_signatures).where(webhook_signatures.c.expires_at < at))
            conn.execute(
                webhook_signatures.insert().values(
                    channel=channel, digest=_digest(signature), expires_at=expires_at
                )
            )
    except IntegrityError:
        return False
    return True


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
