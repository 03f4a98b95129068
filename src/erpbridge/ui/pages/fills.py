"""Backfill and replay of an OUT flow from its page (issue 21), for operators.

A button first runs the request as a dry run (the engine's own, recorded as a dry-run run) and
shows what it would send: how many records (backfill) or versions (replay) would be queued, how
many are already delivered or queued at that version. Only the confirmation on that page starts
it, through the API's own functions (``api.backfill``: same checks, same audit row, same run in
the background), and the browser goes to the run's page, where the progress (looked at, queued,
delivered, failed) refreshes itself until every delivery of the run is out.
"""

from __future__ import annotations

from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Form, Path, Request
from fastapi.responses import HTMLResponse, Response
from pydantic import ValidationError

from erpbridge.api import backfill
from erpbridge.api.context import ApiError
from erpbridge.engine.backfill import FillResult
from erpbridge.store.backfill import progress
from erpbridge.store.read import run_by_id
from erpbridge.store.runlease import shown_status
from erpbridge.store.runs import now
from erpbridge.store.states import OPEN_DELIVERY_STATES
from erpbridge.ui.auth import Refused
from erpbridge.ui.pages.common import HubDep, Operates, Reads, RowId, after_action, visible_flow
from erpbridge.ui.render import render

__all__ = ["router"]

router = APIRouter(include_in_schema=False)
FlowName = Annotated[str, Path(max_length=128)]
Text = Annotated[str, Form(max_length=4096)]
Moment = Annotated[str, Form(max_length=64)]
#: The modes whose runs show a progress of their deliveries.
FILL_MODES = ("backfill", "replay")


def _where(text: str) -> dict[str, str]:
    """``FIELD=VALUE`` lines (blank lines skipped) as the API's ``where``."""
    where: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        field, sep, value = line.partition("=")
        if not sep or not field.strip():
            raise Refused(422, f"where, line {number}: {line.strip()[:80]!r} is not FIELD=VALUE")
        where[field.strip()] = value.strip()
    return where


def _body(model: type[Any], data: dict[str, Any]) -> Any:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        place = ".".join(str(p) for p in first["loc"]) or "form"
        raise Refused(422, f"{place}: {first['msg']}") from None


def _acting(call: Any, *args: Any) -> FillResult:
    try:
        result: FillResult = call(*args)
    except ApiError as exc:
        raise Refused(exc.status, exc.message) from None
    return result


@router.post("/ui/flows/{name}/backfill", response_class=HTMLResponse)
def flow_backfill(
    request: Request,
    name: FlowName,
    hub: HubDep,
    who: Operates,
    where: Text = "",
    changed_since: Moment = "",
    confirm: Annotated[str, Form(max_length=8)] = "",
) -> Response:
    """Without ``confirm``: what a backfill would send. With it: start the backfill."""
    flow = visible_flow(hub, who, name)
    data = {"where": _where(where), "changed_since": changed_since.strip() or None}
    if confirm != "yes":
        body = _body(backfill.BackfillIn, {**data, "dry_run": True})
        preview = _acting(backfill.start_backfill, hub, who.principal, name, body)
        fields = {"where": where, "changed_since": changed_since}
        return _confirm(request, flow.name, "backfill", preview, fields)
    started = _acting(
        backfill.start_backfill, hub, who.principal, name, _body(backfill.BackfillIn, data)
    )
    return after_action(f"/ui/runs/{started.run_id}", f"backfill of {name} started")


@router.post("/ui/flows/{name}/replay", response_class=HTMLResponse)
def flow_replay(
    request: Request,
    name: FlowName,
    hub: HubDep,
    who: Operates,
    start: Annotated[str, Form(alias="from", max_length=64)] = "",
    end: Annotated[str, Form(alias="to", max_length=64)] = "",
    confirm: Annotated[str, Form(max_length=8)] = "",
) -> Response:
    """Without ``confirm``: what a replay of the range would send. With it: start it."""
    flow = visible_flow(hub, who, name)
    if not start.strip():
        raise Refused(422, "from: the start of the range to replay is missing")
    data = {"from": start.strip(), "to": end.strip() or None}
    if confirm != "yes":
        body = _body(backfill.ReplayIn, {**data, "dry_run": True})
        preview = _acting(backfill.start_replay, hub, who.principal, name, body)
        return _confirm(request, flow.name, "replay", preview, {"from": start, "to": end})
    started = _acting(
        backfill.start_replay, hub, who.principal, name, _body(backfill.ReplayIn, data)
    )
    return after_action(f"/ui/runs/{started.run_id}", f"replay of {name} started")


def _confirm(
    request: Request, flow: str, mode: str, preview: FillResult, fields: dict[str, str]
) -> HTMLResponse:
    if preview.status != "succeeded":
        raise Refused(409, f"the dry run of the {mode} failed: {preview.error or preview.status}")
    context = {
        "title": f"{mode.capitalize()} {flow}?",
        "flow": flow,
        "mode": mode,
        "preview": preview,
        "fields": fields,
    }
    return render(request, "fill_confirm.html", context)


@router.get("/ui/runs/{run_id}/progress", response_class=HTMLResponse)
def run_progress(request: Request, run_id: RowId, hub: HubDep, who: Reads) -> HTMLResponse:
    """A backfill or replay run's progress: what its page swaps in every 2 s while it goes."""
    with hub.engine.connect() as conn:
        row = run_by_id(conn, who.scope, run_id)
        if row is None:
            raise Refused(404, f"no run {run_id}")
        counts = progress(conn, run_id)
    return render(request, "fill_progress.html", {"fill": fill_progress(row, counts)})


def fill_progress(row: Any, counts: dict[str, int]) -> dict[str, Any]:
    """What the progress of the backfill or replay run ``row`` shows (``counts``: its
    deliveries by state)."""
    position = orjson.loads(row.cursor_after) if row.cursor_after else {}
    total = int(position.get("total", 0)) if isinstance(position, dict) else 0
    status = shown_status(row, now())
    waiting = sum(counts.get(state, 0) for state in OPEN_DELIVERY_STATES)
    delivered = counts.get("delivered", 0)
    live = status == "running" or waiting > 0
    done = sum(counts.values()) - waiting  # delivered, dead, cancelled, replaced
    return {
        "run": row,
        "status": status,
        "total": total,
        "scanned": row.read,
        "queued": row.created,
        "skipped": row.unchanged,
        "counts": dict(sorted(counts.items())),
        "waiting": waiting,
        "delivered": delivered,
        "percent": 100 * done // row.created if row.created else (0 if live else 100),
        "live": live,
    }
