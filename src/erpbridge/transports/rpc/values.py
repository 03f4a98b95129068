"""How the RPC transport writes mapped records: lookups, one2many commands, create/write/upsert.

The mapping produces the record's values (with the ``decimal`` and ``date`` transforms for typed
fields); here codes named in ``lookups`` become ids (searched once per value and kept for the
transport's life), lists named in ``one2many`` become the dialect's line commands (Tryton
``[["create", [...]]]``, Odoo ``[(0, 0, {...})]``), and the records go to the server in as few
calls as the dialect allows: one ``create`` for the new ones, one ``write`` (Tryton) or one per
record (Odoo) for the others. Objects named in ``find_or_create`` become the ids of related
records first (:mod:`erpbridge.transports.rpc.related`); ``buttons`` run on the records written.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from erpbridge.transports.base import OutgoingRecord, TargetOptions
from erpbridge.transports.rpc.related import FindOrCreate, RelatedRecords
from erpbridge.transports.rpc.session import RpcSession
from erpbridge.transports.rpc.wire import RpcError

__all__ = [
    "FindOrCreate",
    "Lookup",
    "Prepared",
    "RecordRefused",
    "RecordWriter",
    "RpcTargetOptions",
]


class Lookup(BaseModel):
    """Turn a mapped code into the id of the record of ``model`` whose ``field`` holds it."""

    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)

    model: str = Field(min_length=1)
    """The model searched, e.g. ``country.country``."""
    field: str = Field(min_length=1)
    """Its field holding the code, e.g. ``code``."""


class RecordRefused(RpcError):
    """One record cannot be written as it is (no match value, an unknown code, no id)."""


class RpcTargetOptions(TargetOptions):
    """A flow's ``target:`` block: the model and how a record version gets there."""

    model_config = ConfigDict(use_attribute_docstrings=True)

    model: str = Field(min_length=1)
    """The model to write, e.g. ``party.party``."""
    method: Literal["create", "write", "upsert", "update"] = "upsert"
    """``create`` every version, ``write`` the record named by ``id_field``, ``upsert``:
    search by ``match_field``, then write the record found or create one, or ``update``: write
    the record found by ``match_field`` and refuse a record that is not there (never create:
    for flows that set one property of records the ERP owns, such as a lock flag)."""
    match_field: str | None = None
    """The model's field holding the business key (``code``); needed by ``upsert`` and
    ``update``."""
    id_field: str = "id"
    """The mapped field holding the record's id in the ERP (``write``); never sent as a value."""
    one2many: dict[str, Literal["create", "replace"]] = Field(default_factory=dict)
    """Mapped lists of objects sent as line commands: ``create`` adds them to a new record (a
    write leaves the lines alone), ``replace`` also replaces the lines on a write."""
    lookups: dict[str, Lookup] = Field(default_factory=dict)
    """Mapped codes turned into ids: ``{"addresses.country": {model: country.country,
    field: code}}`` (a field, or a field of a list's items)."""
    find_or_create: dict[str, FindOrCreate] = Field(default_factory=dict)
    """Mapped objects turned into the id of the record holding their values, created when
    there is none, after the ``lookups``: ``{invoice_address: {model: party.address, match:
    [street, postal_code, city, country], scope: {party: party}}}``."""
    buttons: list[str] = Field(default_factory=list)
    """Methods called, in order, on the records each write created or changed: Tryton buttons
    such as ``[quote, confirm]`` for a sale (Odoo: ``[action_confirm]``). Each is its own
    transaction: when one fails the records stay written, and the retry finds them."""

    many2many: dict[str, Lookup] = Field(default_factory=dict)
    """Mapped memberships of a many2many field: the mapping makes an object ``{code: true |
    false}`` (``{"Locked": true}``); each code is looked up in ``model`` by ``field``, ``true``
    links the record, ``false`` unlinks it, a missing or null value leaves it as it is."""
    context: dict[str, Any] = Field(default_factory=dict)
    """Merged into the context of every call of this flow's writes, e.g. ``active_test:
    false`` so that an ``upsert`` also finds archived records."""

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.method in ("upsert", "update") and not self.match_field:
            raise ValueError(f"method {self.method} needs `match_field`: the field to search by")
        for path in self.lookups:
            if path.count(".") > 1:
                raise ValueError(f"lookups: {path!r} is deeper than a field of a list's items")
        for path in self.find_or_create:
            if "." in path:
                raise ValueError(f"find_or_create: {path!r} must be a field of the record")
        return self


@dataclass(slots=True)
class Prepared:
    """One outgoing record: its id in the ERP (from ``id_field``) and the values to send."""

    record: OutgoingRecord
    record_id: Any
    values: dict[str, Any]

    @classmethod
    def of(cls, record: OutgoingRecord, id_field: str) -> Prepared:
        """The record's values without ``id_field``, which is kept apart as the id."""
        values = copy.deepcopy(dict(record.data))  # lookups replace codes in nested values
        return cls(record, values.pop(id_field, None), values)

    @property
    def label(self) -> str:
        """The record as messages name it."""
        r = self.record
        return f"{r.entity} {r.key!r} v{r.version} (delivery {r.delivery_id})"


class RecordWriter:
    """Writes prepared records through one session; keeps the ids found by lookups."""

    def __init__(self, session: RpcSession) -> None:
        self.session = session
        self._found: dict[tuple[str, str], dict[str, int]] = {}
        self._related = RelatedRecords(session)

    def write(self, target: RpcTargetOptions, prepared: list[Prepared]) -> list[int]:
        """Write ``prepared`` by the target's method, then call its ``buttons`` on them;
        return each record's id."""
        self._look_up(target, prepared)
        self._memberships(target, prepared)
        for path, spec in target.find_or_create.items():
            self._related.resolve(
                path,
                spec,
                [p.values for p in prepared],
                lambda index, problem: self._refused(target, prepared[index], problem),
            )
        if target.method == "create":
            ids = self._create(target, prepared)
        elif target.method == "write":
            pairs = [(self._own_id(target, p), p) for p in prepared]
            self._write(target, pairs)
            ids = [record_id for record_id, _ in pairs]
        else:
            ids = self._upsert(target, prepared)
        unique = list(dict.fromkeys(ids))  # Tryton refuses a button call naming a record twice
        context = {"context": target.context} if target.context else None
        for button in target.buttons:
            self.session.execute(target.model, button, [unique], context)
        return ids

    # -- methods ---------------------------------------------------------------------------------

    def _upsert(self, target: RpcTargetOptions, prepared: list[Prepared]) -> list[int]:
        match = str(target.match_field)
        keys = []
        for p in prepared:
            key = p.values.get(match)
            if key is None or key == "":
                raise self._refused(target, p, f"no value for match_field {match}")
            keys.append(str(key))
        wanted = list(
            {key: p.values[match] for p, key in zip(prepared, keys, strict=True)}.values()
        )
        rows = self.session.search_read(
            target.model,
            [[match, "in", wanted]],
            ["id", match],
            2 * len(wanted) + 1,
            [("id", "asc")],
            target.context or None,
        )
        found: dict[str, list[int]] = {}
        for row in rows:
            found.setdefault(str(row.get(match)), []).append(int(row["id"]))
        ids: list[int | None] = [None] * len(prepared)
        new: dict[str, int] = {}  # key → index of the record that creates it
        writes: list[int] = []
        for index, (p, key) in enumerate(zip(prepared, keys, strict=True)):
            if len(found.get(key, ())) > 1:
                matches = ", ".join(map(str, found[key]))
                problem = f"{match} = {key!r} matches several records (ids {matches})"
                raise self._refused(target, p, problem)
            if key in found:
                ids[index] = found[key][0]
                writes.append(index)
            elif target.method == "update":
                raise self._refused(target, p, f"no record with {match} = {key!r} to update")
            elif key in new:  # a second record of the batch with the same key: written after
                writes.append(index)
            else:
                new[key] = index
        if new:
            created = self._create(target, [prepared[i] for i in new.values()])
            for index, record_id in zip(new.values(), created, strict=True):
                ids[index] = record_id
        for index in writes:
            if ids[index] is None:
                ids[index] = ids[new[keys[index]]]
        self._write(target, [(int(ids[i] or 0), prepared[i]) for i in writes])
        return [int(i or 0) for i in ids]

    def _create(self, target: RpcTargetOptions, prepared: Sequence[Prepared]) -> list[int]:
        rows = [self._for_create(target, p.values) for p in prepared]
        return self.session.create(target.model, rows, target.context or None)

    def _write(self, target: RpcTargetOptions, pairs: Sequence[tuple[int, Prepared]]) -> None:
        if not pairs:
            return
        replaced = [name for name, mode in target.one2many.items() if mode == "replace"]
        lines: dict[int, dict[str, Any]] = {}
        if replaced and self.session.replace_needs_ids:
            ids = list(dict.fromkeys(record_id for record_id, _ in pairs))
            lines = {int(row["id"]): row for row in self.session.read(target.model, ids, replaced)}
        changes = [
            (record_id, self._for_write(target, p.values, lines.get(record_id, {})))
            for record_id, p in pairs
        ]
        if target.match_field is not None:
            for _, values in changes:
                # It matched, so it holds that value already; Tryton refuses writing a field
                # that became read-only (a party's code), even with the same value.
                values.pop(target.match_field, None)
        self.session.write(target.model, changes, target.context or None)

    # -- values ----------------------------------------------------------------------------------

    def _for_create(self, target: RpcTargetOptions, values: dict[str, Any]) -> dict[str, Any]:
        out = dict(values)
        for name in target.many2many:
            commands = out.get(name)
            if isinstance(commands, _Links):  # a new record has nothing to unlink
                out[name] = self.session.many2many(commands.add, [])
        for name in target.one2many:
            value = out.get(name)
            if value is None:
                out.pop(name, None)
            elif _is_rows(value):
                out[name] = self.session.one2many(value, None)
        return out

    def _for_write(
        self, target: RpcTargetOptions, values: dict[str, Any], lines: dict[str, Any]
    ) -> dict[str, Any]:
        out = dict(values)
        for name in target.many2many:
            commands = out.get(name)
            if isinstance(commands, _Links):
                out[name] = self.session.many2many(commands.add, commands.remove)
        for name, mode in target.one2many.items():
            value = out.get(name)
            if mode == "create" and (value is None or _is_rows(value)):
                out.pop(name, None)  # lines are created with a new record only
            elif mode == "replace" and (value is None or _is_rows(value)):
                existing = lines.get(name) or []
                out[name] = self.session.one2many(value or [], [int(i) for i in existing])
        return out

    def _own_id(self, target: RpcTargetOptions, p: Prepared) -> int:
        try:
            return int(p.record_id)
        except (TypeError, ValueError):
            problem = f"no record id to write (id_field holds {p.record_id!r})"
            raise self._refused(target, p, problem) from None

    # -- lookups ---------------------------------------------------------------------------------

    def _look_up(self, target: RpcTargetOptions, prepared: list[Prepared]) -> None:
        """Replace the codes named in ``lookups`` with the ids of the records holding them."""
        for path, lookup in target.lookups.items():
            spots = [(p, holder, key) for p in prepared for holder, key in _spots(p.values, path)]
            known = self._ids_of(lookup, [h[k] for _, h, k in spots])
            for p, holder, key in spots:
                code = str(holder[key])
                if code not in known:
                    problem = f"lookups {path}: no {lookup.model} with {lookup.field} = {code!r}"
                    raise self._refused(target, p, problem)
                holder[key] = known[code]

    def _memberships(self, target: RpcTargetOptions, prepared: list[Prepared]) -> None:
        """Turn each ``many2many`` object ``{code: true|false}`` into the ids to link and
        unlink (kept as :class:`_Links` until the dialect's commands are made)."""
        for name, lookup in target.many2many.items():
            flags = [(p, p.values.get(name)) for p in prepared]
            for p, value in flags:
                if value is not None and not isinstance(value, dict):
                    problem = f"many2many {name}: the mapping must make an object {{code: true}}"
                    raise self._refused(target, p, f"{problem}, not {type(value).__name__}")
            codes = {str(c) for _, v in flags if v for c, on in v.items() if on is not None}
            known = self._ids_of(lookup, sorted(codes))
            for p, value in flags:
                if value is None:
                    continue
                links = _Links()
                for code, on in value.items():
                    if on is None:
                        continue
                    if str(code) not in known:
                        problem = f"many2many {name}: no {lookup.model} with {lookup.field} = "
                        raise self._refused(target, p, f"{problem}{str(code)!r}")
                    (links.add if _truthy(on) else links.remove).append(known[str(code)])
                if links.add or links.remove:
                    p.values[name] = links
                else:
                    p.values.pop(name)

    def _ids_of(self, lookup: Lookup, codes: list[Any]) -> dict[str, int]:
        """The ids of the records of ``lookup.model`` holding ``codes``, searched once each."""
        known = self._found.setdefault((lookup.model, lookup.field), {})
        missing = list(dict.fromkeys(c for c in codes if str(c) not in known))
        for start in range(0, len(missing), 500):
            chunk = missing[start : start + 500]
            rows = self.session.search_read(
                lookup.model,
                [[lookup.field, "in", chunk]],
                ["id", lookup.field],
                None,
                [("id", "asc")],
            )
            for row in rows:  # several records with one code: the oldest wins
                known.setdefault(str(row.get(lookup.field)), int(row["id"]))
        return known

    def _refused(self, target: RpcTargetOptions, p: Prepared, problem: str) -> RecordRefused:
        return RecordRefused(
            f"channel {self.session.channel!r}: writing {p.label} to {target.model}: {problem}"
        )


def _spots(values: dict[str, Any], path: str) -> Iterator[tuple[dict[str, Any], str]]:
    """Where ``path`` (``field`` or ``list.field``) holds a value in ``values``."""
    head, _, tail = path.partition(".")
    if not tail:
        if values.get(head) is not None:
            yield values, head
        return
    items = values.get(head)
    for item in items if isinstance(items, list) else [items]:
        if isinstance(item, dict) and item.get(tail) is not None:
            yield item, tail


@dataclass(slots=True)
class _Links:
    """The ids a many2many field links and unlinks, before the dialect's commands are made."""

    add: list[int] = field(default_factory=list)
    remove: list[int] = field(default_factory=list)


def _truthy(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("true", "1", "yes", "y", "on", "x")
    return bool(value)


def _is_rows(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(item, dict) for item in value)
