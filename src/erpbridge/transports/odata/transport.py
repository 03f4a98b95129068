"""OData V4 and V2 transport: read entity sets incrementally, create and update entities.

Reading asks for ``$filter``/``$select``/``$expand`` with ``$orderby`` on the cursor field and
the key, ``$top`` = ``page_size`` per request, and follows the server's own paging
(``@odata.nextLink`` in V4, ``d.__next`` in V2) inside each such window. Windows advance by
keyset rather than by position, so a record that changes during a read is read again later
instead of shifting others out of sight:

- with a ``cursor_field`` the next window asks ``cursor_field ge <last value>`` and skips
  (``$skip``) the rows of that last value it has already read;
- without one (and for the rows whose cursor field is null, read first on a run without a
  stored cursor) windows follow the key: ``(k1 gt a) or (k1 eq a and k2 gt b)``.

**Cursor rule.** The stored cursor is the largest cursor-field value read, with the keys and
content fingerprints of the records that carry exactly that value. The next run reads
``cursor_field ge value − safety_window_s``: records changed at that same instant after the
last run are read, and those already read at that value, unchanged (same key, same
fingerprint), are skipped by key. Records re-read inside the safety window reach the hub,
whose content hash drops them as unchanged. Records whose cursor field is null are read only
by a full read.

Writing is :mod:`erpbridge.transports.odata.write`; requests, CSRF tokens and error payloads are
:mod:`erpbridge.transports.odata.client`; ``$metadata`` and wire values are
:mod:`erpbridge.transports.odata.edm`; literals and key predicates are
:mod:`erpbridge.transports.odata.query`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Mapping
from datetime import date, datetime, timedelta
from decimal import Decimal
from math import ceil
from pathlib import Path
from typing import Any

import orjson
from pydantic import Field, model_validator

from erpbridge.connectors import Sink, Source
from erpbridge.errors import ErpbridgeError, FatalError
from erpbridge.jsonvalues import as_json
from erpbridge.transports.base import (
    Batch,
    CursorValue,
    Health,
    OutgoingRecord,
    SourceProblem,
    SourceRecord,
    StreamOptions,
    TargetOptions,
)
from erpbridge.transports.http import HttpRefused, health_of
from erpbridge.transports.odata.client import ODataChannelOptions, ODataClient
from erpbridge.transports.odata.delta import is_link, is_removed, removed_key
from erpbridge.transports.odata.edm import (
    EntityType,
    Metadata,
    Property,
    from_wire,
    iso_z,
)
from erpbridge.transports.odata.query import (
    after_keys,
    expand_clause,
    key_predicate,
    literal,
)
from erpbridge.transports.odata.write import ODataTargetOptions, ODataWriter, key_text

__all__ = [
    "ODataChannelOptions",
    "ODataStreamOptions",
    "ODataTargetOptions",
    "ODataTransport",
]

#: Boundary records remembered in the cursor; beyond that they are re-read (the hub's hash
#: drops them), which keeps the stored cursor small after a mass update.
_MAX_SEEN = 1000


class ODataStreamOptions(StreamOptions):
    """A flow's ``source:``: one entity set, optionally filtered, expanded and incremental."""

    entity_set: str = Field(min_length=1, description="The entity set, e.g. A_BusinessPartner.")
    select: list[str] = Field(
        default_factory=list,
        description="Properties to read (`$select`); keys, the cursor field and the fields the "
        "mapping needs are added. Empty: all.",
    )
    expand: list[str] = Field(
        default_factory=list,
        description="Navigation properties read along (`$expand`); `a/b` for deeper levels.",
    )
    filter: str | None = Field(
        default=None, description="A `$filter` expression in the service's OData version."
    )
    cursor_field: str | None = Field(
        default=None,
        description="Modified-at property for incremental reads, e.g. LastChangeDateTime.",
    )
    page_size: int | None = Field(
        default=None, ge=1, le=100_000, description="`$top` per request; default: batch_size."
    )
    safety_window_s: float = Field(
        default=0,
        ge=0,
        description="Start each incremental read this many seconds before the stored cursor.",
    )
    delta: bool = Field(
        default=False,
        description="OData V4 change tracking: the first run asks `Prefer: odata.track-changes` "
        "and keeps the answer's `@odata.deltaLink` as the flow's cursor; later runs read that "
        "link: changed entities as records, `@removed` entries as deletes. Not with "
        "cursor_field.",
    )

    @model_validator(mode="after")
    def _one_way_of_tracking(self) -> ODataStreamOptions:
        if self.delta and self.cursor_field is not None:
            raise ValueError(
                "delta: true reads changes through the service's delta links: "
                "leave out cursor_field"
            )
        return self


class ODataTransport(Source[ODataStreamOptions], Sink[ODataTargetOptions]):
    """Reads entity sets of one OData V4 or V2 service and writes entities to it."""

    channel_options = ODataChannelOptions
    stream_options: type[StreamOptions] = ODataStreamOptions
    target_options: type[TargetOptions] = ODataTargetOptions

    def __init__(self, channel: str, options: ODataChannelOptions, base_dir: Path) -> None:
        self._channel = channel
        self._options = options
        self._client = ODataClient(channel, options, base_dir)
        self._writer = ODataWriter(self._client)

    def read(
        self,
        stream: StreamOptions,
        cursor: CursorValue,
        batch_size: int,
        required_fields: frozenset[str],
    ) -> Iterator[Batch]:
        """Yield one batch per page, from ``cursor`` on (``None``: everything)."""
        if not isinstance(stream, ODataStreamOptions):
            raise TypeError(f"expected ODataStreamOptions, got {type(stream).__name__}")
        metadata = self._client.metadata()
        entity = self._writer.entity_type(metadata, stream.entity_set)
        reader = _Reader(self._client, metadata, entity, stream, stream.page_size or batch_size)
        reader.check(required_fields)
        if stream.delta:
            if self._client.version != "4":
                raise reader.refused(
                    "delta: true needs OData V4 change tracking; this channel is version 2"
                )
            return reader.delta(cursor)
        if stream.cursor_field is None:
            return reader.by_keys(None)
        return reader.incremental(cursor)

    def write(self, target: TargetOptions, records: list[OutgoingRecord]) -> list[str | None]:
        """Create or update each record; return its key (values joined by ``|``)."""
        if not isinstance(target, ODataTargetOptions):
            raise TypeError(f"expected ODataTargetOptions, got {type(target).__name__}")
        return self._writer.write(target, records)

    def delete(self, target: TargetOptions, records: list[OutgoingRecord]) -> list[str | None]:
        """Delete each record's entity (by its key); return its key (values joined by ``|``)."""
        if not isinstance(target, ODataTargetOptions):
            raise TypeError(f"expected ODataTargetOptions, got {type(target).__name__}")
        return self._writer.delete(target, records)

    def health(self) -> Health:
        """Fetch ``$metadata`` and look for the configured entity sets."""
        try:
            metadata = self._client.metadata()
        except ErpbridgeError as exc:
            return health_of(exc)
        where = f"channel {self._channel!r}: {self._client.http.base_url}$metadata"
        missing = [name for name in self._options.entity_sets if name not in metadata.sets]
        if missing:
            offered = ", ".join(sorted(metadata.sets)) or "none"
            return Health(
                False,
                f"{where} has no entity set {', '.join(missing)} (it offers: {offered})",
                "schema",
            )
        sets = f"{len(metadata.sets)} entity sets"
        if self._options.entity_sets:
            sets += f", including {', '.join(self._options.entity_sets)}"
        return Health(
            True, f"OData V{metadata.version} service at {self._client.http.base_url}: {sets}"
        )

    def close(self) -> None:
        """Close the connection pool."""
        self._client.close()


class _Reader:
    """One read of one entity set."""

    def __init__(
        self,
        client: ODataClient,
        metadata: Metadata,
        entity: EntityType,
        stream: ODataStreamOptions,
        page_size: int,
    ) -> None:
        self.client = client
        self.metadata = metadata
        self.entity = entity
        self.stream = stream
        self.page_size = page_size
        self.version = client.version
        self.label = stream.entity_set
        self.required: frozenset[str] = frozenset()
        field = stream.cursor_field
        self.cursor_prop: Property | None = None
        if field is not None:
            self.cursor_prop = entity.properties.get(field)
            if self.cursor_prop is None:
                raise self._schema(f"cursor_field {field} is not a property of {entity.name}")

    def check(self, required: frozenset[str]) -> None:
        """Refuse a read whose mapping needs fields the entity type lacks or does not expand."""
        entity, stream = self.entity, self.stream
        known = set(entity.properties) | set(entity.navigation)
        named = set(stream.select) | {path.split("/")[0] for path in stream.expand}
        if unknown := sorted((set(required) | named) - known):
            raise self._schema(
                f"{entity.name} has no property {', '.join(unknown)}; "
                f"it has: {', '.join([*entity.properties, *entity.navigation])}"
            )
        expanded = {path.split("/")[0] for path in stream.expand}
        if lacking := sorted((set(required) & set(entity.navigation)) - expanded):
            raise self._schema(
                f"the mapping reads {', '.join(lacking)}: add it to the source's `expand`"
            )
        self.required = required

    def _schema(self, problem: str) -> HttpRefused:
        return HttpRefused(
            f"channel {self.client.channel!r}: {self.label}: {problem}", None, "schema"
        )

    # -- windows ---------------------------------------------------------------------------------

    def _params(self, filters: list[str | None], order: list[str], skip: int) -> dict[str, str]:
        stream, entity = self.stream, self.entity
        params = {"$top": str(self.page_size), "$orderby": ",".join(order)}
        if skip:
            params["$skip"] = str(skip)
        given = [f for f in filters if f]
        if given:
            params["$filter"] = " and ".join(f"({f})" for f in given)
        if stream.select:
            names = [*stream.select, *entity.keys, *(set(self.required) & set(entity.properties))]
            if stream.cursor_field:
                names.append(stream.cursor_field)
            if self.version == "2":  # V2 returns an expanded property only when it is selected
                names += [path.split("/")[0] for path in stream.expand]
            params["$select"] = ",".join(dict.fromkeys(names))
        if stream.expand:
            params["$expand"] = expand_clause(stream.expand, self.version)
        return params

    def _window(
        self, filters: list[str | None], order: list[str], skip: int
    ) -> Iterator[list[dict[str, Any]]]:
        """The pages of one ``$top`` window: the first answer, then the server's next links."""
        url: str | None = self.client.url(self.label, self._params(filters, order, skip))
        while url is not None:
            rows, link = self.client.page(url, self.label)
            yield rows
            url = self.client.follow(link) if link else None

    def by_keys(self, extra: str | None) -> Iterator[Batch]:
        """Everything (matching ``extra``) in key order; windows follow the last key read."""
        keys = list(self.entity.keys)
        after: list[Any] | None = None
        while True:
            where = after_keys(keys, after, self.entity, self.version) if after else None
            count = 0
            last: dict[str, Any] | None = None
            for rows in self._window([self.stream.filter, extra, where], keys, 0):
                if rows:
                    count += len(rows)
                    last = rows[-1]
                    yield self._batch(rows, None)
            if count < self.page_size or last is None:
                return
            position = [from_wire(last.get(k), self.entity.properties.get(k)) for k in keys]
            if position == after:
                raise self._stuck()
            after = position

    def incremental(self, stored: CursorValue) -> Iterator[Batch]:
        """Rows with a cursor value from ``stored`` on (all of them, nulls first, if ``None``)."""
        field, prop = str(self.stream.cursor_field), self.cursor_prop
        assert prop is not None
        if stored is None:
            yield from self.by_keys(f"{field} eq null")
        group, seen = self._load(stored)
        lower = self._minus_window(group)
        order = [field, *self.entity.keys]
        group_rows, skip = 0, 0
        previous: list[str] = []
        while True:
            if lower is None:
                where = f"{field} ne null"
            else:
                where = f"{field} ge {literal(lower, prop.type, self.version)}"
            keys: list[str] = []
            for rows in self._window([self.stream.filter, where], order, skip):
                fresh = []
                for row in rows:
                    keys.append(self._key(row))
                    value = self._value(row)
                    if value is None:  # the service filtered badly; read it all the same
                        fresh.append(row)
                        continue
                    if group is None or value > group:
                        group, seen, group_rows = value, {}, 0
                    if value == group:
                        group_rows += 1  # the next window skips the rows of this value
                        mark = _fingerprint(row)
                        if seen.get(keys[-1]) == mark:
                            continue  # read before at this very value, and unchanged
                        seen[keys[-1]] = mark
                    fresh.append(row)
                yield self._batch(fresh, self._dump(group, seen))
            if len(keys) < self.page_size:
                return
            if keys == previous:
                raise self._stuck()
            previous = keys
            lower, skip = group, group_rows

    def delta(self, stored: CursorValue) -> Iterator[Batch]:
        """A change-tracked read: without a stored delta link the whole entity set (as
        ``Prefer: odata.track-changes``), else the changes since that link; each page one
        batch, the last one carrying the new delta link as the cursor."""
        if stored is None:
            params = self._params([self.stream.filter], [], 0)
            params.pop("$top", None)
            params.pop("$orderby", None)
            url: str | None = self.client.url(self.label, params)
        elif isinstance(stored, dict) and isinstance(stored.get("delta_link"), str):
            url = self.client.follow(stored["delta_link"])
        else:
            raise self.refused(
                f"the stored cursor {stored!r} is not a delta link (was the flow read by "
                "cursor_field before?): reset the flow's cursor (`erpbridge cursor reset "
                "<flow>`) to read the entity set anew"
            )
        while url is not None:
            rows, link, delta = self.client.delta_page(
                url, self.label, stored=stored is not None, page_size=self.page_size
            )
            if link is None and delta is None:
                raise self.refused(
                    "delta: true, but the service answered without an @odata.deltaLink (it "
                    "does not track changes of this entity set); remove `delta` from the "
                    "flow's source, or read by cursor_field"
                )
            yield self._delta_batch(rows, {"delta_link": delta} if link is None else None)
            url = self.client.follow(link) if link else None

    def _delta_batch(self, rows: list[dict[str, Any]], cursor: CursorValue) -> Batch:
        """A delta page, in its order: changed entities as records, removed ones as deletes
        by key (links between entities are left out)."""
        batch = Batch([], cursor=cursor)
        for index, row in enumerate(rows):
            if is_link(row):
                continue
            if not is_removed(row):
                self._add(batch, row)
                continue
            try:
                key = removed_key(row, self.entity)
                position = self.label + key_predicate(key, self.entity, self.version)
                data = _clean(key, self.entity, self.metadata, "")
            except ValueError as exc:
                where = f"{self.label} (delta entry {index})"
                batch.problems.append(SourceProblem(where, str(exc), as_json(row)))
                continue
            batch.records.append(SourceRecord(data, f"{position} (removed)", deleted=True))
        return batch

    def refused(self, problem: str) -> HttpRefused:
        """A read this stream's options or the service's answer cannot go on with."""
        return HttpRefused(
            f"channel {self.client.channel!r}: {self.label}: {problem}", None, "error"
        )

    def _stuck(self) -> FatalError:
        return FatalError(
            f"channel {self.client.channel!r}: {self.label}: paging does not advance; the "
            "service seems to ignore $filter, $orderby or $skip"
        )

    # -- cursor ----------------------------------------------------------------------------------

    def _value(self, row: Mapping[str, Any]) -> Any:
        field = str(self.stream.cursor_field)
        try:
            return _comparable(from_wire(row.get(field), self.cursor_prop), self.cursor_prop)
        except (ValueError, ArithmeticError) as exc:
            raise FatalError(
                f"channel {self.client.channel!r}: {self.label}: cursor_field {field} has a "
                f"value that is not a {self.cursor_prop.type if self.cursor_prop else '?'}: "
                f"{row.get(field)!r} ({exc})"
            ) from None

    def _load(self, stored: CursorValue) -> tuple[Any, dict[str, str]]:
        if stored is None:
            return None, {}
        if not isinstance(stored, dict) or "value" not in stored:
            raise FatalError(
                f"channel {self.client.channel!r}: {self.label}: the stored cursor {stored!r} "
                "is not an OData cursor (did the flow's source change? run it with --full)"
            )
        seen = stored.get("seen") or {}
        return self._value({str(self.stream.cursor_field): stored["value"]}), dict(seen)

    def _dump(self, group: Any, seen: dict[str, str]) -> CursorValue:
        if group is None:
            return None
        if isinstance(group, datetime):
            value: Any = iso_z(group)
        elif isinstance(group, date):
            value = group.isoformat()
        elif isinstance(group, Decimal):
            value = str(group)
        else:
            value = group
        kept = dict(list(seen.items())[:_MAX_SEEN])
        return {"value": value, "seen": kept}

    def _minus_window(self, value: Any) -> Any:
        window = self.stream.safety_window_s
        if value is None or not window:
            return value
        if isinstance(value, datetime):
            return value - timedelta(seconds=window)
        if isinstance(value, date):
            return value - timedelta(days=ceil(window / 86_400))
        raise FatalError(
            f"channel {self.client.channel!r}: {self.label}: safety_window_s needs a date or "
            f"time cursor_field; {self.stream.cursor_field} holds {type(value).__name__} values"
        )

    # -- records ---------------------------------------------------------------------------------

    def _key(self, row: Mapping[str, Any]) -> str:
        return key_text({k: row.get(k) for k in self.entity.keys}, self.entity)

    def _batch(self, rows: list[dict[str, Any]], cursor: CursorValue) -> Batch:
        batch = Batch([], cursor=cursor)
        for row in rows:
            self._add(batch, row)
        return batch

    def _add(self, batch: Batch, row: dict[str, Any]) -> None:
        """An entity as a record of ``batch`` (or, when a value does not parse, a problem)."""
        try:
            position = self.label + key_predicate(row, self.entity, self.version)
        except ValueError:
            position = f"{self.label}[{len(batch.records) + len(batch.problems)}]"
        try:
            data = _clean(row, self.entity, self.metadata, "")
        except ValueError as exc:
            batch.problems.append(SourceProblem(position, str(exc), as_json(row)))
            return
        batch.records.append(SourceRecord(data, position))


def _clean(
    row: Mapping[str, Any], entity: EntityType | None, metadata: Metadata, path: str
) -> dict[str, Any]:
    """An entity as plain data: annotations and unexpanded links dropped, V2 ``results``
    unwrapped, dates and times parsed per ``$metadata``."""
    out: dict[str, Any] = {}
    for name, value in row.items():
        if "@" in name or name == "__metadata":
            continue
        if isinstance(value, dict) and "__deferred" in value:
            continue  # a V2 navigation property that was not expanded
        nav = entity.navigation.get(name) if entity else None
        if nav is not None:
            target = metadata.types.get(nav.type)
            if isinstance(value, dict) and isinstance(value.get("results"), list):
                value = value["results"]  # a V2 collection
            if isinstance(value, list):
                out[name] = [
                    _clean(item, target, metadata, f"{path}{name}[{i}].")
                    if isinstance(item, dict)
                    else item
                    for i, item in enumerate(value)
                ]
            elif isinstance(value, dict):
                out[name] = _clean(value, target, metadata, f"{path}{name}.")
            else:
                out[name] = value
            continue
        prop = entity.properties.get(name) if entity else None
        try:
            out[name] = from_wire(value, prop)
        except ValueError as exc:
            kind = prop.type if prop else "?"
            raise ValueError(f"{path}{name}: not a valid {kind}: {value!r} ({exc})") from None
    return out


def _comparable(value: Any, prop: Property | None) -> Any:
    if value is not None and prop is not None and prop.type in ("Edm.Decimal", "Edm.Double"):
        return Decimal(str(value))
    return value


def _fingerprint(row: Mapping[str, Any]) -> str:
    blob = orjson.dumps(row, option=orjson.OPT_SORT_KEYS)
    return hashlib.blake2b(blob, digest_size=8).hexdigest()
