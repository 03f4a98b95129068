"""The REST transport against an API simulated in memory (httpx.MockTransport): options, paths,
pagination stop rules, the changed-since cursor, and how writes create and update.

The same transport against a real server (json-server behind an API gateway) is
``tests/integration/test_rest.py``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest
from pydantic import ValidationError

from erpbridge.errors import FatalError
from erpbridge.transports import load_transport
from erpbridge.transports.base import Batch, OutgoingRecord, Transport, Writer
from erpbridge.transports.http import HttpChannelOptions, HttpClient, HttpRefused, HttpRetriable
from erpbridge.transports.rest import transport as rest_module
from erpbridge.transports.rest.cursor import CursorTracker, IncrementalOptions
from erpbridge.transports.rest.transport import (
    RestChannelOptions,
    RestResource,
    RestStreamOptions,
    RestTargetOptions,
    RestTransport,
)

Handler = Callable[[httpx.Request], httpx.Response]
BASE = "https://erp.test/api/"


def transport(monkeypatch: pytest.MonkeyPatch, handler: Handler, **options: Any) -> RestTransport:
    """A RestTransport whose HTTP client talks to ``handler`` instead of the network."""

    class Simulated(HttpClient):
        def __init__(self, channel: str, opts: HttpChannelOptions, base_dir: Path) -> None:
            super().__init__(channel, opts, base_dir)
            auth = self.client.auth
            self.client.close()
            self.client = httpx.Client(
                base_url=opts.base_url,
                transport=httpx.MockTransport(handler),
                auth=auth,
                verify=False,  # nothing goes over the network: no CA bundle to load
            )

    monkeypatch.setattr(rest_module, "HttpClient", Simulated)
    channel = RestChannelOptions.model_validate({"base_url": BASE, **options})
    return RestTransport("erp", channel, Path("/"))


def read_all(
    rest: RestTransport, source: dict[str, Any], cursor: Any = None, batch_size: int = 100
) -> list[Batch]:
    stream = RestStreamOptions.model_validate(source)
    return list(rest.read(stream, cursor, batch_size, frozenset()))


def people(n: int) -> list[dict[str, Any]]:
    return [
        {"id": i, "name": f"P{i}", "updatedAt": f"2026-01-01T10:00:{i:02d}.000Z"}
        for i in range(1, n + 1)
    ]


def query(request: httpx.Request) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(request.url.query.decode()).items()}


# -- options ---------------------------------------------------------------------------------------


def test_is_registered_and_fits_the_protocols() -> None:
    cls = load_transport("rest")
    assert cls is RestTransport
    rest = RestTransport("erp", RestChannelOptions(base_url=BASE), Path("/"))
    assert isinstance(rest, Transport)
    assert isinstance(rest, Writer)
    assert issubclass(RestChannelOptions, HttpChannelOptions)


def test_resource_paths_follow_path_unless_given() -> None:
    short = RestResource.model_validate("customers")
    assert short.url("list") == "customers"
    assert short.url("create") == "customers"
    assert short.url("item") == "customers/{id}"
    assert short.url("update") == "customers/{id}"
    assert short.url("delete") == "customers/{id}"
    own = RestResource(
        path="customers", list_path="customers/search", update_path="customers/{id}/edit"
    )
    assert (own.url("list"), own.url("update"), own.url("delete")) == (
        "customers/search",
        "customers/{id}/edit",
        "customers/{id}",
    )


def test_option_mistakes_are_refused_with_a_reason() -> None:
    with pytest.raises(ValidationError, match=r"item_path 'customers/x' needs an \{id\}"):
        RestResource(item_path="customers/x")
    with pytest.raises(ValidationError, match="resource needs `path` or `list_path`"):
        RestStreamOptions.model_validate({"resource": {"create_path": "customers"}})
    with pytest.raises(ValidationError, match="mode create never updates"):
        RestTargetOptions.model_validate(
            {"resource": "customers", "mode": "create", "lookup": {"code": "code"}}
        )
    with pytest.raises(ValidationError, match="mode create never finds one"):
        RestTargetOptions.model_validate(
            {"resource": "customers", "mode": "create", "delete_if": "deleted"}
        )
    with pytest.raises(ValidationError, match="`update_path`"):
        RestTargetOptions.model_validate({"resource": {"create_path": "customers"}})
    with pytest.raises(ValidationError, match="format must be one of"):
        IncrementalOptions(cursor_field="u", changed_since_param="u_gte", format="isoish")
    with pytest.raises(ValidationError, match="needs credentials: api_key"):
        RestChannelOptions.model_validate({"base_url": BASE, "auth": {"type": "api_key"}})
    with pytest.raises(ValidationError, match="Extra inputs"):
        RestStreamOptions.model_validate({"resource": "c", "pagination": {"type": "page", "x": 1}})


# -- pagination ------------------------------------------------------------------------------------


def paged_api(data: list[dict[str, Any]], cap: int = 1000) -> tuple[Handler, list[str]]:
    """A list API with every pagination style; ``cap`` limits the page size like many APIs."""
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(str(request.url))
        q = query(request)
        if "page" in q:
            size = min(int(q.get("per_page", 10)), cap)
            start = (int(q["page"]) - 1) * size
            return httpx.Response(200, json=data[start : start + size])
        if "offset" in q:
            start, size = int(q["offset"]), min(int(q["limit"]), cap)
            return httpx.Response(
                200, json={"items": data[start : start + size]}, headers={"X-Total": str(len(data))}
            )
        size = min(int(q.get("limit", 3)), cap)
        start = int(q.get("cursor", "0"))
        end = start + size
        more = end < len(data)
        body = {
            "data": data[start:end],
            "next": str(end) if more else None,
            "links": {"next": f"/api/people?limit={size}&cursor={end}" if more else None},
        }
        headers = {"Link": f'<{BASE}people?cursor={end}&limit={size}>; rel="next"'} if more else {}
        return httpx.Response(200, json=body, headers=headers)

    return handler, seen


CURSOR = {"type": "cursor", "cursor_path": "next", "size_param": "limit", "page_size": 3}
NEXT_URL = {"type": "next_url", "next_path": "links.next", "size_param": "limit", "page_size": 3}


@pytest.mark.parametrize(
    ("pagination", "records_path", "requests"),
    [
        ({"type": "page", "page_size": 3}, "", 3),
        ({"type": "offset", "page_size": 3}, "items", 3),
        ({"type": "offset", "page_size": 3, "total_header": "X-Total"}, "items", 3),
        (CURSOR, "data", 3),
        (NEXT_URL, "data", 3),
        ({"type": "link", "size_param": "limit", "page_size": 3}, "data", 3),
    ],
)
def test_every_pagination_style_reads_all_pages(
    monkeypatch: pytest.MonkeyPatch, pagination: dict[str, Any], records_path: str, requests: int
) -> None:
    handler, seen = paged_api(people(7))
    rest = transport(monkeypatch, handler)
    source = {"resource": {"path": "people", "records_path": records_path}}
    batches = read_all(rest, {**source, "pagination": pagination})
    assert [r.data["id"] for b in batches for r in b.records] == list(range(1, 8))
    assert len(seen) == requests


@pytest.mark.parametrize("style", ["page", "offset"])
def test_a_capped_page_size_does_not_end_the_list(
    monkeypatch: pytest.MonkeyPatch, style: str
) -> None:
    # The API returns at most 2 where 5 were asked: a short first page is not the end.
    handler, seen = paged_api(people(7), cap=2)
    rest = transport(monkeypatch, handler)
    records_path = "items" if style == "offset" else ""
    source = {
        "resource": {"path": "people", "records_path": records_path},
        "pagination": {"type": style, "page_size": 5},
    }
    batches = read_all(rest, source)
    assert [r.data["id"] for b in batches for r in b.records] == list(range(1, 8))
    assert len(seen) == 4  # 2 + 2 + 2 + 1: the shorter last page ends it


def test_an_exactly_full_last_page_costs_one_empty_page(monkeypatch: pytest.MonkeyPatch) -> None:
    handler, seen = paged_api(people(6))
    rest = transport(monkeypatch, handler)
    batches = read_all(rest, {"resource": "people", "pagination": {"type": "page", "page_size": 3}})
    assert sum(len(b.records) for b in batches) == 6
    assert len(seen) == 3


def test_a_page_parameter_the_api_ignores_is_a_loop_not_forever(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    rest = transport(monkeypatch, lambda request: httpx.Response(200, json=people(3)))
    with pytest.raises(HttpRefused, match="page 2 repeats page 1") as caught:
        read_all(rest, {"resource": "people", "pagination": {"type": "page", "page_size": 3}})
    assert caught.value.category == "protocol"


def test_a_cursor_seen_before_is_a_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    body = {"data": people(1), "next": "same"}
    rest = transport(monkeypatch, lambda request: httpx.Response(200, json=body))
    source = {
        "resource": {"path": "people", "records_path": "data"},
        "pagination": {"type": "cursor", "cursor_path": "next"},
    }
    with pytest.raises(HttpRefused, match="was read before"):
        read_all(rest, source)


def test_a_next_link_off_the_channel_is_not_followed(monkeypatch: pytest.MonkeyPatch) -> None:
    headers = {"Link": '<https://evil.test/steal?page=2>; rel="next"'}
    rest = transport(monkeypatch, lambda r: httpx.Response(200, json=people(1), headers=headers))
    with pytest.raises(HttpRefused, match=r"leads to https://evil.test/steal, off the channel"):
        read_all(rest, {"resource": "people", "pagination": {"type": "link"}})


def test_answers_in_the_wrong_shape_name_the_place(monkeypatch: pytest.MonkeyPatch) -> None:
    rest = transport(monkeypatch, lambda r: httpx.Response(200, json={"data": {"rows": []}}))
    with pytest.raises(HttpRefused, match=r"records_path 'data.items': no key 'items' at data"):
        read_all(rest, {"resource": {"path": "people", "records_path": "data.items"}})
    html = transport(monkeypatch, lambda r: httpx.Response(200, html="<html>login</html>"))
    with pytest.raises(HttpRefused, match=r"GET https://erp.test/api/people answered HTTP 200 with "
                       r"a body that is not JSON \(text/html"):  # fmt: skip
        read_all(html, {"resource": "people"})


def test_items_that_are_not_objects_are_rejected_on_their_own(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    rest = transport(monkeypatch, lambda r: httpx.Response(200, json=[{"id": 1}, "oops", None]))
    (batch,) = read_all(rest, {"resource": "people"})
    assert [r.position for r in batch.records] == ["people#id=1"]
    assert [(p.position, p.reason) for p in batch.problems] == [
        ("people page 1 item 2", "item is str, not a JSON object"),
        ("people page 1 item 3", "item is NoneType, not a JSON object"),
    ]


def test_the_api_key_in_the_query_never_shows_in_messages(monkeypatch: pytest.MonkeyPatch) -> None:
    rest = transport(
        monkeypatch,
        lambda r: httpx.Response(200, text="not json"),
        auth={"type": "api_key", "in": "query", "name": "key"},
        credentials={"api_key": "s3cret"},
    )
    with pytest.raises(HttpRefused) as caught:
        read_all(rest, {"resource": "people"})
    assert "s3cret" not in str(caught.value)


# -- the changed-since cursor ----------------------------------------------------------------------

INCREMENTAL = {"cursor_field": "updatedAt", "changed_since_param": "since"}


def stored(value: str) -> dict[str, Any]:
    return {"field": "updatedAt", "format": "time", "value": value}


@pytest.mark.parametrize(
    ("fmt", "overlap", "sent"),
    [
        ("iso", 0, "2026-03-01T12:00:05.123Z"),
        ("iso", 10, "2026-03-01T11:59:55.123Z"),
        ("epoch_s", 0, "1772366405"),
        ("epoch_ms", 0, "1772366405123"),
        ("date", 0, "2026-03-01"),
        ("%d.%m.%Y %H:%M", 0, "01.03.2026 12:00"),
    ],
)
def test_changed_since_is_written_in_the_format_and_rounded_down(
    fmt: str, overlap: float, sent: str
) -> None:
    options = IncrementalOptions.model_validate(
        {**INCREMENTAL, "format": fmt, "overlap_s": overlap}
    )
    tracker = CursorTracker(options, stored("2026-03-01T12:00:05.123987+00:00"))
    assert tracker.params() == {"since": sent}


def test_raw_cursors_are_sent_as_found_and_overlap_counts_units() -> None:
    options = IncrementalOptions.model_validate({**INCREMENTAL, "format": "raw", "overlap_s": 2})
    tracker = CursorTracker(options, None)
    assert tracker.params() == {}
    for value in (7, 12, 9):
        tracker.see({"updatedAt": value})
    assert tracker.cursor() == {"field": "updatedAt", "format": "raw", "value": 12}
    assert CursorTracker(options, tracker.cursor()).params() == {"since": "10"}


def test_the_cursor_is_the_highest_value_seen_in_any_notation() -> None:
    tracker = CursorTracker(IncrementalOptions.model_validate(INCREMENTAL), None)
    tracker.see({"updatedAt": "2026-01-01T10:00:00Z"})
    tracker.see({"updatedAt": "2026-01-01T12:00:00+02:00"})  # 10:00 UTC: not higher
    tracker.see({"updatedAt": 1767261600})  # epoch seconds: 2026-01-01T10:00:00Z
    tracker.see({"updatedAt": "2026-01-01T10:00:01"})  # naive: taken as UTC
    tracker.see({"updatedAt": "yesterday"})
    tracker.see({})
    assert tracker.highest == datetime(2026, 1, 1, 10, 0, 1, tzinfo=UTC)
    assert tracker.unreadable == 2
    assert not tracker.out_of_order


def test_a_stored_cursor_of_another_field_is_refused() -> None:
    options = IncrementalOptions.model_validate({**INCREMENTAL, "cursor_field": "modified"})
    with pytest.raises(FatalError, match="reset the flow's cursor"):
        CursorTracker(options, stored("2026-01-01T00:00:00+00:00"))


def changing_api(data: list[dict[str, Any]]) -> tuple[Handler, list[dict[str, str]]]:
    asked: list[dict[str, str]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        q = query(request)
        asked.append(q)
        rows = [d for d in data if "since" not in q or d["updatedAt"] >= q["since"]]
        start = (int(q.get("page", 1)) - 1) * 2
        return httpx.Response(200, json=rows[start : start + 2])

    return handler, asked


def test_unsorted_lists_commit_the_cursor_with_the_last_batch_only(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    handler, asked = changing_api(list(reversed(people(5))))
    rest = transport(monkeypatch, handler)
    source = {
        "resource": "people",
        "pagination": {"type": "page", "page_size": 2},
        "incremental": INCREMENTAL,
    }
    batches = read_all(rest, source, batch_size=2)
    assert [len(b.records) for b in batches] == [2, 2, 1]
    # a crash after batch 1 must not skip 1..3, which came later: only the end moves the cursor
    assert [b.cursor for b in batches[:-1]] == [None, None]
    assert batches[-1].cursor == stored("2026-01-01T10:00:05+00:00")
    assert "since" not in asked[0]

    again = read_all(rest, source, cursor=batches[-1].cursor)
    assert asked[-1]["since"] == "2026-01-01T10:00:05.000Z"
    assert [r.data["id"] for b in again for r in b.records] == [5]  # >=: the boundary again


def test_sorted_lists_commit_the_cursor_with_every_batch(monkeypatch: pytest.MonkeyPatch) -> None:
    handler, _ = changing_api(people(5))
    rest = transport(monkeypatch, handler)
    source = {
        "resource": "people",
        "pagination": {"type": "page", "page_size": 2},
        "incremental": {**INCREMENTAL, "sorted": True},
    }
    batches = read_all(rest, source, batch_size=2)
    assert [b.cursor["value"][17:19] for b in batches] == ["02", "04", "05"]
    assert not any(b.warnings for b in batches)


def test_sorted_lists_out_of_order_hold_the_cursor_and_say_so(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    data = people(7)
    data[3], data[5] = data[5], data[3]  # 1 2 3 6 5 4 7
    handler, _ = changing_api(data)
    rest = transport(monkeypatch, handler)
    source = {
        "resource": "people",
        "pagination": {"type": "page", "page_size": 2},
        "incremental": {**INCREMENTAL, "sorted": True},
    }
    batches = read_all(rest, source, batch_size=2)
    # 1 2 went out before the disorder showed (in 5, while 3 6 was still held back)
    assert [b.cursor and b.cursor["value"][17:19] for b in batches] == ["02", None, None, "07"]
    assert "not in ascending order of updatedAt" in batches[-1].warnings[0]


def test_nothing_read_keeps_the_stored_cursor(monkeypatch: pytest.MonkeyPatch) -> None:
    handler, _ = changing_api(people(2))
    rest = transport(monkeypatch, handler)
    source = {"resource": "people", "incremental": INCREMENTAL}
    assert read_all(rest, source, cursor=stored("2027-01-01T00:00:00+00:00")) == []


# -- writing ---------------------------------------------------------------------------------------


def record(key: str = "C-1", version: int = 1, **data: Any) -> OutgoingRecord:
    return OutgoingRecord(
        delivery_id=10 + version,
        entity="customer",
        key=key,
        version=version,
        idempotency_key=f"customers-out:{key}:{version}",
        data=data or {"code": key, "name": "Anna"},
    )


def write(rest: RestTransport, target: dict[str, Any], records: list[OutgoingRecord]) -> Any:
    return rest.write(RestTargetOptions.model_validate(target), records)


class Api:
    """An item store with json-server's manners: PUT to a missing id is 404, POST adds."""

    def __init__(self, items: list[dict[str, Any]] | None = None) -> None:
        self.items = {str(i["id"]): i for i in items or []}
        self.log: list[tuple[str, str, dict[str, str], Any]] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content) if request.content else None
        path = request.url.path.removeprefix("/api/customers").strip("/")
        raw_path = request.url.raw_path.decode().partition("?")[0]
        self.log.append((request.method, raw_path, dict(request.headers), body))
        if request.method == "GET":
            q = query(request)
            found = [
                i for i in self.items.values() if all(str(i.get(k)) == v for k, v in q.items())
            ]
            return httpx.Response(200, json=found)
        if request.method == "POST":
            item = {"id": body.get("id", len(self.items) + 100), **body}
            self.items[str(item["id"])] = item
            return httpx.Response(201, json=item)
        if path not in self.items:
            return httpx.Response(404, json={})
        if request.method == "DELETE":
            del self.items[path]
            return httpx.Response(200, json={})
        merged = {**self.items[path], **body} if request.method == "PATCH" else body
        self.items[path] = {**merged, "id": self.items[path]["id"]}
        return httpx.Response(200, json=self.items[path])


def test_upsert_creates_under_the_hub_key_then_updates(monkeypatch: pytest.MonkeyPatch) -> None:
    api = Api()
    rest = transport(monkeypatch, api)
    assert write(rest, {"resource": "customers"}, [record()]) == ["C-1"]
    assert [(m, p) for m, p, _, _ in api.log] == [
        ("PUT", "/api/customers/C-1"),
        ("POST", "/api/customers"),
    ]
    assert api.log[1][3] == {"code": "C-1", "name": "Anna", "id": "C-1"}
    assert api.log[1][2]["idempotency-key"] == "customers-out:C-1:1"

    api.log.clear()
    assert write(rest, {"resource": "customers"}, [record(version=2, code="C-1", name="B")]) == [
        "C-1"
    ]
    assert [(m, p) for m, p, _, _ in api.log] == [("PUT", "/api/customers/C-1")]
    assert api.items["C-1"]["name"] == "B"


@pytest.mark.parametrize("key", ["..", ".", "%2e%2E", "%2E.", ""])
def test_an_item_id_that_would_change_the_path_is_fatal_and_sends_nothing(
    monkeypatch: pytest.MonkeyPatch, key: str
) -> None:
    api = Api()
    rest = transport(monkeypatch, api)
    with pytest.raises(FatalError, match=r"the item id .*would change the request's path"):
        write(rest, {"resource": "customers"}, [record(key=key, code=key, name="Anna")])
    assert api.log == []


def test_upsert_by_lookup_updates_the_server_id_and_creates_without_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    api = Api([{"id": 7, "code": "C-1", "name": "Old"}])
    rest = transport(monkeypatch, api)
    target = {
        "resource": {"path": "customers", "update_method": "PATCH"},
        "lookup": {"code": "code"},
        "idempotency_header": None,
    }
    ids = write(rest, target, [record(), record("C-2", code="C-2", name="Bob")])
    assert ids == ["7", "101"]
    assert [(m, p) for m, p, _, _ in api.log] == [
        ("GET", "/api/customers"),
        ("PATCH", "/api/customers/7"),
        ("GET", "/api/customers"),
        ("POST", "/api/customers"),
    ]
    assert "idempotency-key" not in api.log[1][2]
    assert api.log[3][3] == {"code": "C-2", "name": "Bob"}  # the server picks the id


def test_a_lookup_the_api_ignores_does_not_update_a_stranger(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    stranger = {"id": 1, "code": "C-77", "name": "Someone else"}
    api = Api([stranger])

    def ignores_filters(request: httpx.Request) -> httpx.Response:
        if request.method == "GET":
            return httpx.Response(200, json=list(api.items.values()))
        return api(request)

    rest = transport(monkeypatch, ignores_filters)
    write(rest, {"resource": "customers", "lookup": {"code": "code"}}, [record()])
    assert api.items["1"] == stranger
    assert {i["code"] for i in api.items.values()} == {"C-77", "C-1"}


def test_an_ambiguous_lookup_is_an_error_naming_the_record(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    twins = [{"id": 1, "code": "C-1"}, {"id": 2, "code": "C-1"}]
    rest = transport(monkeypatch, Api(twins))
    with pytest.raises(FatalError, match=r"customer 'C-1' v1 \(delivery 11\): lookup .* matches 2"):
        write(rest, {"resource": "customers", "lookup": {"code": "code"}}, [record()])


def test_an_api_that_ignores_the_id_is_stopped_after_the_first_create(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def own_ids(request: httpx.Request) -> httpx.Response:
        if request.method == "PUT":
            return httpx.Response(404, json={})
        return httpx.Response(201, json={**json.loads(request.content), "id": 5001})

    rest = transport(monkeypatch, own_ids)
    with pytest.raises(FatalError, match=r"created as id '5001', not 'C-1'.*configure `lookup`"):
        write(rest, {"resource": "customers"}, [record()])


def test_update_mode_refuses_a_missing_item(monkeypatch: pytest.MonkeyPatch) -> None:
    rest = transport(monkeypatch, Api())
    with pytest.raises(HttpRefused) as caught:
        write(rest, {"resource": "customers", "mode": "update"}, [record()])
    assert caught.value.category == "schema"
    assert str(caught.value).startswith("channel 'erp': customer 'C-1' v1 (delivery 11): PUT ")


def test_create_mode_returns_the_id_of_the_location_header(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def created(request: httpx.Request) -> httpx.Response:
        return httpx.Response(201, headers={"Location": "/api/orders/SO%2F42"})

    rest = transport(monkeypatch, created)
    target = {"resource": {"create_path": "orders"}, "mode": "create"}
    assert write(rest, target, [record(number="SO/42")]) == ["SO/42"]


def test_create_answer_id_path_and_decimals_as_text(monkeypatch: pytest.MonkeyPatch) -> None:
    sent: list[bytes] = []

    def created(request: httpx.Request) -> httpx.Response:
        sent.append(request.content)
        return httpx.Response(201, json={"result": {"orderId": 901}})

    rest = transport(monkeypatch, created)
    target = {"resource": "orders", "mode": "create", "id_path": "result.orderId"}
    assert write(rest, target, [record(total=Decimal("19.90"))]) == ["901"]
    assert json.loads(sent[0]) == {"total": "19.90"}


def test_delete_if_deletes_and_already_gone_is_fine(monkeypatch: pytest.MonkeyPatch) -> None:
    api = Api([{"id": "C-1", "code": "C-1"}])
    rest = transport(monkeypatch, api)
    target = {"resource": "customers", "delete_if": "deleted"}
    gone = record(code="C-1", deleted=True)
    assert write(rest, target, [gone, gone]) == ["C-1", "C-1"]
    assert api.items == {}
    assert [m for m, _, _, _ in api.log] == ["DELETE", "DELETE"]


def test_429_on_a_write_is_retriable_with_its_retry_after(monkeypatch: pytest.MonkeyPatch) -> None:
    def limited(request: httpx.Request) -> httpx.Response:
        return httpx.Response(429, json={"error": "slow down"}, headers={"Retry-After": "7"})

    rest = transport(monkeypatch, limited)
    with pytest.raises(HttpRetriable) as caught:
        write(rest, {"resource": "customers"}, [record()])
    assert caught.value.retry_after == 7
    assert "customer 'C-1' v1 (delivery 11): PUT https://erp.test/api/customers/C-1" in str(
        caught.value
    )
    assert "HTTP 429" in str(caught.value)


def test_ids_with_slashes_are_one_path_segment(monkeypatch: pytest.MonkeyPatch) -> None:
    api = Api([{"id": "A/B", "code": "A/B"}])
    rest = transport(monkeypatch, api)
    write(rest, {"resource": "customers"}, [record("A/B", code="A/B", name="x")])
    assert api.log[0][1] == "/api/customers/A%2FB"


# -- health ----------------------------------------------------------------------------------------


def test_health_takes_any_answer_from_the_base_url_but_not_401(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    rest = transport(monkeypatch, lambda r: httpx.Response(404, json={}))
    health = rest.health()
    assert health.ok
    assert "GET https://erp.test/api/ answered HTTP 404" in health.detail
    refused = transport(monkeypatch, lambda r: httpx.Response(401, json={"error": "who?"}))
    assert (refused.health().ok, refused.health().category) == (False, "auth")


def test_health_path_must_answer_2xx(monkeypatch: pytest.MonkeyPatch) -> None:
    rest = transport(monkeypatch, lambda r: httpx.Response(404, json={}), health_path="status")
    health = rest.health()
    assert (health.ok, health.category) == (False, "schema")
    assert "GET https://erp.test/api/status answered HTTP 404" in health.detail
