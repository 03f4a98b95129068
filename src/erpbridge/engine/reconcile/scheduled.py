"""Scheduled reconciliations: a flow's ``reconcile.schedule`` (or ``interval``) fired by a
thread of ``erpbridge run`` of its own (beside the scheduler, whose heartbeat must not wait a
minute for a comparison), each fire once however many schedulers run (a
``schedule_fires`` row named ``reconcile:<flow>``, as for scheduled flows). The result is
stored; the ``reconcile_differences`` alert rule tells someone when it found differences."""

from __future__ import annotations

import logging
import threading
from datetime import datetime

from sqlalchemy import Engine

from erpbridge.config.loader import LoadedConfig
from erpbridge.engine.reconcile.service import Outcome, reconcile_flow
from erpbridge.schedules import Schedule
from erpbridge.store.fires import claim_fire

__all__ = ["FIRE_PREFIX", "ReconcileSchedule"]

log = logging.getLogger(__name__)

#: The ``schedule_fires.flow`` of a flow's scheduled reconciliation.
FIRE_PREFIX = "reconcile:"


class ReconcileSchedule:
    """The configuration's scheduled reconciliations, fired by :meth:`tick`."""

    def __init__(
        self,
        config: LoadedConfig,
        engine: Engine,
        name: str,
        stopping: threading.Event | None = None,
    ) -> None:
        self.config = config
        self.engine = engine
        self.name = name
        self.stopping = stopping
        enabled = {f.name for f in config.model.flows if f.enabled}
        self.schedules: dict[str, Schedule] = {
            flow: plan.schedule
            for flow, plan in config.reconcile.items()
            if plan.schedule is not None and flow in enabled
        }
        self._next: dict[str, datetime] = {}

    def tick(self, moment: datetime) -> list[Outcome]:
        """Reconcile every flow whose fire time has come (and whose fire no one else took)."""
        done = []
        for flow, schedule in self.schedules.items():
            upcoming = self._next.get(flow)
            if upcoming is None:  # started between fires: wait for the next one
                self._next[flow] = schedule.next_after(moment)
                continue
            if moment < upcoming:
                continue
            fire = schedule.last_at_or_before(moment)
            self._next[flow] = schedule.next_after(moment)
            if claim_fire(self.engine, f"{FIRE_PREFIX}{flow}", fire, self.name) is None:
                continue
            plan = self.config.reconcile[flow]
            done.append(
                reconcile_flow(
                    self.config, self.engine, plan, trigger="schedule", stopping=self.stopping
                )
            )
        return done
