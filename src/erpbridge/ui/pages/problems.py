"""``/ui/rejected`` and ``/ui/conflicts``: what waits for a person. A rejected record with its
payload and the field that failed, replayed (its flow's open ones) after a fix; a two-way
conflict side by side (the hub's version against the channel's change, field by field),
resolved for one side. Actions are the runner's own (the same as ``erpbridge rejected
--replay`` and ``erpbridge conflicts --resolve``), checked against the user's channels and
written to the admin audit."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import orjson
from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import HTMLResponse, Response

from erpbridge.api import rejections
from erpbridge.api.context import ApiError
from erpbridge.store.read import (
    conflict_by_id,
    conflicts_page,
    record_view,
    rejected_by_id,
    rejected_page,
)
from erpbridge.store.runs import problems_of
from erpbridge.store.states import REJECTION_STATUSES, ConflictStatus, RejectionStatus
from erpbridge.ui.auth import Refused
from erpbridge.ui.pages.common import (
    HubDep,
    Operates,
    Reads,
    RowId,
    after_action,
    visible_flows,
)
from erpbridge.ui.pages.records import field_changes
from erpbridge.ui.render import render

__all__ = ["router"]

router = APIRouter(include_in_schema=False)
Before = Annotated[int | None, Query(ge=1, le=2**63 - 1)]
_PAGE = 50


def _payload(text: str | None) -> Any:
    if text is None:
        return None
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return text


@router.get("/ui/rejected", response_class=HTMLResponse)
def rejected_list(
    request: Request,
    hub: HubDep,
    who: Reads,
    flow: Annotated[str, Query(max_length=128)] = "",
    status: Annotated[str, Query(max_length=16)] = "open",
    before: Before = None,
) -> HTMLResponse:
    """Rejected records of one status (open by default), newest first."""
    wanted: RejectionStatus = next((s for s in REJECTION_STATUSES if s == status), "open")
    with hub.engine.connect() as conn:
        rows = rejected_page(
            conn, who.scope, flow=flow or None, status=wanted, limit=_PAGE, before_id=before
        )
    context = {
        "title": "Rejected",
        "rows": [(r, problems_of(r)) for r in rows],
        "flows": [f for f in visible_flows(hub, who) if f.direction == "in"],
        "statuses": REJECTION_STATUSES,
        "filters": {"flow": flow, "status": wanted},
        "next_before": rows[-1].id if len(rows) == _PAGE else None,
    }
    return render(request, "rejected.html", context)


@router.get("/ui/rejected/{rejection_id}", response_class=HTMLResponse)
def rejected_detail(request: Request, rejection_id: RowId, hub: HubDep, who: Reads) -> HTMLResponse:
    """One rejected record: its payload as it came and every failing field with its reason."""
    with hub.engine.connect() as conn:
        row = rejected_by_id(conn, who.scope, rejection_id)
    if row is None:
        raise Refused(404, f"no rejected record {rejection_id}")
    context = {
        "title": f"Rejected {rejection_id}",
        "r": row,
        "problems": problems_of(row),
        "payload": _payload(row.payload),
    }
    return render(request, "rejection.html", context)


@router.post("/ui/rejected/replay")
def rejected_replay(
    hub: HubDep,
    who: Operates,
    flow: Annotated[str, Form(max_length=128)] = "",
    rejection: Annotated[int | None, Form(ge=1, le=2**63 - 1)] = None,
) -> Response:
    """Map stored payloads again after a fix (a flow's open ones, or one): those that pass land
    in the hub, the others stay open with their new problems (the API's replay)."""
    if not flow and rejection is None:
        raise Refused(422, "choose a flow or a rejected record to replay")
    body = rejections.ReplayIn(flow=flow or None, ids=[rejection] if rejection else None)
    back = f"/ui/rejected/{rejection}" if rejection else f"/ui/rejected?flow={flow}"
    try:
        out = rejections.replay_rejected(body, hub, who.principal)
    except ApiError as exc:
        if exc.status == 404:
            raise Refused(404, exc.message) from None
        return after_action(back, exc.message, failed=True)
    landed = sum(r.replayed for r in out)
    still = sum(r.still_rejected for r in out)
    notice = f"replayed: {landed} landed, {still} still rejected"
    if not out:
        notice = "no open rejection with a payload to replay"
    return after_action(back, notice, failed=bool(still))


@router.post("/ui/rejected/{rejection_id}/dismiss")
def rejected_dismiss(
    rejection_id: RowId,
    hub: HubDep,
    who: Operates,
    reason: Annotated[str, Form(max_length=2000)] = "",
) -> Response:
    """Dismiss an open rejection with a reason (kept with it and in the admin audit)."""
    if not reason.strip():
        back = f"/ui/rejected/{rejection_id}"
        return after_action(back, "say why it needs no replay: the reason is kept", failed=True)
    body = rejections.DismissIn(reason=reason)
    try:
        out = rejections.dismiss_one(rejection_id, body, hub, who.principal)
    except ApiError as exc:
        raise Refused(exc.status, exc.message) from None
    notice = f"rejected record {rejection_id} dismissed" if out.dismissed else "it was not open"
    return after_action(f"/ui/rejected/{rejection_id}", notice)


@router.get("/ui/conflicts", response_class=HTMLResponse)
def conflicts_list(
    request: Request,
    hub: HubDep,
    who: Reads,
    status: Annotated[str, Query(max_length=16)] = "open",
    before: Before = None,
) -> HTMLResponse:
    """Two-way conflicts, open ones by default."""
    wanted: ConflictStatus | None = "resolved" if status == "resolved" else "open"
    if status == "all":
        wanted = None
    with hub.engine.connect() as conn:
        rows = conflicts_page(conn, who.scope, status=wanted, limit=_PAGE, before_id=before)
    context = {
        "title": "Conflicts",
        "rows": rows,
        "filters": {"status": status if status in ("resolved", "all") else "open"},
        "next_before": rows[-1].id if len(rows) == _PAGE else None,
    }
    return render(request, "conflicts.html", context)


@router.get("/ui/conflicts/{conflict_id}", response_class=HTMLResponse)
def conflict_detail(request: Request, conflict_id: RowId, hub: HubDep, who: Reads) -> HTMLResponse:
    """One conflict side by side: the hub's version it was held against, the channel's change."""
    with hub.engine.connect() as conn:
        row = conflict_by_id(conn, who.scope, conflict_id)
        view = record_view(conn, who.scope, row.entity, row.key) if row is not None else None
    if row is None:
        raise Refused(404, f"no conflict {conflict_id}")
    hub_payload: dict[str, Any] = {}
    if view is not None:
        for version in view.versions:
            if version.row.version == row.hub_version:
                hub_payload = orjson.loads(version.row.payload)
    incoming = _payload(row.incoming_payload)
    changes = field_changes(hub_payload, incoming if isinstance(incoming, dict) else {})
    context = {
        "title": f"Conflict {conflict_id}",
        "c": row,
        "hub_payload": hub_payload,
        "incoming": incoming,
        "changes": changes,
    }
    return render(request, "conflict.html", context)


@router.post("/ui/conflicts/{conflict_id}/resolve")
def conflict_resolve(
    conflict_id: RowId,
    hub: HubDep,
    who: Operates,
    take: Annotated[Literal["hub", "source"], Form()],
) -> Response:
    """Settle an open conflict: keep the hub's version, or take the channel's change."""
    with hub.engine.connect() as conn:
        row = conflict_by_id(conn, who.scope, conflict_id)
    if row is None:
        raise Refused(404, f"no conflict {conflict_id}")
    try:
        hub.runner.resolve_conflict(conflict_id, take)
    except LookupError as exc:
        raise Refused(409, str(exc)) from None
    detail = {"conflict": conflict_id, "take": take}
    hub.audit(who.name, who.principal.address, "conflict.resolve", row.flow, detail=detail)
    side = "the hub's version kept" if take == "hub" else "the channel's change taken"
    return after_action(f"/ui/conflicts/{conflict_id}", f"conflict {conflict_id} resolved: {side}")
