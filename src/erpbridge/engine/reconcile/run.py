"""``erpbridge reconcile``: does the channel hold what the hub holds?

A reconciliation reads the channel's side of a flow from the beginning through the connector
(``Source.read`` with no cursor: the flow's cursor is neither read nor moved), maps each record
to the canonical shape (:mod:`erpbridge.config.reconcile`), and compares it with the current
versions the hub holds for the entity, key by key (:mod:`.compare`): counts on each side, keys
missing on either side, fields that differ with both values, and sums of amount fields.

It changes no data. Repairs run only when asked for, after the whole comparison succeeded
(:mod:`.repair`). A channel that fails mid-way ends the reconciliation with
:class:`ReconcileFailed` naming the flow, channel, how far it got and the cause; nothing is
repaired then.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Literal

import orjson
from sqlalchemy import Connection, Engine, select
from sqlalchemy.exc import SQLAlchemyError

from erpbridge.config.loader import LoadedConfig
from erpbridge.config.reconciliation import ReconcilePlan
from erpbridge.engine.reconcile.compare import (
    AmountSums,
    Difference,
    KeyOrderError,
    Spill,
    Tally,
    amount_of,
)
from erpbridge.errors import DataError, ErpbridgeError
from erpbridge.store.states import TOMBSTONE_HASH
from erpbridge.store.tables import records

__all__ = [
    "DEFAULT_LIMIT",
    "ReconcileFailed",
    "ReconcileRefused",
    "Reconciler",
    "Repair",
    "Report",
]

#: Differences listed in a report (every difference is counted).
DEFAULT_LIMIT = 1000
#: Records the hub side reads per fetch.
_HUB_FETCH = 2000
#: Channel records that failed the mapping, listed with their reason.
_SHOWN_REJECTS = 20

Repair = Literal["redeliver", "reread"]


class ReconcileRefused(ErpbridgeError):
    """A reconciliation that cannot start: an unknown flow or entity, a flow without a
    ``reconcile:`` block, a repair that does not fit the flow's direction."""


class ReconcileFailed(ErpbridgeError):
    """The channel (or the hub store) failed during a reconciliation; nothing was changed."""


@dataclass(slots=True)
class Report:
    """One reconciliation of one flow: both sides counted and compared."""

    flow: str
    channel: str
    entity: str
    fields: tuple[str, ...]
    started_at: datetime
    status: Literal["succeeded", "failed"] = "succeeded"
    tally: Tally = field(default_factory=Tally)
    sums: dict[str, AmountSums] = field(default_factory=dict)
    #: Channel records that failed the mapping (not compared), and the first few reasons.
    rejected: int = 0
    rejects: list[str] = field(default_factory=list)
    error: str | None = None
    duration_s: float = 0.0
    #: Seconds spent reading the channel's side and the hub's (the rest compared them).
    phases: dict[str, float] = field(default_factory=dict)
    #: The repair asked for, and what it queued or re-read.
    repair: Repair | None = None
    repaired: int = 0

    @property
    def differences(self) -> list[Difference]:
        """The first differences (``limit`` of them)."""
        return self.tally.details

    @property
    def truncated(self) -> bool:
        """Whether more differences exist than are listed."""
        t = self.tally
        listed = {(d.key, d.kind) for d in t.details}
        return len(listed) < t.differences

    def as_json(self) -> dict[str, Any]:
        """The report as plain JSON data (CLI ``--format json``, the API, the stored row)."""
        t = self.tally
        return {
            "flow": self.flow,
            "channel": self.channel,
            "entity": self.entity,
            "status": self.status,
            "error": self.error,
            "started_at": self.started_at.isoformat(),
            "duration_s": round(self.duration_s, 3),
            "fields": list(self.fields),
            "counts": {
                "hub": t.hub,
                "channel": t.channel,
                "matched": t.matched,
                "missing_in_channel": t.missing_in_channel,
                "missing_in_hub": t.missing_in_hub,
                "differing": t.differing,
                "duplicates": t.duplicates,
                "rejected": self.rejected,
            },
            "sums": {name: s.as_json() for name, s in self.sums.items()},
            "differences": [d.as_json() for d in t.details],
            "truncated": self.truncated,
            "rejects": self.rejects,
            "repair": self.repair,
            "repaired": self.repaired,
        }


class Reconciler:
    """Reconciles the flows of one configuration against one hub store."""

    def __init__(
        self, config: LoadedConfig, engine: Engine, stopping: threading.Event | None = None
    ) -> None:
        self.config = config
        self.engine = engine
        #: Set when the process stops gracefully: the comparison ends between two pages.
        self.stopping = stopping or threading.Event()

    def plans(self, name: str) -> list[ReconcilePlan]:
        """The flows a ``FLOW|ENTITY`` argument names, each with its ``reconcile:`` block;
        :class:`ReconcileRefused` naming the cause otherwise."""
        flows = {f.name: f for f in self.config.model.flows}
        if name in flows:
            plan = self.config.reconcile.get(name)
            if plan is None:
                raise ReconcileRefused(
                    f"flow {name!r} has no `reconcile:` block: give it one (its fields, and "
                    "for an OUT flow the `source` that reads the channel's side)"
                )
            return [plan]
        if name in self.config.entities:
            found = [p for p in self.config.reconcile.values() if p.entity == name]
            if not found:
                raise ReconcileRefused(f"no flow of entity {name!r} has a `reconcile:` block")
            return found
        known = ", ".join(sorted(self.config.reconcile)) or "none"
        raise ReconcileRefused(
            f"{name!r} is neither a flow nor an entity (flows with `reconcile:`: {known})"
        )

    def reconcile(self, plan: ReconcilePlan, *, limit: int = DEFAULT_LIMIT) -> Comparison:
        """Read both sides and compare them; the caller closes the result (its spill file).

        Raises :class:`ReconcileFailed` when the channel or the store fails on the way.
        """
        started = time.monotonic()
        report = Report(
            plan.flow, plan.channel, plan.entity, plan.fields, datetime.now(UTC),
            sums={name: AmountSums() for name in plan.amounts},
        )  # fmt: skip
        spill = Spill(plan.fields)
        try:
            self._channel_side(plan, report, spill)
            report.phases["channel_s"] = time.monotonic() - started
            self._compare(plan, report, spill, limit)
            report.phases["hub_s"] = time.monotonic() - started - report.phases["channel_s"]
        except BaseException:
            spill.close()
            raise
        report.duration_s = time.monotonic() - started
        return Comparison(plan, report, spill)

    def _channel_side(self, plan: ReconcilePlan, report: Report, spill: Spill) -> None:
        key_of = self.config.entities[plan.entity].key_of
        mapping, values = plan.mapping, spill.values
        read = 0
        summing = Summing(plan.amounts)

        def rows() -> Iterator[tuple[str, bytes]]:
            nonlocal read
            for batch in self._read(plan):
                self._check_stop(plan, read)
                for problem in batch.problems:
                    self._reject(report, f"{problem.position}: {problem.reason}")
                for record in batch.records:
                    read += 1
                    try:
                        # Validated payloads are plain JSON values (decimals and times as
                        # text), as the hub stores them: comparable without a round trip.
                        payload = mapping(record.data)
                        key = key_of(payload)
                    except DataError as exc:
                        self._reject(report, f"{record.position}: {exc.path}: {exc.reason}")
                        continue
                    summing.add(payload)
                    yield key, values(payload)

        try:
            report.tally.duplicates = spill.add(rows())
        except ErpbridgeError as exc:
            raise ReconcileFailed(
                f"reconcile of flow {plan.flow!r}: channel {plan.channel!r} failed after "
                f"{read} record(s) read: {exc}; nothing was changed"
            ) from exc
        summing.into(report.sums, "channel")
        report.tally.channel = read - report.rejected - report.tally.duplicates

    def _read(self, plan: ReconcilePlan) -> Iterator[Any]:
        transport = self.config.open_transport(plan.channel)
        try:
            yield from transport.read(plan.stream, None, plan.page_size, frozenset())
        finally:
            transport.close()

    def _check_stop(self, plan: ReconcilePlan, read: int) -> None:
        if self.stopping.is_set():
            raise ReconcileFailed(
                f"reconcile of flow {plan.flow!r}: stopped by a graceful shutdown after {read} "
                "record(s) read; nothing was changed"
            )

    @staticmethod
    def _reject(report: Report, reason: str) -> None:
        report.rejected += 1
        if len(report.rejects) < _SHOWN_REJECTS:
            report.rejects.append(reason)

    def _compare(self, plan: ReconcilePlan, report: Report, spill: Spill, limit: int) -> None:
        """Stream the hub's current versions of the entity in key order into the comparison."""
        wanted = self.config.triggers.get(plan.flow)
        summing = Summing(plan.amounts)
        values, loads = spill.values, orjson.loads
        count = 0
        key = records.c.key
        ordered = key.collate("C") if self.engine.dialect.name == "postgresql" else key
        # A record deleted in the hub (a tombstone) is expected in no channel.
        query = (
            select(key, records.c.payload)
            .where(records.c.entity == plan.entity, records.c.content_hash != TOMBSTONE_HASH)
            .order_by(ordered)
        )

        def rows(result: Iterable[Any]) -> Iterator[tuple[str, bytes]]:
            nonlocal count
            for name, text in result:
                if count % _HUB_FETCH == 0:
                    self._check_stop(plan, count)
                payload = loads(text)
                if wanted is not None and not wanted(None, payload, frozenset()):
                    continue  # an OUT flow's `when:` does not send it: not expected there
                count += 1
                summing.add(payload)
                yield name, values(payload)

        try:
            with self.engine.connect() as conn, _small_cache(conn):
                result = conn.execution_options(yield_per=_HUB_FETCH).execute(query)
                spill.compare(rows(result), report.tally, limit)
        except (SQLAlchemyError, KeyOrderError) as exc:
            raise ReconcileFailed(
                f"reconcile of flow {plan.flow!r}: the hub store failed after {count} "
                f"record(s) read: {exc}; nothing was changed"
            ) from exc
        summing.into(report.sums, "hub")
        report.tally.hub = count


@contextmanager
def _small_cache(conn: Connection) -> Iterator[None]:
    """On SQLite, a small page cache for a scan read once (the store's 64 MB would fill with
    pages never read again); restored afterwards for the pooled connection's next user."""
    if conn.dialect.name != "sqlite":
        yield
        return
    before = conn.exec_driver_sql("PRAGMA cache_size").scalar_one()
    conn.exec_driver_sql("PRAGMA cache_size = -4000")
    try:
        yield
    finally:
        conn.exec_driver_sql(f"PRAGMA cache_size = {int(before)}")


class Summing:
    """Running totals of the amount fields over one side's payloads."""

    def __init__(self, names: tuple[str, ...]) -> None:
        self.names = names
        self.totals = [Decimal(0)] * len(names)
        self.unreadable = [0] * len(names)

    def add(self, payload: dict[str, Any]) -> None:
        """Add the payload's amounts (absent ones count nothing, non-numbers are counted)."""
        for i, name in enumerate(self.names):
            value = payload.get(name)
            if value is None:
                continue
            try:
                amount = amount_of(value)
            except ValueError:
                self.unreadable[i] += 1
                continue
            if amount is not None:
                self.totals[i] += amount

    def into(self, sums: dict[str, AmountSums], side: Literal["hub", "channel"]) -> None:
        """Write the totals into the report's sums, as ``side``'s."""
        for name, total, unreadable in zip(self.names, self.totals, self.unreadable, strict=True):
            setattr(sums[name], side, total)
            sums[name].unreadable += unreadable


@dataclass(slots=True)
class Comparison:
    """A finished comparison: its report, and the spill file the repairs read their keys
    from (removed by :meth:`close`)."""

    plan: ReconcilePlan
    report: Report
    spill: Spill

    def close(self) -> None:
        """Remove the spill file."""
        self.spill.close()
