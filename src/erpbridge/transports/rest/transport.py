"""The REST transport: JSON resources read page by page (IN) and written item by item (OUT).

HTTP itself — auth, TLS, pacing, ``Retry-After`` patience on reads, error translation — is the
shared :mod:`erpbridge.transports.http` client. This module knows resources: where a list sits
in a body, how an item's URL is built, and when a write creates and when it updates. The options
are :mod:`~.options`, pagination :mod:`~.paging`, the changed-since cursor
:mod:`~.cursor`.

OUT flows: :class:`OutgoingRecord` carries no binding, so a write finds the item itself:

- ``mode: upsert`` (default) with ``lookup``: a GET on the list path by a business field finds
  the item's id; none found → POST to the create path, one → PUT/PATCH to its item path.
- ``mode: upsert`` without ``lookup``: the item's id is the hub's key (or ``id_from``); a
  PUT/PATCH to its item path updates it, and a 404 makes a POST to the create path with that id
  in ``id_field`` — so the next version finds it under the same id.
- ``mode: create``: always POST (orders, bookings: documents that are only ever added).
- ``mode: update``: only PUT/PATCH; a missing item is an error.

Writes of one call go one by one; the first failure ends the call, and the worker sends the
call's records again (upserts land the same way twice; a POST is de-duplicated only by an API
that honours the ``Idempotency-Key`` header).
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, Literal
from urllib.parse import unquote

import httpx
import orjson

from erpbridge.connectors import Operator, Sink, Source
from erpbridge.errors import DataError, FatalError
from erpbridge.jsonvalues import json_default
from erpbridge.transports.base import (
    Batch,
    CursorValue,
    Health,
    OperationOptions,
    OutgoingRecord,
    SourceProblem,
    SourceRecord,
    StreamOptions,
    TargetOptions,
)
from erpbridge.transports.http import (
    HttpClient,
    HttpRefused,
    HttpRetriable,
    HttpUnreachable,
    health_of,
)
from erpbridge.transports.pathparams import path_segment
from erpbridge.transports.rest.call import RestOperationOptions, call_rest
from erpbridge.transports.rest.cursor import CursorTracker, dig
from erpbridge.transports.rest.options import (
    RestChannelOptions,
    RestResource,
    RestStreamOptions,
    RestTargetOptions,
)
from erpbridge.transports.rest.paging import Page, json_body, pages, plain_url, records_at

__all__ = [
    "RestChannelOptions",
    "RestResource",
    "RestStreamOptions",
    "RestTargetOptions",
    "RestTransport",
]

_HttpError = HttpUnreachable | HttpRetriable | HttpRefused


class RestTransport(
    Source[RestStreamOptions], Sink[RestTargetOptions], Operator[RestOperationOptions]
):
    """Reads and writes the JSON resources of one REST channel."""

    channel_options: type[RestChannelOptions] = RestChannelOptions
    stream_options: type[StreamOptions] = RestStreamOptions
    target_options: type[TargetOptions] = RestTargetOptions
    #: The media type of request and response bodies (JSON:API has its own).
    media_type = "application/json"

    def __init__(self, channel: str, options: RestChannelOptions, base_dir: Path) -> None:
        self._channel = channel
        self._options = options
        self._base_dir = base_dir
        self._origin = httpx.URL(options.base_url)
        # Built on first use, so that a bad TLS file shows in the run or delivery that needs it.
        self._http: HttpClient | None = None

    # -- reading ---------------------------------------------------------------------------------

    def read(
        self,
        stream: StreamOptions,
        cursor: CursorValue,
        batch_size: int,
        required_fields: frozenset[str],
    ) -> Iterator[Batch]:
        """Yield the list's items in batches; with ``incremental``, only the changed ones."""
        if not isinstance(stream, RestStreamOptions):
            raise TypeError(f"expected RestStreamOptions, got {type(stream).__name__}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        # JSON records are sparse: a field the mapping needs is checked per record by mapping.
        del required_fields
        return self._read(stream, cursor, batch_size)

    def _read(self, stream: RestStreamOptions, stored: CursorValue, size: int) -> Iterator[Batch]:
        incremental = stream.incremental
        try:
            tracker = CursorTracker(incremental, stored) if incremental else None
            start = tracker.params() if tracker else {}
        except FatalError as exc:
            raise FatalError(f"channel {self._channel!r}: {exc}") from exc
        resource = stream.resource
        list_path = str(resource.url("list"))
        walk = pages(
            self._channel,
            self._get,
            list_path,
            {**stream.params, **start},
            stream.pagination,
            resource.records_path,
            self._origin,
        )
        held: Batch | None = None
        current = Batch(records=[])
        for page in walk:
            for index, item in enumerate(self._page_items(page), 1):
                if isinstance(item, dict):
                    key = item.get(resource.id_field)
                    where = f"{list_path}#{resource.id_field}={key}"
                    if key is None:
                        where = f"{list_path} page {page.number} item {index}"
                    current.records.append(SourceRecord(item, where))
                    if tracker is not None:
                        tracker.see(item)
                else:
                    current.problems.append(
                        SourceProblem(
                            f"{list_path} page {page.number} item {index}",
                            f"item is {type(item).__name__}, not a JSON object",
                            {"value": item},
                        )
                    )
                if len(current.records) + len(current.problems) >= size:
                    # Held back one batch, so the last one can carry the run's final cursor.
                    if held is not None:
                        yield self._checked(held, tracker)
                    held, current = current, Batch(records=[])
                    if tracker and tracker.options.sorted and not tracker.out_of_order:
                        held.cursor = tracker.cursor()
        if current.records or current.problems:
            if held is not None:
                yield self._checked(held, tracker)
            last = current
        elif held is not None:
            last = held
        else:
            return  # nothing read: the stored cursor stays as it is
        if tracker is not None:
            last.cursor = tracker.cursor()
            last.warnings += self._cursor_warnings(tracker, list_path)
        yield last

    def _page_items(self, page: Page) -> list[Any]:
        """The records of one page, as the flow's mapping sees them (the items, as sent)."""
        return page.items

    @staticmethod
    def _checked(batch: Batch, tracker: CursorTracker | None) -> Batch:
        """``batch`` about to be committed; its cursor dropped if the order broke meanwhile."""
        if tracker is not None and tracker.out_of_order:
            batch.cursor = None
        return batch

    def _cursor_warnings(self, tracker: CursorTracker, list_path: str) -> list[str]:
        field = tracker.options.cursor_field
        warnings = []
        if tracker.unreadable:
            warnings.append(
                f"{list_path}: {tracker.unreadable} record(s) without a readable {field} were "
                "read but do not move the cursor"
            )
        if tracker.out_of_order and tracker.options.sorted:
            warnings.append(
                f"{list_path}: records are not in ascending order of {field} although "
                "`sorted: true`; the cursor was held back to the end of the run (check `params`)"
            )
        return warnings

    def _get(self, url: str, params: Mapping[str, Any] | None) -> httpx.Response:
        return self._client().request("GET", url, params=params, headers=self._accept())

    def _accept(self) -> dict[str, str]:
        return {"Accept": self.media_type}

    # -- writing ---------------------------------------------------------------------------------

    def write(self, target: TargetOptions, records: list[OutgoingRecord]) -> list[str | None]:
        """Create, update or delete each record's item; return each one's id in the channel."""
        if not isinstance(target, RestTargetOptions):
            raise TypeError(f"expected RestTargetOptions, got {type(target).__name__}")
        return [self._write_one(target, record) for record in records]

    def delete(self, target: TargetOptions, records: list[OutgoingRecord]) -> list[str | None]:
        """DELETE each record's item (found as for an update); one not there is deleted."""
        if not isinstance(target, RestTargetOptions):
            raise TypeError(f"expected RestTargetOptions, got {type(target).__name__}")
        return [self._delete_one(target, record) for record in records]

    def _delete_one(self, target: RestTargetOptions, record: OutgoingRecord) -> str | None:
        if target.lookup is not None:
            item_id = self._lookup(target, record)
        else:
            item_id = self._own_id(target, record)
        if item_id is not None:
            path = self._path(target, record, "delete", item_id)
            self._send(target, record, "DELETE", path, None, ok=frozenset({404, 410}))
        return item_id

    def _write_one(self, target: RestTargetOptions, record: OutgoingRecord) -> str | None:
        record = self._prepared(target, record)
        data = dict(record.data)
        if target.mode == "create":
            return self._create(target, record, data)
        if target.lookup is not None:
            item_id = self._lookup(target, record)
        else:
            item_id = self._own_id(target, record)
        if target.delete_if is not None and dig(data, target.delete_if):
            if item_id is not None:
                self._send(
                    target, record, "DELETE", self._path(target, record, "delete", item_id), None
                )
            return item_id
        if item_id is None:
            if target.mode == "update":
                raise FatalError(self._about(record, "no item matches the lookup to update"))
            return self._create(target, record, data)
        path = self._path(target, record, "update", item_id)
        missing = frozenset({404}) if target.mode == "upsert" else frozenset()
        method = target.resource.update_method
        body = self._body(target, record, data, item_id)
        response = self._send(target, record, method, path, body, ok=missing)
        if response.status_code != 404:
            return item_id
        if target.lookup is not None:
            # Found a moment ago, gone now: deleted meanwhile; create it again.
            return self._create(target, record, data)
        id_field = target.resource.id_field
        body = data if id_field in data else {**data, id_field: item_id}
        created = self._create(target, record, body)
        if created is not None and created != item_id:
            # The next version would miss it under item_id and create it once more.
            raise FatalError(
                self._about(
                    record,
                    f"created as {id_field} {created!r}, not {item_id!r}: the API assigns its own "
                    "ids, so later versions would not find the item; configure `lookup` (or "
                    "`id_from`), then retry",
                )
            )
        return item_id

    def _prepared(self, target: RestTargetOptions, record: OutgoingRecord) -> OutgoingRecord:
        """``record`` as this API wants it written (here: as mapped)."""
        del target
        return record

    def _body(
        self,
        target: RestTargetOptions,
        record: OutgoingRecord,
        data: dict[str, Any],
        item_id: str | None,
    ) -> dict[str, Any]:
        """The request body of a create (``item_id`` None) or an update (here: the data)."""
        del target, record, item_id
        return data

    def _listed(self, body: Any, resource: RestResource) -> list[Any]:
        """The items of a list answer, as a lookup compares them with a mapped record."""
        return records_at(body, resource.records_path)

    def _own_id(self, target: RestTargetOptions, record: OutgoingRecord) -> str:
        if target.id_from is None:
            return record.key
        value = dig(record.data, target.id_from)
        if value is None or value == "":
            raise FatalError(self._about(record, f"id_from {target.id_from!r} has no value"))
        return str(value)

    def _lookup(self, target: RestTargetOptions, record: OutgoingRecord) -> str | None:
        assert target.lookup is not None
        params: dict[str, str] = {}
        for param, path in target.lookup.items():
            value = dig(record.data, path)
            if value is None or value == "":
                raise FatalError(self._about(record, f"lookup field {path!r} has no value"))
            params[param] = _text(value)
        resource = target.resource
        try:
            response = self._get(str(resource.url("list")), params)
        except (HttpUnreachable, HttpRetriable, HttpRefused) as exc:
            raise self._retold(record, exc) from exc
        try:
            found = self._listed(json_body(self._channel, response), resource)
        except ValueError as exc:
            raise FatalError(self._about(record, f"lookup answer: {exc}")) from exc
        # An API may ignore a filter it does not know and list everything: the mapped record has
        # the channel's shape, so an item matches only when its fields hold the same values.
        wanted = {path: params[param] for param, path in target.lookup.items()}
        matches = [
            item
            for item in found
            if isinstance(item, dict)
            and all(_text(dig(item, path)) == value for path, value in wanted.items())
        ]
        if not matches:
            return None
        if len(matches) > 1:
            ids = ", ".join(str(item.get(resource.id_field)) for item in matches[:5])
            raise FatalError(
                self._about(record, f"lookup {params} matches {len(matches)} items ({ids})")
            )
        item_id = matches[0].get(resource.id_field)
        if item_id is None:
            raise FatalError(self._about(record, f"the item found has no {resource.id_field!r}"))
        return str(item_id)

    def _create(
        self, target: RestTargetOptions, record: OutgoingRecord, body: dict[str, Any]
    ) -> str | None:
        document = self._body(target, record, body, None)
        response = self._send(target, record, "POST", str(target.resource.url("create")), document)
        id_path = target.id_path or target.resource.id_field
        if response.content:
            try:
                answer = orjson.loads(response.content)
            except orjson.JSONDecodeError:
                answer = None
            found = dig(answer, id_path) if isinstance(answer, dict | list) else None
            if found is not None and found != "":
                return str(found)
        location = response.headers.get("Location")
        if location:
            # The raw path: an id holding an encoded '/' stays one segment.
            raw = httpx.URL(location).raw_path.decode("ascii").partition("?")[0]
            return unquote(raw.rstrip("/").rsplit("/", 1)[-1]) or None
        value = body.get(target.resource.id_field)
        return None if value is None else str(value)

    def _send(
        self,
        target: RestTargetOptions,
        record: OutgoingRecord,
        method: str,
        path: str,
        body: dict[str, Any] | None,
        ok: frozenset[int] = frozenset(),
    ) -> httpx.Response:
        headers = self._accept()
        if target.idempotency_header:
            headers[target.idempotency_header] = record.idempotency_key
        content = None
        if body is not None:
            headers["Content-Type"] = self.media_type
            try:
                content = orjson.dumps(body, default=json_default)
            except TypeError as exc:
                raise FatalError(self._about(record, f"cannot be sent as JSON: {exc}")) from exc
        if method == "DELETE":
            ok = ok | {404, 410}  # already gone is what a delete wants
        try:
            return self._client().request(method, path, content=content, headers=headers, ok=ok)
        except (HttpUnreachable, HttpRetriable, HttpRefused) as exc:
            raise self._retold(record, exc) from exc

    def _path(
        self,
        target: RestTargetOptions,
        record: OutgoingRecord,
        kind: Literal["update", "delete"],
        item: str,
    ) -> str:
        template = str(target.resource.url(kind))
        try:
            return template.replace("{id}", path_segment("id", item, lax=True))
        except DataError as exc:
            raise FatalError(self._about(record, f"the item id {exc.reason}")) from None

    def _about(self, record: OutgoingRecord, problem: str) -> str:
        return (
            f"channel {self._channel!r}: {record.entity} {record.key!r} v{record.version} "
            f"(delivery {record.delivery_id}): {problem}"
        )

    def _retold(self, record: OutgoingRecord, exc: _HttpError) -> _HttpError:
        """The same error, its message naming the record too."""
        message = self._about(record, str(exc).removeprefix(f"channel {self._channel!r}: "))
        if isinstance(exc, HttpRetriable):
            return HttpRetriable(message, exc.status, exc.retry_after, exc.category)
        if isinstance(exc, HttpUnreachable):
            return HttpUnreachable(message, exc.category)
        return HttpRefused(message, exc.status, exc.category)

    # -- real-time operations --------------------------------------------------------------------

    operation_options = RestOperationOptions

    def call(self, operation: OperationOptions, params: Mapping[str, Any]) -> Any:
        """One templated request for a caller waiting on the answer (see :mod:`.restcall`)."""
        assert isinstance(operation, RestOperationOptions)
        return call_rest(self._client(), operation, params)

    # -- the connection --------------------------------------------------------------------------

    def health(self) -> Health:
        """GET ``health_path`` (or the base URL) through the channel's auth; say what answered."""
        strict = self._options.health_path is not None
        # Without a health path the base URL may well be a 404: an answer at all is the point.
        ok = frozenset() if strict else frozenset(range(300, 500)) - {401, 403, 407}
        began = time.monotonic()
        try:
            response = self._client().request(
                "GET", self._options.health_path or "", headers=self._accept(), ok=ok
            )
        except (HttpUnreachable, HttpRetriable, HttpRefused) as exc:
            return health_of(exc)
        took = (time.monotonic() - began) * 1000
        return Health(
            True,
            f"channel {self._channel!r}: GET {plain_url(response.request.url)} answered "
            f"HTTP {response.status_code} in {took:.0f} ms",
        )

    def close(self) -> None:
        """Close the connection pool."""
        if self._http is not None:
            self._http.close()
            self._http = None

    def _client(self) -> HttpClient:
        if self._http is None:
            self._http = HttpClient(self._channel, self._options, self._base_dir)
        return self._http


def _text(value: Any) -> str:
    """A value as a query parameter or a comparison writes it (JSON's true, not Python's)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
