"""The back office's dashboard: per flow, what the hub's tables know about its health.

A handful of grouped queries for every flow at once (never one query per flow): the last run
and the last successful one, the failing streak since then, the last day's counts, and the
delivery backlog. Each is filtered by the reader's scope in SQL.

The deliveries' two are answered from one index alone, ``(state, flow, delivered_at,
created_at, updated_at)`` (migration 0024): the backlog groups its few rows by state and flow;
the last day's deliveries are counted per flow by a correlated subquery that seeks straight to
the flow's range of the day, instead of reading and sorting every delivery of the day (on
1 M records and 100 000 deliveries, SQLite: 65 ms -> 5 ms and 80 ms -> 11 ms).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Row, String, and_, func, literal, select, union_all

from erpbridge.store.read.scope import Scope
from erpbridge.store.runlease import aware
from erpbridge.store.tables import deliveries, runs

__all__ = ["FlowActivity", "flow_activity"]

#: The backlog states: on their way, or waiting for a person.
_BACKLOG = ("pending", "in_flight", "failed", "held", "dead")


@dataclass
class FlowActivity:
    """What the store says about one flow (every count over the last day)."""

    last_run: Row[Any] | None = None
    last_success_at: datetime | None = None
    #: Failed runs since the last successful one.
    failing_streak: int = 0
    records_in: int = 0
    rejected: int = 0
    #: Deliveries that went out (OUT flows).
    records_out: int = 0
    last_delivered_at: datetime | None = None
    #: Deliveries per backlog state, and the oldest still to go out.
    backlog: dict[str, int] = field(default_factory=dict)
    oldest_pending_at: datetime | None = None
    #: When a delivery last went dead, or last failed an attempt and waits for a retry.
    last_dead_at: datetime | None = None

    @property
    def pending(self) -> int:
        """Deliveries still to go out (pending, in flight, waiting for a retry or a person)."""
        return sum(self.backlog.get(s, 0) for s in ("pending", "in_flight", "failed", "held"))

    @property
    def dead(self) -> int:
        """Deliveries that used up their attempts."""
        return self.backlog.get("dead", 0)

    @property
    def delivery_failing(self) -> bool:
        """Deliveries fail now: some wait for a retry, or one died after the last success."""
        if self.backlog.get("failed", 0):
            return True
        if self.last_dead_at is None:
            return False
        return self.last_delivered_at is None or self.last_dead_at > self.last_delivered_at


def flow_activity(
    conn: Connection, scope: Scope, at: datetime, flows: Collection[str]
) -> dict[str, FlowActivity]:
    """The :class:`FlowActivity` of each of ``flows`` (the configured ones) within ``scope``;
    flows without rows are absent."""
    out: defaultdict[str, FlowActivity] = defaultdict(FlowActivity)
    since = at - timedelta(days=1)
    run_scope = scope.channel_condition(runs.c.channel)
    wanted = [c for c in (run_scope,) if c is not None]
    real = runs.c.dry_run.is_(False)

    last_ids = select(func.max(runs.c.id)).where(real, *wanted).group_by(runs.c.flow)
    for row in conn.execute(select(runs).where(runs.c.id.in_(last_ids))):
        out[row.flow].last_run = row

    success = (
        select(runs.c.flow, func.max(runs.c.id).label("id"))
        .where(real, runs.c.status == "succeeded", *wanted)
        .group_by(runs.c.flow)
        .subquery()
    )
    for row in conn.execute(
        select(runs.c.flow, runs.c.finished_at).join(success, runs.c.id == success.c.id)
    ):
        out[row.flow].last_success_at = _aware(row.finished_at)

    streak = (
        select(runs.c.flow, func.count())
        .select_from(runs.outerjoin(success, success.c.flow == runs.c.flow))
        .where(
            real,
            runs.c.status == "failed",
            runs.c.id > func.coalesce(success.c.id, 0),
            *wanted,
        )
        .group_by(runs.c.flow)
    )
    for flow, count in conn.execute(streak):
        out[flow].failing_streak = int(count)

    day = select(
        runs.c.flow,
        func.sum(runs.c.created + runs.c.updated),
        func.sum(runs.c.rejected),
    ).where(real, runs.c.started_at >= since, *wanted)
    for flow, records_in, rejected in conn.execute(day.group_by(runs.c.flow)):
        out[flow].records_in = int(records_in or 0)
        out[flow].rejected = int(rejected or 0)

    if not scope.unrestricted:
        flows = [f for f in flows if f in scope.flows]
    _deliveries(conn, scope, since, sorted(flows), out)
    return dict(out)


def _deliveries(
    conn: Connection,
    scope: Scope,
    since: datetime,
    flows: list[str],
    out: defaultdict[str, FlowActivity],
) -> None:
    condition = scope.channel_condition(deliveries.c.channel)
    wanted = [c for c in (condition,) if c is not None]
    backlog = (
        select(
            deliveries.c.flow,
            deliveries.c.state,
            func.count(),
            func.min(deliveries.c.created_at),
            func.max(deliveries.c.updated_at),
        )
        .where(deliveries.c.state.in_(_BACKLOG), *wanted)
        .group_by(deliveries.c.state, deliveries.c.flow)
    )
    for flow, state, count, oldest, newest in conn.execute(backlog):
        activity = out[flow]
        activity.backlog[state] = int(count)
        if state == "dead":
            activity.last_dead_at = _aware(newest)
        elif state != "held":
            first = _aware(oldest)
            if activity.oldest_pending_at is None or (first and first < activity.oldest_pending_at):
                activity.oldest_pending_at = first
    if not flows:
        return
    # the flows as a table of literals (portable: SQLite has no VALUES in FROM with names)
    names = union_all(*(select(literal(f, String(128)).label("flow")) for f in flows))
    wanted_flows = names.subquery("wanted")
    mine = and_(
        deliveries.c.state == "delivered",
        deliveries.c.flow == wanted_flows.c.flow,
        deliveries.c.delivered_at >= since,
        *wanted,
    )
    count = select(func.count()).select_from(deliveries).where(mine).scalar_subquery()
    last = select(func.max(deliveries.c.delivered_at)).where(mine).scalar_subquery()
    for flow, number, newest in conn.execute(select(wanted_flows.c.flow, count, last)):
        if number:
            out[flow].records_out = int(number)
            out[flow].last_delivered_at = _aware(newest)


def _aware(value: datetime | None) -> datetime | None:
    return None if value is None else aware(value)
