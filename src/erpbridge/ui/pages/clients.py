"""``/ui/clients`` (admins): the API's clients, added with their credential shown once (on the
answer to the form, never in a URL, never again) and revoked; both in the admin audit, as
``erpbridge clients add|revoke`` writes them."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Path, Request
from fastapi.responses import HTMLResponse, Response

from erpbridge.store.apiclients import create_client, list_clients, revoke_client
from erpbridge.store.scopes import SCOPES
from erpbridge.ui.auth import Refused
from erpbridge.ui.pages.common import Administers, HubDep, after_action
from erpbridge.ui.render import render

__all__ = ["router"]

router = APIRouter(include_in_schema=False)


def _page(request: Request, hub: HubDep, **extra: object) -> HTMLResponse:
    context = {
        "title": "API clients",
        "clients": list_clients(hub.engine),
        "scopes": sorted(SCOPES),
        "channels": sorted(hub.config.model.channels),
        **extra,
    }
    return render(request, "clients.html", context, 200 if "error" not in extra else 422)


@router.get("/ui/clients", response_class=HTMLResponse)
def clients_list(request: Request, hub: HubDep, who: Administers) -> HTMLResponse:
    """Every API client: scopes, channels, created, expires, last used, revoked."""
    return _page(request, hub)


@router.post("/ui/clients", response_class=HTMLResponse)
def client_add(
    request: Request,
    hub: HubDep,
    who: Administers,
    name: Annotated[str, Form(min_length=1, max_length=128)],
    scope: Annotated[list[str], Form()],
    channel: Annotated[list[str] | None, Form()] = None,
) -> HTMLResponse:
    """Register a client; the answer shows its credential, once."""
    unknown = sorted(set(channel or []) - set(hub.config.model.channels))
    if unknown:
        return _page(request, hub, error=f"no channel named {', '.join(unknown)}")
    try:
        client, key = create_client(
            hub.engine, name.strip(), set(scope), channels=set(channel) if channel else None
        )
    except ValueError as exc:
        return _page(request, hub, error=str(exc))
    detail = {"scopes": sorted(client.scopes), "channels": sorted(client.channels or [])}
    hub.audit(who.name, who.principal.address, "client.add", client.name, detail=detail)
    return _page(request, hub, created=client.name, key=key)


@router.post("/ui/clients/{name}/revoke")
def client_revoke(
    name: Annotated[str, Path(max_length=128)], hub: HubDep, who: Administers
) -> Response:
    """Revoke a client for good: its key and tokens stop working at once."""
    if not revoke_client(hub.engine, name):
        raise Refused(404, f"no active API client named {name!r}")
    hub.audit(who.name, who.principal.address, "client.revoke", name)
    return after_action("/ui/clients", f"client {name} revoked")
