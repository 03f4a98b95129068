"""``/api/v1/reconciliations``: stored reconciliations (counts, sums, first differences);
``POST /api/v1/flows/{name}/reconcile``: reconcile a flow now (and repair when asked)."""

from __future__ import annotations

from typing import Any, Literal

import orjson
from fastapi import APIRouter, Query
from pydantic import BaseModel, Field
from sqlalchemy import Row

from erpbridge.api.context import ApiError
from erpbridge.api.deps import HubDep, Limit, Name, Reader, RowId, Stamp, Writer
from erpbridge.api.scope import read_scope, visible_flow
from erpbridge.engine.reconcile.repair import check_repair
from erpbridge.engine.reconcile.run import DEFAULT_LIMIT, ReconcileRefused
from erpbridge.engine.reconcile.service import reconcile_flow
from erpbridge.store.read import reconciliation_by_id, reconciliations_page

__all__ = ["router"]

router = APIRouter(prefix="/api/v1", tags=["reconciliations"])


class ReconciliationOut(BaseModel):
    """One reconciliation of one flow: its counts; ``report`` (in a single one's answer) holds
    the sums, the first differences with both values, and what a repair did."""

    id: int
    flow: str
    channel: str = Field(description="The flow's channel.")
    entity: str
    trigger: str = Field(description="manual (CLI), schedule or api.")
    status: str = Field(description="succeeded or failed (the channel or store failed).")
    started_at: Stamp
    duration_s: float | None
    hub: int
    channel_count: int = Field(description="Records the channel holds.")
    missing_in_channel: int
    missing_in_hub: int
    differing: int
    error: str | None
    repair: str | None
    repaired: int
    report: dict[str, Any] | None = None


class ReconcileIn(BaseModel):
    """Reconcile now; ``repair`` repairs the differences found (``redeliver`` for OUT flows,
    ``reread`` for IN flows)."""

    repair: Literal["redeliver", "reread"] | None = None
    limit: int = Field(DEFAULT_LIMIT, ge=0, le=10_000, description="Differences listed.")


def _out(row: Row[Any], full: bool) -> ReconciliationOut:
    return ReconciliationOut(
        id=row.id, flow=row.flow, channel=row.channel, entity=row.entity, trigger=row.trigger,
        status=row.status, started_at=row.started_at, duration_s=row.duration_s,
        hub=row.hub_count, channel_count=row.channel_count,
        missing_in_channel=row.missing_in_channel, missing_in_hub=row.missing_in_hub,
        differing=row.differing, error=row.error, repair=row.repair, repaired=row.repaired,
        report=orjson.loads(row.report) if full else None,
    )  # fmt: skip


@router.get("/reconciliations")
def list_reconciliations(
    hub: HubDep,
    who: Reader,
    flow: str | None = None,
    limit: Limit = 50,
    before: int | None = Query(None, ge=1, le=2**63 - 1, description="Ids below this one."),
) -> list[ReconciliationOut]:
    """Stored reconciliations, newest first (without their reports)."""
    with hub.engine.connect() as conn:
        rows = reconciliations_page(
            conn, read_scope(hub, who), flow=flow, limit=limit, before_id=before
        )
    return [_out(r, False) for r in rows]


@router.get("/reconciliations/{reconciliation_id}")
def show_reconciliation(reconciliation_id: RowId, hub: HubDep, who: Reader) -> ReconciliationOut:
    """One reconciliation with its report."""
    with hub.engine.connect() as conn:
        row = reconciliation_by_id(conn, read_scope(hub, who), reconciliation_id)
    if row is None:
        raise ApiError(404, "not_found", f"no reconciliation {reconciliation_id}")
    return _out(row, True)


@router.post("/flows/{name}/reconcile")
def reconcile_now(name: Name, body: ReconcileIn, hub: HubDep, who: Writer) -> ReconciliationOut:
    """Reconcile the flow now (the answer waits for it) and store the result; a channel that
    fails is a stored reconciliation with status ``failed`` and the error."""
    visible_flow(hub, name, who)
    plan = hub.config.reconcile.get(name)
    if plan is None:
        raise ApiError(
            409, "no_reconcile_block", f"flow {name!r} has no `reconcile:` block to read with"
        )
    if body.repair is not None:
        try:
            check_repair(hub.config, name, body.repair)
        except ReconcileRefused as exc:
            raise ApiError(409, "repair_refused", str(exc)) from None
    _, row_id = reconcile_flow(
        hub.config, hub.engine, plan, trigger="api", limit=body.limit, repair=body.repair,
        on_queued=hub.wake,
    )  # fmt: skip
    hub.audit(who.name, who.address, "flow.reconcile", name,
              detail={"reconciliation_id": row_id, "repair": body.repair})  # fmt: skip
    with hub.engine.connect() as conn:
        row = reconciliation_by_id(conn, read_scope(hub, who), row_id)
    assert row is not None
    return _out(row, True)
