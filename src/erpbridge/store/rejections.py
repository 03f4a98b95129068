"""An operator's verdict on rejected records: dismiss them, with who and why.

A dismissed rejection leaves the open list and is never replayed; its payload, problems, who
dismissed it and the reason stay in the row (and the action in the admin audit). Replaying is
the runner's work (:meth:`erpbridge.engine.runner.FlowRunner.replay_rejected`).
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Connection, select, update

from erpbridge.pci import redact_card_numbers
from erpbridge.store.runs import now
from erpbridge.store.tables import rejected

__all__ = ["dismiss_rejections"]


def dismiss_rejections(conn: Connection, ids: Sequence[int], who: str, reason: str) -> list[int]:
    """Dismiss the open ones among ``ids`` (in the caller's transaction); return their ids.

    Rejections already replayed, superseded or dismissed are left as they are.
    """
    open_ids = [
        row.id
        for row in conn.execute(
            select(rejected.c.id).where(rejected.c.id.in_(list(ids)), rejected.c.status == "open")
        )
    ]
    if open_ids:
        conn.execute(
            update(rejected)
            .where(rejected.c.id.in_(open_ids), rejected.c.status == "open")
            .values(
                status="dismissed",
                resolved_at=now(),
                resolved_by=who[:255],
                note=redact_card_numbers(reason),
            )
        )
    return sorted(open_ids)
