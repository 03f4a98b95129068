"""Deliver record versions to OUT flows: claim from the ledger, map, write, finish under fence.

``attempt`` is the same whatever hands the work out (the embedded claim loop here; procrastinate
jobs in ``erpbridge.engine.dispatch``): claim, load the exact version from the audit trail, map
it with the flow's mapping, write it through the target transport, then record the outcome and the
binding in one transaction — only if the lease and its fencing token are still ours.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, NamedTuple

from sqlalchemy import Connection, Engine

from erpbridge.config.loader import LoadedConfig
from erpbridge.engine.documents import issue_for_delivery
from erpbridge.engine.limits import ChannelLimiter
from erpbridge.engine.retry import backoff
from erpbridge.errors import DataError, ErpbridgeError, FatalError, RetriableError
from erpbridge.observe.events import delivery_dead
from erpbridge.observe.metrics import observe_attempts
from erpbridge.store.database import reading
from erpbridge.store.deliveries import (
    Claim,
    Outcome,
    claim,
    claim_ids,
    finish_many,
    release,
    renew,
)
from erpbridge.store.outage import StoreRetry
from erpbridge.store.payloads import VersionPayload, version_payloads
from erpbridge.store.records import Lineage, bind
from erpbridge.store.runs import now
from erpbridge.store.superseding import BACKFILL_PRIORITY
from erpbridge.store.switches import paused_flows
from erpbridge.transports.base import (
    Deleter,
    OutgoingDocument,
    OutgoingRecord,
    TargetOptions,
    Transport,
    Writer,
)

__all__ = ["Worker", "WorkerStats"]

log = logging.getLogger(__name__)


class Failure(NamedTuple):
    """A delivery that did not go out this time, and what happens to it."""

    claim: Claim
    outcome: str  # retry | dead
    error: str
    retry_after: float | None = None


@dataclass
class WorkerStats:
    """What one pass of a worker did."""

    claimed: int = 0
    delivered: int = 0
    retried: int = 0
    dead: int = 0
    lost: int = 0
    #: Claims given back unattempted because the worker is stopping.
    released: int = 0


def _outgoing(
    item: Claim,
    data: Mapping[str, Any],
    document: OutgoingDocument | None = None,
    deleted: bool = False,
) -> OutgoingRecord:
    return OutgoingRecord(item.id, item.entity, item.key, item.version, item.idempotency_key,
                          data, document, deleted)  # fmt: skip


def _put(
    flow: str, transport: Writer, target: TargetOptions, records: list[OutgoingRecord]
) -> list[str | None]:
    """Write ``records`` (their deletes through the transport's :class:`Deleter`); return each
    one's id in the channel, in their order."""
    deletes = [r for r in records if r.deleted]
    if not deletes:
        return transport.write(target, records)
    if not isinstance(transport, Deleter):  # refused by the configuration check already
        raise FatalError(f"flow {flow!r}: its channel's transport cannot delete records")
    writes = [r for r in records if not r.deleted]
    ids = dict(
        zip(
            (r.delivery_id for r in writes),
            transport.write(target, writes) if writes else [],
            strict=True,
        )
    )
    ids.update(
        zip((r.delivery_id for r in deletes), transport.delete(target, deletes), strict=True)
    )
    return [ids[r.delivery_id] for r in records]


def worker_name() -> str:
    """host:pid:random — unique per worker, readable in the ledger."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


class Worker:
    """Delivers due ledger entries of the configuration's OUT flows."""

    def __init__(
        self,
        config: LoadedConfig,
        engine: Engine,
        *,
        name: str | None = None,
        lease: timedelta = timedelta(seconds=60),
        batch_size: int = 100,
        live_only: bool = False,
        live_lane: bool = False,
        gate: threading.Lock | None = None,
    ) -> None:
        self.config = config
        self.engine = engine
        self.name = name or worker_name()
        self.lease = lease
        self.batch_size = batch_size
        #: This worker is a live lane: it claims live changes only (above the backfill's
        #: priority) and leaves backfilled and replayed deliveries to the worker beside it.
        self.min_priority = BACKFILL_PRIORITY + 1 if live_only else None
        #: While backfilled or replayed deliveries are due, claim this many at a time (live ones
        #: first, by priority): a live change arriving meanwhile waits for a small batch, not a
        #: full one (issue 21). With a live lane beside this worker (``live_lane``) a live change
        #: waits for no batch of this one, so the batches are larger: half a batch.
        self.background_batch = max(1, batch_size // 2) if live_lane else max(1, batch_size // 4)
        #: Shared by a live lane and the worker beside it: the live lane holds it while it
        #: delivers, and the other worker claims only when it is free, so that live changes
        #: do not share the store's write lock and the targets with a backfill's batches.
        self.gate = gate
        self._background = False
        # Only flows this configuration knows: deliveries of a removed flow stay in the ledger,
        # visible, instead of being claimed by a worker that cannot map them.
        self.flows = [f.name for f in config.model.flows if f.direction == "out" and f.enabled]
        self._transports: dict[str, Transport] = {}
        self.limiter = ChannelLimiter(engine)
        channel_of = {f.name: f.channel for f in config.model.flows}
        self._capped: dict[str, list[str]] = {}  # channel with max_in_flight → its flows
        for flow in self.flows:
            limits = config.model.channels[channel_of[flow]].limits
            if limits is not None and limits.max_in_flight is not None:
                self._capped.setdefault(channel_of[flow], []).append(flow)
        capped_flows = {f for flows in self._capped.values() for f in flows}
        self._uncapped = [f for f in self.flows if f not in capped_flows]
        #: Set to stop gracefully: no new claims; claims not yet written are released.
        self.stopping = threading.Event()
        self.retry = StoreRetry(engine, config.store_retry_s())
        self._guard = threading.Lock()
        self._held: dict[int, Claim] = {}  # claimed, outcome not recorded yet
        self._writing: set[int] = set()  # handed to a transport's write right now

    def _active(self, conn: Connection) -> tuple[list[str], dict[str, list[str]]]:
        """The uncapped flows and the capped ones by channel, without the paused flows: their
        deliveries stay ``pending`` in the ledger until the flow is resumed."""
        paused = paused_flows(conn)
        if not paused:
            return self._uncapped, self._capped
        capped = {
            channel: [f for f in flows if f not in paused]
            for channel, flows in self._capped.items()
        }
        return [f for f in self._uncapped if f not in paused], {
            c: f for c, f in capped.items() if f
        }

    def _claim(self, conn: Connection, *, take_over: bool = True) -> list[Claim]:
        """Claim a batch; channels with ``max_in_flight`` only up to their free slots."""
        at = now()
        uncapped, capped = self._active(conn)
        size = self.background_batch if self._background else self.batch_size
        lease = self.lease
        least = self.min_priority
        claims = (
            claim(conn, self.name, size, lease, at, uncapped, take_over=take_over,
                  min_priority=least)
            if uncapped
            else []
        )  # fmt: skip
        # sorted: PostgreSQL's advisory locks are always taken in one order (no deadlock)
        for channel in sorted(capped):
            limits = self.config.model.channels[channel].limits
            room = self.limiter.in_flight_allowance(conn, channel, limits, size)
            if room:
                flows = capped[channel]
                claims += claim(conn, self.name, room, lease, at, flows, take_over=take_over,
                                min_priority=least)  # fmt: skip
        # any backfilled one: no live change was left, so the next claim stays small too
        self._background = any(c.priority <= BACKFILL_PRIORITY for c in claims)
        return claims

    def close(self) -> None:
        """Close the channels' transports."""
        for transport in self._transports.values():
            transport.close()
        self._transports.clear()

    def run_once(self) -> WorkerStats:
        """Deliver until nothing is due; return what happened."""
        if self.gate is not None and self.min_priority is not None:
            with self.gate:  # a live lane: the worker beside it waits while it delivers
                return self._run_once()
        return self._run_once()

    def _run_once(self) -> WorkerStats:
        stats = WorkerStats()
        while self.flows and not self.stopping.is_set():
            if self.gate is not None and self.min_priority is None:
                with self.gate:  # live changes are being delivered: after them
                    pass
            with self.engine.begin() as conn:
                claims = self._claim(conn)
            if not claims:
                break
            stats.claimed += len(claims)
            self._attempt_by_flow(claims, stats)
            if any(c.taken_over for c in claims) and not self.stopping.is_set():
                # A taken-over delivery is written alone (a record that kills its writer must
                # not take a batch down with it), and only then the due ones: live traffic
                # goes on at batch speed while a dead worker's claims come back one by one
                # (they used to hold every worker to one delivery per pass: 3/s for 25 s
                # after a host with 100 claims died, in tests/cluster).
                with self.engine.begin() as conn:
                    batch = self._claim(conn, take_over=False)
                stats.claimed += len(batch)
                self._attempt_by_flow(batch, stats)
        return stats

    def run_ids(self, ids: Sequence[int]) -> WorkerStats:
        """Deliver those of ``ids`` that are due and head of their ordering key (a job's ids).

        Claims again after a take-over of an expired lease, which hands out one delivery per
        claim: the job of a killed worker gets its ids back one by one, within one run.
        """
        stats = WorkerStats()
        while self.flows and self._run_ids_once(ids, stats):
            pass
        return stats

    def _run_ids_once(self, ids: Sequence[int], stats: WorkerStats) -> bool:
        with self.engine.begin() as conn:
            at = now()
            uncapped, capped = self._active(conn)
            claims = claim_ids(conn, ids, self.name, self.lease, at, uncapped) if uncapped else []
            for channel in sorted(capped):  # max_in_flight holds for jobs too
                limits = self.config.model.channels[channel].limits
                room = self.limiter.in_flight_allowance(conn, channel, limits, len(ids))
                flows = capped[channel]
                claims += claim_ids(conn, ids, self.name, self.lease, at, flows, limit=room)
        stats.claimed += len(claims)
        self._attempt_by_flow(claims, stats)
        return any(c.taken_over for c in claims)

    def _attempt_by_flow(self, claims: list[Claim], stats: WorkerStats) -> None:
        with self._guard:
            self._held.update((item.id, item) for item in claims)
        by_flow: dict[str, list[Claim]] = {}
        for item in claims:
            by_flow.setdefault(item.flow, []).append(item)
        for flow, items in by_flow.items():
            if self.stopping.is_set():
                self.give_back(items, stats)
            else:
                self.attempt(flow, items, stats)

    def give_back(self, items: list[Claim], stats: WorkerStats | None = None) -> int:
        """Release claims this worker will not attempt (it is stopping): due again at once."""
        if not items:
            return 0
        with self.engine.begin() as conn:
            count = release(conn, items, self.name, now())
        with self._guard:
            for item in items:
                self._held.pop(item.id, None)
        if stats is not None:
            stats.released += count
        return count

    def release_unwritten(self) -> tuple[int, int]:
        """Release every claim not being written right now (a stop that ran out of time);
        return (released, writes still in flight). Safe from another thread."""
        with self._guard:
            idle = [c for i, c in self._held.items() if i not in self._writing]
            writing = len(self._writing)
        return self.give_back(idle), writing

    def _transport(self, channel: str) -> Transport:
        if channel not in self._transports:
            self._transports[channel] = self.config.open_transport(channel)
        return self._transports[channel]

    def _payloads(self, items: list[Claim]) -> dict[tuple[int, int], VersionPayload]:
        """Each claimed version's payload, and whether it is a tombstone (its last payload): one
        indexed read for the batch, without the write lock (SQLite: DEFERRED)."""
        with reading(self.engine) as conn:
            return version_payloads(conn, [(i.record_id, i.version) for i in items])

    def attempt(self, flow_name: str, items: list[Claim], stats: WorkerStats) -> None:
        """Deliver ``items`` of one flow as one write; record each outcome under its fence."""
        started = time.perf_counter()
        flow = self.config.flow(flow_name)
        mapping = self.config.mappings[flow.name]
        payloads = self._payloads(items)
        outgoing: list[tuple[Claim, OutgoingRecord]] = []
        skipped: list[tuple[Claim, OutgoingRecord]] = []  # nothing to send: delivered as is
        failures: list[Failure] = []
        for item in items:
            found = payloads.get((item.record_id, item.version))
            if found is None:
                missing = f"version {item.version} of record {item.record_id} is not in the audit"
                failures.append(Failure(item, "dead", missing))
                continue
            payload, deleted = found
            if deleted and flow.on_delete == "ignore":  # queued before the flow said so
                skipped.append((item, _outgoing(item, {}, None, deleted)))
                continue
            if deleted and flow.on_delete == "deactivate":
                # deactivate: the last version with the flow's fields set, written as an update.
                try:
                    data = {**mapping(payload), **(flow.deactivate or {})}
                except DataError as exc:
                    failures.append(Failure(item, "dead", f"mapping: {exc}"))
                    continue
                outgoing.append((item, _outgoing(item, data)))
                continue
            document: OutgoingDocument | None = None
            if flow.document is not None and not deleted:
                try:
                    doc = self.config.documents[flow.document]
                    payload, document = issue_for_delivery(
                        self.engine,
                        doc,
                        item,
                        payload,
                        lead=self.config.documents.get(doc.spec.number_of or ""),
                        for_mapping=not mapping.whole,
                    )
                except DataError as exc:  # the template cannot make it: no number was taken
                    failures.append(Failure(item, "dead", str(exc)))
                    continue
            try:
                data = mapping(payload)
            except DataError as exc:
                failures.append(Failure(item, "dead", f"mapping: {exc}"))
                continue
            outgoing.append((item, _outgoing(item, data, document, deleted)))
        external: list[str | None] = []
        if outgoing:
            try:
                self.limiter.acquire_requests(
                    flow.channel,
                    self.config.model.channels[flow.channel].limits,
                    n=len(outgoing),
                    timeout=self.lease.total_seconds() / 2,
                )
            except RetriableError as exc:
                failures.extend(
                    Failure(item, "retry", str(exc), exc.retry_after) for item, _ in outgoing
                )
                outgoing = []
            kept = self._still_ours(outgoing)
            ours = {item.id for item, _ in kept}
            failures.extend(  # recorded as lost: another worker has them now
                Failure(item, "retry", "lease taken over before the write")
                for item, _ in outgoing
                if item.id not in ours
            )
            if self.stopping.is_set():  # stopping: not written yet, so given back unattempted
                self.give_back([item for item, _ in kept], stats)
                kept = []
            with self._guard:
                self._writing.update(item.id for item, _ in kept)
            try:
                outgoing, external = self._write(flow_name, kept, failures)
            finally:
                with self._guard:
                    self._writing.clear()
        outgoing, external = outgoing + skipped, external + [None] * len(skipped)
        self._record(flow_name, outgoing, external, failures, stats, started)

    def _still_ours(
        self, outgoing: list[tuple[Claim, OutgoingRecord]]
    ) -> list[tuple[Claim, OutgoingRecord]]:
        """Renew the leases right before writing and keep only what is still ours.

        A worker that waited (rate limit, slow mapping) past its lease must not write a version
        another worker has taken over. A write that itself outlasts the lease can still land
        late: targets that must never go back a version use a version guard (``sqlwrite``'s
        ``version_column``).

        Claims younger than half their lease are kept without asking the store: no one can take
        over a lease before it expires, and the write still has half a lease ahead. That saves
        a write transaction per batch (on SQLite, one more turn at the write lock).
        """
        if not outgoing:
            return outgoing
        at = now()
        if all(item.fresh(at) for item, _ in outgoing):
            return outgoing
        with self.engine.begin() as conn:
            kept = renew(conn, [item for item, _ in outgoing], self.name, now(), self.lease)
        return [(item, record) for item, record in outgoing if item.id in kept]

    def _write(
        self,
        flow_name: str,
        outgoing: list[tuple[Claim, OutgoingRecord]],
        failures: list[Failure],
    ) -> tuple[list[tuple[Claim, OutgoingRecord]], list[str | None]]:
        """Write a batch; on a permanent error, write its records one by one, so that one bad
        record does not take the good ones of its batch down with it."""
        if not outgoing:
            return [], []
        flow = self.config.flow(flow_name)
        transport = self._transport(flow.channel)
        assert isinstance(transport, Writer)
        target = self.config.targets[flow.name]
        try:
            return outgoing, _put(flow_name, transport, target, [record for _, record in outgoing])
        except RetriableError as exc:
            failures.extend(
                Failure(item, "retry", str(exc), exc.retry_after) for item, _ in outgoing
            )
            return [], []
        except ErpbridgeError as exc:
            if len(outgoing) == 1:
                failures.append(Failure(outgoing[0][0], "dead", str(exc)))
                return [], []
        written: list[tuple[Claim, OutgoingRecord]] = []
        external: list[str | None] = []
        for pair in outgoing:
            done, ids = self._write(flow_name, [pair], failures)
            written += done
            external += ids
        return written, external

    def _record(
        self,
        flow_name: str,
        written: list[tuple[Claim, OutgoingRecord]],
        external: list[str | None],
        failures: Iterable[Failure],
        stats: WorkerStats,
        started: float | None = None,
    ) -> None:
        """Settle the outcomes; ``started`` (``perf_counter``) times the write for the metrics."""
        flow = self.config.flow(flow_name)
        at = now()
        policy = flow.retry
        outcomes = [
            Outcome(item, "delivered", external_id=external_id)
            for (item, _), external_id in zip(written, external, strict=True)
        ]
        for item, outcome, error, retry_after in failures:
            retry_at = None
            if outcome == "retry":
                delay = (
                    backoff(
                        item.attempts,  # counted at the claim: this attempt included
                        policy.backoff_s,
                        policy.max_backoff_s,
                        policy.min_delay_s,
                    )
                    if retry_after is None
                    # the target said when; the floor stops `Retry-After: 0` storms
                    else max(retry_after, policy.min_delay_s)
                )
                retry_at = at + timedelta(seconds=delay)
            outcomes.append(Outcome(item, outcome, error=error, retry_at=retry_at))
        with self._guard:
            for settled in outcomes:
                self._held.pop(settled.claim.id, None)
        # A write that went out is recorded once the store is back (hub.store_retry_s), not
        # written again after its lease.
        final = self.retry.call(
            lambda: self._settle(flow.channel, flow_name, written, outcomes, at),
            f"worker {self.name}",
        )
        counted = {"delivered": 0, "retry": 0, "dead": 0, "lost_lease": 0}
        for value in final.values():
            counted[value] = counted.get(value, 0) + 1
        stats.delivered += counted["delivered"]
        stats.retried += counted["retry"]
        stats.dead += counted["dead"]
        stats.lost += counted["lost_lease"]
        seconds = 0.0 if started is None else time.perf_counter() - started
        observe_attempts(flow.channel, flow_name, counted, seconds)
        if counted["dead"]:
            for settled in outcomes:
                if final.get(settled.claim.id) == "dead":
                    delivery_dead(
                        flow=flow_name,
                        channel=flow.channel,
                        delivery_id=settled.claim.id,
                        key=settled.claim.key,
                        attempts=settled.claim.attempts,
                        cause=settled.error or "",
                    )

    def _settle(
        self,
        channel: str,
        flow_name: str,
        written: list[tuple[Claim, OutgoingRecord]],
        outcomes: list[Outcome],
        at: datetime,
    ) -> dict[int, str]:
        """Record the outcomes under their fences and bind the delivered ids, in one transaction."""
        with self.engine.begin() as conn:
            final = finish_many(conn, outcomes, self.name, at)
            bound = [
                (o.external_id, o.claim.record_id)
                for o in outcomes
                if o.external_id is not None and final[o.claim.id] == "delivered"
            ]
            # A file holding a whole batch is no record's own id: bind only ids unique here.
            counts: dict[str, int] = {}
            for external_id, _ in bound:
                counts[external_id] = counts.get(external_id, 0) + 1
            bound = [(e, r) for e, r in bound if counts[e] == 1]
            if bound and written:
                entity = written[0][0].entity
                bind(conn, Lineage(entity, channel, flow_name, None, at), bound)
        return final
