"""The scaled-out shape: procrastinate hands ledger entries to any number of ``erpbridge worker``.

The delivery ledger stays the source of truth; procrastinate only says *which* ledger ids a
worker should look at, and *when*. ``enqueue`` defers the jobs on its own connection, in the
transaction that writes the ledger rows (``ERPBRIDGE_DISPATCHER=procrastinate``: the engine hands
:func:`defer_deliveries` to the store as its hook, see :mod:`erpbridge.engine.dispatcher`): both
commit or neither does. Procrastinate does ≈ 400 jobs/s, so a job carries a batch of ids of one flow
(:data:`JOB_SIZE`), never one row.

Per-key order holds without a procrastinate ``lock`` per ordering key: a job claims its ids
through :func:`~erpbridge.store.deliveries.claim_ids`, which takes a delivery only while it is
due and the head of its ordering key, exactly like the claim loop. An id that is not claimable
yet (an earlier version still open, a retry's backoff, another worker's lease) makes the job
raise :class:`NotReady`; procrastinate then runs the same job again when the ledger says it can
go (its ``next_attempt_at`` or lease expiry) or, when only blocked, after a short growing wait.
The job's ``lock`` names its batch, so one batch never runs twice at once; a lock shared by
many jobs would be wrong here, because procrastinate holds back every later job behind a
waiting one (even one scheduled for later). The ``queueing_lock`` is the first delivery's
idempotency key: the same batch is never queued twice.

Nothing depends on a job alone: each ``erpbridge worker`` also sweeps the ledger with the claim
loop at a long interval (deliveries requeued by ``erpbridge retry``, or queued before the
dispatcher was switched on, have no job), and the periodic ``retry_stalled_jobs`` task puts the
jobs of a worker that died (``kill -9``, lost machine) back in the queue once its heartbeat is
older than ``stalled_after``.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from datetime import datetime, timedelta
from itertools import groupby
from typing import Any

from procrastinate import App, JobContext, PsycopgConnector, RetryDecision, SyncPsycopgConnector
from procrastinate.exceptions import ConnectorException
from procrastinate.jobs import Job, Status
from procrastinate.manager import JobManager
from procrastinate.retry import BaseRetryStrategy
from procrastinate.schema import SchemaManager
from sqlalchemy import Connection, Engine, any_, bindparam, select, text
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.types import String

from erpbridge.config.loader import LoadedConfig
from erpbridge.engine.retry import backoff
from erpbridge.engine.worker import Worker, WorkerStats
from erpbridge.store.runs import now
from erpbridge.store.states import OPEN_DELIVERY_STATES
from erpbridge.store.switches import paused_flows
from erpbridge.store.tables import deliveries

__all__ = [
    "JOB_SIZE",
    "QUEUE",
    "TASK",
    "NotReady",
    "ScaledWorker",
    "defer_deliveries",
    "deliver",
    "ensure_schema",
]

log = logging.getLogger(__name__)

#: The procrastinate queue and task name of delivery jobs.
QUEUE = "erpbridge_deliveries"
TASK = "erpbridge.deliver_ledger_ids"
STALLED_TASK = "erpbridge.retry_stalled_jobs"

#: Ledger ids per job (the claim loop's default batch): bulk work is never one job per row.
JOB_SIZE = 100

# pg_advisory_xact_lock key: one process installs procrastinate's schema, the others wait.
_SCHEMA_LOCK = 0x65727062  # "erpb"
_installed: set[str] = set()
_installing = threading.Lock()

# Defers on the caller's connection only; it never opens a pool of its own.
_deferrer = JobManager(SyncPsycopgConnector())


def ensure_schema(engine: Engine) -> None:
    """Install procrastinate's schema in the hub database unless it is there (once a process)."""
    key = engine.url.render_as_string(hide_password=True)
    with _installing:
        if key in _installed:
            return
        with engine.begin() as conn:
            conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _SCHEMA_LOCK})
            if conn.execute(text("SELECT to_regclass('procrastinate_jobs')")).scalar() is None:
                log.info("installing procrastinate's schema")
                raw = conn.connection.dbapi_connection
                assert raw is not None
                # No parameters: the schema's % signs are SQL, not placeholders.
                raw.cursor().execute(SchemaManager.get_schema())
        _installed.add(key)


def defer_deliveries(conn: Connection, idempotency_keys: Sequence[str], at: datetime) -> int:
    """Defer one job per :data:`JOB_SIZE` new deliveries of a flow, in ``conn``'s transaction.

    Returns how many jobs were deferred. A scheduled flow's job waits for its fire time.
    """
    ensure_schema(conn.engine)
    keys = bindparam("keys", list(idempotency_keys), type_=ARRAY(String))
    rows = conn.execute(
        select(
            deliveries.c.id,
            deliveries.c.flow,
            deliveries.c.idempotency_key,
            deliveries.c.priority,
            deliveries.c.next_attempt_at,
        )
        .where(deliveries.c.idempotency_key == any_(keys))
        .order_by(deliveries.c.flow, deliveries.c.id)
    ).all()
    jobs: list[Job] = []
    for flow, group in groupby(rows, key=lambda r: r.flow):
        items = list(group)
        for start in range(0, len(items), JOB_SIZE):
            batch = items[start : start + JOB_SIZE]
            due = batch[0].next_attempt_at
            jobs.append(
                Job(
                    queue=QUEUE,
                    task_name=TASK,
                    lock=f"{flow}|{batch[0].id}-{batch[-1].id}",
                    queueing_lock=batch[0].idempotency_key,
                    priority=batch[0].priority,
                    task_kwargs={"ledger_ids": [r.id for r in batch]},
                    scheduled_at=due if due > at else None,
                )
            )
    if jobs:
        _deferrer.batch_defer_jobs(jobs, connection=conn.connection.dbapi_connection)
    return len(jobs)


class NotReady(Exception):
    """Some of a job's deliveries cannot be claimed yet: run the job again at ``retry_at``."""

    def __init__(self, retry_at: datetime, waiting: int) -> None:
        super().__init__(f"{waiting} deliver(y/ies) not claimable before {retry_at:%H:%M:%S.%f}")
        self.retry_at = retry_at


class LedgerRetry(BaseRetryStrategy):
    """``NotReady``: when the ledger says; anything else (store down): backoff, then give up.

    A job that gives up loses nothing: its deliveries stay open in the ledger for the sweep.
    """

    max_attempts = 10

    def get_retry_decision(self, *, exception: BaseException, job: Job) -> RetryDecision | None:
        """When procrastinate should run ``job`` again, or None to let it fail."""
        if isinstance(exception, NotReady):
            return RetryDecision(retry_at=exception.retry_at)
        if job.attempts >= self.max_attempts:
            return None
        delay = backoff(job.attempts + 1, 1.0, 300.0, 0.5)
        return RetryDecision(retry_at=now() + timedelta(seconds=delay))


# States a job waits for. Not ``held``: that waits for a person (a conflict), and the sweep
# sends it once released; a job polling for it would spin for days.
_WAITING = tuple(s for s in OPEN_DELIVERY_STATES if s != "held")


def _blocked_wait(attempts: int) -> timedelta:
    """How long a job waits behind its key's head or a full in-flight cap: growing, ≤ 30 s."""
    return timedelta(seconds=min(30.0, 0.2 * 2 ** min(attempts, 8)))


def deliver(worker: Worker, ledger_ids: Sequence[int], attempts: int = 0) -> WorkerStats:
    """The job body: deliver what of ``ledger_ids`` is claimable; :class:`NotReady` for the rest.

    The same ``Worker`` code as the claim loop; ``attempts`` is how often the job ran before.
    """
    stats = worker.run_ids(ledger_ids)
    at = now()
    with worker.engine.connect() as conn:
        # A paused flow's deliveries end the job: the sweep sends them once it is resumed.
        active = [f for f in worker.flows if f not in paused_flows(conn)]
        still_open = conn.execute(
            select(
                deliveries.c.state, deliveries.c.next_attempt_at, deliveries.c.lease_expires_at
            ).where(
                deliveries.c.id.in_(list(ledger_ids)),
                deliveries.c.state.in_(_WAITING),
                deliveries.c.flow.in_(active),
            )
        ).all()
    if not still_open:
        return stats
    times = []
    for state, next_attempt_at, lease_expires_at in still_open:
        if state == "in_flight" and lease_expires_at is not None and lease_expires_at >= at:
            times.append(lease_expires_at)  # someone holds it; if they die, it is ours then
        elif next_attempt_at > at:
            times.append(next_attempt_at)  # a retry's backoff, or a scheduled flow's fire
        else:
            times.append(at + _blocked_wait(attempts))  # behind its key's head, or a full cap
    retry_at = max(min(times), at + timedelta(milliseconds=100))
    raise NotReady(retry_at, len(still_open))


def _conninfo(engine: Engine) -> str:
    return engine.url.set(drivername="postgresql").render_as_string(hide_password=False)


class ScaledWorker:
    """``erpbridge worker`` scaled out: procrastinate's worker, stalled-job recovery, a sweep."""

    def __init__(
        self,
        config: LoadedConfig,
        engine: Engine,
        *,
        lease: timedelta,
        batch_size: int,
        stalled_after: float,
    ) -> None:
        self.config = config
        self.engine = engine
        self.lease = lease
        self.batch_size = batch_size
        self.stalled_after = stalled_after
        self._local = threading.local()
        self._workers: list[Worker] = []
        self._lock = threading.Lock()
        self.sweeper = self._new_worker()
        self.flows = self.sweeper.flows
        self.app = self._build_app()

    def _new_worker(self) -> Worker:
        worker = Worker(self.config, self.engine, lease=self.lease, batch_size=self.batch_size)
        with self._lock:
            self._workers.append(worker)
        return worker

    def _worker(self) -> Worker:
        """One ``Worker`` per thread: procrastinate runs sync jobs in a thread pool."""
        worker: Worker | None = getattr(self._local, "worker", None)
        if worker is None:
            worker = self._local.worker = self._new_worker()
        return worker

    def _build_app(self) -> App:
        app = App(connector=PsycopgConnector(conninfo=_conninfo(self.engine)))
        stalled_after = self.stalled_after

        @app.task(name=TASK, queue=QUEUE, retry=LedgerRetry(), pass_context=True)
        def deliver_ledger_ids(context: JobContext, ledger_ids: list[int]) -> None:
            assert context.job is not None
            deliver(self._worker(), ledger_ids, context.job.attempts)

        # procrastinate recovers nothing by itself: without this, a killed worker's jobs stay
        # "doing" forever. Each fire runs once across all workers (periodic defers are unique).
        every = max(1, min(30, int(stalled_after // 2)))

        # Ahead of any backlog (``priority``): recovery must not wait behind thousands of jobs.
        # No ``lock``: a run killed with its worker would hold it for ever. Two runs that
        # overlap may both requeue one job, which then runs twice: harmless, the ledger's
        # claims and fences let only one run deliver each id.
        @app.periodic(cron=f"* * * * * */{every}", periodic_id="stalled")
        @app.task(
            name=STALLED_TASK,
            queue=QUEUE,
            queueing_lock=STALLED_TASK,
            priority=1000,
            pass_context=True,
        )
        async def retry_stalled_jobs(context: JobContext, timestamp: int) -> None:
            manager = context.app.job_manager if context.app else app.job_manager
            stalled = await manager.get_stalled_jobs(seconds_since_heartbeat=stalled_after)
            for job in stalled:
                assert job.id is not None
                try:
                    if job.task_name == TASK:
                        log.warning("job %s of a dead worker goes back in the queue", job.id)
                        await manager.retry_job(job)
                    else:  # a run of this task that died: the next fire stands in for it
                        await manager.finish_job_by_id_async(job.id, Status.FAILED, False)
                except ConnectorException as exc:  # it moved on meanwhile: nothing to recover
                    log.info("job %s not requeued: %s", job.id, exc)

        return app

    def run(self, *, concurrency: int, sweep_interval: float) -> None:
        """Run until SIGINT/SIGTERM: procrastinate's worker in front, the sweep in a thread."""
        ensure_schema(self.engine)
        stop = threading.Event()
        sweep = threading.Thread(
            target=self._sweep, args=(stop, sweep_interval), name="sweep", daemon=True
        )
        sweep.start()
        options: dict[str, Any] = {
            "queues": [QUEUE],
            "concurrency": concurrency,
            "name": self.sweeper.name,
            "delete_jobs": "successful",  # the ledger keeps the history, not the job table
            "update_heartbeat_interval": max(0.5, self.stalled_after / 4),
            "stalled_worker_timeout": self.stalled_after,
        }
        try:
            self.app.run_worker(**options)
        finally:
            stop.set()
            sweep.join(timeout=30)

    def _sweep(self, stop: threading.Event, interval: float) -> None:
        """The claim loop as a safety net: every ``interval``, deliver what is due (no job)."""
        while not stop.wait(interval):  # jobs go first: the first sweep is one interval away
            try:
                stats = self.sweeper.run_once()
            except Exception:  # keep sweeping: one broken pass must not stop the worker
                log.exception("sweep failed")
                continue
            if stats.claimed:
                log.info("sweep: %s deliver(y/ies) without a job", stats.claimed)

    def close(self) -> None:
        """Close every thread's transports."""
        with self._lock:
            for worker in self._workers:
                worker.close()
            self._workers.clear()
