"""The ``jsonapi`` transport: a JSON:API service read and written through the REST transport.

Everything HTTP — auth (OAuth 2.0 client credentials among them), TLS, paging, the changed-since
cursor, lookups, upserts — is the REST transport's (:mod:`erpbridge.transports.rest`). This class
adds what JSON:API changes: the ``application/vnd.api+json`` media type, ``include`` on reads,
resource objects flattened to records (:func:`.document.flatten`), writes sent as JSON:API
documents (:func:`.document.resource`), relationships found by a business key before a write,
and ``errors`` objects turned into messages that name the field (``source.pointer``).

A 400, 409 or 422 answer to a write is the service refusing that document: the delivery fails for
good (dead, with the errors), since sending it again cannot help. The same answer to a read fails
the run, naming the query parameter the service refused.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import httpx

from erpbridge.errors import FatalError
from erpbridge.systems.oro.document import error_text, flatten, identified, included_index, resource
from erpbridge.systems.oro.options import (
    JsonApiRelationship,
    JsonApiStreamOptions,
    JsonApiTargetOptions,
)
from erpbridge.transports.base import (
    Batch,
    CursorValue,
    OutgoingRecord,
    StreamOptions,
    TargetOptions,
)
from erpbridge.transports.http import HttpRefused, HttpRetriable, HttpUnreachable
from erpbridge.transports.rest.cursor import dig
from erpbridge.transports.rest.options import (
    RestChannelOptions,
    RestResource,
    RestTargetOptions,
)
from erpbridge.transports.rest.paging import Page, json_body, plain_url
from erpbridge.transports.rest.transport import RestTransport

__all__ = ["JsonApiTransport"]

#: Answers that refuse the request itself (JSON:API: a bad document or query, a conflict).
_REFUSALS = frozenset({400, 409, 422})
_FILTER_NAME = re.compile(r"^filter\[([^\]]+)\](?:\[[a-z_]+\])?$")


class JsonApiTransport(RestTransport):
    """Reads and writes the resources of one JSON:API channel."""

    stream_options: type[StreamOptions] = JsonApiStreamOptions
    target_options: type[TargetOptions] = JsonApiTargetOptions
    media_type = "application/vnd.api+json"

    def __init__(self, channel: str, options: RestChannelOptions, base_dir: Path) -> None:
        super().__init__(channel, options, base_dir)
        #: (type, lookup, value) → id of related resources found so far (they rarely move).
        self._related: dict[tuple[str, str, str], str] = {}

    # -- reading ---------------------------------------------------------------------------------

    def read(
        self,
        stream: StreamOptions,
        cursor: CursorValue,
        batch_size: int,
        required_fields: frozenset[str],
    ) -> Iterator[Batch]:
        """Yield the collection's resources as flat records, included ones folded in."""
        if not isinstance(stream, JsonApiStreamOptions):
            raise TypeError(f"expected JsonApiStreamOptions, got {type(stream).__name__}")
        if stream.include:
            params = {**stream.params, "include": ",".join(stream.include)}
            stream = stream.model_copy(update={"params": params})
        return super().read(stream, cursor, batch_size, required_fields)

    def _page_items(self, page: Page) -> list[Any]:
        included = included_index(page.body)
        return [flatten(item, included) if isinstance(item, dict) else item for item in page.items]

    def _get(self, url: str, params: Mapping[str, Any] | None) -> httpx.Response:
        response = self._client().request(
            "GET", url, params=params, headers=self._accept(), ok=_REFUSALS
        )
        if response.status_code in _REFUSALS:
            raise HttpRefused(
                f"channel {self._channel!r}: GET {plain_url(response.request.url)} answered "
                f"HTTP {response.status_code}: {self._refusal(response)}",
                response.status_code,
                "error",
            )
        return response

    # -- writing ---------------------------------------------------------------------------------

    def write(self, target: TargetOptions, records: list[OutgoingRecord]) -> list[str | None]:
        """Create or update each record's resource; return each one's id."""
        if not isinstance(target, JsonApiTargetOptions):
            raise TypeError(f"expected JsonApiTargetOptions, got {type(target).__name__}")
        return super().write(target, records)

    def _prepared(self, target: RestTargetOptions, record: OutgoingRecord) -> OutgoingRecord:
        """``record`` with each relationship found by a business key replaced by its id."""
        assert isinstance(target, JsonApiTargetOptions)
        data = self._resolved(record, dict(record.data), target.relationships, "")
        for name, block in target.included.items():
            members = data.get(name)
            if not block.relationships or members is None:
                continue
            many = members if isinstance(members, list) else [members]
            resolved = [
                self._resolved(record, dict(m), block.relationships, f"{name}[{n}].")
                if isinstance(m, dict)
                else m
                for n, m in enumerate(many)
            ]
            data[name] = resolved if isinstance(members, list) else resolved[0]
        return dataclasses.replace(record, data=data)

    def _resolved(
        self,
        record: OutgoingRecord,
        data: dict[str, Any],
        relationships: Mapping[str, JsonApiRelationship],
        where: str,
    ) -> dict[str, Any]:
        for name, relationship in relationships.items():
            value = data.get(name)
            if relationship.lookup is None or value is None or value == "":
                continue
            field = where + name
            if isinstance(value, list):
                data[name] = [self._related_id(record, field, relationship, v) for v in value]
            else:
                data[name] = self._related_id(record, field, relationship, value)
        return data

    def _related_id(
        self, record: OutgoingRecord, field: str, relationship: JsonApiRelationship, value: Any
    ) -> str:
        assert relationship.lookup is not None
        text = _text(value)
        cached = (relationship.type, relationship.lookup, text)
        if cached in self._related:
            return self._related[cached]
        try:
            path = relationship.path or relationship.type
            response = self._get(path, {relationship.lookup: text})
        except (HttpUnreachable, HttpRetriable, HttpRefused) as exc:
            raise self._retold(record, exc) from exc
        body = json_body(self._channel, response)
        items = body.get("data") if isinstance(body, dict) else None
        listed = items if isinstance(items, list) else []
        found = [identified(i) for i in listed if isinstance(i, dict)]
        named = _FILTER_NAME.match(relationship.lookup)
        if named:  # a service that ignores a filter lists everything: keep only true matches
            attribute = named.group(1)
            found = [i for i in found if attribute not in i or _text(dig(i, attribute)) == text]
        about = f"relationship {field}: {relationship.type} with {relationship.lookup}={text!r}"
        if not found:
            # Failed for good, not retried: the worker retries a whole batch on a retriable
            # error, and one missing product would take its batch's good prices down with it.
            raise FatalError(
                self._about(record, f"{about} not found; create it, then retry the delivery")
            )
        if len(found) > 1:
            ids = ", ".join(str(i.get("id")) for i in found[:5])
            raise FatalError(self._about(record, f"{about} matches {len(found)} ({ids})"))
        self._related[cached] = str(found[0]["id"])
        return self._related[cached]

    def _body(
        self,
        target: RestTargetOptions,
        record: OutgoingRecord,
        data: dict[str, Any],
        item_id: str | None,
    ) -> dict[str, Any]:
        assert isinstance(target, JsonApiTargetOptions)
        included = {
            name: (block.type, {n: r.type for n, r in block.relationships.items()})
            for name, block in target.included.items()
        }
        kinds = {name: r.type for name, r in target.relationships.items()}
        return resource(target.type, data, item_id, kinds, included)

    def _listed(self, body: Any, resource: RestResource) -> list[Any]:
        items = super()._listed(body, resource)
        return [identified(item) if isinstance(item, dict) else item for item in items]

    def _send(
        self,
        target: RestTargetOptions,
        record: OutgoingRecord,
        method: str,
        path: str,
        body: dict[str, Any] | None,
        ok: frozenset[int] = frozenset(),
    ) -> httpx.Response:
        response = super()._send(target, record, method, path, body, ok | _REFUSALS)
        status = response.status_code
        if status in _REFUSALS and status not in ok:
            raise FatalError(
                self._about(
                    record, f"{method} {path} refused (HTTP {status}): {self._refusal(response)}"
                )
            )
        return response

    def _refusal(self, response: httpx.Response) -> str:
        """The answer's JSON:API errors, or the start of its body."""
        try:
            text = error_text(json_body(self._channel, response))
        except HttpRefused:
            text = None
        if text is None:
            raw = response.content[:300].decode("utf-8", "replace")
            text = " ".join(raw.split()) or "(empty body)"
        return text


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
