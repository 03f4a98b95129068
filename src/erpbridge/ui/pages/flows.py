"""``/ui/flows``: every flow with its switch (paused or not, by whom, since when), and a flow's
page with its recent runs refreshing themselves while one runs. Operators pause and resume a
flow and start an IN flow now; each goes through the API's own function (same checks, same
audit rows), so a pause here pauses the scheduler, the workers and events in every process."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Form, Path, Query, Request
from fastapi.responses import HTMLResponse, Response

from erpbridge.api import cursors, resources
from erpbridge.api.context import ApiError
from erpbridge.config.models import FlowConfig
from erpbridge.store.cursors import cursor_views
from erpbridge.store.read import FlowActivity, flow_activity, runs_page
from erpbridge.store.runlease import shown_status
from erpbridge.store.runs import now
from erpbridge.store.switches import all_switches, flow_switch
from erpbridge.ui.auth import Operator, Refused
from erpbridge.ui.pages.activity import recent_activity
from erpbridge.ui.pages.common import (
    Administers,
    HubDep,
    Operates,
    Reads,
    after_action,
    is_paused,
    trigger_text,
    visible_flow,
)
from erpbridge.ui.render import render

__all__ = ["router"]

router = APIRouter(include_in_schema=False)
FlowName = Annotated[str, Path(max_length=128)]
#: The newest run id before "Run now" was pressed: the page follows the run started after it.
After = Annotated[int | None, Query(ge=0, le=2**63 - 1)]
#: Runs shown on a flow's page.
_RECENT = 10


@dataclass(frozen=True, slots=True)
class FlowRow:
    """One flow on the flows page."""

    flow: FlowConfig
    trigger: str
    paused: bool
    activity: FlowActivity


@router.get("/ui/flows", response_class=HTMLResponse)
def flows_list(request: Request, hub: HubDep, who: Reads) -> HTMLResponse:
    """Every flow the user may see: paused or not, last run, backlog; pause, resume, run now."""
    _, activity = recent_activity(hub, who)
    with hub.engine.connect() as conn:
        switches = all_switches(conn)
    rows = [
        FlowRow(
            flow,
            trigger_text(flow),
            is_paused(flow, switches.get(flow.name)),
            activity.get(flow.name, FlowActivity()),
        )
        for flow in hub.config.model.flows
        if who.principal.may_channel(flow.channel)
    ]
    return render(request, "flows.html", {"title": "Flows", "rows": rows})


def _recent(hub: HubDep, who: Operator, name: str) -> list[tuple[Any, str]]:
    with hub.engine.connect() as conn:
        rows = runs_page(conn, who.scope, flow=name, limit=_RECENT)
    at = now()
    return [(r, shown_status(r, at)) for r in rows]


def _live(runs: list[tuple[Any, str]], after: int | None) -> bool:
    """Keep refreshing: a run is going, or one was started (``after``: the newest run id
    before it) and has not finished yet (its row may not even be there yet)."""
    if any(status == "running" for _, status in runs):
        return True
    return after is not None and not any(r.id > after for r, _ in runs)


@router.get("/ui/flows/{name}", response_class=HTMLResponse)
def flow_detail(
    request: Request, name: FlowName, hub: HubDep, who: Reads, after: After = None
) -> HTMLResponse:
    """One flow: its settings, its switch, its recent runs (live while one runs)."""
    flow = visible_flow(hub, who, name)
    with hub.engine.connect() as conn:
        switch = flow_switch(conn, name)
        activity = flow_activity(conn, who.scope, now(), [name]).get(name, FlowActivity())
        cursor = cursor_views(conn, [name])[0] if flow.direction == "in" else None
    runs = _recent(hub, who, name)
    context = {
        "title": f"Flow {name}",
        "flow": flow,
        "trigger": trigger_text(flow),
        "paused": is_paused(flow, switch),
        "switch": switch,
        "activity": activity,
        "runs": runs,
        "live": _live(runs, after),
        "after": after,
        "mapping": _mapping(flow),
        "cursor": cursor,
    }
    return render(request, "flow.html", context)


@router.get("/ui/flows/{name}/runs", response_class=HTMLResponse)
def flow_runs(
    request: Request, name: FlowName, hub: HubDep, who: Reads, after: After = None
) -> HTMLResponse:
    """The flow page's recent runs alone: what its htmx refresh swaps in while one runs."""
    flow = visible_flow(hub, who, name)
    runs = _recent(hub, who, name)
    context = {
        "flow": flow,
        "runs": runs,
        "live": _live(runs, after),
        "after": after,
    }
    return render(request, "flow_runs.html", context)


def _mapping(flow: FlowConfig) -> list[tuple[str, str]]:
    """The mapping as (field, how it is made) pairs, for reading (``None``: fields as they are)."""
    out = []
    for target, rule in (flow.mapping or {}).items():
        if isinstance(rule, str):
            out.append((target, rule))
            continue
        data = rule.model_dump(mode="json", exclude_defaults=True, by_alias=True)
        shown = (
            f"{k}: {v if isinstance(v, str) else orjson.dumps(v).decode()}" for k, v in data.items()
        )
        out.append((target, ", ".join(shown)))
    return out


def _text(value: Any) -> str:
    return value if isinstance(value, str) else orjson.dumps(value).decode()


def _acting(call: Any, *args: Any) -> Any:
    """Call an API function; its refusal (404, 409 flow_paused, ...) becomes the page's."""
    try:
        return call(*args)
    except ApiError as exc:
        raise Refused(exc.status, exc.message) from None


@router.post("/ui/flows/{name}/pause")
def flow_pause(name: FlowName, hub: HubDep, who: Operates) -> Response:
    """Pause a flow in every process sharing the hub store."""
    visible_flow(hub, who, name)
    _acting(resources.pause_flow, name, hub, who.principal)
    return after_action(f"/ui/flows/{name}", f"flow {name} paused")


@router.post("/ui/flows/{name}/resume")
def flow_resume(name: FlowName, hub: HubDep, who: Operates) -> Response:
    """Resume a paused flow: scheduled again, its waiting deliveries go out."""
    visible_flow(hub, who, name)
    _acting(resources.resume_flow, name, hub, who.principal)
    return after_action(f"/ui/flows/{name}", f"flow {name} resumed")


@router.post("/ui/flows/{name}/run")
def flow_run(name: FlowName, hub: HubDep, who: Operates) -> Response:
    """Start an IN flow now, in the background; its page follows the run."""
    visible_flow(hub, who, name)
    with hub.engine.connect() as conn:
        newest = runs_page(conn, who.scope, flow=name, limit=1)
    _acting(resources.run_flow, name, hub, who.principal, False)
    after = newest[0].id if newest else 0
    return after_action(f"/ui/flows/{name}?after={after}", f"flow {name} started")


@router.post("/ui/flows/{name}/cursor/reset")
def flow_cursor_reset(
    name: FlowName,
    hub: HubDep,
    who: Administers,
    to: Annotated[str, Form(max_length=4096)] = "",
) -> Response:
    """Reset an IN flow's cursor: blank reads everything at the next run; else the new value
    (JSON, or taken as text), as the flow's page shows it. Refused while a run holds the flow."""
    visible_flow(hub, who, name)
    value: Any = None
    if to.strip():
        try:
            value = orjson.loads(to)
        except orjson.JSONDecodeError:
            value = to.strip()
    out = _acting(
        cursors.reset_flow_cursor, name, hub, who.principal, cursors.CursorResetIn(to=value)
    )
    shown = (
        "nothing (the next run reads everything)"
        if out.after.value is None
        else _text(out.after.value)
    )
    return after_action(f"/ui/flows/{name}", f"cursor of {name} reset to {shown}")


@router.post("/ui/flows/{name}/dry-run", response_class=HTMLResponse)
def flow_dry_run(request: Request, name: FlowName, hub: HubDep, who: Operates) -> HTMLResponse:
    """Run an IN flow without committing anything and show, record by record and field by
    field, what it would change (the hub's value against the incoming one)."""
    flow = visible_flow(hub, who, name)
    out = _acting(resources.dry_run_flow, name, hub, who.principal)
    context = {"title": f"Dry run of {name}", "flow": flow, "result": out}
    return render(request, "dryrun.html", context)
