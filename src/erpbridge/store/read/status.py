"""The hub's summary of what is failing: ``GET /api/v1/status``, ``erpbridge status``, ``/readyz``'s
neighbour and the back office's dashboard read it from here.

Something is failing when a flow's newest finished run failed, a delivery is dead, an open
delivery is older than ``stale_backlog_s``, a channel is down (:mod:`erpbridge.store.read.health`)
or an alert is firing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Connection

from erpbridge.store.configversions import list_processes, newest_version
from erpbridge.store.read.health import backlog, channel_health, failing_flows
from erpbridge.store.read.scope import EVERYTHING, Scope

__all__ = ["HubStatus", "hub_status"]


@dataclass
class HubStatus:
    """What is failing, each list empty when all is well; ``failing`` says whether any is not."""

    at: datetime
    flows_failing: list[dict[str, Any]] = field(default_factory=list)
    dead_deliveries: list[dict[str, Any]] = field(default_factory=list)
    old_backlog: list[dict[str, Any]] = field(default_factory=list)
    channels_down: list[dict[str, Any]] = field(default_factory=list)
    alerts_firing: list[dict[str, Any]] = field(default_factory=list)
    #: Open deliveries (pending, failed, in flight, held) in all, and the oldest one's age.
    open_deliveries: int = 0
    oldest_open_age_s: float | None = None
    #: The newest configuration version in the hub, and the one each serving process runs.
    config_version: int | None = None
    processes: list[dict[str, Any]] = field(default_factory=list)

    @property
    def failing(self) -> bool:
        return bool(
            self.flows_failing
            or self.dead_deliveries
            or self.old_backlog
            or self.channels_down
            or self.alerts_firing
        )

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready: ``status`` is ``failing`` or ``ok``."""
        return {
            "status": "failing" if self.failing else "ok",
            "at": self.at.isoformat(),
            "flows_failing": self.flows_failing,
            "dead_deliveries": self.dead_deliveries,
            "old_backlog": self.old_backlog,
            "channels_down": self.channels_down,
            "alerts_firing": self.alerts_firing,
            "open_deliveries": self.open_deliveries,
            "oldest_open_age_s": self.oldest_open_age_s,
            "config_version": self.config_version,
            "processes": self.processes,
        }


def hub_status(
    conn: Connection,
    at: datetime,
    *,
    stale_backlog_s: float,
    scope: Scope = EVERYTHING,
    firing: list[dict[str, Any]] | None = None,
) -> HubStatus:
    """The summary at ``at`` within ``scope``; ``firing`` are the firing alerts (read by the
    caller from the alert state)."""
    status = HubStatus(at=at, alerts_firing=list(firing or []))
    for f in failing_flows(conn, scope):
        status.flows_failing.append(
            {
                "flow": f.flow,
                "channel": f.channel,
                "failed_runs": f.streak,
                "since": f.since.isoformat(),
                "last_run_id": f.last_run_id,
                "error": f.error,
            }
        )
    oldest: dict[tuple[str, str], datetime] = {}
    for b in backlog(conn, scope):
        if b.state == "dead":
            status.dead_deliveries.append({"flow": b.flow, "channel": b.channel, "count": b.count})
        if b.oldest is not None:
            status.open_deliveries += b.count
            key = (b.flow, b.channel)
            oldest[key] = min(oldest.get(key, b.oldest), b.oldest)
    for (flow, channel), created in sorted(oldest.items()):
        age = max(0.0, (at - created).total_seconds())
        status.oldest_open_age_s = max(status.oldest_open_age_s or 0.0, age)
        if age > stale_backlog_s:
            status.old_backlog.append(
                {"flow": flow, "channel": channel, "oldest_age_s": round(age, 1)}
            )
    for name, h in sorted(channel_health(conn, at, scope).items()):
        if h.state == "down":
            status.channels_down.append(
                {
                    "channel": name,
                    "since": h.since.isoformat() if h.since else None,
                    "cause": h.cause,
                }
            )
    newest = newest_version(conn)
    status.config_version = None if newest is None else newest.id
    status.processes = [
        {
            "host": p.host,
            "pid": p.pid,
            "role": p.role,
            "config_version": p.version_id,
            "loaded_at": p.loaded_at.isoformat(),
            "seen_at": p.seen_at.isoformat(),
        }
        for p in list_processes(conn)
    ]
    return status
