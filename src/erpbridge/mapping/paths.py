"""Source paths of the mapping language: ``a.b.0.c``, and ``name[field=value]`` steps that pick
a list item by a qualifier (``E1EDKA1[PARVW=AG].PARTN``, ``to_Description[Language=EN]``)."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["getter"]

# A path step that selects a list item by a field's value: ``E1EDKA1[PARVW=AG]``.
_SELECTOR = re.compile(r"(?P<name>[^\[\]]+)\[(?P<field>[^\[\]=]+)=(?P<value>[^\[\]]*)\]")


def getter(path: str) -> Callable[[Mapping[str, Any]], Any]:
    """A function reading ``path`` (``a.b.0.c``) from a record; ``None`` when absent.

    A key that contains dots literally (a CSV header ``"addr.city"``) wins over nesting. A step
    ``name[field=value]`` picks the first item of the list ``name`` whose ``field`` is ``value``
    (``E1EDKA1[PARVW=AG].PARTN``, ``to_Description[Language=EN].ProductDescription``).
    """
    if "." not in path and "[" not in path:
        return lambda record: record.get(path)
    parts = _split_path(path)

    def get(record: Mapping[str, Any]) -> Any:
        if path in record:
            return record[path]
        current: Any = record
        for part in parts:
            if isinstance(current, Mapping):
                current = _member(current, part)
            elif isinstance(current, list) and part.isdigit() and int(part) < len(current):
                current = current[int(part)]
            else:
                return None
        return current

    return get


def _split_path(path: str) -> list[str]:
    """Steps of ``path``: dots separate them, except inside a ``[field=value]`` selector."""
    parts: list[str] = []
    current = ""
    depth = 0
    for char in path:
        if char == "." and depth == 0:
            parts.append(current)
            current = ""
            continue
        if char == "[":
            depth += 1
        elif char == "]" and depth:
            depth -= 1
        current += char
    parts.append(current)
    return parts


def _member(data: Mapping[str, Any], part: str) -> Any:
    """``data[part]``, or the item a ``name[field=value]`` selector picks."""
    if part in data:
        return data[part]
    selector = _SELECTOR.fullmatch(part)
    if selector is None:
        return None
    items = data.get(selector["name"])
    if isinstance(items, Mapping):  # one XML child where a list may stand
        items = [items]
    if not isinstance(items, list):
        return None
    field, wanted = selector["field"].strip(), selector["value"].strip()
    for item in items:
        if isinstance(item, Mapping) and _selector_text(item.get(field)) == wanted:
            return item
    return None


def _selector_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value).strip()
