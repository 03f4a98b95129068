"""``/ui/search``: the search helps of the entities that declare one, as ``GET
/api/v1/search/{entity}`` answers them (same matching, same channel scope), each hit linked to
its record."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse

from erpbridge.api import search as search_api
from erpbridge.api.context import ApiError
from erpbridge.store.search import searchable
from erpbridge.ui.auth import Refused
from erpbridge.ui.pages.common import HubDep, Reads
from erpbridge.ui.render import render

__all__ = ["router"]

router = APIRouter(include_in_schema=False)


@router.get("/ui/search", response_class=HTMLResponse)
def search_page(
    request: Request,
    hub: HubDep,
    who: Reads,
    entity: Annotated[str, Query(max_length=64)] = "",
    q: Annotated[str, Query(max_length=200)] = "",
) -> HTMLResponse:
    """The form; with an entity and words, the hits (best first)."""
    entities = sorted(searchable(hub.config.entities))
    result: Any = None
    if entity and q.strip():
        try:
            result = search_api.search_records(entity, q, who.principal, hub, hub.engine, 50)
        except ApiError as exc:
            raise Refused(exc.status, exc.message) from None
    context = {
        "title": "Search",
        "entities": entities,
        "entity": entity or (entities[0] if entities else ""),
        "q": q,
        "result": result,
    }
    return render(request, "search.html", context)
