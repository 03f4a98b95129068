"""``/api/v1/flows/{name}/backfill`` and ``/replay``: fill an OUT flow with what the hub holds;
``/api/v1/runs/{id}/progress``: how far its deliveries have gone."""

from __future__ import annotations

import threading
from typing import Annotated, Any

import orjson
from fastapi import APIRouter
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from erpbridge.api.auth import Principal
from erpbridge.api.context import ApiError, Hub
from erpbridge.api.deps import HubDep, Name, Reader, RowId, Writer
from erpbridge.api.scope import read_scope
from erpbridge.engine.backfill import (
    BackfillRefused,
    BackfillRequest,
    Fill,
    Filler,
    FillResult,
    ReplayRequest,
    parse_where,
)
from erpbridge.errors import FlowBusy
from erpbridge.moments import BadMoment, parse_moment
from erpbridge.store.backfill import progress
from erpbridge.store.read import run_by_id
from erpbridge.store.runlease import shown_status
from erpbridge.store.runs import now

__all__ = ["BackfillIn", "ReplayIn", "router", "start_backfill", "start_replay"]

router = APIRouter(prefix="/api/v1", tags=["backfill"])
Moment = Annotated[str, Field(max_length=64, description="ISO 8601; without a zone: UTC.")]

#: Refusal code → HTTP status.
_STATUS = {"not_found": 404, "not_an_out_flow": 409}


class BackfillIn(BaseModel):
    """What to backfill: every record of the flow's entity, or those that match."""

    where: dict[Annotated[str, Field(max_length=256)], Annotated[str, Field(max_length=1024)]] = (
        Field(default_factory=dict, max_length=32, description="FIELD (dotted path) → VALUE.")
    )
    changed_since: Moment | None = None
    dry_run: bool = False


class ReplayIn(BaseModel):
    """The time range to replay (both ends included); ``to`` defaults to now."""

    start: Moment = Field(alias="from")
    end: Moment | None = Field(default=None, alias="to")
    dry_run: bool = False


class FillOut(BaseModel):
    """A backfill or replay run: follow it under ``/api/v1/runs/{run_id}/progress``."""

    run_id: int
    flow: str
    mode: str
    status: str
    dry_run: bool
    total: int
    scanned: int
    queued: int
    skipped: int
    resumed_from: int | None = None
    error: str | None = None


class ProgressOut(BaseModel):
    """A backfill or replay run's counters and its deliveries by state."""

    run_id: int
    flow: str
    mode: str
    status: str
    scanned: int
    queued: int
    skipped: int
    position: Any = None
    deliveries: dict[str, int]


def _out(result: FillResult) -> FillOut:
    return FillOut(
        run_id=result.run_id, flow=result.flow, mode=result.mode, status=result.status,
        dry_run=result.dry_run, total=result.total, scanned=result.scanned, queued=result.queued,
        skipped=result.skipped, resumed_from=result.resumed_from, error=result.error,
    )  # fmt: skip


def _refused(exc: BackfillRefused | BadMoment) -> ApiError:
    if isinstance(exc, BadMoment):
        return ApiError(422, "bad_time", str(exc))
    return ApiError(_STATUS.get(exc.code, 422), exc.code, str(exc))


def _filler(hub: Hub, name: str, who: Principal) -> Filler:
    filler = Filler(hub.config, hub.engine, on_queued=hub.wake)
    try:
        target = filler.target(name)
    except BackfillRefused as exc:
        raise _refused(exc) from None
    who.check_channel(target.channel)
    return filler


def _launch(hub: Hub, who: Principal, start: Any, dry_run: bool) -> FillResult:
    """Record the run, then queue in the background (a dry run answers when done)."""
    try:
        fill: Fill = start()
    except BackfillRefused as exc:
        raise _refused(exc) from None
    except FlowBusy as exc:
        raise ApiError(409, "flow_busy", str(exc)) from None
    if dry_run:
        return fill.run()
    threading.Thread(target=fill.run, name=f"{fill.result.mode}-{fill.run_id}", daemon=True).start()
    hub.audit(who.name, who.address, f"flow.{fill.result.mode}", fill.target.flow,
              detail={"run_id": fill.run_id})  # fmt: skip
    return fill.result


def _answer(result: FillResult) -> JSONResponse:
    status = 200 if result.dry_run else 202
    return JSONResponse(_out(result).model_dump(mode="json"), status_code=status)


def start_backfill(hub: Hub, who: Principal, name: str, body: BackfillIn) -> FillResult:
    """Start a backfill of ``name`` in the background (a dry run: do it and answer its counts);
    :class:`ApiError` when refused. The API's route and the back office's button."""
    filler = _filler(hub, name, who)
    try:
        entity = hub.config.flow(name).entity
        terms = [f"{field}={value}" for field, value in body.where.items()]
        where = parse_where(hub.config, entity, terms)
        since = body.changed_since
        request = BackfillRequest(
            name, where, None if since is None else parse_moment("changed_since", since),
            body.dry_run, trigger="api",
        )  # fmt: skip
    except (BackfillRefused, BadMoment) as exc:
        raise _refused(exc) from None
    return _launch(hub, who, lambda: filler.start_backfill(request), body.dry_run)


def start_replay(hub: Hub, who: Principal, name: str, body: ReplayIn) -> FillResult:
    """:func:`start_backfill` for a replay."""
    filler = _filler(hub, name, who)
    try:
        request = ReplayRequest(
            name, parse_moment("from", body.start),
            now() if body.end is None else parse_moment("to", body.end), body.dry_run,
        )  # fmt: skip
    except (BackfillRefused, BadMoment) as exc:
        raise _refused(exc) from None
    return _launch(hub, who, lambda: filler.start_replay(request), body.dry_run)


@router.post(
    "/flows/{name}/backfill", status_code=202, response_model=FillOut,
    responses={200: {"model": FillOut, "description": "a dry run: what would be queued"}},
)  # fmt: skip
def backfill_flow(name: Name, body: BackfillIn, hub: HubDep, who: Writer) -> JSONResponse:
    """Queue every record the hub holds (its current version, once) for an OUT flow, below
    live traffic; an interrupted backfill with the same body resumes where it stopped."""
    return _answer(start_backfill(hub, who, name, body))


@router.post(
    "/flows/{name}/replay", status_code=202, response_model=FillOut,
    responses={200: {"model": FillOut, "description": "a dry run: what would be queued"}},
)  # fmt: skip
def replay_flow(name: Name, body: ReplayIn, hub: HubDep, who: Writer) -> JSONResponse:
    """Queue every version written between ``from`` and ``to`` for an OUT flow, in order, then
    each touched record's current version if newer."""
    return _answer(start_replay(hub, who, name, body))


@router.get("/runs/{run_id}/progress")
def run_progress(run_id: RowId, hub: HubDep, who: Reader) -> ProgressOut:
    """A run's counters, where it stands, and (backfill, replay) its deliveries by state."""
    with hub.engine.connect() as conn:
        row = run_by_id(conn, read_scope(hub, who), run_id)
        if row is None:
            raise ApiError(404, "not_found", f"no run {run_id}")
        counts = progress(conn, run_id)
    return ProgressOut(
        run_id=run_id, flow=row.flow, mode=row.mode, status=shown_status(row, now()),
        scanned=row.read, queued=row.created, skipped=row.unchanged,
        position=orjson.loads(row.cursor_after) if row.cursor_after else None, deliveries=counts,
    )  # fmt: skip
