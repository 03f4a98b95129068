"""The scheduled prune of ``hub.retention``: one process at a time, in short batches.

Its fire times are aligned like an interval flow's (every ``hub.retention.every`` from the Unix
epoch) and claimed in ``schedule_fires`` under the name ``(retention)``, which no flow can have:
however many ``erpbridge run`` processes share the store, one prunes at each fire. Between
batches it sleeps a little so that on SQLite the workers' writes get the lock in between; a
prune that outlasts its budget stops and goes on at the next tick.
"""

from __future__ import annotations

import logging
import threading
from datetime import datetime

from sqlalchemy import Engine

from erpbridge.config.retention import RetentionPolicy
from erpbridge.schedules import Schedule
from erpbridge.store.fires import claim_fire
from erpbridge.store.retention import prune
from erpbridge.store.runs import now

__all__ = ["FIRE_NAME", "RetentionJob"]

log = logging.getLogger(__name__)

#: The job's name in ``schedule_fires`` (flow names start with a letter: no flow has this one).
FIRE_NAME = "(retention)"


class RetentionJob:
    """Prunes at its fire times; :meth:`tick` is called by the scheduler thread's loop."""

    def __init__(
        self,
        engine: Engine,
        policy: RetentionPolicy,
        name: str,
        *,
        budget_s: float = 30.0,
        pause_s: float = 0.05,
        stop: threading.Event | None = None,
    ) -> None:
        self.engine = engine
        self.policy = policy
        self.name = name
        self.budget_s = budget_s
        self.pause_s = pause_s
        self.stop = stop
        self.schedule = Schedule(interval=policy.interval())
        self._next: datetime | None = None
        self._unfinished = False

    def tick(self, moment: datetime | None = None) -> int | None:
        """Prune if a fire time has come and this process claimed it (or a prune is
        unfinished); the rows deleted, ``None`` when it was not this tick's turn."""
        moment = moment or now()
        if self._next is None:  # started between two fire times: wait for the next one
            self._next = self.schedule.next_after(moment)
            return None
        if not self._unfinished:
            if moment < self._next:
                return None
            fire = self.schedule.last_at_or_before(moment)
            self._next = self.schedule.next_after(moment)
            if claim_fire(self.engine, FIRE_NAME, fire, self.name) is None:
                return None
        report = prune(
            self.engine,
            self.policy.ages(),
            batch_size=self.policy.batch_size,
            budget_s=self.budget_s,
            pause_s=self.pause_s,
            stop=self.stop,
        )
        self._unfinished = not all(item.done for item in report)
        deleted = {item.rule: item.rows for item in report if item.rows}
        if deleted or self._unfinished:
            log.info(
                "retention: pruned %s%s",
                ", ".join(f"{rows} {rule}" for rule, rows in deleted.items()) or "nothing",
                " (budget spent: going on at the next tick)" if self._unfinished else "",
            )
        return sum(deleted.values())
