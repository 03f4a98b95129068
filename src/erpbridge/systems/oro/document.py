"""JSON:API documents (jsonapi.org, v1.1) as the hub's flows see them.

Reading, a resource object becomes one flat record: ``id``, ``type``, its attributes, and each
relationship under its own name — the related resource flattened the same way when the document
``included`` it, else ``{"type", "id"}`` (a to-many relationship is a list of those). A mapping then
says ``lineItems`` or ``customer.name`` as it would of any nested JSON.

Writing, a mapped record becomes ``{"data": {type, id, attributes, relationships}}``: the fields the
target names as relationships become resource identifiers, the fields it names as included become
resources of the compound document (with local ids the primary resource points at), every other
field is an attribute.

An answer's ``errors`` objects become one line that names where each problem is
(``source.pointer`` in the sent document, or the query ``source.parameter``) and what it is.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["Included", "error_text", "flatten", "identified", "included_index", "resource"]

#: (type, id) → resource object, of one document's ``included`` member.
Included = Mapping[tuple[str, str], Mapping[str, Any]]

#: How deep included resources are followed (order → line item → product).
_DEPTH = 3


def included_index(body: Any) -> dict[tuple[str, str], Mapping[str, Any]]:
    """The document's ``included`` resources by (type, id); empty when it has none."""
    found: dict[tuple[str, str], Mapping[str, Any]] = {}
    included = body.get("included") if isinstance(body, dict) else None
    for item in included if isinstance(included, list) else []:
        if isinstance(item, dict) and "type" in item and "id" in item:
            found[(str(item["type"]), str(item["id"]))] = item
    return found


def flatten(item: Mapping[str, Any], included: Included) -> dict[str, Any]:
    """A resource object as one record, related resources from ``included`` folded in."""
    return _flat(item, included, _DEPTH, frozenset())


def identified(item: Mapping[str, Any]) -> dict[str, Any]:
    """A resource object as a record whose relationships are bare ids (as a lookup compares)."""
    record = _attributes(item)
    for name, data in _relationships(item):
        if isinstance(data, list):
            record[name] = [_id_of(d) for d in data]
        else:
            record[name] = _id_of(data)
    return record


def _flat(
    item: Mapping[str, Any], included: Included, depth: int, seen: frozenset[tuple[str, str]]
) -> dict[str, Any]:
    record = _attributes(item)
    own = (str(item.get("type")), str(item.get("id")))
    for name, data in _relationships(item):
        if isinstance(data, list):
            record[name] = [_related(d, included, depth, seen | {own}) for d in data]
        else:
            record[name] = _related(data, included, depth, seen | {own})
    return record


def _attributes(item: Mapping[str, Any]) -> dict[str, Any]:
    # JSON:API keeps attributes and relationships in one namespace without id and type, so the
    # flat record cannot clash.
    record: dict[str, Any] = {"id": item.get("id"), "type": item.get("type")}
    attributes = item.get("attributes")
    if isinstance(attributes, dict):
        record.update(attributes)
    return record


def _relationships(item: Mapping[str, Any]) -> list[tuple[str, Any]]:
    relationships = item.get("relationships")
    if not isinstance(relationships, dict):
        return []
    # A relationship given only as links (no `data`) says nothing about its members: left out.
    return [
        (str(name), value["data"])
        for name, value in relationships.items()
        if isinstance(value, dict) and "data" in value
    ]


def _related(
    data: Any, included: Included, depth: int, seen: frozenset[tuple[str, str]]
) -> dict[str, Any] | None:
    if not isinstance(data, dict):
        return None
    key = (str(data.get("type")), str(data.get("id")))
    found = included.get(key)
    if found is None or depth <= 1 or key in seen:  # a cycle (line item → its order) stops here
        return {"type": data.get("type"), "id": data.get("id")}
    return _flat(found, included, depth - 1, seen)


def _id_of(data: Any) -> Any:
    return data.get("id") if isinstance(data, dict) else None


def resource(
    kind: str,
    fields: Mapping[str, Any],
    item_id: str | None,
    relationships: Mapping[str, str],
    included: Mapping[str, tuple[str, Mapping[str, str]]],
) -> dict[str, Any]:
    """The document that creates (``item_id`` None) or updates one resource from ``fields``.

    ``relationships``: field → related type, the field holding the related id (or a list of
    ids, or None); ``included``: field → (type, its relationships), the field holding objects
    that become included resources — sent on create only, an update leaves them as they are.
    """
    data: dict[str, Any] = {"type": kind}
    if item_id is not None:
        data["id"] = item_id
    attributes: dict[str, Any] = {}
    links: dict[str, Any] = {}
    compound: list[dict[str, Any]] = []
    for name, value in fields.items():
        if name == "id":
            if item_id is None and value not in (None, ""):
                data["id"] = str(value)  # a client-generated id
            continue
        if name in relationships:
            links[name] = {"data": _identifiers(relationships[name], value)}
        elif name in included:
            if item_id is not None:
                continue  # an update leaves the included resources as they are
            own_type, own_relationships = included[name]
            many = isinstance(value, list)
            members = value if many else [] if value is None else [value]
            pointers = []
            for number, member in enumerate(members, 1):
                local = f"{name}-{number}"  # a local id the primary resource points at
                pointers.append({"type": own_type, "id": local})
                own = member if isinstance(member, dict) else {}
                body = resource(own_type, own, None, own_relationships, {})["data"]
                compound.append({**body, "id": local})
            links[name] = {"data": pointers if many else (pointers[0] if pointers else None)}
        else:
            attributes[name] = value
    if attributes:
        data["attributes"] = attributes
    if links:
        data["relationships"] = links
    document: dict[str, Any] = {"data": data}
    if compound:
        document["included"] = compound
    return document


def _identifiers(kind: str, value: Any) -> Any:
    if value is None or value == "":
        return None
    if isinstance(value, list):
        return [{"type": kind, "id": str(v)} for v in value if v is not None and v != ""]
    return {"type": kind, "id": str(value)}


def error_text(body: Any) -> str | None:
    """The ``errors`` of a JSON:API answer as one line, each naming its place; None: none."""
    errors = body.get("errors") if isinstance(body, dict) else None
    if not isinstance(errors, list) or not errors:
        return None
    lines = []
    for error in errors[:10]:
        if not isinstance(error, dict):
            continue
        source = error.get("source") if isinstance(error.get("source"), dict) else {}
        assert isinstance(source, dict)
        where = source.get("pointer") or source.get("parameter") or source.get("header")
        what = ": ".join(
            str(error[k]) for k in ("title", "detail") if error.get(k) not in (None, "")
        ) or str(error.get("code") or error.get("status") or "error")
        lines.append(f"{_place(str(where))}: {what}" if where else what)
    more = f" (and {len(errors) - 10} more)" if len(errors) > 10 else ""
    return "; ".join(lines) + more


def _place(pointer: str) -> str:
    """``/data/attributes/name`` → ``field name (/data/attributes/name)``; others as they are."""
    parts = pointer.strip("/").split("/")
    if len(parts) >= 3 and parts[-2] in ("attributes", "relationships"):
        kind = "field" if parts[-2] == "attributes" else "relationship"
        return f"{kind} {parts[-1]} ({pointer})"
    return pointer
