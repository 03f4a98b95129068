"""RPC transport: Tryton and Odoo over JSON-RPC or XML-RPC, read by model and written by model.

IN flows read one model with ``search_read`` in pages ordered by ``id`` (each page asks for
``id > last``, so a record deleted mid-read shifts nothing). With a ``cursor_field`` (a
date-time the server sets on every change, ``write_date``) a read is a *pass*: it first asks for
the newest value of that field among the matching records (``until``), then reads every record
changed since the last pass, page by page; when the pass is through, ``until`` (less the
``safety_window_s``) is where the next pass starts, compared with ``>=`` so the boundary is
read again and de-duplicated by the hub's content hash. A record changed while a pass runs
has a newer value than ``until`` and comes again in the next pass. Each batch commits the pass's
position (``after_id``), so a crash resumes mid-pass.

Tryton trap: a record that was never written has no ``write_date`` (only ``create_date``), so
with ``cursor_field: write_date`` the Tryton dialect reads
``["OR", ["write_date", ">=", t], ["create_date", ">=", t]]``.

OUT flows ``create``, ``write`` (by the id in ``id_field``) or ``upsert`` (search by
``match_field``, then create or write) records of one model; :mod:`erpbridge.transports.rpc.values`
turns mapped values into what the server takes (lookups, one2many commands). The dialects are
:mod:`erpbridge.transports.rpc.tryton` and :mod:`erpbridge.transports.rpc.odoo`.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from erpbridge.connectors import Operator, Sink, Source
from erpbridge.errors import ErpbridgeError, FatalError
from erpbridge.transports.base import (
    Batch,
    CursorValue,
    Health,
    OperationOptions,
    OutgoingRecord,
    SourceRecord,
    StreamOptions,
    TargetOptions,
)
from erpbridge.transports.http import HttpChannelOptions, HttpClient, health_of
from erpbridge.transports.rpc.call import RpcOperationOptions, call_rpc
from erpbridge.transports.rpc.firstmatch import FirstMatch, charged
from erpbridge.transports.rpc.odoo import OdooSession
from erpbridge.transports.rpc.session import Account, RpcSession
from erpbridge.transports.rpc.tryton import TrytonSession
from erpbridge.transports.rpc.values import (
    Lookup,
    Prepared,
    RecordRefused,
    RecordWriter,
    RpcTargetOptions,
)
from erpbridge.transports.rpc.wire import ODOO_DATETIME, RpcError
from erpbridge.transports.templates import render

__all__ = [
    "ForEach",
    "Lookup",
    "Related",
    "RpcChannelOptions",
    "RpcStreamOptions",
    "RpcTargetOptions",
    "RpcTransport",
]


#: Related records' ids asked for per call (``related``).
_RELATED_PAGE = 5000


class RpcChannelOptions(HttpChannelOptions):
    """An ERP reached over JSON-RPC or XML-RPC: Tryton or Odoo; ``base_url`` is its root."""

    dialect: Literal["tryton", "odoo"] = Field(description="`tryton` or `odoo`.")
    protocol: Literal["jsonrpc", "xmlrpc"] = Field(
        default="jsonrpc", description="`jsonrpc` or `xmlrpc`."
    )
    database: str = Field(min_length=1, description="The ERP database to log in to.")
    username: str = Field(min_length=1, description="The user to log in as.")
    language: str = Field(default="en", description="Tryton: the login language.")
    context: dict[str, Any] = Field(
        default_factory=dict,
        description="Merged into every call's context (e.g. `active_test: false`).",
    )

    @model_validator(mode="after")
    def _password_present(self) -> Self:
        if "password" not in self.credentials:
            raise ValueError(
                "the rpc transport logs in with credential `password` (for Odoo the password "
                "or an API key); add it under the channel's credentials: as ${ENV_VAR}"
            )
        return self


class ForEach(BaseModel):
    """The records the source model is read once for."""

    model_config = ConfigDict(
        extra="forbid", frozen=True, use_attribute_docstrings=True, populate_by_name=True
    )

    model: str = Field(min_length=1)
    """The model of those records, e.g. ``stock.location``."""
    domain: list[Any] = Field(default_factory=list)
    """Which of its records, e.g. ``[["type", "=", "warehouse"]]``."""
    fields: list[str] = Field(default_factory=list)
    """Their fields to read (``id`` always; related paths as in ``fields``)."""
    as_: str = Field(alias="as", pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    """The name each source row carries the record under, and the placeholders' prefix."""


class Related(BaseModel):
    """A related model whose own changes re-read the records they belong to."""

    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)

    model: str = Field(min_length=1)
    """The related model, e.g. ``party.address`` (it must have the ``cursor_field`` too)."""
    via: list[str] = Field(min_length=1)
    """The source model's field(s) leading to it: a one2many (``addresses``, ``lines``), a
    many2one (``invoice_address``) or a many2many; a record is read again when a related
    record it holds through any of them changed."""
    domain: list[Any] = Field(default_factory=list)
    """Only these related records count, e.g. ``[["type", "=", "email"]]``."""


class RpcStreamOptions(StreamOptions):
    """A flow's ``source:`` block: which model, which records, which fields, how incremental."""

    model_config = ConfigDict(use_attribute_docstrings=True)

    model: str = Field(min_length=1)
    """The model, e.g. ``party.party`` (Tryton) or ``res.partner`` (Odoo)."""
    domain: list[Any] = Field(default_factory=list)
    """A filter in the dialect's own domain syntax, e.g. ``[["active", "=", true]]``."""
    fields: list[str] | None = None
    """Fields to read (``id`` is always read); Tryton also takes related paths
    (``addresses.city``). Default: every field."""
    cursor_field: str | None = None
    """Read incrementally by this date-time field (``write_date``); without it every run
    reads every matching record."""
    safety_window_s: float = Field(0, ge=0)
    """Start each pass this many seconds before the last one's newest change, for changes
    committed late by long transactions."""
    page_size: int | None = Field(None, ge=1, le=10_000)
    """Records per call and per batch; default: the flow's ``batch_size``."""
    context: dict[str, Any] = Field(default_factory=dict)
    """Merged into the context of every read of this flow, e.g. Tryton's ``locations`` (the
    stock of ``quantity``), ``stock_date_end`` or ``active_test: false`` (archived records)."""
    memberships: dict[str, str] = Field(default_factory=dict)
    """Related lists turned into flags: ``{categories: name}`` makes the read
    ``categories: [{id, name: "Locked"}]`` into ``categories: {"Locked": true}``, so a mapping
    reads ``categories.Locked`` (with ``default: false``). Read the paths (``categories.name``)
    in ``fields``."""
    related: list[Related] = Field(default_factory=list)
    """With ``cursor_field``: related models whose changes do not touch the record's own
    ``cursor_field`` (a Tryton party's addresses and contact mechanisms, a sale's lines): each
    incremental pass also reads the records whose related records changed since the last
    pass (by the related model's own ``cursor_field``)."""
    first_match: FirstMatch | None = None
    """Tryton, reading ``product.price_list.line``: keep only the lines Tryton applies (it takes
    the first matching line of a list, so a later line for the same product and a larger
    quantity may never be charged); Tryton's own ``sale_price_uom`` decides
    (:mod:`erpbridge.transports.rpc.firstmatch`). ``{}`` takes the line's own fields."""
    for_each: ForEach | None = None
    """Read the model once per record of another model: ``domain`` and ``context`` may name
    that record's fields as ``{<as>.<field>}`` placeholders, and each row carries the record
    under ``as`` (per-warehouse stock, the price list of each customer)."""

    @model_validator(mode="after")
    def _for_each_is_full(self) -> Self:
        if self.for_each is not None and self.cursor_field is not None:
            raise ValueError(
                "for_each reads everything on every run; it cannot be combined with cursor_field"
            )
        if self.related and self.cursor_field is None:
            raise ValueError("related follows changes since the last pass: it needs cursor_field")
        return self


@dataclass(frozen=True, slots=True)
class _Position:
    """Where an incremental read stands: the pass's lower bound (``since``), and while a pass
    runs, its upper bound (``until``) and the last id committed (``after_id``)."""

    since: Any = None
    until: Any = None
    after_id: int | None = None

    def encode(self, field: str) -> dict[str, Any]:
        return {
            "field": field,
            "since": _encode(self.since),
            "until": _encode(self.until),
            "after_id": self.after_id,
        }

    @classmethod
    def decode(cls, stored: CursorValue, field: str) -> _Position:
        if stored is None:
            return cls()
        try:
            if stored["field"] != field:
                raise FatalError(
                    f"the stored cursor is for field {stored['field']}, the flow now reads by "
                    f"{field}; reset the flow's cursor to read everything"
                )
            after = stored.get("after_id")
            return cls(
                _decode(stored.get("since")),
                _decode(stored.get("until")),
                None if after is None else int(after),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise FatalError(f"stored cursor {stored!r} is not an rpc cursor") from exc


@dataclass(frozen=True, slots=True)
class _Pass:
    """A pass of an incremental read: from ``start.since`` up to ``until``."""

    field: str
    start: _Position
    until: Any
    #: The cursor once the pass is through: the next pass starts at ``until`` (less the window).
    final: dict[str, Any]

    def cursor(self, after_id: int, done: bool) -> dict[str, Any]:
        """The cursor to commit with a page ending at ``after_id``."""
        if done:
            return self.final
        return _Position(self.start.since, self.until, after_id).encode(self.field)


def _flags(row: dict[str, Any], memberships: dict[str, str]) -> dict[str, Any]:
    """``row`` with each listed relation as ``{value of its field: true}``."""
    out = dict(row)
    for name, field in memberships.items():
        items = row.get(name)
        if isinstance(items, list):
            out[name] = {
                str(item[field]): True
                for item in items
                if isinstance(item, dict) and item.get(field) not in (None, "")
            }
    return out


def _encode(value: Any) -> dict[str, str] | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return {"datetime": value.isoformat()}
    return {"text": str(value)}


def _decode(value: Any) -> Any:
    if value is None:
        return None
    if "datetime" in value:
        return datetime.fromisoformat(value["datetime"])
    return str(value["text"])


def _minus(value: Any, seconds: float) -> Any:
    """``value`` moved back by the safety window (a datetime, or Odoo's datetime text)."""
    if not seconds:
        return value
    if isinstance(value, datetime):
        return value - timedelta(seconds=seconds)
    try:
        moment = datetime.strptime(str(value), ODOO_DATETIME)
    except ValueError:
        raise FatalError(
            f"safety_window_s needs a date-time cursor field; it holds {value!r}"
        ) from None
    return (moment - timedelta(seconds=seconds)).strftime(ODOO_DATETIME)


class RpcTransport(Source[RpcStreamOptions], Sink[RpcTargetOptions], Operator[RpcOperationOptions]):
    """Reads and writes the models of one Tryton or Odoo channel."""

    channel_options = RpcChannelOptions
    stream_options: type[StreamOptions] = RpcStreamOptions
    target_options: type[TargetOptions] = RpcTargetOptions
    operation_options: type[OperationOptions] = RpcOperationOptions

    def __init__(self, channel: str, options: RpcChannelOptions, base_dir: Path) -> None:
        self._channel = channel
        self._options = options
        self._http = HttpClient(channel, options, base_dir)
        account = Account(
            options.database,
            options.username,
            options.credentials["password"],
            options.protocol,
            options.language,
            options.context,
        )
        session_class = TrytonSession if options.dialect == "tryton" else OdooSession
        self._session: RpcSession = session_class(channel, account, self._http)
        self._writer = RecordWriter(self._session)

    # -- reading ---------------------------------------------------------------------------------

    def read(
        self,
        stream: StreamOptions,
        cursor: CursorValue,
        batch_size: int,
        required_fields: frozenset[str],
    ) -> Iterator[Batch]:
        """Yield pages of records; with ``cursor_field``, only those changed since ``cursor``."""
        if not isinstance(stream, RpcStreamOptions):
            raise TypeError(f"expected RpcStreamOptions, got {type(stream).__name__}")
        page = stream.page_size or batch_size
        if page < 1:
            raise ValueError("batch_size must be at least 1")
        return self._read(stream, cursor, page, required_fields)

    def _read(
        self, stream: RpcStreamOptions, stored: CursorValue, page: int, required: frozenset[str]
    ) -> Iterator[Batch]:
        session, field = self._session, stream.cursor_field
        fields = self._fields(stream, required)
        if stream.for_each is not None:
            yield from self._for_each(stream, stream.for_each, fields, page)
            return
        if field is None:
            yield from self._pages(stream, stream.domain, fields, page, 0, None)
            return
        fallback = self._fallback(field)
        try:
            position = _Position.decode(stored, field)
        except FatalError as exc:
            raise FatalError(f"channel {self._channel!r}: {exc}") from exc
        since: list[Any] = []
        touched: list[Any] = []
        if position.since is not None:
            since = session.since(field, position.since, fallback)
            touched = self._touched(stream, field, fallback, position.since)
        base = session.conjoin(
            stream.domain, session.disjoin(since, *touched) if touched else since
        )
        after, until = position.after_id, position.until
        if after is None:  # a new pass: everything up to the newest change there is now
            until = self._newest(stream.model, base, field, fallback, stream.context)
            if until is None:
                return  # nothing matches: the cursor stays where it is
            for related in stream.related if touched else ():
                # The next pass starts after the related changes this one took in as well.
                changed = session.conjoin(related.domain, since)
                newest = self._newest(related.model, changed, field, fallback, {})
                until = until if newest is None else max(until, newest)
            after = 0
        final = _Position(_minus(until, stream.safety_window_s)).encode(field)
        yield from self._pages(
            stream, base, fields, page, after, _Pass(field, position, until, final)
        )

    def _touched(
        self, stream: RpcStreamOptions, field: str, fallback: str | None, since: Any
    ) -> list[Any]:
        """Domains of the records whose related records (``related``) changed since ``since``:
        ``[[via, "in", ids]]`` per path."""
        session, found = self._session, []
        for related in stream.related:
            domain = session.conjoin(related.domain, session.since(field, since, fallback))
            ids: list[int] = []
            while True:
                page = session.search_read(
                    related.model,
                    session.conjoin(domain, [["id", ">", ids[-1] if ids else 0]]),
                    ["id"],
                    _RELATED_PAGE,
                    [("id", "asc")],
                )
                ids += [self._id(related.model, row) for row in page]
                if len(page) < _RELATED_PAGE:
                    break
            if ids:
                found += [[[via, "in", ids]] for via in related.via]
        return found

    def _for_each(
        self, stream: RpcStreamOptions, each: ForEach, fields: list[str] | None, page: int
    ) -> Iterator[Batch]:
        """The source read once per record of ``each.model``, its domain and context filled in
        from that record; every row carries the record under ``each.as_``."""
        session, name = self._session, each.as_
        wanted = list(dict.fromkeys(["id", *each.fields]))
        after = 0
        while True:
            outer = session.search_read(
                each.model,
                session.conjoin(each.domain, [["id", ">", after]]),
                wanted,
                page,
                [("id", "asc")],
            )
            for record in outer:
                values = {name: record}
                try:
                    domain = render(stream.domain, values)
                    context = render(stream.context, values)
                except FatalError as exc:
                    raise FatalError(f"channel {self._channel!r}: {stream.model}: {exc}") from exc
                place = f"{each.model}#id={self._id(each.model, record)}"
                yield from self._pages(
                    stream, domain, fields, page, 0, None, context, (name, record, place)
                )
            if len(outer) < page:
                return
            after = self._id(each.model, outer[-1])

    def _pages(
        self,
        stream: RpcStreamOptions,
        domain: list[Any],
        fields: list[str] | None,
        page: int,
        after: int,
        pass_: _Pass | None,
        context: dict[str, Any] | None = None,
        parent: tuple[str, dict[str, Any], str] | None = None,
    ) -> Iterator[Batch]:
        """Pages ordered by id; in a pass each batch carries the pass's position, and the last
        one the cursor the next pass starts from. ``parent`` (``for_each``) is attached to each
        row under its name and named in each record's position."""
        session, model = self._session, stream.model
        if context is None:
            context = stream.context
        while True:
            rows = session.search_read(
                model,
                session.conjoin(domain, [["id", ">", after]]),
                fields,
                page,
                [("id", "asc")],
                context or None,
            )
            if not rows:
                if pass_ is not None:  # the pass ended on a full page: close it
                    yield Batch([], cursor=pass_.final)
                return
            suffix = ""
            if parent is not None:
                name, record, suffix = parent
                rows = [{**row, name: record} for row in rows]
                suffix = f" for {suffix}"
            if stream.memberships:
                rows = [_flags(row, stream.memberships) for row in rows]
            after = self._id(model, rows[-1])
            done = len(rows) < page
            if stream.first_match is not None:
                rows = self._charged(stream.first_match, rows)
            records = [
                SourceRecord(row, f"{model}#id={self._id(model, row)}{suffix}") for row in rows
            ]
            yield Batch(records, cursor=None if pass_ is None else pass_.cursor(after, done))
            if done:
                return

    def _charged(self, spec: FirstMatch, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        if self._options.dialect != "tryton":
            raise FatalError(f"channel {self._channel!r}: first_match is made for Tryton")
        try:
            return charged(self._session, spec, rows)
        except FatalError as exc:
            raise FatalError(f"channel {self._channel!r}: {exc}") from exc

    def _newest(
        self,
        model: str,
        base: list[Any],
        field: str,
        fallback: str | None,
        context: dict[str, Any],
    ) -> Any:
        """The newest ``field`` value among the records of ``base`` (``fallback`` where the
        field is empty); ``None`` when nothing matches."""
        session = self._session
        wanted = [(field, session.filled(field))]
        if fallback is not None:
            wanted.append((fallback, session.filled(field, empty=True)))
        values = []
        for name, domain in wanted:
            rows = session.search_read(
                model, session.conjoin(base, domain), [name], 1, [(name, "desc")], context or None
            )
            if rows and rows[0].get(name) is not None:
                values.append(rows[0][name])
        return max(values) if values else None

    def _fields(self, stream: RpcStreamOptions, required: frozenset[str]) -> list[str] | None:
        if stream.fields is None:
            return None
        fields = list(dict.fromkeys(["id", *stream.fields]))
        if stream.cursor_field is not None:
            extra = [stream.cursor_field, self._fallback(stream.cursor_field)]
            fields += [f for f in extra if f is not None and f not in fields]
        top = {name.split(".", 1)[0] for name in fields}
        if missing := sorted(required - top):
            raise RpcError(
                f"channel {self._channel!r}: {stream.model}: the mapping needs field(s) "
                f"{', '.join(missing)}, which `fields` does not read",
                "schema",
            )
        return fields

    def _fallback(self, field: str) -> str | None:
        # Tryton leaves write_date empty until a record's first update.
        if self._options.dialect == "tryton" and field == "write_date":
            return "create_date"
        return None

    def _id(self, model: str, row: dict[str, Any]) -> int:
        value = row.get("id")
        if not isinstance(value, int):
            raise RpcError(
                f"{self._session.where(model, 'search_read')}: a record without an id", "protocol"
            )
        return value

    # -- writing ---------------------------------------------------------------------------------

    def write(self, target: TargetOptions, records: list[OutgoingRecord]) -> list[str | None]:
        """Write ``records`` to the target's model; return each one's id there as text.

        A refusal of the server (UserError, ValidationError, AccessError, an unknown field) is a
        :class:`FatalError` that names the records; a concurrent change or an unreachable server
        is retriable. Tryton's ``create`` and ``write`` are each one transaction.
        """
        if not isinstance(target, RpcTargetOptions):
            raise TypeError(f"expected RpcTargetOptions, got {type(target).__name__}")
        if not records:
            return []
        prepared = [Prepared.of(record, target.id_field) for record in records]
        try:
            ids = self._writer.write(target, prepared)
        except RecordRefused:
            raise  # names its record already
        except RpcError as exc:
            detail = str(exc).removeprefix(f"channel {self._channel!r}: ")
            names = ", ".join(p.label for p in prepared[:5])
            more = f" and {len(prepared) - 5} more" if len(prepared) > 5 else ""
            raise RpcError(
                f"channel {self._channel!r}: writing {names}{more} to {target.model}: {detail}",
                exc.category,
            ) from exc
        return [str(i) for i in ids]

    # -- real-time operations --------------------------------------------------------------------

    def call(self, operation: OperationOptions, params: Mapping[str, Any]) -> Any:
        """Answer a real-time operation (:mod:`erpbridge.transports.rpc.call`) for ``params``."""
        if not isinstance(operation, RpcOperationOptions):
            raise TypeError(f"expected RpcOperationOptions, got {type(operation).__name__}")
        return call_rpc(self._session, self._options.dialect, operation, params)

    # -- the channel -----------------------------------------------------------------------------

    def health(self) -> Health:
        """Log in and ask the server's version; nothing is changed."""
        options = self._options
        try:
            version = self._session.version()
            self._session.login()
        except ErpbridgeError as exc:
            return health_of(exc)
        protocol = "XML-RPC" if options.protocol == "xmlrpc" else "JSON-RPC"
        return Health(
            ok=True,
            detail=f"{self._session.name} {version} at {options.base_url} ({protocol}), "
            f"database {options.database!r}, logged in as {options.username!r}",
        )

    def close(self) -> None:
        """End the session (Tryton) and close the connections."""
        try:
            self._session.close()
        finally:
            self._http.close()
