"""``/ui/records``: look a record up by entity and key; its versions with a field-by-field diff,
its bindings (its id in each channel) and each version's lineage (run, flow, source position);
its workflow state with a button per transition allowed from it (operators), and its transition
log. A button fires through the same function as the API and ``erpbridge transition``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any
from urllib.parse import quote

import orjson
from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from erpbridge.api.context import Hub
from erpbridge.errors import ErpbridgeError
from erpbridge.store.read import (
    Version,
    field_origins,
    is_deleted,
    record_view,
    records_page,
    visible_record,
)
from erpbridge.ui.auth import Refused
from erpbridge.ui.pages.common import HubDep, Operates, Reads, after_action
from erpbridge.ui.render import render

__all__ = ["FieldChange", "field_changes", "router"]

router = APIRouter(include_in_schema=False)
_MISSING = object()


@dataclass(frozen=True, slots=True)
class FieldChange:
    """One field of a version against the version before: its old and new value."""

    name: str
    old: Any
    new: Any
    #: added | removed | changed
    kind: str


def field_changes(before: dict[str, Any] | None, after: dict[str, Any]) -> list[FieldChange]:
    """Top-level fields that differ between two payloads, by name."""
    old = before or {}
    out = []
    for name in sorted(set(old) | set(after)):
        a, b = old.get(name, _MISSING), after.get(name, _MISSING)
        if a == b:
            continue
        kind = "added" if a is _MISSING else "removed" if b is _MISSING else "changed"
        out.append(
            FieldChange(name, None if a is _MISSING else a, None if b is _MISSING else b, kind)
        )
    return out


def _versions(versions: list[Version]) -> list[tuple[Version, list[FieldChange]]]:
    shown: list[tuple[Version, list[FieldChange]]] = []
    before: dict[str, Any] | None = None
    for version in versions:
        payload = orjson.loads(version.row.payload)
        shown.append((version, field_changes(before, payload)))
        before = payload
    return list(reversed(shown))  # newest first


@router.get("/ui/records", response_class=HTMLResponse)
def records_lookup(
    request: Request,
    hub: HubDep,
    who: Reads,
    entity: Annotated[str, Query(max_length=64)] = "",
    key: Annotated[str, Query(max_length=512)] = "",
) -> Response:
    """The look-up form; with entity and key, the record; with an entity only, its first keys."""
    if entity and key:
        return RedirectResponse(f"/ui/records/{quote(entity)}/{quote(key, safe='')}", 303)
    entities = sorted({f.entity for f in hub.config.model.flows})
    total, rows = 0, list[Any]()
    if entity:
        with hub.engine.connect() as conn:
            total, rows = records_page(conn, who.scope, entity, limit=50)
    context = {
        "title": "Records",
        "entities": entities,
        "entity": entity,
        "total": total,
        "rows": rows,
        "deleted": {r.key for r in rows if is_deleted(r.content_hash)},
    }
    return render(request, "records.html", context)


@router.get("/ui/records/{entity}/{key:path}", response_class=HTMLResponse)
def record_detail(request: Request, entity: str, key: str, hub: HubDep, who: Reads) -> HTMLResponse:
    """One record: current payload, where each field came from, bindings, versions."""
    with hub.engine.connect() as conn:
        view = record_view(conn, who.scope, entity, key)
    if view is None:
        raise Refused(404, f"no {entity} record with key {key!r}")
    context = {
        "title": f"{entity} {key}",
        "entity": entity,
        "key": key,
        "record": view.row,
        "deleted": view.deleted,
        "payload": orjson.loads(view.row.payload),
        "origins": field_origins(view.versions),
        "bindings": view.bindings,
        "versions": _versions(view.versions),
        "workflows": _workflows(hub, entity, orjson.loads(view.row.payload)),
        "transitions": view.transitions,
        "may_fire": who.may("write"),
    }
    return render(request, "record.html", context)


def _workflows(hub: Hub, entity: str, payload: dict[str, Any]) -> list[dict[str, Any]]:
    """Each workflow of the entity: the record's state and the transitions allowed from it."""
    shown = []
    for workflow in hub.config.workflows_of(entity):
        state = workflow.state_of(payload)
        allowed = [workflow.transitions[name] for name in workflow.allowed_from(state)]
        shown.append({"name": workflow.name, "state": state, "allowed": allowed})
    return shown


@router.post("/ui/transitions/{entity}/{name}")
async def fire(
    request: Request,
    entity: Annotated[str, Path(max_length=64)],
    name: Annotated[str, Path(max_length=128)],
    hub: HubDep,
    who: Operates,
) -> Response:
    """Fire transition ``name`` on the record whose key the form carries, as the signed-in
    user (their role is checked against the transition's ``by``); back to the record's page
    with what happened, a refusal in red."""
    from erpbridge.engine.transitions import fire_transition
    from erpbridge.workflows.machine import Actor

    form = await request.form()
    key = str(form.get("key") or "")[:512]
    with hub.engine.connect() as conn:
        found = visible_record(conn, who.scope, entity, key)
    if found is None:
        raise Refused(404, f"no {entity} record with key {key!r}")
    reason = str(form.get("reason") or "")[:4000] or None
    fields = {
        field.removeprefix("field:"): str(value)[:4000]
        for field, value in form.items()
        if field.startswith("field:") and str(value).strip()
    }
    actor = Actor("user", who.name, roles=frozenset({who.session.user.role}))
    page = f"/ui/records/{quote(entity, safe='')}/{quote(key, safe='')}"
    try:
        fired = await run_in_threadpool(
            fire_transition, hub.engine, hub.config, entity, key, name, actor,
            reason=reason, fields=fields, on_queued=hub.wake,
        )  # fmt: skip
    except ErpbridgeError as exc:
        return after_action(page, f"{name} refused: {exc}", failed=True)
    return after_action(
        page,
        f"{name}: {fired.before} → {fired.after} (version {fired.version}), "
        f"{fired.deliveries} delivery(ies) queued",
    )
