"""Related records an RPC write finds or creates first: the addresses of a sale, say.

A sale names its invoice and shipment addresses by id, but an order from a web shop carries them
as text. ``find_or_create`` turns such a mapped object into the id of the record holding the same
values — an address of the sale's own party with that street, postal code, city and country —
and creates that record when there is none, as a Tryton integrator would. Found and created ids
are kept while the transport lives, so a batch of orders of one customer searches once.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from erpbridge.transports.rpc.session import RpcSession

__all__ = ["FindOrCreate", "RelatedRecords"]


class FindOrCreate(BaseModel):
    """A mapped object replaced by the id of the ``model`` record holding its values."""

    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)

    model: str = Field(min_length=1)
    """The model searched and created in, e.g. ``party.address``."""
    match: list[str] | None = None
    """The object's fields that must be equal in the record found; default: every field the
    object holds a value for. The others are written only when the record is created."""
    scope: dict[str, str] = Field(default_factory=dict)
    """Fields of the found record that must hold values of the written record (after its
    ``lookups``): ``{party: party}`` looks among the addresses of the sale's party, and a
    created address belongs to it."""
    when_empty: Literal["omit", "first"] = "omit"
    """An object without values: ``omit`` leaves the field out (the ERP's default, or its
    refusal, applies); ``first`` takes the oldest record of the ``scope`` (a party's first
    address)."""


#: Refuses one record: (its index among the records, the problem) → the error to raise.
Refuse = Callable[[int, str], Exception]
_Key = tuple[str, tuple[tuple[str, str], ...]]


class RelatedRecords:
    """Finds or creates related records through one session; keeps the ids it met."""

    def __init__(self, session: RpcSession) -> None:
        self.session = session
        self._known: dict[_Key, int] = {}

    def resolve(
        self, path: str, spec: FindOrCreate, records: list[dict[str, Any]], refuse: Refuse
    ) -> None:
        """Replace the object at ``path`` of each of ``records`` by an id (or leave it out)."""
        wanted: dict[_Key, dict[str, Any]] = {}
        spots: list[tuple[dict[str, Any], _Key]] = []
        for index, values in enumerate(records):
            item = values.get(path)
            if isinstance(item, int) and not isinstance(item, bool):
                continue  # an id already (a constant, or a lookup)
            if item is not None and not isinstance(item, dict):
                raise refuse(index, f"find_or_create {path}: expected an object, got {item!r}")
            own = {k: v for k, v in (item or {}).items() if not _blank(v)}
            scoped = {name: values.get(source) for name, source in spec.scope.items()}
            if not own and spec.when_empty == "omit":
                values.pop(path, None)
                continue
            # Without values of its own, the object stands for the scope's oldest record.
            criteria = {name: own.get(name) for name in spec.match or sorted(own)} if own else {}
            criteria |= scoped
            key = (spec.model, tuple(sorted((k, repr(v)) for k, v in criteria.items())))
            spots.append((values, key))
            if key in self._known or key in wanted:
                continue
            found = self._search(spec.model, criteria)
            if found is not None:
                self._known[key] = found
            elif own:
                wanted[key] = {**own, **scoped}
            else:
                wanted[key] = {}  # nothing to take the first of: left out below
        creatable = {key: row for key, row in wanted.items() if row}
        if creatable:
            ids = self.session.create(spec.model, list(creatable.values()))
            self._known.update(zip(creatable, ids, strict=True))
        for values, key in spots:
            if key in self._known:
                values[path] = self._known[key]
            else:
                values.pop(path, None)

    def _search(self, model: str, criteria: dict[str, Any]) -> int | None:
        domain = [[name, "=", value] for name, value in criteria.items()]
        rows = self.session.search_read(model, domain, ["id"], 1, [("id", "asc")])
        return int(rows[0]["id"]) if rows else None


def _blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())
