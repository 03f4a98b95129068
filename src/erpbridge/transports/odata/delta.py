"""OData V4 delta answers (change tracking): which entries are removals, and their keys.

A delta answer (OData V4.01 JSON Format, "Delta Payload") lists changed entities as entities and
removed ones as entries carrying ``@removed`` (V4.0: ``@odata.removed``, or a context ending in
``$deletedEntity``), named by ``@id`` (V4.0: ``id``) such as ``Partners('P1')`` or
``Orders(Company='A',Number=7)`` and, in V4.01, possibly by their key properties themselves.
Added and deleted links (``$link``/``$deletedLink`` entries) name relationships, not records,
and are left out.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import unquote

from erpbridge.transports.odata.edm import EntityType

__all__ = ["is_link", "is_removed", "removed_key"]

_REMOVED = ("@removed", "@odata.removed")
_CONTEXT = ("@context", "@odata.context")
_ID = ("@id", "@odata.id", "id")


def _context(entry: Mapping[str, Any]) -> str:
    for name in _CONTEXT:
        value = entry.get(name)
        if isinstance(value, str):
            return value
    return ""


def is_removed(entry: Mapping[str, Any]) -> bool:
    """Whether a delta entry says its entity was removed (deleted or out of the filter)."""
    return any(name in entry for name in _REMOVED) or _context(entry).endswith("$deletedEntity")


def is_link(entry: Mapping[str, Any]) -> bool:
    """Whether a delta entry is an added or deleted link rather than an entity."""
    return _context(entry).endswith(("$link", "$deletedLink"))


def removed_key(entry: Mapping[str, Any], entity: EntityType) -> dict[str, Any]:
    """The key of a removed entity: its key properties when the entry carries them all, else
    the key predicate of its ``@id``. Raises ``ValueError`` naming what is missing."""
    keys = list(entity.keys)
    if keys and all(entry.get(k) not in (None, "") for k in keys):
        return {k: entry[k] for k in keys}
    ident = next((entry[n] for n in _ID if isinstance(entry.get(n), str)), None)
    if ident is None:
        raise ValueError(
            f"a removed entry without its key ({', '.join(keys)}) or an @id: nothing to delete"
        )
    return _predicate(ident, keys)


def _predicate(ident: str, keys: list[str]) -> dict[str, Any]:
    """``Partners('P1')``, ``Partners(ID='P1')``, ``…/Orders(A='x',B=7)`` as key values."""
    text = unquote(ident.split("?", 1)[0])
    open_at, close_at = text.rfind("("), text.rfind(")")
    if open_at < 0 or close_at < open_at:
        raise ValueError(f"@id {ident!r} has no key predicate such as Partners('P1')")
    parts = _split(text[open_at + 1 : close_at])
    if len(parts) == 1 and "=" not in _outside_quotes(parts[0]) and len(keys) == 1:
        return {keys[0]: _value(parts[0])}
    found: dict[str, Any] = {}
    for part in parts:
        name, eq, value = part.partition("=")
        if not eq or "'" in name:
            raise ValueError(f"@id {ident!r}: the key {part!r} is not name=value")
        found[name.strip()] = _value(value)
    if missing := [k for k in keys if k not in found]:
        raise ValueError(f"@id {ident!r} lacks the key {', '.join(missing)}")
    return {k: found[k] for k in keys}


def _outside_quotes(text: str) -> str:
    out, quoted = [], False
    for char in text:
        if char == "'":
            quoted = not quoted
        elif not quoted:
            out.append(char)
    return "".join(out)


def _split(text: str) -> list[str]:
    """Comma-separated parts of a key predicate; commas inside quotes stay."""
    parts: list[str] = []
    current: list[str] = []
    quoted = False
    for char in text:
        if char == "'":
            quoted = not quoted
        if char == "," and not quoted:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    parts.append("".join(current))
    return [p.strip() for p in parts]


def _value(text: str) -> Any:
    """A key literal: a quoted string (``''`` is a quote), an integer, a decimal, else as is
    (a GUID, a date)."""
    text = text.strip()
    if len(text) >= 2 and text[0] == "'" and text[-1] == "'":
        return text[1:-1].replace("''", "'")
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return Decimal(text)
    except InvalidOperation:
        return text
