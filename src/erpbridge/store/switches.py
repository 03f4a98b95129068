"""Flows paused and resumed through the API, over what the configuration says."""

from __future__ import annotations

from sqlalchemy import Connection, select, update

from erpbridge.store.runs import now
from erpbridge.store.tables import flow_switches

__all__ = ["flow_enabled", "paused_flows", "set_flow_enabled"]


def flow_enabled(conn: Connection, flow: str, configured: bool) -> bool:
    """Whether ``flow`` runs: the last API switch, else the configuration's ``enabled``."""
    switched = conn.execute(
        select(flow_switches.c.enabled).where(flow_switches.c.flow == flow)
    ).scalar()
    return configured if switched is None else bool(switched)


def paused_flows(conn: Connection) -> set[str]:
    """Flows switched off through the API."""
    rows = conn.execute(select(flow_switches.c.flow).where(flow_switches.c.enabled.is_(False)))
    return {r.flow for r in rows}


def set_flow_enabled(conn: Connection, flow: str, enabled: bool, by: str) -> None:
    """Switch ``flow`` on or off (overrides the configuration until switched again)."""
    values = {"enabled": enabled, "changed_at": now(), "changed_by": by}
    done = conn.execute(update(flow_switches).where(flow_switches.c.flow == flow).values(values))
    if done.rowcount == 0:
        conn.execute(flow_switches.insert().values(flow=flow, **values))
