"""Fire scheduled IN flows: each fire time runs once, however many schedulers are running.

A scheduler claims a fire by inserting (flow, fire time) into ``schedule_fires``; the unique key
lets exactly one process win, the others skip it. Fires missed while nothing was running
collapse into one run at the latest missed fire time. A scheduler started between two fire
times waits for the next one rather than running at start-up. A fire whose flow is still
running (a long run, or ``erpbridge sync`` by hand) is skipped and logged: the flow's run lock
lets only one run at a time move its cursor. The fire times of a paused flow
(``store.switches``) pass without a run; after the resume it runs at its next fire time.
"""

from __future__ import annotations

import logging
from datetime import datetime

from sqlalchemy import Engine, update

from erpbridge.config.loader import LoadedConfig
from erpbridge.engine.runner import FlowRunner, RunResult
from erpbridge.errors import FlowBusy, FlowPaused
from erpbridge.schedules import Schedule
from erpbridge.store.fires import claim_fire
from erpbridge.store.runs import now
from erpbridge.store.switches import paused_flows
from erpbridge.store.tables import schedule_fires

__all__ = ["Scheduler"]

log = logging.getLogger(__name__)


class Scheduler:
    """Runs the configuration's scheduled IN flows at their fire times."""

    def __init__(self, config: LoadedConfig, engine: Engine, runner: FlowRunner, name: str) -> None:
        self.engine = engine
        self.runner = runner
        self.name = name
        self.schedules: dict[str, Schedule] = {}
        for flow in config.model.flows:
            schedule = flow.schedule()
            if flow.enabled and flow.direction == "in" and schedule is not None:
                self.schedules[flow.name] = schedule
        self._next: dict[str, datetime] = {}

    def tick(self, moment: datetime | None = None) -> list[RunResult]:
        """Run every flow whose fire time has come (and whose fire no one else took)."""
        moment = moment or now()
        results = []
        self.runner.close_pending()  # runs a store outage ended, marked failed once it is back
        paused: set[str] = set()
        if self.schedules:
            with self.engine.connect() as conn:
                paused = paused_flows(conn)
        for name, schedule in self.schedules.items():
            upcoming = self._next.get(name)
            if upcoming is None:
                self._next[name] = schedule.next_after(moment)
                continue
            if moment < upcoming:
                continue
            fire = schedule.last_at_or_before(moment)
            self._next[name] = schedule.next_after(moment)
            if name in paused:
                log.debug("scheduler: fire %s of flow %r skipped: the flow is paused", fire, name)
                continue
            fire_id = claim_fire(self.engine, name, fire, self.name)
            if fire_id is None:
                continue
            try:
                result = self.runner.run(name)
            except (FlowBusy, FlowPaused) as exc:  # paused between the check and the run
                log.warning("scheduler: fire %s of flow %r skipped: %s", fire, name, exc)
                continue
            with self.engine.begin() as conn:
                conn.execute(
                    update(schedule_fires)
                    .where(schedule_fires.c.id == fire_id)
                    .values(run_id=result.run_id)
                )
            results.append(result)
        return results
