"""What a dry run would change, field by field: the hub's value against the incoming one.

A dry run writes each batch in a transaction it then rolls back. :class:`Preview` reads the
stored payloads of the batch's keys before the write and again after it, inside that
transaction, so the diff shows what the real run would store, field ownership merges, stale
versions and conflict policies included, and nothing of it is kept.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import orjson
from sqlalchemy import Connection

from erpbridge.store.records import stored_payloads

__all__ = ["FieldDiff", "Preview", "RecordChange", "field_diff"]

#: Records a dry run describes field by field (the counts cover all of them).
MAX_CHANGES = 100

_ABSENT: Any = object()


@dataclass(frozen=True, slots=True)
class FieldDiff:
    """One field that would change: its path, the hub's value and the incoming one."""

    path: str
    hub: Any
    incoming: Any
    kind: Literal["added", "removed", "changed"]


@dataclass(frozen=True, slots=True)
class RecordChange:
    """A record the run would create or update, with every field that would change."""

    key: str
    action: Literal["create", "update"]
    #: The stored version it would replace (``None``: the hub has no such record).
    version: int | None
    fields: tuple[FieldDiff, ...]


def field_diff(hub: Any, incoming: Any, path: str = "") -> list[FieldDiff]:
    """The leaves that differ between two payloads: objects by field (``a.b``), lists of the
    same length by item (``lines[0].qty``), anything else as a whole."""
    if hub == incoming:
        return []
    if isinstance(hub, Mapping) and isinstance(incoming, Mapping):
        out: list[FieldDiff] = []
        for name in sorted(hub.keys() | incoming.keys()):
            where = f"{path}.{name}" if path else str(name)
            a, b = hub.get(name, _ABSENT), incoming.get(name, _ABSENT)
            if a is _ABSENT:
                out.append(FieldDiff(where, None, b, "added"))
            elif b is _ABSENT:
                out.append(FieldDiff(where, a, None, "removed"))
            else:
                out.extend(field_diff(a, b, where))
        return out
    if isinstance(hub, list) and isinstance(incoming, list) and len(hub) == len(incoming):
        return [
            d
            for i, (a, b) in enumerate(zip(hub, incoming, strict=True))
            for d in field_diff(a, b, f"{path}[{i}]")
        ]
    return [FieldDiff(path, hub, incoming, "changed")]


@dataclass(slots=True)
class Preview:
    """The changes a dry run found, the first :data:`MAX_CHANGES` records of them."""

    entity: str
    changes: list[RecordChange] = field(default_factory=list)
    #: More records would change than ``changes`` holds.
    truncated: bool = False

    def before(self, conn: Connection, keys: list[str]) -> dict[str, tuple[int, str]] | None:
        """The stored payloads of ``keys`` before the batch is written (``None``: full)."""
        if len(self.changes) >= MAX_CHANGES:
            return None
        return stored_payloads(conn, self.entity, keys)

    def after(
        self,
        conn: Connection,
        keys: list[str],
        before: dict[str, tuple[int, str]] | None,
        changed: bool,
    ) -> None:
        """Compare the payloads of ``keys`` after the (uncommitted) write with ``before``;
        ``changed``: the write created or updated a record."""
        if before is None or not changed:
            self.truncated |= before is None and changed
            return
        after = stored_payloads(conn, self.entity, keys)
        for key in dict.fromkeys(keys):  # in the order read, each once
            if key not in after:
                continue
            payload, old = after[key][1], before.get(key)
            if old is not None and old[1] == payload:
                continue  # unchanged (or stale, or overruled: nothing would be stored)
            if len(self.changes) >= MAX_CHANGES:
                self.truncated = True
                return
            new = orjson.loads(payload)
            if old is None:
                diffs = field_diff({}, new)
                self.changes.append(RecordChange(key, "create", None, tuple(diffs)))
            else:
                diffs = field_diff(orjson.loads(old[1]), new)
                self.changes.append(RecordChange(key, "update", old[0], tuple(diffs)))
