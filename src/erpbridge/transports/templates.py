"""Templates in transport options: ``{name}`` placeholders in strings, dicts and lists, and
dotted paths into answers.

Any string may hold placeholders such as ``{cursor}``, ``{po_number}`` or ``{record.code}``. A
string that is exactly one placeholder becomes the value itself (a datetime stays a datetime, a
nested record stays a dict); a placeholder inside other text becomes text. Braces around any other
word are left as they are, and ``{{`` is a literal brace.

Problems raise a :class:`FatalError` that does not name the channel; the transport adds it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import date
from typing import Any

from erpbridge.errors import FatalError

__all__ = ["PLACEHOLDER", "lookup", "placeholders", "render"]

#: ``{name}`` or ``{name.path.to.field}``; ``{{`` stays a literal brace.
PLACEHOLDER = re.compile(r"(?<!\{)\{([A-Za-z_]\w*(?:\.[\w-]+)*)\}(?!\})")


def placeholders(template: Any) -> set[str]:
    """The placeholder names (first part, ``record`` of ``{record.code}``) used in a template."""
    found: set[str] = set()
    if isinstance(template, str):
        found.update(m.group(1).split(".")[0] for m in PLACEHOLDER.finditer(template))
    elif isinstance(template, Mapping):
        for value in template.values():
            found |= placeholders(value)
    elif isinstance(template, list):
        for value in template:
            found |= placeholders(value)
    return found


def render(template: Any, values: Mapping[str, Any]) -> Any:
    """``template`` with its placeholders replaced from ``values`` (dotted names look inside)."""
    if isinstance(template, Mapping):
        return {key: render(value, values) for key, value in template.items()}
    if isinstance(template, list):
        return [render(value, values) for value in template]
    if not isinstance(template, str):
        return template
    whole = PLACEHOLDER.fullmatch(template)
    if whole is not None:
        return _value(whole.group(1), values)

    def text(match: re.Match[str]) -> str:
        value = _value(match.group(1), values)
        if value is None:
            return ""
        return value.isoformat() if isinstance(value, date) else str(value)

    return PLACEHOLDER.sub(text, template).replace("{{", "{").replace("}}", "}")


def _value(name: str, values: Mapping[str, Any]) -> Any:
    head, _, rest = name.partition(".")
    if head not in values:
        raise FatalError(f"unknown placeholder {{{name}}} (known: {', '.join(sorted(values))})")
    return lookup(values[head], rest) if rest else values[head]


def lookup(data: Any, path: str | None) -> Any:
    """The value at the dotted ``path`` inside ``data`` (``None`` when a step is absent).

    A number step indexes a list (``items.0.sku``); a key that literally contains the dots wins.
    """
    if not path:
        return data
    if isinstance(data, Mapping) and path in data:
        return data[path]
    current = data
    for step in path.split("."):
        if isinstance(current, Mapping):
            current = current.get(step)
        elif isinstance(current, list) and step.isdigit() and int(step) < len(current):
            current = current[int(step)]
        else:
            return None
    return current
