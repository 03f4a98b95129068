"""How deeply nested JSON the hub takes, wherever JSON comes in (request bodies, JSON and JSONL
files on folder and SFTP inboxes).

The bound sits below what every later step handles: orjson parses 1024 levels but writes only 254
and Python's recursion limit is 1000, so a document that parsed could otherwise fail while it is
mapped or stored (a rejected record keeps its payload), breaking the run instead of being refused.
"""

from __future__ import annotations

from typing import Any

__all__ = ["MAX_JSON_DEPTH", "nests_deeper"]

#: The deepest nesting of arrays and objects a JSON document may have (the top level is 1).
MAX_JSON_DEPTH = 100


def nests_deeper(value: Any, limit: int = MAX_JSON_DEPTH) -> bool:
    """Whether ``value`` nests arrays and objects more than ``limit`` levels deep (iteratively,
    so a document of any depth is measured without recursion)."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children)
    return False
