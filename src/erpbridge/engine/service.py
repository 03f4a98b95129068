"""The embedded shape: scheduler and worker threads in one process, woken at once by changes.

On SQLite a commit that queues deliveries wakes the worker through an in-process event; on
PostgreSQL the outbox's ``NOTIFY`` reaches every process that listens, so a worker started
with ``erpbridge worker`` on another machine wakes as fast. Without either, workers poll.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from sqlalchemy import Engine, text
from sqlalchemy.exc import OperationalError

from erpbridge.config.loader import LoadedConfig
from erpbridge.engine.alerting import AlertEvaluator
from erpbridge.engine.backfill import Filler, backfill_new_flows
from erpbridge.engine.failures import FailureLog
from erpbridge.engine.reconcile.scheduled import ReconcileSchedule
from erpbridge.engine.retention import RetentionJob
from erpbridge.engine.runner import FlowRunner
from erpbridge.engine.scheduler import Scheduler
from erpbridge.engine.worker import Worker, worker_name
from erpbridge.store.deliveries import WAKE_CHANNEL
from erpbridge.store.outage import masked_url
from erpbridge.store.runs import now

__all__ = ["COALESCE_S", "Service", "WakeListener", "worker_loop"]

log = logging.getLogger(__name__)

#: Seconds a woken worker lets further commits gather before it claims.
COALESCE_S = 0.01


class WakeListener:
    """LISTENs for the outbox's NOTIFY on PostgreSQL and sets ``wake`` (and ``also``); a no-op
    elsewhere."""

    def __init__(
        self,
        engine: Engine,
        wake: threading.Event,
        stop: threading.Event,
        also: tuple[threading.Event, ...] = (),
    ) -> None:
        self.engine = engine
        self.wakes = (wake, *also)
        self.stop = stop
        self.thread: threading.Thread | None = None
        if engine.dialect.name == "postgresql":
            self.thread = threading.Thread(target=self._listen, name="wake-listener", daemon=True)
            self.thread.start()

    def _listen(self) -> None:
        import psycopg  # only with the postgres extra

        conninfo = self.engine.url.set(drivername="postgresql").render_as_string(
            hide_password=False
        )
        failures = FailureLog(log, "wake listener")
        while not self.stop.is_set():
            try:
                with psycopg.connect(conninfo, autocommit=True) as conn:
                    conn.execute(f"LISTEN {WAKE_CHANNEL}")
                    failures.recovered()
                    while not self.stop.is_set():
                        for _ in conn.notifies(timeout=1.0, stop_after=1):
                            for wake in self.wakes:
                                wake.set()
            except psycopg.Error as exc:  # the store went away: poll until it is back
                failures.failed(_Outage(exc), masked_url(self.engine))
                self.stop.wait(1.0)


class _Outage(OperationalError):
    """A psycopg error of the wake listener's own connection, seen as a store outage."""

    def __init__(self, exc: Exception) -> None:
        super().__init__(None, None, exc)


def worker_loop(
    worker: Worker | Callable[[], Worker],
    wake: threading.Event,
    stop: threading.Event,
    interval: float,
    beat: dict[str, float],
    coalesce_s: float = COALESCE_S,
) -> None:
    """Deliver until ``stop``; sleep ``interval`` when idle unless ``wake`` is set.

    ``worker`` may be a function giving the current worker: a reloaded configuration's worker
    takes over between two passes (a pass finishes with the configuration it claimed under),
    and the old one's transports are closed.

    Woken, the worker waits ``coalesce_s`` more before it claims: the commits of those few
    milliseconds (events arrive one by one) are claimed and written as one batch, instead of a
    pass (and a claim) per commit.

    A pass that fails (the hub store is down, a bug) is logged once, then counted, and the loop
    goes on: one broken pass must not stop the service.
    """
    current = worker if callable(worker) and not isinstance(worker, Worker) else None
    active = worker if isinstance(worker, Worker) else worker()
    failures = FailureLog(log, f"worker {active.name}")
    while not stop.is_set():
        wake.clear()
        if current is not None and current() is not active:
            active.close()
            active = current()
        try:
            active.run_once()
        except Exception as exc:  # noqa: BLE001 - logged once and counted by FailureLog
            failures.failed(exc, masked_url(active.engine))
        else:
            failures.recovered()
        beat["worker"] = time.monotonic()
        if not stop.is_set() and wake.wait(interval) and coalesce_s:
            stop.wait(coalesce_s)


class Service:
    """Scheduler + worker threads of ``erpbridge run``, with their health."""

    def __init__(
        self,
        config: LoadedConfig,
        engine: Engine,
        *,
        interval: float = 1.0,
        lease: timedelta = timedelta(seconds=60),
    ) -> None:
        self.engine = engine
        self.interval = interval
        self.wake = threading.Event()
        #: Wakes the live lane: a worker of its own for live changes only (issue 21), so that a
        #: live change never waits for a batch of backfilled deliveries being written.
        self.live_wake = threading.Event()
        self.stop = threading.Event()
        self.runner = FlowRunner(config, engine, on_queued=self.queued)
        self._gate = threading.Lock()
        self.worker, self.live = self._workers(config, worker_name(), lease)
        self.scheduler = Scheduler(config, engine, self.runner, self.worker.name)
        self.retention = RetentionJob(
            engine, config.model.hub.retention, self.worker.name, stop=self.stop
        )
        self.alerts = AlertEvaluator(config, engine)
        #: Scheduled reconciliations, in a thread of their own: one can take a minute, and the
        #: scheduler's heartbeat (``/healthz``) must not wait for it.
        self.reconciliations = ReconcileSchedule(
            config, engine, self.worker.name, stopping=self.stop
        )
        #: ``backfill: on_create`` flows are filled by a thread of their own at start.
        self.filler = Filler(config, engine, on_queued=self.wake.set)
        self.beat: dict[str, float] = {}
        self._live_beat: dict[str, float] = {}
        self._threads: list[threading.Thread] = []
        self._listener: WakeListener | None = None

    def start(self) -> None:
        """Start the scheduler, the worker and (PostgreSQL) the wake listener."""
        self._listener = WakeListener(self.engine, self.wake, self.stop, (self.live_wake,))
        loops = [
            ("scheduler", self._schedule),
            ("worker", self._deliver),
            ("worker-live", self._deliver_live),
            ("retention", self._prune),
            ("alerts", self._alert),
            ("reconcile", self._reconcile),
        ]
        if any(f.backfill == "on_create" for f in self.filler.config.model.flows):
            loops.append(("backfill", self._backfill_new_flows))
        for name, target in loops:
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)

    def _workers(self, config: LoadedConfig, name: str, lease: timedelta) -> tuple[Worker, Worker]:
        """The worker named ``name`` and its live lane (``name:live``), sharing the gate."""
        worker = Worker(
            config, self.engine, name=name, lease=lease, live_lane=True, gate=self._gate
        )
        live = Worker(
            config, self.engine, name=f"{name}:live", lease=lease, live_only=True, gate=self._gate
        )
        return worker, live

    def queued(self) -> None:
        """Deliveries were queued: wake the live lane, and the other worker too (idle, it
        shares a burst; busy with backfilled ones, it claims live ones first at its next
        claim)."""
        self.live_wake.set()
        self.wake.set()

    def _deliver(self) -> None:
        worker_loop(lambda: self.worker, self.wake, self.stop, self.interval, self.beat)

    def _deliver_live(self) -> None:
        worker_loop(lambda: self.live, self.live_wake, self.stop, self.interval, self._live_beat)

    def reload(self, config: LoadedConfig) -> None:
        """Go on with ``config``: a run or a delivery pass under way finishes with the old one;
        the next scheduler tick and worker pass use the new one."""
        runner = FlowRunner(config, self.engine, on_queued=self.queued)
        worker, live = self._workers(config, self.worker.name, self.worker.lease)
        scheduler = Scheduler(config, self.engine, runner, worker.name)
        retention = RetentionJob(
            self.engine, config.model.hub.retention, worker.name, stop=self.stop
        )
        reconciliations = ReconcileSchedule(config, self.engine, worker.name, stopping=self.stop)
        if self.stop.is_set():
            return
        self.runner, self.worker, self.scheduler, self.retention = (
            runner,
            worker,
            scheduler,
            retention,
        )
        self.live = live
        self.reconciliations = reconciliations
        self.queued()

    def _backfill_new_flows(self) -> None:
        try:
            backfill_new_flows(self.filler)
        except Exception as exc:  # noqa: BLE001 - logged; the next start tries again
            log.error("backfill of new flows (backfill: on_create) failed: %s", exc)

    def _schedule(self) -> None:
        failures = FailureLog(log, "scheduler")
        while not self.stop.is_set():
            try:
                self.scheduler.tick()
            except Exception as exc:  # noqa: BLE001 - a failed run is in the runs table
                failures.failed(exc, masked_url(self.engine))
            else:
                failures.recovered()
            self.beat["scheduler"] = time.monotonic()
            self.stop.wait(min(1.0, self.interval))

    def _prune(self) -> None:
        failures = FailureLog(log, "retention")
        while not self.stop.is_set():
            try:
                self.retention.tick()
            except Exception as exc:  # noqa: BLE001 - logged; the next fire tries again
                failures.failed(exc, masked_url(self.engine))
            else:
                failures.recovered()
            self.stop.wait(1.0)

    def _reconcile(self) -> None:
        failures = FailureLog(log, "reconcile")
        while not self.stop.is_set():
            try:
                self.reconciliations.tick(now())
            except Exception as exc:  # noqa: BLE001 - logged; a failed one is stored as such
                failures.failed(exc, masked_url(self.engine))
            else:
                failures.recovered()
            self.stop.wait(1.0)

    def _alert(self) -> None:
        """Evaluate the alert rules (and watch the channels' health) until ``stop``; in a thread
        of its own, so that a slow mail server never holds up a scheduled run."""
        failures = FailureLog(log, "alerts", outage_level=logging.DEBUG)
        while not self.stop.is_set():
            try:
                self.alerts.tick()
            except Exception as exc:  # noqa: BLE001 - logged once and counted by FailureLog
                failures.failed(exc, masked_url(self.engine))
            else:
                failures.recovered()
            self.stop.wait(min(1.0, self.interval))

    def close(self, timeout_s: float = 30.0) -> bool:
        """Stop gracefully within ``timeout_s``: the worker finishes the batch it is writing and
        releases claims it has not written, a run stops after its current batch (interrupted,
        resumable), the transports close. Return ``False`` if a thread was still busy at the
        end (its unwritten claims are released anyway)."""
        self.worker.stopping.set()
        self.live.stopping.set()
        self.runner.stopping.set()
        self.filler.stopping.set()
        self.stop.set()
        self.queued()
        deadline = time.monotonic() + timeout_s
        for thread in self._threads:
            thread.join(timeout=max(0.0, deadline - time.monotonic()))
        busy = [thread.name for thread in self._threads if thread.is_alive()]
        if busy:
            released, writing = (
                sum(pair) for pair in zip(self.worker.release_unwritten(),
                                          self.live.release_unwritten(), strict=True)
            )  # fmt: skip
            log.error(
                "%s: not stopped within %.0f s (%s still busy): %d unwritten claim(s) released, "
                "%d write(s) abandoned in flight (due again when their lease ends)",
                self.worker.name,
                timeout_s,
                ", ".join(busy),
                released,
                writing,
            )
            return False
        self.worker.close()
        self.live.close()
        return True

    def health(self) -> dict[str, Any]:
        """Store reachable, and each loop has gone round recently."""
        checks: dict[str, Any] = {}
        try:
            with self.engine.connect() as conn:
                conn.execute(text("SELECT 1"))
            checks["store"] = "ok"
        except Exception as exc:  # noqa: BLE001 - reported, not raised: this is the health check
            checks["store"] = f"error: {type(exc).__name__}"
        limit = max(30.0, self.interval * 5)
        for loop in ("scheduler", "worker"):
            last = self.beat.get(loop)
            age = None if last is None else time.monotonic() - last
            checks[loop] = "starting" if age is None else ("ok" if age < limit else "stalled")
        healthy = checks["store"] == "ok" and "stalled" not in checks.values()
        return {"status": "ok" if healthy else "failing", "checks": checks}
