"""A live version supersedes a backfilled one of the same record still waiting to go out.

Kept apart from :mod:`erpbridge.store.backfill` because the outbox (``store.deliveries``)
calls it on every enqueue, and the backfill itself builds on the outbox.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import Connection, update

from erpbridge.store.bulk import key_chunks, one_of
from erpbridge.store.tables import deliveries

__all__ = ["BACKFILL_PRIORITY", "supersede_backfilled"]

#: Backfilled deliveries: below any flow's ``priority`` (-100..100), so claims prefer live ones.
BACKFILL_PRIORITY = -1000


def supersede_backfilled(conn: Connection, ordering_keys: Sequence[str], at: datetime) -> int:
    """Cancel backfilled deliveries still waiting for keys that just got a live version.

    The live version is newer than anything a backfill queued for the key (a backfill queues
    the current version of its moment) and a full snapshot, so the older one is not needed;
    left in place it would hold the live one behind the backfill's queue. Returns how many.
    """
    cancelled = 0
    for chunk in key_chunks(conn, list(ordering_keys)):
        result = conn.execute(
            update(deliveries)
            .where(
                one_of(conn, deliveries.c.ordering_key, chunk),
                deliveries.c.priority == BACKFILL_PRIORITY,
                deliveries.c.state.in_(("pending", "failed")),
            )
            .values(
                state="cancelled",
                updated_at=at,
                last_error="superseded: a newer version of this record was queued live",
            )
        )
        cancelled += int(result.rowcount)
    return cancelled
