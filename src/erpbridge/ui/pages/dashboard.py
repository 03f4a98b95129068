"""``/ui/``: every flow's state, last run and success, failing streak, the last day's counts,
its backlog, and each channel's health as its flows show it. Refreshes itself (htmx) every
few seconds; without JavaScript the browser's reload does the same."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from erpbridge.api.context import Hub
from erpbridge.config.models import FlowConfig
from erpbridge.store.read import FlowActivity
from erpbridge.store.runlease import shown_status
from erpbridge.store.switches import all_switches
from erpbridge.ui.auth import Operator
from erpbridge.ui.pages.activity import recent_activity
from erpbridge.ui.pages.common import HubDep, Reads, is_paused, trigger_text, visible_flows
from erpbridge.ui.render import render

__all__ = ["ChannelLine", "FlowLine", "FlowState", "flow_lines", "router"]

router = APIRouter(include_in_schema=False)

#: A flow's state on the dashboard.
FlowState = Literal["running", "paused", "failing", "idle"]


@dataclass(frozen=True, slots=True)
class FlowLine:
    """One dashboard row."""

    flow: FlowConfig
    trigger: str
    state: FlowState
    #: Why it is failing (the last run's error, or the deliveries' state), else "".
    why: str
    activity: FlowActivity


@dataclass(frozen=True, slots=True)
class ChannelLine:
    """A channel's health as its flows show it."""

    name: str
    system: str
    state: Literal["ok", "failing", "paused"]
    flows: int
    failing: list[str]


def _state(
    flow: FlowConfig, paused: bool, activity: FlowActivity, at: datetime
) -> tuple[FlowState, str]:
    run = activity.last_run
    if paused:
        return "paused", ""
    if run is not None and shown_status(run, at) == "running":
        return "running", ""
    if flow.direction == "in" and run is not None and run.status == "failed":
        return "failing", (run.error or "the last run failed").splitlines()[0][:300]
    if activity.delivery_failing:
        waiting = activity.backlog.get("failed", 0)
        parts = [f"{waiting} waiting for a retry" if waiting else "", f"{activity.dead} dead"]
        return "failing", "deliveries: " + ", ".join(p for p in parts if p)
    return "idle", ""


def flow_lines(hub: Hub, who: Operator) -> tuple[list[FlowLine], list[ChannelLine], datetime]:
    """Every flow ``who`` may see with its state, every channel with its health, and when the
    flows' activity was read (``ui.pages.activity``: at most a couple of seconds ago)."""
    flows = visible_flows(hub, who)
    at, activity = recent_activity(hub, who)
    with hub.engine.connect() as conn:
        switches = all_switches(conn)
    lines = []
    for flow in flows:
        seen = activity.get(flow.name, FlowActivity())
        paused = is_paused(flow, switches.get(flow.name))
        state, why = _state(flow, paused, seen, at)
        lines.append(FlowLine(flow, trigger_text(flow), state, why, seen))
    channels = []
    for name, channel in hub.config.model.channels.items():
        if not who.principal.may_channel(name):
            continue
        own = [line for line in lines if line.flow.channel == name]
        failing = [line.flow.name for line in own if line.state == "failing"]
        all_paused = bool(own) and all(line.state == "paused" for line in own)
        health: Literal["ok", "failing", "paused"] = (
            "failing" if failing else "paused" if all_paused else "ok"
        )
        channels.append(ChannelLine(name, channel.system, health, len(own), failing))
    return lines, channels, at


@router.get("/ui/", response_class=HTMLResponse)
def dashboard(request: Request, hub: HubDep, who: Reads) -> HTMLResponse:
    """The dashboard."""
    flows, channels, at = flow_lines(hub, who)
    context = {"title": "Dashboard", "flows": flows, "channels": channels, "at": at}
    return render(request, "dashboard.html", context)


@router.get("/ui/dashboard/live", response_class=HTMLResponse)
def dashboard_live(request: Request, hub: HubDep, who: Reads) -> HTMLResponse:
    """The dashboard's tables alone: what its htmx refresh swaps in."""
    flows, channels, at = flow_lines(hub, who)
    context = {"flows": flows, "channels": channels, "at": at}
    return render(request, "dashboard_live.html", context)
