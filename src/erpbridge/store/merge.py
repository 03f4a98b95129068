"""Field ownership: an IN flow changes the fields it maps, and only those its channel may change.

The hub keeps whole records, but a source rarely delivers one: the ERP knows prices and
addresses, the shop knows the lock reason. An IN flow therefore *merges* (``FieldRules.mapped``
names the top-level fields its mapping fills; the stored values of every other field stay), unless
it is declared ``replace: true`` (the source delivers the whole record: ``mapped`` is ``None``).
A field an entity's ``owners:`` gives to another channel is not changed by this flow at all
(``FieldRules.foreign``); whether such a change is dropped or becomes a conflict is the IN flow's
``conflict`` policy (``store.conflicts``).

Merging is top-level: a list or object field (``addresses``) is replaced as a whole by the flow
that maps it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["FieldRules", "merge", "restore"]


@dataclass(frozen=True, slots=True)
class FieldRules:
    """Which fields of a record one IN flow may change."""

    #: Top-level fields the flow's mapping fills; ``None``: it replaces the whole record.
    mapped: frozenset[str] | None
    #: Fields another channel owns (the entity's ``owners:``): the flow never changes them.
    foreign: frozenset[str] = frozenset()


def merge(
    rules: FieldRules, stored: dict[str, Any], incoming: dict[str, Any]
) -> tuple[dict[str, Any], list[str]]:
    """The record after ``incoming``, ignoring ownership, and the foreign fields it would change.

    Unmapped fields keep their stored values (a default the mapping filled in for a field the
    stored record lacks stays, as on creation).
    """
    merged = dict(incoming)
    if rules.mapped is not None:
        for name in stored.keys() - rules.mapped:
            merged[name] = stored[name]
    if not rules.foreign:
        return merged, []
    trespassed = [name for name in sorted(rules.foreign) if stored.get(name) != merged.get(name)]
    return merged, trespassed


def restore(merged: dict[str, Any], stored: dict[str, Any], fields: list[str]) -> dict[str, Any]:
    """``merged`` with ``fields`` put back to their stored values (absent stays absent)."""
    kept = dict(merged)
    for name in fields:
        if name in stored:
            kept[name] = stored[name]
        else:
            kept.pop(name, None)
    return kept
