"""``/ui/config`` (admins): the running configuration file, which version each serving process
runs, the versions kept in the hub with who and when (each one's diff with the one before, a
rollback), and an editor: *Check* shows every problem as ``erpbridge check`` words it and a diff
against the running file, nothing saved; *Save* writes the text as typed (comments kept) and
reloads it, refused with every problem (the running file stays) or when another save came
first. Every action goes through ``/api/v1/config``'s functions (same checks, same audit)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, Response

from erpbridge.api import configuration as config_api
from erpbridge.api.context import ApiError
from erpbridge.store.configversions import get_version, list_versions, unified
from erpbridge.ui.auth import Refused
from erpbridge.ui.pages.common import Administers, HubDep, RowId, after_action
from erpbridge.ui.render import render

__all__ = ["router"]

router = APIRouter(include_in_schema=False)
Text = Annotated[str, Form(max_length=2_000_000)]
Base = Annotated[int | None, Form(ge=1, le=2**63 - 1)]


def _page(request: Request, hub: HubDep, who: Administers, **extra: Any) -> HTMLResponse:
    shown = config_api.show_config(hub, who.principal)
    with hub.engine.connect() as conn:
        versions = list_versions(conn, 20)
    running = hub.reloader.path.read_text(encoding="utf-8") if hub.reloader else ""
    context = {
        "title": "Configuration",
        "config": shown,
        "versions": versions,
        "text": extra.pop("text", running),
        "base_version": shown.version,
        **extra,
    }
    status = 422 if extra.get("problems") or extra.get("error") else 200
    return render(request, "config.html", context, status)


@router.get("/ui/config", response_class=HTMLResponse)
def config_page(request: Request, hub: HubDep, who: Administers) -> HTMLResponse:
    """The running configuration, the processes, the kept versions, the editor."""
    return _page(request, hub, who)


@router.post("/ui/config/check", response_class=HTMLResponse)
def config_check(
    request: Request, hub: HubDep, who: Administers, text: Text, base_version: Base = None
) -> HTMLResponse:
    """Every problem of the edited text and its diff against the running file; nothing saved."""
    body = config_api.ConfigTextIn(text=text, base_version=base_version)
    try:
        out = config_api.check_config(body, hub, who.principal)
    except ApiError as exc:
        raise Refused(exc.status, exc.message) from None
    return _page(request, hub, who, text=text, problems=out.problems, diff=out.diff, checked=True)


@router.post("/ui/config/save", response_class=HTMLResponse)
def config_save(
    request: Request, hub: HubDep, who: Administers, text: Text, base_version: Base = None
) -> Response:
    """Save the edited text and reload it; refused with every problem, the file unchanged."""
    body = config_api.ConfigTextIn(text=text, base_version=base_version)
    try:
        out = config_api.save_config(body, hub, who.principal)
    except ApiError as exc:
        if exc.status not in (409, 422):
            raise Refused(exc.status, exc.message) from None
        said = exc.message.split("stays: ", 1)[-1]  # "configuration refused; ... stays: p; p"
        problems = [p for p in said.split("; ") if p] if exc.status == 422 else []
        error = exc.message if exc.status == 409 else "not saved: the running configuration stays"
        return _page(request, hub, who, text=text, problems=problems, error=error)
    notice = f"saved and reloaded: version {out.version}" if out.changed else "nothing changed"
    return after_action("/ui/config", notice)


@router.post("/ui/config/rollback/{version_id}")
def config_rollback(version_id: RowId, hub: HubDep, who: Administers) -> Response:
    """Write an earlier version back to the file and reload it."""
    try:
        out = config_api.rollback_config(version_id, hub, who.principal)
    except ApiError as exc:
        if exc.status == 422:
            return after_action("/ui/config", exc.message, failed=True)
        raise Refused(exc.status, exc.message) from None
    return after_action("/ui/config", f"rolled back to version {version_id}: now {out.version}")


@router.get("/ui/config/versions/{version_id}", response_class=HTMLResponse)
def config_version(
    request: Request, version_id: RowId, hub: HubDep, who: Administers
) -> HTMLResponse:
    """One kept version: its text and what changed from the one before."""
    with hub.engine.connect() as conn:
        version = get_version(conn, version_id)
        before = get_version(conn, version_id - 1) if version_id > 1 else None
    if version is None:
        raise Refused(404, f"no configuration version {version_id}")
    diff = unified(before, version) if before is not None else ""
    context = {"title": f"Configuration version {version_id}", "v": version, "diff": diff}
    return render(request, "config_version.html", context)
