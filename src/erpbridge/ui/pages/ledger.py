"""``/ui/runs`` and ``/ui/deliveries``: lists with filters in the URL and keyset pages, each row's
detail (a delivery with every attempt), and the delivery actions: retry, cancel, retry every
dead one. Actions go through the API's own functions (same checks, same audit rows)."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import HTMLResponse, Response

from erpbridge.api import resources
from erpbridge.api.context import ApiError
from erpbridge.store.backfill import progress
from erpbridge.store.read import (
    deliveries_page,
    delivery_attempts_of,
    delivery_by_id,
    run_by_id,
    runs_page,
)
from erpbridge.store.runlease import shown_status
from erpbridge.store.runs import now
from erpbridge.store.states import DELIVERY_STATES, RUN_STATUSES, DeliveryState, RunStatus
from erpbridge.ui.auth import Refused
from erpbridge.ui.pages.common import HubDep, Operates, Reads, RowId, after_action, visible_flows
from erpbridge.ui.pages.fills import FILL_MODES, fill_progress
from erpbridge.ui.render import render

__all__ = ["AGES", "router"]

router = APIRouter(include_in_schema=False)
_PAGE = 50
#: The age filter's choices: at least this old.
AGES = {"5m": timedelta(minutes=5), "1h": timedelta(hours=1), "1d": timedelta(days=1)}


def _blank(value: str | None) -> str | None:
    return value or None


def _json(text: str | None) -> Any:
    return orjson.loads(text) if text else None


@router.get("/ui/runs", response_class=HTMLResponse)
def runs_list(
    request: Request,
    hub: HubDep,
    who: Reads,
    flow: str | None = None,
    status: str | None = None,
    before: Annotated[int | None, Query(ge=1)] = None,
) -> HTMLResponse:
    """Recent runs, newest first."""
    wanted: RunStatus | None = status if status in RUN_STATUSES else None
    with hub.engine.connect() as conn:
        rows = runs_page(
            conn, who.scope, flow=_blank(flow), status=wanted, limit=_PAGE, before_id=before
        )
    at = now()
    context = {
        "title": "Runs",
        "runs": [(r, shown_status(r, at)) for r in rows],
        "flows": visible_flows(hub, who),
        "statuses": RUN_STATUSES,
        "filters": {"flow": flow or "", "status": wanted or ""},
        "next_before": rows[-1].id if len(rows) == _PAGE else None,
    }
    return render(request, "runs.html", context)


@router.get("/ui/runs/{run_id}", response_class=HTMLResponse)
def run_detail(request: Request, run_id: RowId, hub: HubDep, who: Reads) -> HTMLResponse:
    """One run: counts, cursor before and after, warnings, error, duration."""
    with hub.engine.connect() as conn:
        row = run_by_id(conn, who.scope, run_id)
        counts = progress(conn, run_id) if row is not None and row.mode in FILL_MODES else None
    if row is None:
        raise Refused(404, f"no run {run_id}")
    context = {
        "fill": fill_progress(row, counts) if counts is not None else None,
        "title": f"Run {run_id}",
        "run": row,
        "status": shown_status(row, now()),
        "cursor_before": _json(row.cursor_before),
        "cursor_after": _json(row.cursor_after),
        "warnings": _json(row.warnings) or [],
    }
    return render(request, "run.html", context)


@router.get("/ui/deliveries", response_class=HTMLResponse)
def deliveries_list(
    request: Request,
    hub: HubDep,
    who: Reads,
    state: str | None = None,
    flow: str | None = None,
    age: str | None = None,
    before: Annotated[int | None, Query(ge=1)] = None,
) -> HTMLResponse:
    """The delivery ledger: filter by state, flow and age; newest first."""
    wanted: DeliveryState | None = state if state in DELIVERY_STATES else None
    older = now() - AGES[age] if age in AGES else None
    with hub.engine.connect() as conn:
        rows = deliveries_page(
            conn,
            who.scope,
            state=wanted,
            flow=_blank(flow),
            limit=_PAGE,
            created_before=older,
            before_id=before,
        )
    context = {
        "title": "Deliveries",
        "deliveries": rows,
        "flows": [f for f in visible_flows(hub, who) if f.direction == "out"],
        "states": DELIVERY_STATES,
        "ages": list(AGES),
        "filters": {"state": wanted or "", "flow": flow or "", "age": age if age in AGES else ""},
        "next_before": rows[-1].id if len(rows) == _PAGE else None,
    }
    return render(request, "deliveries.html", context)


@router.get("/ui/deliveries/{delivery_id}", response_class=HTMLResponse)
def delivery_detail(request: Request, delivery_id: RowId, hub: HubDep, who: Reads) -> HTMLResponse:
    """One delivery with every attempt."""
    with hub.engine.connect() as conn:
        row = delivery_by_id(conn, who.scope, delivery_id)
        attempts = delivery_attempts_of(conn, delivery_id) if row is not None else []
    if row is None:
        raise Refused(404, f"no delivery {delivery_id}")
    context = {"title": f"Delivery {delivery_id}", "d": row, "attempts": attempts}
    return render(request, "delivery.html", context)


def _acting(call: Any, *args: Any) -> Any:
    """Call an API function; its refusal (404, 409, ...) becomes the page's."""
    try:
        return call(*args)
    except ApiError as exc:
        raise Refused(exc.status, exc.message) from None


@router.post("/ui/deliveries/{delivery_id}/retry")
def delivery_retry(delivery_id: RowId, hub: HubDep, who: Operates) -> Response:
    """Queue a dead, failed or cancelled delivery again."""
    out = _acting(resources.retry_delivery, delivery_id, hub, who.principal)
    if out.superseded:
        notice = f"delivery {delivery_id} was superseded by a newer version: cancelled"
    else:
        notice = f"delivery {delivery_id} queued again" if out.changed else "nothing to retry"
    return after_action(f"/ui/deliveries/{delivery_id}", notice)


@router.post("/ui/deliveries/{delivery_id}/cancel")
def delivery_cancel(delivery_id: RowId, hub: HubDep, who: Operates) -> Response:
    """Cancel a delivery that has not gone out."""
    out = _acting(resources.cancel_delivery, delivery_id, hub, who.principal)
    notice = f"delivery {delivery_id} cancelled" if out.changed else "nothing to cancel"
    return after_action(f"/ui/deliveries/{delivery_id}", notice)


@router.post("/ui/deliveries/retry-dead")
def deliveries_retry_dead(
    hub: HubDep, who: Operates, flow: Annotated[str, Form(max_length=128)] = ""
) -> Response:
    """Queue every dead delivery (of one flow) again."""
    out = _acting(resources.retry_dead, hub, who.principal, flow or None)
    notice = f"{out.changed} dead deliveries queued again"
    if out.superseded:
        notice += f", {out.superseded} superseded by newer versions"
    target = f"/ui/deliveries?state=dead&flow={flow}" if flow else "/ui/deliveries?state=dead"
    return after_action(target, notice)
