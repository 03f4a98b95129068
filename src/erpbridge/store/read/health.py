"""What the hub's tables say about its health: run totals, failing flows, the delivery backlog,
channel health and rejection rates. One query per question, grouped in SQL.

These answers are the same whichever process asks (they come from the shared store), so the
metrics of every process, ``GET /api/v1/status``, ``erpbridge status`` and the alert rules agree.

A channel is **down** when the newest thing that touched it failed: its newest finished run
(IN flows) failed, or its newest delivery attempt (OUT flows) ended ``retry`` (the target could
not be reached or refused for now). It is down *since* the first such failure after its last
success. Dead attempts (a record the target refused for good) say nothing about the channel.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, case, false, func, select

from erpbridge.store.read.scope import EVERYTHING, Scope
from erpbridge.store.states import OPEN_DELIVERY_STATES
from erpbridge.store.tables import deliveries, delivery_attempts, runs
from erpbridge.store.timestamps import aware

__all__ = [
    "ATTEMPT_WINDOW",
    "Backlog",
    "ChannelHealth",
    "FailingFlow",
    "RunTotals",
    "backlog",
    "channel_health",
    "failing_flows",
    "rejection_rates",
    "run_totals",
]

#: How far back delivery attempts are read for channel health (older ones say little).
ATTEMPT_WINDOW = timedelta(days=1)


@dataclass(frozen=True, slots=True)
class RunTotals:
    """The runs of one flow with one status, and the records they counted."""

    flow: str
    channel: str
    status: str
    runs: int
    read: int
    created: int
    updated: int
    unchanged: int
    rejected: int
    #: Records that became tombstones (deleted in the channel).
    deleted: int


def run_totals(conn: Connection, scope: Scope = EVERYTHING) -> list[RunTotals]:
    """Every flow's runs by status (dry runs left out), with their record counters summed."""
    query = (
        select(
            runs.c.flow,
            func.max(runs.c.channel),
            runs.c.status,
            func.count(),
            func.coalesce(func.sum(runs.c.read), 0),
            func.coalesce(func.sum(runs.c.created), 0),
            func.coalesce(func.sum(runs.c.updated), 0),
            func.coalesce(func.sum(runs.c.unchanged), 0),
            func.coalesce(func.sum(runs.c.rejected), 0),
            func.coalesce(func.sum(runs.c.deleted), 0),
        )
        .where(runs.c.dry_run == false(), *_scoped(scope, runs.c.channel))
        .group_by(runs.c.flow, runs.c.status)
    )
    return [RunTotals(*(row[0:3]), *(int(v) for v in row[3:])) for row in conn.execute(query)]


@dataclass(frozen=True, slots=True)
class FailingFlow:
    """A flow whose newest finished runs failed: how many in a row, since when, and why."""

    flow: str
    channel: str
    streak: int
    since: datetime
    last_run_id: int
    error: str | None


def failing_flows(conn: Connection, scope: Scope = EVERYTHING) -> list[FailingFlow]:
    """The flows whose newest finished run failed, each with its streak of failed runs."""
    scoped = _scoped(scope, runs.c.channel)
    real = runs.c.dry_run == false()
    last_ok = (
        select(runs.c.flow.label("flow"), func.max(runs.c.id).label("id"))
        .where(real, runs.c.status == "succeeded", *scoped)
        .group_by(runs.c.flow)
        .subquery()
    )
    streaks = (
        select(
            runs.c.flow,
            func.count(),
            func.min(runs.c.started_at),
            func.max(runs.c.id),
        )
        .select_from(runs.outerjoin(last_ok, last_ok.c.flow == runs.c.flow))
        .where(real, runs.c.status == "failed", runs.c.id > func.coalesce(last_ok.c.id, 0), *scoped)
        .group_by(runs.c.flow)
    )
    found = list(conn.execute(streaks))
    if not found:
        return []
    last = {
        row.id: row
        for row in conn.execute(
            select(runs.c.id, runs.c.channel, runs.c.error).where(
                runs.c.id.in_([row[3] for row in found])
            )
        )
    }
    return [
        FailingFlow(
            flow,
            last[run_id].channel,
            int(count),
            aware(since) or since,
            run_id,
            last[run_id].error,
        )
        for flow, count, since, run_id in found
    ]


@dataclass(frozen=True, slots=True)
class Backlog:
    """The deliveries of one flow in one state, and the oldest one's creation time."""

    flow: str
    channel: str
    state: str
    count: int
    oldest: datetime | None


def backlog(conn: Connection, scope: Scope = EVERYTHING) -> list[Backlog]:
    """Deliveries by flow and state; ``oldest`` only for the open states (still on their way)."""
    query = (
        select(
            deliveries.c.flow,
            deliveries.c.channel,
            deliveries.c.state,
            func.count(),
            func.min(deliveries.c.created_at),
        )
        .where(*_scoped(scope, deliveries.c.channel))
        .group_by(deliveries.c.flow, deliveries.c.channel, deliveries.c.state)
    )
    return [
        Backlog(
            flow,
            channel,
            state,
            int(count),
            aware(oldest) if state in OPEN_DELIVERY_STATES else None,
        )
        for flow, channel, state, count, oldest in conn.execute(query)
    ]


@dataclass(frozen=True, slots=True)
class ChannelHealth:
    """``up`` or ``down`` (``since`` the first failure after the last success), with the cause."""

    channel: str
    state: str
    since: datetime | None
    cause: str | None


def channel_health(
    conn: Connection, at: datetime, scope: Scope = EVERYTHING
) -> dict[str, ChannelHealth]:
    """The health of every channel a run or a recent delivery attempt touched."""
    seen: dict[str, list[tuple[datetime, bool, str | None]]] = {}
    # IN: each flow's newest finished run, and the first failed one after its last success.
    finished = runs.c.status.in_(("succeeded", "failed"))
    real = runs.c.dry_run == false()
    scoped = _scoped(scope, runs.c.channel)
    ok_ids = (
        select(runs.c.channel.label("channel"), func.max(runs.c.id).label("id"))
        .where(real, runs.c.status == "succeeded", *scoped)
        .group_by(runs.c.channel)
        .subquery()
    )
    newest = select(func.max(runs.c.id)).where(real, finished, *scoped).group_by(runs.c.channel)
    first_fail = (
        select(func.min(runs.c.id))
        .select_from(runs.outerjoin(ok_ids, ok_ids.c.channel == runs.c.channel))
        .where(real, runs.c.status == "failed", runs.c.id > func.coalesce(ok_ids.c.id, 0), *scoped)
        .group_by(runs.c.channel)
    )
    for row in conn.execute(
        select(runs.c.channel, runs.c.status, runs.c.finished_at, runs.c.started_at, runs.c.error)
        .where(runs.c.id.in_(newest.union(first_fail).scalar_subquery()))
        .order_by(runs.c.id)
    ):
        at_ = aware(row.finished_at or row.started_at)
        assert at_ is not None
        seen.setdefault(row.channel, []).append((at_, row.status == "succeeded", row.error))
    # OUT: the newest attempt outcome per channel within the window, and the first retry after
    # the last delivered one.
    joined = delivery_attempts.join(deliveries, deliveries.c.id == delivery_attempts.c.delivery_id)
    recent = delivery_attempts.c.finished_at >= at - ATTEMPT_WINDOW
    dscoped = _scoped(scope, deliveries.c.channel)
    ok = case((delivery_attempts.c.outcome == "delivered", delivery_attempts.c.finished_at))
    bad = case((delivery_attempts.c.outcome == "retry", delivery_attempts.c.finished_at))
    for channel, last_ok, last_bad in conn.execute(
        select(deliveries.c.channel, func.max(ok), func.max(bad))
        .select_from(joined)
        .where(recent, *dscoped)
        .group_by(deliveries.c.channel)
    ):
        last_ok, last_bad = aware(last_ok), aware(last_bad)
        if last_bad is not None and (last_ok is None or last_bad > last_ok):
            first = conn.execute(
                select(delivery_attempts.c.finished_at, delivery_attempts.c.error)
                .select_from(joined)
                .where(
                    recent,
                    deliveries.c.channel == channel,
                    delivery_attempts.c.outcome == "retry",
                    delivery_attempts.c.finished_at > (last_ok or at - ATTEMPT_WINDOW),
                )
                .order_by(delivery_attempts.c.finished_at)
                .limit(1)
            ).one()
            seen.setdefault(channel, []).append((aware(first[0]) or at, False, first[1]))
            seen[channel].append((last_bad, False, first[1]))
        elif last_ok is not None:
            seen.setdefault(channel, []).append((last_ok, True, None))
    return {channel: _verdict(channel, events) for channel, events in seen.items()}


def _verdict(channel: str, events: list[tuple[datetime, bool, str | None]]) -> ChannelHealth:
    """Up if the newest event succeeded; else down since the first failure after the last
    success (of any source: runs and attempts)."""
    events.sort(key=lambda e: e[0])
    if events[-1][1]:
        return ChannelHealth(channel, "up", None, None)
    since, cause = events[-1][0], events[-1][2]
    for at, ok, error in reversed(events):
        if ok:
            break
        since, cause = at, error or cause
    return ChannelHealth(channel, "down", since, cause)


def rejection_rates(
    conn: Connection, since: datetime, scope: Scope = EVERYTHING
) -> dict[str, tuple[int, int]]:
    """Per flow: (records rejected, records read) by the runs started since ``since``."""
    query = (
        select(runs.c.flow, func.sum(runs.c.rejected), func.sum(runs.c.read))
        .where(
            runs.c.dry_run == false(), runs.c.started_at >= since, *_scoped(scope, runs.c.channel)
        )
        .group_by(runs.c.flow)
    )
    return {flow: (int(rej or 0), int(read or 0)) for flow, rej, read in conn.execute(query)}


def _scoped(scope: Scope, column: Any) -> list[Any]:
    condition = scope.channel_condition(column)
    return [] if condition is None else [condition]
