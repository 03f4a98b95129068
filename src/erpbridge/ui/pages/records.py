"""``/ui/records``: look a record up by entity and key; its versions with a field-by-field diff,
its bindings (its id in each channel) and each version's lineage (run, flow, source position)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any
from urllib.parse import quote

import orjson
from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from erpbridge.store.read import Version, field_origins, record_view, records_page
from erpbridge.ui.auth import Refused
from erpbridge.ui.pages.common import HubDep, Reads
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
        "payload": orjson.loads(view.row.payload),
        "origins": field_origins(view.versions),
        "bindings": view.bindings,
        "versions": _versions(view.versions),
    }
    return render(request, "record.html", context)
