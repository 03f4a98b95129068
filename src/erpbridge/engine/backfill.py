"""Backfill an OUT flow with what the hub holds, or replay a time range to it, as a run.

A backfill or replay is a run of the OUT flow (mode ``backfill`` or ``replay``) holding the
flow's run lock, so two never fill one flow at once. It queues deliveries in bounded batches,
each committed with the run's counters and its position (``cursor_after``); a run that died
(``kill -9``) is resumed from there by the next backfill or replay of the flow with the same
parameters. Workers deliver what it queued like any delivery, below live traffic
(:mod:`erpbridge.store.backfill`).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import Connection, Engine, func, select

from erpbridge.config.loader import LoadedConfig
from erpbridge.engine.dispatcher import ledger_dispatcher
from erpbridge.engine.heartbeat import Heartbeat
from erpbridge.errors import ErpbridgeError
from erpbridge.store.backfill import (
    RecordFilter,
    Step,
    Target,
    backfill_step,
    catch_up_step,
    open_deliveries,
    replay_step,
    resume_point,
)
from erpbridge.store.deliveries import Dispatcher
from erpbridge.store.runlease import fence
from erpbridge.store.runs import BatchCounts, add_batch, finish_run, now, start_run
from erpbridge.store.tables import audit, records, runs

__all__ = [
    "BackfillRefused",
    "BackfillRequest",
    "FillResult",
    "Filler",
    "ReplayRequest",
    "backfill_new_flows",
    "on_create_pending",
    "parse_where",
]

log = logging.getLogger(__name__)

#: Records (or versions) queued per transaction: bounded, so live changes interleave.
DEFAULT_BATCH = 1000
#: A run waits while this many of its deliveries are still to go out: the ledger (and each
#: claim's look at it) stays small however many records the hub holds.
DEFAULT_MAX_PENDING = 20_000


class BackfillRefused(ErpbridgeError):
    """A backfill or replay that cannot start: the flow, a filter or a time is wrong.

    ``code`` names the cause for the API (``not_found``, ``not_an_out_flow``, ``bad_time``,
    ``bad_range``, ``bad_filter``).
    """

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def parse_where(config: LoadedConfig, entity: str, terms: list[str]) -> tuple[tuple[str, str], ...]:
    """``FIELD=VALUE`` terms, each FIELD a (dotted) path whose first part is a field of
    ``entity``; :class:`BackfillRefused` naming the bad term otherwise."""
    fields = config.entities[entity].fields
    pairs = []
    for term in terms:
        name, sep, value = term.partition("=")
        name = name.strip()
        if not sep or not name:
            raise BackfillRefused("bad_filter", f"--where {term!r}: write FIELD=VALUE")
        if name.split(".")[0] not in fields:
            known = ", ".join(sorted(fields))
            raise BackfillRefused(
                "bad_filter", f"--where {term!r}: {entity} has no field {name!r} ({known})"
            )
        pairs.append((name, value))
    return tuple(pairs)


def _shown(value: Any) -> str:
    """A payload value as a ``--where`` value is written: strings bare, others as JSON."""
    return value if isinstance(value, str) else orjson.dumps(value).decode()


def _lookup(payload: Mapping[str, Any], path: str) -> Any:
    value: Any = payload
    for part in path.split("."):
        if not isinstance(value, Mapping):
            return None
        value = value.get(part)
    return value


def _record_filter(where: tuple[tuple[str, str], ...]) -> RecordFilter | None:
    if not where:
        return None

    def keep(payload: Mapping[str, Any]) -> bool:
        return all(_shown(_lookup(payload, path)) == value for path, value in where)

    return keep


@dataclass(frozen=True, slots=True)
class BackfillRequest:
    """Queue the current version of every record of the flow's entity (that matches)."""

    flow: str
    where: tuple[tuple[str, str], ...] = ()
    changed_since: datetime | None = None
    dry_run: bool = False
    #: Who asked: ``cli``/``api`` by hand, ``on_create`` by the configuration.
    trigger: str = "manual"

    def params(self) -> dict[str, Any]:
        """What makes two requests the same backfill (for resuming)."""
        since = None if self.changed_since is None else self.changed_since.isoformat()
        return {"where": dict(self.where), "changed_since": since, "trigger": self.trigger}


@dataclass(frozen=True, slots=True)
class ReplayRequest:
    """Queue every version written between ``start`` and ``end``, in order."""

    flow: str
    start: datetime
    end: datetime
    dry_run: bool = False

    def params(self) -> dict[str, Any]:
        """What makes two requests the same replay (for resuming)."""
        return {"from": self.start.isoformat(), "to": self.end.isoformat()}


@dataclass(slots=True)
class FillResult:
    """A backfill or replay run: what it scanned and queued."""

    run_id: int
    flow: str
    mode: str
    status: str = "running"
    #: Records (backfill) or versions (replay) looked at.
    scanned: int = 0
    queued: int = 0
    #: Already queued or delivered at that version, or not for this flow.
    skipped: int = 0
    #: Records or versions it had to look at when it started.
    total: int = 0
    #: The run this one continued from, after a crash.
    resumed_from: int | None = None
    error: str | None = None
    dry_run: bool = False
    duration_s: float = 0.0
    started: float = field(default_factory=time.monotonic)


#: Called after each committed batch with the run so far.
Progress = Callable[[FillResult], None]

#: One batch: (connection, position, at) → what it did.
_StepFn = Callable[[Connection, int, datetime], Step]


class Filler:
    """Runs backfills and replays of the configuration's OUT flows against the hub store."""

    def __init__(
        self,
        config: LoadedConfig,
        engine: Engine,
        *,
        batch_size: int = DEFAULT_BATCH,
        max_pending: int = DEFAULT_MAX_PENDING,
        dispatch: Dispatcher | None = None,
        on_queued: Callable[[], None] | None = None,
    ) -> None:
        self.config = config
        self.engine = engine
        self.batch_size = batch_size
        #: 0: queue everything at once, whether workers keep up or not.
        self.max_pending = max_pending
        self.dispatch = dispatch or ledger_dispatcher(engine.dialect.name)
        self.on_queued = on_queued
        self.lease = config.run_lease()
        self.stopping = threading.Event()

    def target(self, name: str) -> Target:
        """The OUT flow ``name`` as a backfill target; :class:`BackfillRefused` if there is no
        such flow or it is not an enabled OUT flow."""
        names = [f.name for f in self.config.model.flows]
        if name not in names:
            raise BackfillRefused(
                "not_found", f"no flow named {name!r} (flows: {', '.join(names) or 'none'})"
            )
        flow = self.config.flow(name)
        if flow.direction != "out":
            raise BackfillRefused(
                "not_an_out_flow",
                f"flow {name!r} is an IN flow: it reads from its channel; backfill and replay "
                "fill OUT flows with what the hub holds",
            )
        if not flow.enabled:
            raise BackfillRefused("not_an_out_flow", f"flow {name!r} is disabled")
        trigger = self.config.triggers.get(name)
        wanted = None
        if trigger is not None:

            def wanted(payload: Mapping[str, Any]) -> bool:
                return trigger(None, payload, frozenset())

        return Target(
            flow.name, flow.channel, flow.entity, flow.retry.max_attempts, flow.echo, wanted
        )

    def backfill(self, request: BackfillRequest, progress: Progress | None = None) -> FillResult:
        """Queue the flow's entity's current versions; resume an unfinished identical one."""
        return self.start_backfill(request).run(progress)

    def replay(self, request: ReplayRequest, progress: Progress | None = None) -> FillResult:
        """Queue every version written in the range, then the current version of each record
        the range touched if newer; resume an unfinished identical replay."""
        return self.start_replay(request).run(progress)

    def start_backfill(self, request: BackfillRequest) -> Fill:
        """Check ``request`` and record its run (:class:`BackfillRefused`, or
        :class:`~erpbridge.errors.FlowBusy` while another fills the flow); queue nothing yet."""
        target = self.target(request.flow)
        keep = _record_filter(request.where)
        entity_field = records.c.entity == target.entity
        since = request.changed_since
        condition = (
            entity_field if since is None else entity_field & (records.c.updated_at >= since)
        )

        def step(conn: Connection, after: int, at: datetime) -> Step:
            return backfill_step(
                conn, target, run_id, after, self.batch_size, at, changed_since=since, keep=keep,
                dry_run=request.dry_run, dispatch=self.dispatch,
            )  # fmt: skip

        run_id, result, cursor = self._start(target, "backfill", request.params(), request.dry_run)
        with self.engine.connect() as conn:
            result.total = conn.execute(
                select(func.count()).select_from(records).where(condition)
            ).scalar_one()
        return Fill(self, target, result, cursor, [("records", step)])

    def start_replay(self, request: ReplayRequest) -> Fill:
        """:meth:`start_backfill` for a replay."""
        if request.start > request.end:
            raise BackfillRefused(
                "bad_range",
                f"--from {request.start.isoformat()} is after --to {request.end.isoformat()}: "
                "nothing lies between; swap them",
            )
        target = self.target(request.flow)
        start, end, dry_run, dispatch = request.start, request.end, request.dry_run, self.dispatch

        def versions(conn: Connection, after: int, at: datetime) -> Step:
            return replay_step(
                conn, target, run_id, after, self.batch_size, at, start=start, end=end,
                dry_run=dry_run, dispatch=dispatch,
            )  # fmt: skip

        def current(conn: Connection, after: int, at: datetime) -> Step:
            return catch_up_step(
                conn, target, run_id, after, self.batch_size, at, start=start, end=end,
                dry_run=dry_run, dispatch=dispatch,
            )  # fmt: skip

        run_id, result, cursor = self._start(target, "replay", request.params(), request.dry_run)
        with self.engine.connect() as conn:
            result.total = conn.execute(
                select(func.count())
                .select_from(audit)
                .where(
                    audit.c.entity == target.entity,
                    audit.c.at >= request.start,
                    audit.c.at <= request.end,
                )
            ).scalar_one()
        return Fill(self, target, result, cursor, [("versions", versions), ("current", current)])

    def _start(
        self, target: Target, mode: str, params: dict[str, Any], dry_run: bool
    ) -> tuple[int, FillResult, dict[str, Any]]:
        with self.engine.connect() as conn:
            resumed = None if dry_run else resume_point(conn, target.flow, mode, params)
        run_id = start_run(
            self.engine, flow=target.flow, channel=target.channel, entity=target.entity,
            mode=mode, dry_run=dry_run, cursor_before=params, lease=self.lease, lock=not dry_run,
        )  # fmt: skip
        result = FillResult(run_id, target.flow, mode, dry_run=dry_run)
        cursor: dict[str, Any] = {}
        if resumed is not None:
            result.resumed_from, cursor = resumed[0], dict(resumed[1])
            log.info(
                "%s of flow %s: run %d resumes run %d at %s",
                mode, target.flow, run_id, resumed[0], cursor,
            )  # fmt: skip
        return run_id, result, cursor

    def fill(
        self,
        target: Target,
        result: FillResult,
        cursor: dict[str, Any],
        phases: list[tuple[str, _StepFn]],
        progress: Progress | None,
    ) -> FillResult:
        """Queue batch after batch, phase after phase, from ``cursor``; close the run."""
        run_id = result.run_id
        heartbeat = Heartbeat(self.engine, self.lease)
        heartbeat.add(run_id)
        names = [name for name, _ in phases]
        start = names.index(cursor["phase"]) if cursor.get("phase") in names else 0
        try:
            for index in range(start, len(phases)):
                name, step = phases[index]
                after = int(cursor.get("after", 0)) if cursor.get("phase") == name else 0
                while not self.stopping.is_set():
                    self._throttle(result)
                    done = self._batch(run_id, target, result, step, name, after)
                    if progress is not None:
                        progress(result)
                    if done is None:
                        break
                    after = done
            if self.stopping.is_set():
                result.status, result.error = "interrupted", "stopped: the next run resumes"
            else:
                result.status = "succeeded"
        except Exception as exc:
            result.status, result.error = "failed", f"{type(exc).__name__}: {exc}"
            log.exception("%s of flow %s (run %d) failed", result.mode, target.flow, run_id)
        finally:
            heartbeat.discard(run_id)
        row = finish_run(self.engine, run_id, status=result.status, error=result.error, warnings=[])
        result.duration_s = row.duration_s or 0.0
        return result

    def _throttle(self, result: FillResult) -> None:
        """Wait while :attr:`max_pending` of the run's deliveries are still to go out."""
        if result.dry_run or not self.max_pending:
            return
        waited = time.monotonic()
        while not self.stopping.is_set():
            with self.engine.connect() as conn:
                waiting = open_deliveries(conn, result.run_id)
            if waiting < self.max_pending:
                return
            if time.monotonic() - waited > 60:
                waited = time.monotonic()
                log.warning(
                    "%s run %d of flow %s: %d deliveries still to go out; waiting for workers "
                    "(is `erpbridge worker` or `erpbridge run` running?)",
                    result.mode, result.run_id, result.flow, waiting,
                )  # fmt: skip
            self.stopping.wait(0.5)

    def _batch(
        self, run_id: int, target: Target, result: FillResult, step: _StepFn, phase: str,
        after: int,
    ) -> int | None:  # fmt: skip
        """One batch in one transaction with its counters and position; where the next starts
        (``None``: this phase is done)."""
        with self.engine.begin() as conn:
            at = now()
            if not result.dry_run:
                fence(conn, target.flow, run_id, at, self.lease)
            done = step(conn, after, at)
            position = {"phase": phase, "after": after if done.after is None else done.after,
                        "total": result.total}  # fmt: skip
            add_batch(
                conn, run_id,
                BatchCounts(read=done.scanned, created=done.queued, unchanged=done.skipped),
                position,
            )  # fmt: skip
        result.scanned += done.scanned
        result.queued += done.queued
        result.skipped += done.skipped
        if done.queued and self.on_queued is not None and not result.dry_run:
            self.on_queued()
        return done.after


@dataclass(frozen=True, slots=True)
class Fill:
    """A backfill or replay whose run is recorded; :meth:`run` queues what it must."""

    filler: Filler
    target: Target
    result: FillResult
    cursor: dict[str, Any]
    phases: list[tuple[str, _StepFn]]

    @property
    def run_id(self) -> int:
        """The run's id."""
        return self.result.run_id

    def run(self, progress: Progress | None = None) -> FillResult:
        """Queue everything (in this thread), then close the run; return it."""
        return self.filler.fill(self.target, self.result, self.cursor, self.phases, progress)


def on_create_pending(config: LoadedConfig, engine: Engine) -> list[str]:
    """OUT flows with ``backfill: on_create`` that no backfill has filled yet: none finished,
    so a new flow, or one whose automatic backfill was cut short (it resumes)."""
    wanted = [
        f.name
        for f in config.model.flows
        if f.direction == "out" and f.enabled and f.backfill == "on_create"
    ]
    if not wanted:
        return []
    with engine.connect() as conn:
        done = set(
            conn.execute(
                select(runs.c.flow).where(
                    runs.c.flow.in_(wanted),
                    runs.c.mode == "backfill",
                    runs.c.status == "succeeded",
                    runs.c.dry_run.is_(False),
                )
            ).scalars()
        )
    return [name for name in wanted if name not in done]


def backfill_new_flows(filler: Filler) -> list[FillResult]:
    """Backfill every OUT flow ``on_create`` wants, announcing each in the log."""
    results = []
    for name in on_create_pending(filler.config, filler.engine):
        log.warning(
            "flow %s is new (backfill: on_create): queueing the records the hub already holds",
            name,
        )
        result = filler.backfill(BackfillRequest(name, trigger="on_create"))
        log.warning(
            "flow %s: backfill run %d %s: %d record(s) looked at, %d delivery(ies) queued",
            name, result.run_id, result.status, result.scanned, result.queued,
        )  # fmt: skip
        results.append(result)
    return results
