"""Run IN flows: extract in batches, map, upsert, bind and advance the cursor in one transaction.

Each batch commits its records, bindings, audit rows, rejections, run counters and the cursor
together, so a crash resumes at the last committed batch and nothing is counted twice. Only
after the commit does the transport get to archive what it read (``Batch.acknowledge``).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import orjson
from sqlalchemy import Connection, Engine, select
from sqlalchemy.exc import IntegrityError

from erpbridge.config.loader import LoadedConfig
from erpbridge.config.models import FlowConfig
from erpbridge.engine.canonical import dump_payloads
from erpbridge.engine.dispatcher import ledger_dispatcher
from erpbridge.engine.groupcommit import GroupCommit
from erpbridge.engine.heartbeat import Heartbeat
from erpbridge.engine.preview import Preview
from erpbridge.errors import DataError, ErpbridgeError, FatalError, StoreUnavailable
from erpbridge.jsonvalues import as_json
from erpbridge.mapping.compiler import CompiledMapping, getter
from erpbridge.observe.events import run_finished
from erpbridge.observe.metrics import observe_run
from erpbridge.pci import (
    has_card_number,
    mask_card_numbers,
    scrub_card_numbers,
)
from erpbridge.schedules import parse_interval
from erpbridge.store.conflicts import take_hub, take_source_payload
from erpbridge.store.deliveries import Subscriber
from erpbridge.store.merge import FieldRules
from erpbridge.store.outage import StoreRetry, is_outage
from erpbridge.store.records import Incoming, Lineage, content_hash, upsert_records
from erpbridge.store.runlease import fence
from erpbridge.store.runs import (
    BatchCounts,
    Rejection,
    add_batch,
    add_rejections,
    close_run,
    count_deleted,
    decode,
    finish_run,
    insert_run,
    load_cursor,
    now,
    open_rejections,
    resolve_rejections,
    restate_rejections,
    save_cursor,
    set_start,
    start_run,
)
from erpbridge.store.search import SearchSpec
from erpbridge.store.switches import check_not_paused, paused_refusal
from erpbridge.store.tables import records as record_rows
from erpbridge.store.tombstones import Gone, Tombstoned, bound_ids, sweep_due, tombstone
from erpbridge.transports.base import Batch, SourceRecord, Transport
from erpbridge.workflows.gate import FlowGate, StatusRefused

__all__ = [
    "EventRejected",
    "FlowRunner",
    "Guard",
    "Ingested",
    "RunResult",
    "RunStopped",
]

log = logging.getLogger(__name__)

_MAX_ATTEMPTS = 3
_MAX_WARNINGS = 200
_ID_IS_A_CARD = "the channel's id of the record holds a payment card number (PAN); not stored"
#: PostgreSQL text cannot hold NUL: a key with one failed the whole batch (and blocked the file).
_NUL_IN_KEY = "holds a NUL character, which the hub cannot store in a key"


def jsonable(data: Mapping[str, Any]) -> dict[str, Any]:
    """A source record as plain JSON data (Decimal → text), for storing rejected payloads."""
    result: dict[str, Any] = as_json(dict(data))
    return result


@dataclass
class RunResult(BatchCounts):
    """What one run did, as stored in the ``runs`` table: its batches' counters added up."""

    run_id: int
    flow: str
    status: str
    mode: str
    dry_run: bool
    duration_s: float = 0.0
    cursor_before: Any = None
    cursor_after: Any = None
    error: str | None = None
    warnings: list[str] = field(default_factory=list)
    #: A dry run's first changes, field by field (``None`` for a real run).
    preview: Preview | None = None


ProgressHook = Callable[[BatchCounts], None]


class RunStopped(ErpbridgeError):
    """The process is stopping (SIGTERM): the run ends between two batches, ``interrupted``."""

    def __init__(self, read: int) -> None:
        super().__init__(
            f"stopped by a graceful shutdown after {read} record(s); "
            "the next run resumes after the last committed batch"
        )


class EventRejected(ErpbridgeError):
    """Records pushed to a flow failed its mapping; nothing of the request was stored.

    ``problems`` holds (index in the request, canonical field path, reason) per failing field:
    every field of every record.
    """

    def __init__(self, flow: str, problems: list[tuple[int, str, str]]) -> None:
        self.flow, self.problems = flow, problems
        super().__init__(f"flow {flow!r}: {len(problems)} record(s) rejected")


@dataclass(frozen=True, slots=True)
class Ingested:
    """What an event did: the run that recorded it and each record's key, id and version."""

    run_id: int
    created: int
    updated: int
    unchanged: int
    records: list[tuple[str, int, int]]
    #: Records older than the stored version (the flow's ``version_field``): not applied.
    stale: int = 0
    #: Records the event deleted (tombstones), and channel ids it deleted that the hub never had.
    deleted: int = 0
    unknown: tuple[str, ...] = ()


#: The counters a merged group's events derive from the records before and after (_Job).
_MERGED_COUNTS = ("created", "updated", "unchanged", "stale")


class MergedCountsDiffer(RuntimeError):
    """A group's events written as one batch counted otherwise than the store did."""


#: Run in an event's transaction before its records are written: an exception it returns is
#: raised to the event's caller instead, and nothing of the event is stored.
Guard = Callable[[Connection], BaseException | None]


@dataclass(frozen=True, slots=True)
class _Event:
    """An event's mapped records, waiting for its group's transaction."""

    incoming: list[Incoming]
    read: int
    guard: Guard | None
    gone: tuple[Gone, ...] = ()


class FlowRunner:
    """Runs the IN flows of one configuration against one hub store."""

    def __init__(
        self,
        config: LoadedConfig,
        engine: Engine,
        on_queued: Callable[[], None] | None = None,
    ) -> None:
        """``on_queued`` is called after a commit that queued deliveries (wakes a worker)."""
        self.config = config
        self.engine = engine
        self.on_queued = on_queued
        #: Store outages are retried with backoff for ``hub.store_retry_s``.
        self.retry = StoreRetry(engine, config.store_retry_s())
        self.lease = config.run_lease()
        self.heartbeat = Heartbeat(engine, self.lease)
        #: Set to stop runs between batches (a graceful stop): they end ``interrupted``.
        self.stopping = threading.Event()
        #: Runs that ended on a store outage and could not be marked failed then: closed by
        #: :meth:`close_pending` once the store is back (a long-lived process: ``run``).
        self._unclosed: dict[int, tuple[str, list[str]]] = {}
        #: Events of one flow arriving together commit together (see :meth:`ingest`).
        self._events: GroupCommit[_Event, Ingested] = GroupCommit(self._ingest_group)
        self._event_jobs: dict[str, _Job] = {}

    def _transport(self, channel: str) -> Transport:
        return self.config.open_transport(channel)

    def run(
        self,
        name: str,
        *,
        full: bool = False,
        dry_run: bool = False,
        progress: ProgressHook | None = None,
    ) -> RunResult:
        """Run flow ``name`` once. ``full`` reads from the beginning (resuming an unfinished
        full pass); a flow whose trigger is ``initial`` runs full until one full pass has
        completed. ``dry_run`` maps and compares but commits nothing and leaves the source as
        it is."""
        flow = self.config.flow(name)
        if flow.direction != "in":
            raise FatalError(f"flow {name!r} is an OUT flow: the worker delivers it")
        if not dry_run:  # a dry run commits nothing: allowed, to look before resuming
            with self.engine.connect() as conn:
                check_not_paused(conn, flow.name)
        if self._unclosed:
            self.close_pending()

        started: list[int] = []  # a retried begin() keeps the run (and lock) it already has

        def begin() -> tuple[int, Any, dict[str, list[int]], bool, bool]:
            # The run lock first: the cursor is read by the run that holds the flow.
            started[:] = started or [
                start_run(
                    self.engine,
                    flow=flow.name,
                    channel=flow.channel,
                    entity=flow.entity,
                    mode="full" if full else "incremental",
                    dry_run=dry_run,
                    cursor_before=None,
                    lease=self.lease,
                    lock=not dry_run,
                )
            ]
            run_id = started[0]
            with self.engine.begin() as conn:
                state = load_cursor(conn, flow.name)
                superseding: dict[str, list[int]] = {}
                for row in open_rejections(conn, flow.name):
                    if row.external_id is not None:
                        superseding.setdefault(row.external_id, []).append(row.id)
                # An initial migration runs full until it has completed once, then incrementally.
                run_full = full or (flow.trigger == "initial" and not state.completed_once)
                # A key sweep reads everything from the start: it must see every id there is.
                sweep = (
                    flow.key_sweep is not None
                    and not dry_run
                    and (full or sweep_due(conn, flow.name, parse_interval(flow.key_sweep), now()))
                )
                if sweep:
                    run_full, start = True, None
                elif run_full:
                    start = state.full_pass if state.full_pass_open else None
                else:
                    start = state.value
                set_start(conn, run_id, _mode(run_full, sweep), start)
            return run_id, start, superseding, run_full, sweep

        run_id, start, superseding, full, sweep = self.retry.call(begin, f"flow {flow.name!r}")
        mode = _mode(full, sweep)
        result = RunResult(
            run_id, flow.name, "running", mode, dry_run, cursor_before=start, cursor_after=start
        )
        self.heartbeat.add(run_id)
        job = _Job(self, flow, run_id, full, dry_run, superseding)
        job.locked = not dry_run
        job.seen = set() if sweep else None
        result.preview = job.preview
        transport: Transport | None = None
        error: str | None = None
        status = "failed"
        try:
            # Built inside the try: a channel that cannot even be set up fails the run visibly.
            transport = self._transport(flow.channel)
            stream = self.config.streams[flow.name]
            batches = transport.read(stream, start, flow.batch_size, job.mapping.required_fields)
            for batch in batches:
                if self.stopping.is_set():
                    status = "interrupted"
                    raise RunStopped(result.read)
                counts = job.commit(batch)
                result.add(counts)
                result.cursor_after = (
                    batch.cursor if batch.cursor is not None else result.cursor_after
                )
                result.warnings.extend(batch.warnings)
                if counts.conflicts:
                    result.warnings.append(
                        f"{counts.conflicts} two-way conflict(s) ({flow.conflict}): "
                        "see erpbridge conflicts"
                    )
                if counts.stale:
                    result.warnings.append(_stale_warning(flow, counts.stale))
                if counts.overruled:
                    result.warnings.append(
                        f"{counts.overruled} record(s): changes of fields another channel "
                        "owns were not applied (owners:)"
                    )
                if counts.unsanctioned:
                    result.warnings.append(
                        f"{counts.unsanctioned} status change(s) the workflow does not allow, "
                        "taken (status_policy: record): see the transition log"
                    )
                if progress is not None:
                    progress(counts)
            if full and not dry_run:
                job.close_full_pass(result.cursor_after)
            if job.seen is not None:
                deleted, warning = job.sweep(result.read)
                result.deleted += deleted
                result.warnings.extend([warning] if warning else [])
        except StoreUnavailable as exc:
            # One last try to close the run; else its lease runs out and it shows interrupted.
            exc.run_id = run_id
            exc.closed = self._close(run_id, f"flow {flow.name!r}: {exc}", result.warnings)
            self._finished(result, flow, "failed", str(exc))
            raise
        except ErpbridgeError as exc:
            error = f"flow {flow.name!r}, channel {flow.channel!r}: {exc}"
        except BaseException as exc:  # a bug or Ctrl-C: the run must not stay 'running'
            text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            self._close(run_id, text, result.warnings)
            self._finished(result, flow, "failed", text)
            raise
        else:
            status = "succeeded"
        finally:
            self.heartbeat.discard(run_id)
            if transport is not None:
                transport.close()
        result.status = status
        result.error = error
        row = self.retry.call(
            lambda: finish_run(
                self.engine,
                run_id,
                status=result.status,
                error=error,
                warnings=result.warnings[:_MAX_WARNINGS],
            ),
            f"flow {flow.name!r}",
        )
        result.duration_s = row.duration_s or 0.0
        if not dry_run:
            self._finished(result, flow, result.status, error)
        return result

    @staticmethod
    def _finished(result: RunResult, flow: FlowConfig, status: str, error: str | None) -> None:
        """The run's log event and duration metric (dry runs have neither)."""
        observe_run(flow.name, status, result.duration_s)
        run_finished(
            flow=flow.name,
            channel=flow.channel,
            run_id=result.run_id,
            status=status,
            mode=result.mode,
            duration_s=result.duration_s,
            counts={
                "read": result.read,
                "created": result.created,
                "updated": result.updated,
                "unchanged": result.unchanged,
                "rejected": result.rejected,
                "deleted": result.deleted,
            },
            error=error,
        )

    def _close(self, run_id: int, error: str, warnings: list[str]) -> bool:
        """Mark a run that ends on an exception ``failed``, once, without retrying; say whether
        that worked (the store may be what failed)."""
        try:
            finish_run(
                self.engine, run_id, status="failed", error=error, warnings=warnings[:_MAX_WARNINGS]
            )
        except Exception as exc:
            if not is_outage(exc):
                raise
            log.debug("run %s could not be closed: %s", run_id, exc)
            self._unclosed[run_id] = (error, warnings[:_MAX_WARNINGS])
            return False
        return True

    def close_pending(self) -> list[int]:
        """Mark ``failed`` the runs that ended on a store outage and could not be closed then,
        now that the store is back; return those closed (the others wait for the next call)."""
        closed = []
        for run_id, (error, warnings) in list(self._unclosed.items()):
            try:
                finish_run(self.engine, run_id, status="failed", error=error, warnings=warnings)
            except Exception as exc:
                if not is_outage(exc):
                    raise
                break
            del self._unclosed[run_id]
            closed.append(run_id)
        return closed

    def ingest(
        self,
        name: str,
        items: Sequence[Mapping[str, Any]],
        origin: str,
        guard: Guard | None = None,
        *,
        deletes: bool = False,
    ) -> Ingested:
        """Store records pushed to IN flow ``name`` (an event or webhook) as one batch.

        All or nothing: if any record fails the mapping, :class:`EventRejected` lists them and
        nothing is stored (the caller still holds the request and can fix it). Otherwise the
        records, their bindings, audit rows and deliveries commit in one transaction, recorded
        as a run of mode ``event`` whose positions are ``origin[i]``.

        Concurrent events of one flow share that transaction and its run (group commit,
        :mod:`erpbridge.engine.groupcommit`); each still gets its own counters and records, and
        fails alone. The flow's switch is read in that transaction: a flow paused through the
        API takes no event that commits after the pause. ``guard`` runs in the transaction
        before the event's records are written; an exception it returns is raised to this
        caller and nothing of the event is stored (a webhook's replay check). With ``deletes``,
        every record names one the channel deleted (by the flow's ``key``); otherwise the flow's
        ``delete_marker`` says which are deletes.
        """
        flow = self.config.flow(name)
        if flow.direction != "in":
            raise FatalError(f"flow {name!r} is an OUT flow: it cannot take events")
        batch = Batch([SourceRecord(item, f"{origin}[{i}]") for i, item in enumerate(items)])
        incoming, rejections, gone = self._job(flow).prepare(batch, deletes=deletes)
        if rejections:
            index = {record.position: i for i, record in enumerate(batch.records)}
            problems = [
                (index[r.position], path, reason)
                for r in rejections
                for path, reason in r.all_problems()
            ]
            raise EventRejected(name, problems)
        try:
            event = _Event(incoming, len(batch.records), guard, tuple(gone))
            return self._events.submit(name, event)
        except StatusRefused as exc:  # the workflow refused a status change: nothing stored
            index = {record.position: i for i, record in enumerate(batch.records)}
            problems = [(index[r.position], r.field_path, r.reason) for r in exc.refused]
            raise EventRejected(name, problems) from None

    def _job(self, flow: FlowConfig) -> _Job:
        """A job for events of ``flow`` (its mapping and subscribers, set up once)."""
        job = self._event_jobs.get(flow.name)
        if job is None:
            job = self._event_jobs[flow.name] = _Job(self, flow, 0, False, False, {})
        return job

    def _ingest_group(self, name: str, events: list[_Event]) -> list[Ingested | BaseException]:
        """Store a group of events of flow ``name`` in one transaction with one run; when that
        fails as a whole, each event is tried alone, so that only the failing one fails."""
        flow = self.config.flow(name)
        try:
            results = self.retry.call(lambda: self._write_events(flow, events), f"flow {name!r}")
        except Exception as exc:  # noqa: BLE001 - answered to each caller, tried alone first
            if len(events) > 1 and not isinstance(exc, StoreUnavailable):
                return [self._ingest_group(name, [event])[0] for event in events]
            self._failed_event_run(flow, exc)
            return [exc] * len(events)
        queued = any(
            isinstance(r, Ingested) and (r.created or r.updated or r.deleted) for r in results
        )
        if queued and self.on_queued is not None and subscribers_of(self.config, flow.entity):
            self.on_queued()
        return results

    def _write_events(
        self, flow: FlowConfig, events: list[_Event]
    ) -> list[Ingested | BaseException]:
        """One transaction: the run, each event's records (after its guard), the run closed.
        A key clash with another process (unique keys) is retried: the retry sees its rows."""
        job = self._job(flow)
        for attempt in range(1, _MAX_ATTEMPTS + 1):
            try:
                with self.engine.begin() as conn:
                    paused = paused_refusal(conn, flow.name, flow.enabled)
                    if paused is not None:
                        return [paused] * len(events)
                    # Guards first: a group that is refused whole leaves no run behind.
                    refused = [event.guard(conn) if event.guard else None for event in events]
                    if all(refusal is not None for refusal in refused):
                        return [refusal for refusal in refused if refusal is not None]
                    started = now()
                    run_id = insert_run(
                        conn,
                        flow=flow.name,
                        channel=flow.channel,
                        entity=flow.entity,
                        mode="event",
                        at=started,
                        lease=self.lease,
                    )
                    total = BatchCounts()
                    results = job.write_events(conn, run_id, events, refused, total)
                    warnings = [_stale_warning(flow, total.stale)] if total.stale else []
                    if total.unknown_deletes:
                        warnings.append(_unknown_warning(total.unknown_deletes))
                    close_run(conn, run_id, total, started=started, warnings=warnings)
                return results
            except IntegrityError as exc:
                if attempt == _MAX_ATTEMPTS:
                    raise FatalError(
                        f"events could not be stored after {attempt} attempts: "
                        f"{exc.orig if exc.orig is not None else exc}"
                    ) from exc
        raise AssertionError("unreachable")  # pragma: no cover

    def _failed_event_run(self, flow: FlowConfig, exc: BaseException) -> None:
        """Leave a trace of events that could not be stored: a failed run (if the store lets),
        its log event and metric."""
        run_id = 0
        try:
            run_id = start_run(self.engine, flow=flow.name, channel=flow.channel,
                               entity=flow.entity, mode="event", dry_run=False,
                               cursor_before=None, lease=self.lease)  # fmt: skip
            finish_run(self.engine, run_id, status="failed", error=str(exc), warnings=[])
        except Exception as failed:  # noqa: BLE001 - the store may be what failed
            log.debug("the failed event run of %s could not be recorded: %s", flow.name, failed)
        failed_run = RunResult(run_id, flow.name, "failed", "event", False)
        self._finished(failed_run, flow, "failed", str(exc) or type(exc).__name__)

    def resolve_conflict(self, conflict_id: int, take: str) -> None:
        """Settle an open two-way conflict: ``take="hub"`` releases the held deliveries;
        ``take="source"`` applies the channel's change as a new version and cancels them."""
        at = now()
        with self.engine.begin() as conn:
            if take == "hub":
                take_hub(conn, conflict_id, at)
                return
            row = take_source_payload(conn, conflict_id, at)
            flow = self.config.flow(row.flow)
            blob = row.incoming_payload.encode()
            item = Incoming(
                row.key,
                orjson.loads(blob),
                blob,
                content_hash(blob),
                row.external_id,
                f"conflict {conflict_id}",
            )
            lineage = Lineage(
                flow.entity,
                flow.channel,
                flow.name,
                None,
                at,
                subscribers_of(self.config, flow.entity),
                search=SearchSpec.of(flow.entity, self.config.entities[flow.entity]),
                dispatch=ledger_dispatcher(self.engine.dialect.name),
            )
            upsert_records(conn, lineage, [item])

    def replay_rejected(
        self, flow_name: str | None = None, ids: Sequence[int] | None = None
    ) -> list[RunResult]:
        """Map the stored payloads of open rejections again (after a mapping or data fix):
        those of ``flow_name`` (default: every flow), or only ``ids``.

        Those that now pass land in the hub and are marked ``replayed``; the others stay open
        with their new problems. Whole-file rejections have no payload: drop the fixed file
        again. A paused flow is refused (:class:`~erpbridge.errors.FlowPaused`).
        """
        with self.engine.connect() as conn:
            pending = open_rejections(conn, flow_name, ids)
            by_flow: dict[str, list[Any]] = {}
            for row in pending:
                if row.payload is not None:
                    by_flow.setdefault(row.flow, []).append(row)
            for name in by_flow:
                check_not_paused(conn, name)
        results = []
        for name, rows in by_flow.items():
            try:
                flow = self.config.flow(name)
            except KeyError:
                continue  # the flow is gone from the configuration; its rejections stay open
            results.append(self._replay(flow, rows))
        return results

    def _replay(self, flow: FlowConfig, rows: list[Any]) -> RunResult:
        run_id = start_run(
            self.engine,
            flow=flow.name,
            channel=flow.channel,
            entity=flow.entity,
            mode="replay",
            dry_run=False,
            cursor_before=None,
            lease=self.lease,
        )
        result = RunResult(run_id, flow.name, "running", "replay", False)
        job = _Job(self, flow, run_id, False, False, {})
        for start in range(0, len(rows), flow.batch_size):
            chunk = rows[start : start + flow.batch_size]
            # The position names the rejection: lineage in the audit trail, and unique per batch.
            records = [
                SourceRecord(decode(r.payload), f"{r.position} (rejection {r.id})") for r in chunk
            ]
            counts = job.commit(Batch(records), replayed=[r.id for r in chunk])
            result.add(counts)
        result.status = "succeeded"
        row = finish_run(self.engine, run_id, status="succeeded", error=None, warnings=[])
        result.duration_s = row.duration_s or 0.0
        self._finished(result, flow, "succeeded", None)
        return result


def subscribers_of(config: LoadedConfig, entity: str) -> tuple[Subscriber, ...]:
    """The enabled OUT flows of ``entity``: each new version is queued for them."""
    return tuple(
        Subscriber(
            f.name,
            f.channel,
            f.priority,
            f.retry.max_attempts,
            f.echo,
            f.schedule(),
            config.triggers.get(f.name),
            f.on_delete != "ignore",
        )
        for f in config.model.flows
        if f.direction == "out" and f.entity == entity and f.enabled
    )


def _unsafe_id(external_id: str | None) -> tuple[str, str] | None:
    """A channel id the hub must not store or look up (a NUL, a card number): the id as it may be
    shown, and why; ``None`` when it is fine."""
    if external_id is not None and "\x00" in external_id:
        return external_id.replace("\x00", "\\0"), _NUL_IN_KEY
    if external_id is not None and has_card_number(external_id):
        return mask_card_numbers(external_id), _ID_IS_A_CARD
    return None


def _mode(full: bool, sweep: bool) -> str:
    """A run's mode as stored: a key sweep is a full pass that also infers deletes."""
    return "sweep" if sweep else "full" if full else "incremental"


def _unknown_warning(ids: list[str]) -> str:
    shown = ", ".join(repr(i) for i in ids[:10]) + (", …" if len(ids) > 10 else "")
    return (
        f"{len(ids)} delete(s) of record(s) the hub does not hold from this channel ({shown}): "
        "nothing to delete"
    )


def _stale_warning(flow: FlowConfig, stale: int) -> str:
    return (
        f"{stale} record(s) older than the stored version ({flow.version_field}): skipped, "
        "not applied"
    )


def _count_deletes(counts: BatchCounts, done: Tombstoned) -> None:
    """Add what a batch's deletes did to its counters: one deleted before, or one the hub never
    had from the channel, changed nothing (unchanged). A source read again and again (condition
    records, archived parties) names the same long-gone ids each time: only an event's run
    warns about its unknown ids (its caller asked for them)."""
    counts.deleted += len(done.deleted)
    counts.unchanged += len(done.already) + len(done.unknown)
    counts.unknown_deletes += [g.external_id for g in done.unknown]


def field_rules(
    config: LoadedConfig, flow: FlowConfig, mapping: CompiledMapping
) -> FieldRules | None:
    """Which fields IN flow ``flow`` changes (``store.merge``); ``None``: whole records, as a
    flow mapping every field of an entity nobody owns fields of does."""
    owners = config.model.owners.get(flow.entity, {})
    foreign = frozenset(
        name for channel, names in owners.items() if channel != flow.channel for name in names
    )
    mapped: frozenset[str] | None = frozenset(name for name, _ in mapping.rules)
    if flow.replace or (mapped is not None and mapped >= set(config.entities[flow.entity].fields)):
        mapped = None
    if mapped is None and not foreign:
        return None
    return FieldRules(mapped, foreign)


class _Job:
    """The per-run state shared by the batches of one run."""

    def __init__(
        self,
        runner: FlowRunner,
        flow: FlowConfig,
        run_id: int,
        full: bool,
        dry_run: bool,
        superseding: dict[str, list[int]],
    ) -> None:
        self.runner = runner
        self.flow = flow
        self.run_id = run_id
        self.full = full
        self.dry_run = dry_run
        self.superseding = superseding
        self.preview = Preview(flow.entity) if dry_run else None
        #: The run holds its flow's run lock: each batch checks it still does (fencing).
        self.locked = False
        self.mapping: CompiledMapping = runner.config.mappings[flow.name]
        self.entity = runner.config.entities[flow.entity]
        self.subscribers = subscribers_of(runner.config, flow.entity)
        self.search = SearchSpec.of(flow.entity, runner.config.entities[flow.entity])
        self.fields = field_rules(runner.config, flow, self.mapping)
        workflows = runner.config.workflows_of(flow.entity)
        self.gate = FlowGate(workflows, flow.status_policy, flow.name) if workflows else None
        #: An event: a version the workflow refuses fails the whole batch (nothing stored).
        self.atomic = False
        keys = [flow.key] if isinstance(flow.key, str) else flow.key
        self.external_id = [getter(k) for k in keys] if keys else None
        self.key_path = ", ".join(keys) if keys else ""
        self.marked_deleted = flow.delete_marker.test() if flow.delete_marker else None
        #: A key sweep's run: the channel ids read, deleted or rejected (all exist there).
        self.seen: set[str] | None = None

    def _external_id(self, data: Mapping[str, Any]) -> str | None:
        if self.external_id is None:
            return None
        if len(self.external_id) == 1:  # the usual case: one id column
            value = self.external_id[0](data)
            return None if value is None or value == "" else str(value)
        parts = [get(data) for get in self.external_id]
        if any(p is None or p == "" for p in parts):
            return None
        return "|".join(str(p) for p in parts)

    def prepare(
        self, batch: Batch, *, deletes: bool = False
    ) -> tuple[list[Incoming], list[Rejection], list[Gone]]:
        """Map a batch: the records that pass, the rejections with their field paths, and the
        records the channel deleted (all of them with ``deletes``; else those the transport
        reports deleted and those the flow's ``delete_marker`` marks)."""
        ready: list[tuple[str, dict[str, Any], str | None, str]] = []
        gone: list[Gone] = []
        rejections = [
            Rejection(p.position, p.reason, p.field_path, p.payload) for p in batch.problems
        ]
        mapping, key_of = self.mapping, self.entity.key_of
        marked = self.marked_deleted
        records = batch.records
        dropped = [
            deletes or record.deleted or (marked is not None and marked(record.data))
            for record in records
        ]
        # The whole batch mapped column by column; None: that record is mapped on its own below.
        mapped = iter(
            mapping.map_batch([r.data for r, d in zip(records, dropped, strict=True) if not d])
        )
        for record, is_gone in zip(records, dropped, strict=True):
            external_id = self._external_id(record.data)
            if is_gone:
                found = self._gone(record, external_id, rejections)
                if found is not None:
                    gone.append(found)
                continue
            payload = next(mapped)
            try:
                if (unsafe := _unsafe_id(external_id)) is not None:
                    external_id, reason = unsafe
                    raise DataError(self.key_path, reason)
                if payload is None:
                    payload = mapping(record.data)
                key = key_of(payload)
                if "\x00" in key:
                    raise DataError("key", _NUL_IN_KEY)
            except DataError as exc:
                rejections.append(
                    Rejection(
                        record.position,
                        exc.reason,
                        exc.path,
                        scrub_card_numbers(jsonable(record.data)),
                        external_id,
                        exc.problems,
                    )
                )
                continue
            ready.append((key, payload, external_id if self.external_id else key, record.position))
        blobs = dump_payloads([payload for _, payload, _, _ in ready], mapping.flat)
        incoming = [
            Incoming(key, payload, blob, content_hash(blob), external_id, position)
            for (key, payload, external_id, position), blob in zip(ready, blobs, strict=True)
        ]
        if self.seen is not None:
            self.seen.update(i.external_id for i in incoming if i.external_id is not None)
            self.seen.update(g.external_id for g in gone)
            self.seen.update(r.external_id for r in rejections if r.external_id is not None)
        return incoming, rejections, gone

    def _gone(
        self, record: SourceRecord, external_id: str | None, rejections: list[Rejection]
    ) -> Gone | None:
        """The delete a source record stands for, named by the channel's id (the flow's
        ``key``; without one, the business key its mapping gives); or its rejection."""
        try:
            if self.external_id is None:
                external_id = self._key_only(record.data)
            if (unsafe := _unsafe_id(external_id)) is not None:
                external_id, reason = unsafe
                raise DataError(self.key_path or "key", reason)
            if external_id is None:
                raise DataError(self.key_path, "a deleted record without its id: nothing to delete")
        except DataError as exc:
            data = scrub_card_numbers(jsonable(record.data))
            rejections.append(Rejection(record.position, exc.reason, exc.path, data, external_id))
            return None
        return Gone(external_id, record.position)

    def _key_only(self, data: Mapping[str, Any]) -> str:
        """The business key of a deleted record, from its key fields' mapping rules alone (a
        delete names the record; it need not carry the fields a whole record must have)."""
        rules = dict(self.mapping.rules)
        key: dict[str, Any] = {}
        for name in self.entity.key:
            value = rules[name](data) if name in rules else data.get(name)
            if value is None or value == "" or not isinstance(value, str | int | float | Decimal):
                raise DataError(name, "a deleted record without its key: nothing to delete")
            key[name] = value
        return self.entity.key_of(key)

    def commit(self, batch: Batch, replayed: Iterable[int] = ()) -> BatchCounts:
        """Write one batch in one transaction (retried on a key clash), then acknowledge it."""
        incoming, rejections, gone = self.prepare(batch)
        replayed = list(replayed)
        for attempt in range(1, _MAX_ATTEMPTS + 1):
            try:
                # A store outage (restart, full or read-only disk) is waited out with backoff.
                counts = self.runner.retry.call(
                    lambda: self._write(batch, incoming, rejections, replayed, gone),
                    f"flow {self.flow.name!r}",
                )
                break
            except IntegrityError as exc:
                # Another writer created the same record or binding first (unique keys): the
                # next attempt sees its rows and updates them instead.
                if attempt == _MAX_ATTEMPTS:
                    raise FatalError(
                        f"batch could not be stored after {attempt} attempts: "
                        f"{exc.orig if exc.orig is not None else exc}"
                    ) from exc
        if not self.dry_run:
            batch.acknowledge()
            queued = self.subscribers and (counts.created or counts.updated or counts.deleted)
            if queued and self.runner.on_queued is not None:
                self.runner.on_queued()
        return counts

    def _write(
        self,
        batch: Batch,
        incoming: list[Incoming],
        rejections: list[Rejection],
        replayed: list[int],
        gone: list[Gone],
    ) -> BatchCounts:
        flow = self.flow
        lineage = self._lineage(self.run_id)
        with self.runner.engine.connect() as conn:
            transaction = conn.begin()
            try:
                if self.locked:
                    fence(conn, flow.name, self.run_id, lineage.at, self.runner.lease)
                keys = [i.key for i in incoming]
                before = self.preview.before(conn, keys) if self.preview else None
                upserted = upsert_records(conn, lineage, incoming)
                if upserted.refused and self.atomic:
                    raise StatusRefused(upserted.refused)
                rejections = rejections + [
                    Rejection(r.position, r.reason, r.field_path, r.payload, r.external_id)
                    for r in upserted.refused
                ]
                if self.preview:
                    changed = bool(upserted.created or upserted.updated)
                    self.preview.after(conn, keys, before, changed)
                counts = BatchCounts(read=len(batch.records), rejected=len(rejections))
                counts.add(upserted)
                if gone:
                    _count_deletes(counts, tombstone(conn, lineage, gone))
                self._bookkeeping(conn, batch, incoming, rejections, replayed, counts)
            except BaseException:
                transaction.rollback()
                raise
            if self.dry_run:
                transaction.rollback()
            else:
                transaction.commit()
        return counts

    def write_events(
        self,
        conn: Connection,
        run_id: int,
        events: list[_Event],
        refused: list[BaseException | None],
        total: BatchCounts,
    ) -> list[Ingested | BaseException]:
        """Write a group's events (those its guards did not refuse) in the group's transaction.

        Events of plain records (no deletes, no workflow, no conflict policy; not both field
        rules and a version field) whose keys all differ are written as one batch: one upsert,
        one read of the records before and one after, whatever the group's size; each event's
        counters come from those reads. Otherwise each event is written on its own."""
        todo = [event for event, refusal in zip(events, refused, strict=True) if refusal is None]
        merged = self._merged_events(conn, run_id, todo, total) if len(todo) > 1 else None
        if merged is None:
            merged = [self.write_event(conn, run_id, event, total) for event in todo]
        answers = iter(merged)
        return [refusal or next(answers) for refusal in refused]

    def _merged_events(
        self, conn: Connection, run_id: int, events: list[_Event], total: BatchCounts
    ) -> list[Ingested] | None:
        """The events written as one batch, or None (nothing written) when they cannot be."""
        flow = self.flow
        # A change that is not applied is stale by its version field, or unchanged (merged
        # into the stored fields, or equal); with both, the two could not be told apart.
        versioned = flow.version_field is not None
        if self.gate is not None or flow.conflict is not None or (versioned and self.fields):
            return None
        items = [item for event in events for item in event.incoming]
        keys = [item.key for item in items]
        if any(event.gone for event in events) or len(set(keys)) != len(keys):
            return None
        where = (record_rows.c.entity == flow.entity, record_rows.c.key.in_(keys))
        columns = (record_rows.c.key, record_rows.c.id, record_rows.c.version)
        before = {row.key: row.version for row in conn.execute(select(*columns).where(*where))}
        counts = BatchCounts()
        counts.add(upsert_records(conn, self._lineage(run_id), items))
        after = {
            row.key: (row.id, row.version, row.content_hash)
            for row in conn.execute(select(*columns, record_rows.c.content_hash).where(*where))
        }
        answers = []
        for event in events:
            each = BatchCounts(read=event.read)
            for item in event.incoming:
                _, version, content_hash = after[item.key]
                if item.key not in before:
                    each.created += 1
                elif version > before[item.key]:
                    each.updated += 1
                elif versioned and content_hash != item.hash:
                    each.stale += 1
                else:
                    each.unchanged += 1
            answers.append(
                Ingested(
                    run_id,
                    each.created,
                    each.updated,
                    each.unchanged,
                    [(i.key, *after[i.key][:2]) for i in event.incoming],
                    each.stale,
                )
            )
            total.read += event.read
        derived = [sum(getattr(a, n) for a in answers) for n in _MERGED_COUNTS]
        if counts.refused or derived != [getattr(counts, n) for n in _MERGED_COUNTS]:
            # Cannot happen for plain records; if it did, the group is tried again event by
            # event (the transaction is rolled back), never answered with wrong counters.
            raise MergedCountsDiffer(f"{derived} != {counts}")
        total.add(counts)
        return answers

    def write_event(
        self, conn: Connection, run_id: int, event: _Event, total: BatchCounts
    ) -> Ingested:
        """Write one event of a group in the group's transaction (run ``run_id``): its records,
        its answer read back in the transaction; add its counters to ``total``."""
        flow = self.flow
        lineage = self._lineage(run_id)
        counts = BatchCounts()
        counts.add(upsert_records(conn, lineage, event.incoming))
        if counts.refused:  # all or nothing: the group is tried again without this event
            raise StatusRefused(counts.refused)
        done = tombstone(conn, lineage, event.gone)
        _count_deletes(counts, done)
        total.add(counts)
        total.read += event.read
        keys = list(dict.fromkeys(item.key for item in event.incoming))
        keys += [key for key, _, _ in done.deleted + done.already if key not in keys]
        found = {
            row.key: (row.id, row.version)
            for row in conn.execute(
                select(record_rows.c.key, record_rows.c.id, record_rows.c.version).where(
                    record_rows.c.entity == flow.entity, record_rows.c.key.in_(keys)
                )
            )
        }
        return Ingested(
            run_id,
            counts.created,
            counts.updated,
            counts.unchanged,
            [(key, *found[key]) for key in keys],
            counts.stale,
            counts.deleted,
            tuple(counts.unknown_deletes),
        )

    def _bookkeeping(
        self,
        conn: Connection,
        batch: Batch,
        incoming: list[Incoming],
        rejections: list[Rejection],
        replayed: list[int],
        counts: BatchCounts,
    ) -> None:
        flow = self.flow
        if replayed:
            # Those that fail again stay open with their new reason; a fresh row would only
            # duplicate them. Replay positions name their rejection, so they are unique.
            ids = {item.position: i for i, item in zip(replayed, batch.records, strict=True)}
            failed = {r.position: r for r in rejections}
            landed = [i for position, i in ids.items() if position not in failed]
            resolve_rejections(conn, landed, self.run_id, "replayed")
            restate_rejections(conn, [(ids[p], r) for p, r in failed.items()])
        else:
            add_rejections(
                conn,
                flow=flow.name,
                channel=flow.channel,
                entity=flow.entity,
                run_id=self.run_id,
                items=rejections,
            )
        if self.superseding:
            # An older open rejection of the same source record is superseded by what this run
            # saw of it: the record landed, or was rejected again (then the new row stands).
            seen = [i.external_id for i in incoming] + [r.external_id for r in rejections]
            stale = [
                old for ext in seen if ext is not None for old in self.superseding.pop(ext, [])
            ]
            resolve_rejections(conn, stale, self.run_id, "superseded")
        if batch.cursor is not None and not replayed:
            if self.full:
                save_cursor(conn, flow.name, self.run_id, full_pass=batch.cursor)
            else:
                save_cursor(conn, flow.name, self.run_id, value=batch.cursor)
        add_batch(conn, self.run_id, counts, batch.cursor)

    def sweep(self, read: int) -> tuple[int, str | None]:
        """End a key sweep: every live record this channel had bound whose id the full pass did
        not see becomes a tombstone, in one transaction; return how many, and a warning when
        it deleted nothing on purpose: a pass that read nothing deletes nothing (a source that
        answers empty is more likely broken than emptied)."""
        seen = self.seen or set()
        flow = self.flow

        def apply() -> tuple[int, str | None]:
            with self.runner.engine.begin() as conn:
                fence(conn, flow.name, self.run_id, now(), self.runner.lease)
                bound = bound_ids(conn, flow.channel, flow.entity)
                missing = [ext for ext in bound if ext not in seen]
                if missing and read == 0:
                    return 0, (
                        f"key sweep: the source returned no records, so none of the "
                        f"{len(bound)} record(s) bound to {flow.channel!r} was deleted"
                    )
                position = f"key sweep (run {self.run_id})"
                gone = [Gone(ext, position) for ext in missing]
                done = tombstone(conn, self._lineage(self.run_id), gone)
                count_deleted(conn, self.run_id, len(done.deleted))
            return len(done.deleted), None

        deleted, warning = self.runner.retry.call(apply, f"flow {flow.name!r}")
        if deleted and self.runner.on_queued is not None and self.subscribers:
            self.runner.on_queued()
        return deleted, warning

    def _lineage(self, run_id: int) -> Lineage:
        """Where this job's writes come from, stamped now."""
        flow = self.flow
        return Lineage(
            flow.entity,
            flow.channel,
            flow.name,
            run_id,
            now(),
            self.subscribers,
            flow.conflict,
            self.search,
            flow.version_field,
            ledger_dispatcher(self.runner.engine.dialect.name),
            fields=self.fields,
            gate=self.gate,
        )

    def close_full_pass(self, cursor: Any) -> None:
        """A full pass reached the end: its last position becomes the incremental cursor."""

        def close() -> None:
            with self.runner.engine.begin() as conn:
                if self.locked:
                    fence(conn, self.flow.name, self.run_id, now(), self.runner.lease)
                if cursor is None:
                    save_cursor(conn, self.flow.name, self.run_id, keep_value=True)
                else:
                    save_cursor(conn, self.flow.name, self.run_id, value=cursor)

        self.runner.retry.call(close, f"flow {self.flow.name!r}")
