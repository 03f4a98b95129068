"""``/api/v1/rejected``: rejected records with their payload and every failing field; replay
them after a fix, or dismiss them with a reason. Both are in the admin audit."""

from __future__ import annotations

from typing import Annotated, Any

import orjson
from fastapi import APIRouter
from pydantic import BaseModel, Field, StringConstraints
from sqlalchemy import Row

from erpbridge.api.auth import Principal
from erpbridge.api.context import ApiError, Hub
from erpbridge.api.deps import HubDep, Limit, Reader, RowId, Stamp, Writer
from erpbridge.api.redact import shown_to
from erpbridge.api.scope import read_scope, visible_flow
from erpbridge.errors import FlowPaused
from erpbridge.store.read import rejected_by_id, rejected_page
from erpbridge.store.rejections import dismiss_rejections
from erpbridge.store.runs import problems_of
from erpbridge.store.states import RejectionStatus

__all__ = ["router"]

router = APIRouter(prefix="/api/v1")

#: At most this many ids per replay or dismissal (one request, one transaction).
MAX_IDS = 1000


class ProblemOut(BaseModel):
    """One failing field: its canonical path (empty: the whole record) and why."""

    path: str
    reason: str


class RejectionOut(BaseModel):
    """A record the flow could not take: its payload as read, every failing field, what
    became of it (``replayed``, ``superseded``, ``dismissed`` by whom and why)."""

    id: int
    flow: str
    channel: str
    entity: str
    run_id: int | None
    position: str
    external_id: str | None
    field_path: str = Field(description="The first failing field (see problems for all).")
    reason: str
    problems: list[ProblemOut]
    payload: Any = Field(description="The source record as read; null for a whole file.")
    status: str
    created_at: Stamp
    resolved_at: Stamp | None
    resolved_run_id: int | None
    resolved_by: str | None
    note: str | None = Field(description="The reason given when it was dismissed.")


class ReplayIn(BaseModel):
    """What to replay: the open rejections of ``flow``, or only ``ids`` (at least one)."""

    flow: str | None = Field(None, max_length=128)
    ids: list[Annotated[int, Field(ge=1, le=2**63 - 1)]] | None = Field(
        None, min_length=1, max_length=MAX_IDS
    )


class ReplayRunOut(BaseModel):
    """One replay run: how many payloads landed, how many are still rejected."""

    run_id: int
    flow: str
    replayed: int
    still_rejected: int


class DismissIn(BaseModel):
    """Why these rejections need no replay (kept with them and in the admin audit)."""

    reason: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=2000)]


class BulkDismissIn(DismissIn):
    """Several rejections dismissed with one reason."""

    ids: list[Annotated[int, Field(ge=1, le=2**63 - 1)]] = Field(min_length=1, max_length=MAX_IDS)


class DismissedOut(BaseModel):
    """The rejections dismissed (those already closed are left as they are)."""

    dismissed: list[int]


def _out(row: Row[Any], who: Principal) -> RejectionOut:
    data = dict(row._mapping)
    data["reason"] = shown_to(who, row.reason)
    data["problems"] = [
        {"path": p["path"], "reason": shown_to(who, p["reason"])} for p in problems_of(row)
    ]
    data["payload"] = None if row.payload is None else orjson.loads(row.payload)
    return RejectionOut.model_validate(data)


def _visible(hub: Hub, who: Principal, ids: list[int]) -> None:
    """404 for an id that does not exist or lies outside ``who``'s channels."""
    scope = read_scope(hub, who)
    with hub.engine.connect() as conn:
        for rejection_id in ids:
            if rejected_by_id(conn, scope, rejection_id) is None:
                raise ApiError(404, "not_found", f"no rejection {rejection_id}")


@router.get("/rejected", tags=["rejected"])
def list_rejected(
    hub: HubDep,
    who: Reader,
    flow: str | None = None,
    status: RejectionStatus = "open",
    limit: Limit = 50,
) -> list[RejectionOut]:
    """Rejected records with their payload and every failing field (open ones by default)."""
    with hub.engine.connect() as conn:
        rows = rejected_page(conn, read_scope(hub, who), flow=flow, status=status, limit=limit)
    return [_out(r, who) for r in rows]


@router.get("/rejected/{rejection_id}", tags=["rejected"])
def show_rejection(rejection_id: RowId, hub: HubDep, who: Reader) -> RejectionOut:
    """One rejected record."""
    with hub.engine.connect() as conn:
        row = rejected_by_id(conn, read_scope(hub, who), rejection_id)
    if row is None:
        raise ApiError(404, "not_found", f"no rejection {rejection_id}")
    return _out(row, who)


@router.post("/rejected/replay", tags=["rejected"])
def replay_rejected(body: ReplayIn, hub: HubDep, who: Writer) -> list[ReplayRunOut]:
    """Map the stored payloads again after a fix to the mapping or the configuration: those
    that pass land and are marked ``replayed``; the others stay open with their new problems.
    A paused flow answers 409 ``flow_paused``."""
    if body.flow is None and body.ids is None:
        raise ApiError(422, "nothing_to_replay", "give a flow, ids, or both")
    if body.flow is not None:
        visible_flow(hub, body.flow, who)
    if body.ids is not None:
        _visible(hub, who, body.ids)
    try:
        results = hub.runner.replay_rejected(body.flow, body.ids)
    except FlowPaused as exc:
        hub.audit(who.name, who.address, "rejected.replay", body.flow, "refused")
        raise ApiError(409, "flow_paused", str(exc)) from None
    out = [
        ReplayRunOut(
            run_id=r.run_id, flow=r.flow, replayed=r.read - r.rejected, still_rejected=r.rejected
        )
        for r in results
    ]
    detail = {"ids": body.ids, "runs": [o.model_dump() for o in out]}
    hub.audit(who.name, who.address, "rejected.replay", body.flow, detail=detail)
    return out


def _dismiss(hub: Hub, who: Principal, ids: list[int], reason: str) -> DismissedOut:
    _visible(hub, who, ids)
    with hub.engine.begin() as conn:
        done = dismiss_rejections(conn, ids, who.name, reason)
    detail = {"ids": done, "reason": reason}
    target = ",".join(str(i) for i in done)[:255] or None
    hub.audit(who.name, who.address, "rejected.dismiss", target, detail=detail)
    return DismissedOut(dismissed=done)


@router.post("/rejected/{rejection_id}/dismiss", tags=["rejected"])
def dismiss_one(rejection_id: RowId, body: DismissIn, hub: HubDep, who: Writer) -> DismissedOut:
    """Dismiss an open rejection with a reason: it leaves the open list and is not replayed."""
    return _dismiss(hub, who, [rejection_id], body.reason)


@router.post("/rejected/dismiss", tags=["rejected"])
def dismiss_many(body: BulkDismissIn, hub: HubDep, who: Writer) -> DismissedOut:
    """Dismiss several open rejections with one reason."""
    return _dismiss(hub, who, body.ids, body.reason)
