"""``/ui/reconciliations``: the stored reconciliations (newest first, by flow), one with its
sums and differences side by side, and "Reconcile now" for a flow with a ``reconcile:`` block
(through the API's own function: same checks, same audit row)."""

from __future__ import annotations

from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import HTMLResponse, Response

from erpbridge.api import reconcile
from erpbridge.api.context import ApiError
from erpbridge.api.deps import RowId
from erpbridge.store.read import reconciliation_by_id, reconciliations_page
from erpbridge.ui.auth import Refused
from erpbridge.ui.pages.common import HubDep, Operates, Reads, after_action, visible_flow
from erpbridge.ui.render import render

__all__ = ["router"]

router = APIRouter(include_in_schema=False)
_PAGE = 50


@router.get("/ui/reconciliations", response_class=HTMLResponse)
def reconciliations_list(
    request: Request,
    hub: HubDep,
    who: Reads,
    flow: str | None = None,
    before: Annotated[int | None, Query(ge=1, le=2**63 - 1)] = None,
) -> HTMLResponse:
    """Reconciliations, newest first; the flows that can be reconciled, with a button."""
    with hub.engine.connect() as conn:
        rows = reconciliations_page(
            conn, who.scope, flow=flow or None, limit=_PAGE, before_id=before
        )
    flows = [
        f for f in hub.config.model.flows
        if f.name in hub.config.reconcile and who.principal.may_channel(f.channel)
    ]  # fmt: skip
    context = {
        "title": "Reconciliations",
        "rows": rows,
        "flows": flows,
        "filters": {"flow": flow or ""},
        "next_before": rows[-1].id if len(rows) == _PAGE else None,
    }
    return render(request, "reconciliations.html", context)


@router.get("/ui/reconciliations/{reconciliation_id}", response_class=HTMLResponse)
def reconciliation_detail(
    request: Request, reconciliation_id: RowId, hub: HubDep, who: Reads
) -> HTMLResponse:
    """One reconciliation: counts, sums, the differences with both values."""
    with hub.engine.connect() as conn:
        row = reconciliation_by_id(conn, who.scope, reconciliation_id)
    if row is None:
        raise Refused(404, f"no reconciliation {reconciliation_id}")
    report: dict[str, Any] = orjson.loads(row.report)
    context = {"title": f"Reconciliation {row.id}", "row": row, "report": report}
    return render(request, "reconciliation.html", context)


@router.post("/ui/reconciliations/run/{name}")
def reconcile_now(
    name: Annotated[str, Path(max_length=128)], hub: HubDep, who: Operates
) -> Response:
    """Reconcile a flow now (compare only; repairs are the CLI's and the API's)."""
    visible_flow(hub, who, name)
    try:
        out = reconcile.reconcile_now(name, reconcile.ReconcileIn(), hub, who.principal)
    except ApiError as exc:
        raise Refused(exc.status, exc.message) from None
    differences = out.missing_in_channel + out.missing_in_hub + out.differing
    notice = (
        f"flow {name}: reconciliation {out.id} failed: {out.error}"
        if out.status == "failed"
        else f"flow {name}: reconciliation {out.id} found {differences} difference(s)"
    )
    return after_action(f"/ui/reconciliations/{out.id}", notice, failed=out.status == "failed")
