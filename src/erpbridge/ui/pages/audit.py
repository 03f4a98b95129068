"""``/ui/audit``: the admin audit (admins), newest first, filtered by actor, action and target:
every sign-in, sign-out and action of the back office, the API and the CLI."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse

from erpbridge.store.read import audit_page
from erpbridge.ui.pages.common import Administers, HubDep
from erpbridge.ui.render import render

__all__ = ["router"]

router = APIRouter(include_in_schema=False)
_PAGE = 100
Text = Annotated[str, Query(max_length=512)]


@router.get("/ui/audit", response_class=HTMLResponse)
def audit_list(
    request: Request,
    hub: HubDep,
    who: Administers,
    actor: Text = "",
    action: Text = "",
    target: Text = "",
    before: Annotated[int | None, Query(ge=1, le=2**63 - 1)] = None,
) -> HTMLResponse:
    """Administrative actions, newest first."""
    with hub.engine.connect() as conn:
        rows = audit_page(
            conn,
            who.scope,
            actor=actor or None,
            action=action or None,
            target=target or None,
            limit=_PAGE,
            before_id=before,
        )
    filters = {"actor": actor, "action": action, "target": target}
    context = {
        "title": "Audit",
        "rows": rows,
        "filters": filters,
        "next_before": rows[-1].id if len(rows) == _PAGE else None,
    }
    return render(request, "audit.html", context)
