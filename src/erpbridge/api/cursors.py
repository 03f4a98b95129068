"""``/api/v1/cursors`` and ``/api/v1/flows/{name}/cursor``: see and reset IN flows' cursors."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, Field

from erpbridge.api.auth import Principal
from erpbridge.api.context import ApiError, Hub
from erpbridge.api.deps import Admin, HubDep, Name, Reader
from erpbridge.api.scope import visible_flow
from erpbridge.errors import FlowBusy
from erpbridge.store.cursors import CursorView, cursor_views, reset_cursor

__all__ = ["router"]

router = APIRouter(prefix="/api/v1")


class CursorOut(BaseModel):
    """An IN flow's stored cursor; ``value`` ``null``: the next run reads everything."""

    flow: str
    value: Any
    full_pass: Any = Field(description="Where an unfinished full pass stands, else null.")
    run_id: int | None
    updated_at: datetime | None


class CursorResetIn(BaseModel):
    """The new cursor: ``null`` (or left out) to read everything, else the value in the form
    ``GET .../cursor`` shows."""

    to: Any = None


class CursorResetOut(BaseModel):
    """The cursor before and after a reset."""

    before: CursorOut
    after: CursorOut


def _out(view: CursorView) -> CursorOut:
    return CursorOut(
        flow=view.flow,
        value=view.value,
        full_pass=view.full_pass,
        run_id=view.run_id,
        updated_at=view.updated_at,
    )


def _in_flow(hub: Hub, name: str, who: Principal) -> str:
    flow = visible_flow(hub, name, who)
    if flow.direction != "in":
        raise ApiError(409, "not_an_in_flow", f"flow {name!r} is an OUT flow: it has no cursor")
    return flow.name


@router.get("/cursors", tags=["flows"])
def list_cursors(hub: HubDep, who: Reader) -> list[CursorOut]:
    """The cursor of every IN flow this client may see."""
    names = [
        f.name for f in hub.config.model.flows if f.direction == "in" and who.may_channel(f.channel)
    ]
    with hub.engine.connect() as conn:
        return [_out(v) for v in cursor_views(conn, names)]


@router.get("/flows/{name}/cursor", tags=["flows"])
def show_cursor(name: Name, hub: HubDep, who: Reader) -> CursorOut:
    """One IN flow's cursor."""
    flow = _in_flow(hub, name, who)
    with hub.engine.connect() as conn:
        (view,) = cursor_views(conn, [flow])
    return _out(view)


@router.post("/flows/{name}/cursor/reset", tags=["flows"])
def reset_flow_cursor(
    name: Name, hub: HubDep, who: Admin, body: CursorResetIn | None = None
) -> CursorResetOut:
    """Reset an IN flow's cursor (to nothing, or to ``to``); 409 ``flow_busy`` while a run of
    the flow is going. Written to the admin audit with the value before and after."""
    flow = _in_flow(hub, name, who)
    to = None if body is None else body.to
    try:
        with hub.engine.begin() as conn:
            before, after = reset_cursor(conn, flow, to)
    except FlowBusy as exc:
        hub.audit(who.name, who.address, "flow.cursor_reset", flow, "refused")
        raise ApiError(
            409, "flow_busy", f"{exc}; reset its cursor once the run has ended"
        ) from None
    detail = {"before": before.value, "full_pass": before.full_pass, "after": after.value}
    hub.audit(who.name, who.address, "flow.cursor_reset", flow, detail=detail)
    return CursorResetOut(before=_out(before), after=_out(after))
