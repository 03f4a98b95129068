"""Flows paused and resumed (API, CLI, back office), over what the configuration says.

A paused flow does nothing on its own: the scheduler skips its fire times, ``sync`` and
``POST /flows/{name}/run`` refuse it, events and webhooks answer 409 ``flow_paused`` (the sender
keeps the event and sends it again), and workers do not claim its deliveries, which stay
``pending`` in the ledger and are shown held. Resuming lets all of it go on.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, select, update

from erpbridge.errors import FlowDisabled, FlowPaused
from erpbridge.store.runs import now
from erpbridge.store.tables import flow_switches

__all__ = [
    "FlowSwitch",
    "all_switches",
    "check_not_paused",
    "flow_enabled",
    "flow_switch",
    "paused_flows",
    "paused_refusal",
    "set_flow_enabled",
]


@dataclass(frozen=True, slots=True)
class FlowSwitch:
    """The last pause or resume of a flow: who, when."""

    flow: str
    enabled: bool
    changed_at: datetime
    changed_by: str

    def refusal(self) -> FlowPaused:
        """The error that refuses work of this (paused) flow: who paused it and when."""
        return FlowPaused(self.flow, self.changed_by, f"{self.changed_at:%Y-%m-%d %H:%M:%S}")


def flow_switch(conn: Connection, flow: str) -> FlowSwitch | None:
    """The last switch of ``flow``, or ``None`` if it was never paused or resumed."""
    row = conn.execute(select(flow_switches).where(flow_switches.c.flow == flow)).first()
    if row is None:
        return None
    return FlowSwitch(row.flow, bool(row.enabled), row.changed_at, row.changed_by)


def all_switches(conn: Connection) -> dict[str, FlowSwitch]:
    """The last switch of every flow ever paused or resumed, by flow name."""
    rows = conn.execute(select(flow_switches))
    return {r.flow: FlowSwitch(r.flow, bool(r.enabled), r.changed_at, r.changed_by) for r in rows}


def flow_enabled(conn: Connection, flow: str, configured: bool) -> bool:
    """Whether ``flow`` runs: the last switch, else the configuration's ``enabled``."""
    switched = conn.execute(
        select(flow_switches.c.enabled).where(flow_switches.c.flow == flow)
    ).scalar()
    return configured if switched is None else bool(switched)


def paused_flows(conn: Connection) -> set[str]:
    """Flows switched off (paused)."""
    rows = conn.execute(select(flow_switches.c.flow).where(flow_switches.c.enabled.is_(False)))
    return {r.flow for r in rows}


def check_not_paused(conn: Connection, flow: str) -> None:
    """Raise :class:`FlowPaused` (who paused it, when) if ``flow`` is paused."""
    switch = flow_switch(conn, flow)
    if switch is not None and not switch.enabled:
        raise switch.refusal()


def paused_refusal(conn: Connection, flow: str, configured: bool) -> FlowPaused | None:
    """Why ``flow`` takes no work now (paused: who and since when; or off in the configuration
    and never resumed), or ``None`` if it runs. One read, in the caller's transaction."""
    switch = flow_switch(conn, flow)
    if switch is None:
        return None if configured else FlowDisabled(flow)
    return None if switch.enabled else switch.refusal()


def set_flow_enabled(conn: Connection, flow: str, enabled: bool, by: str) -> None:
    """Switch ``flow`` on or off (overrides the configuration until switched again)."""
    values = {"enabled": enabled, "changed_at": now(), "changed_by": by}
    done = conn.execute(update(flow_switches).where(flow_switches.c.flow == flow).values(values))
    if done.rowcount == 0:
        conn.execute(flow_switches.insert().values(flow=flow, **values))
