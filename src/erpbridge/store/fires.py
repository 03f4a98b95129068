"""Fire times claimed once across every scheduler sharing the store (``schedule_fires``)."""

from __future__ import annotations

import logging
from datetime import datetime

from sqlalchemy import Engine, insert
from sqlalchemy.exc import IntegrityError

from erpbridge.store.runs import now
from erpbridge.store.tables import schedule_fires

__all__ = ["claim_fire"]

log = logging.getLogger(__name__)


def claim_fire(engine: Engine, name: str, fire: datetime, scheduler: str) -> int | None:
    """Claim ``name``'s fire at ``fire`` for ``scheduler``; its row id, or ``None`` when another
    scheduler took it first (the unique key lets exactly one insert win)."""
    try:
        with engine.begin() as conn:
            row = conn.execute(
                insert(schedule_fires).returning(schedule_fires.c.id),
                {"flow": name, "fire_time": fire, "scheduler": scheduler, "claimed_at": now()},
            )
            return int(row.scalar_one())
    except IntegrityError:
        log.debug("fire %s of %s was taken by another scheduler", fire, name)
        return None
