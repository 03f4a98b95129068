"""The ``jsonapi`` transport (system type ``oro``) against a stand-in for OroCommerce's API.

No Oro server can run here: :mod:`fakeoro` answers with the request and response shapes of
Oro's published API documentation (see its docstring), served on 127.0.0.1 by ``httpserve``.
These tests drive the transport in process; ``tests/integration/test_oro.py`` runs the presets
through real ``erpbridge`` processes with PostgreSQL as the ERP.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from erpbridge.errors import FatalError
from erpbridge.systems import system_types
from erpbridge.systems.oro.document import error_text, flatten, included_index, resource
from erpbridge.systems.oro.options import JsonApiStreamOptions, JsonApiTargetOptions
from erpbridge.systems.oro.transport import JsonApiTransport
from erpbridge.transports.base import OutgoingRecord
from erpbridge.transports.http import HttpRefused
from erpbridge.transports.rest.options import RestChannelOptions
from systems.oro.fakeoro import CLIENT_ID, CLIENT_SECRET, MEDIA, FakeOro, serve_oro


@pytest.fixture
def oro() -> Iterator[tuple[FakeOro, JsonApiTransport]]:
    with serve_oro() as (fake, url):
        options = RestChannelOptions.model_validate(
            {
                "base_url": url,
                "auth": {
                    "type": "oauth2",
                    "token_url": "/oauth2-token",
                    "client_id": CLIENT_ID,
                    "client_auth": "body",
                    "encoding": "json",
                },
                "credentials": {"client_secret": SecretStr(CLIENT_SECRET)},
            }
        )
        transport = JsonApiTransport("oro", options, Path("."))
        yield fake, transport
        transport.close()


def preset(name: str, block: str) -> dict[str, Any]:
    found: dict[str, Any] = system_types()["oro"].presets()[name][block]
    return found


def read_all(transport: JsonApiTransport, stream: JsonApiStreamOptions, cursor: Any = None) -> Any:
    batches = list(transport.read(stream, cursor, 100, frozenset()))
    return [r.data for b in batches for r in b.records], (batches[-1].cursor if batches else None)


def outgoing(data: dict[str, Any], key: str = "K", version: int = 1) -> OutgoingRecord:
    return OutgoingRecord(version, "customer", key, version, f"idem-{key}-{version}", data)


def test_the_oro_system_type_speaks_jsonapi_with_presets() -> None:
    oro = system_types()["oro"]
    assert oro.transport == "jsonapi"
    assert set(oro.presets()) == {
        "customers-from-oro",
        "orders-from-oro",
        "customers-to-oro",
        "prices-to-oro",
        "inventory-to-oro",
        "order-status-to-oro",
    }


def test_reads_customers_flattened_with_included_users_then_only_changes(
    oro: tuple[FakeOro, JsonApiTransport],
) -> None:
    fake, transport = oro
    stream = JsonApiStreamOptions.model_validate(preset("customers-from-oro", "source"))

    records, cursor = read_all(transport, stream)

    assert [r["erpCode"] for r in records] == ["C-1001", "C-1002"]  # the walk-in has none
    first = records[0]
    assert first["id"] == "1" and first["type"] == "customers" and first["name"] == "Company AB"
    assert first["users"][0]["email"] == "AmandaFCole@example.org"  # included, folded in
    assert first["users"][0]["customer"] == {"type": "customers", "id": "1"}  # no cycle
    assert first["addresses"][0]["country"] == {"type": "countries", "id": "US"}
    assert first["group"] == {"type": "customer_groups", "id": "1"}  # not included: its id
    assert cursor == {"value": "2017-08-16T10:00:00+00:00", "field": "updatedAt", "format": "time"}
    token, listing = fake.requests[0], fake.requests[1]
    assert token["path"] == "/oauth2-token" and token["body"]["grant_type"] == "client_credentials"
    assert listing["headers"]["accept"] == MEDIA
    assert listing["query"] == {
        "sort": "id",
        "filter[erpCode][exists]": "true",
        "include": "users,addresses",
        "page[number]": "1",
        "page[size]": "100",
    }

    fake.touch("customers", "1", name="Company AB GmbH")
    again, _ = read_all(transport, stream, cursor)

    assert [r["name"] for r in again] == ["Company AB GmbH", "Company AC"]  # C-1002: overlap
    assert fake.requests[-1]["query"]["filter[updatedAt][gte]"] == "2017-08-16T09:55:00Z"
    assert fake.tokens_issued == 1


def test_reads_orders_with_line_items_across_pages(oro: tuple[FakeOro, JsonApiTransport]) -> None:
    fake, transport = oro
    block = preset("orders-from-oro", "source") | {
        "pagination": {"type": "page", "page_param": "page[number]",
                       "size_param": "page[size]", "page_size": 1},
    }  # fmt: skip
    second = dict(fake.data["orders"]["1"], id="2")
    fake.data["orders"]["2"] = second
    records, _ = read_all(transport, JsonApiStreamOptions.model_validate(block))

    assert [r["id"] for r in records] == ["1", "2"]
    order = records[0]
    assert order["identifier"] == "FR1012401Z"
    assert order["customer"]["erpCode"] == "C-1001"
    assert order["lineItems"][0]["productSku"] == "4HC51"
    assert order["lineItems"][0]["quantity"] == 19
    assert order["shippingAddress"]["country"]["id"] == "US"
    pages = [r["query"].get("page[number]") for r in fake.requests if r["method"] == "GET"]
    assert pages == ["1", "2", "3"]


def test_a_refused_filter_fails_the_read_naming_the_parameter(
    oro: tuple[FakeOro, JsonApiTransport],
) -> None:
    _, transport = oro
    stream = JsonApiStreamOptions.model_validate(
        {"resource": "customers", "params": {"filter[erpCod]": "C-1"}}
    )
    with pytest.raises(HttpRefused) as caught:
        read_all(transport, stream)
    assert "HTTP 400: filter[erpCod]: filter constraint: " in str(caught.value)
    assert 'Filter \\"filter[erpCod]\\" is not supported' not in str(caught.value)
    assert 'Filter "filter[erpCod]" is not supported.' in str(caught.value)


def test_customers_are_created_then_updated_as_jsonapi_documents(
    oro: tuple[FakeOro, JsonApiTransport],
) -> None:
    fake, transport = oro
    target = JsonApiTargetOptions.model_validate(preset("customers-to-oro", "target"))

    (created,) = transport.write(target, [outgoing({"erpCode": "C-2001", "name": "Neu GmbH"})])
    (updated,) = transport.write(
        target, [outgoing({"erpCode": "C-2001", "name": "Neu AG"}, version=2)]
    )
    (existing,) = transport.write(target, [outgoing({"erpCode": "C-1002", "name": "AC Ltd"})])

    assert created == updated == "101" and existing == "2"
    post, patch, patch_existing = fake.writes()
    assert post["method"] == "POST" and post["path"] == "/admin/api/customers"
    assert post["headers"]["content-type"] == MEDIA
    assert post["body"] == {
        "data": {"type": "customers", "attributes": {"erpCode": "C-2001", "name": "Neu GmbH"}}
    }
    assert patch["path"] == "/admin/api/customers/101"
    assert patch["body"]["data"] == {
        "type": "customers",
        "id": "101",
        "attributes": {"erpCode": "C-2001", "name": "Neu AG"},
    }
    assert patch_existing["path"] == "/admin/api/customers/2"
    assert fake.data["customers"]["2"]["attributes"]["name"] == "AC Ltd"


def test_prices_find_product_and_price_list_then_upsert(
    oro: tuple[FakeOro, JsonApiTransport],
) -> None:
    fake, transport = oro
    target = JsonApiTargetOptions.model_validate(preset("prices-to-oro", "target"))

    def price(value: str, quantity: int = 24, product: str = "4HC51") -> dict[str, Any]:
        return {"priceList": "Default Price List", "product": product, "unit": "item",
                "currency": "USD", "quantity": quantity, "value": value}  # fmt: skip

    (same,) = transport.write(target, [outgoing(price("120.00"))])
    (new,) = transport.write(target, [outgoing(price("9.90", quantity=1, product="2RW93"))])

    assert same == "6390cd7b-7c1b-11e7-bda0-080027fb53ad-1"
    assert fake.data["productprices"][same]["attributes"]["value"] == "120.00"
    created = fake.data["productprices"][new]
    assert created["relationships"]["product"]["data"] == {"type": "products", "id": "24"}
    assert created["relationships"]["priceList"]["data"] == {"type": "pricelists", "id": "1"}
    looked_up = [r["query"] for r in fake.requests if r["path"] == "/admin/api/products"]
    assert looked_up == [{"filter[sku]": "4HC51"}, {"filter[sku]": "2RW93"}]
    # the price list was found once and remembered
    assert sum(r["path"] == "/admin/api/pricelists" for r in fake.requests) == 1


def test_an_unknown_product_fails_naming_the_relationship(
    oro: tuple[FakeOro, JsonApiTransport],
) -> None:
    _, transport = oro
    target = JsonApiTargetOptions.model_validate(preset("inventory-to-oro", "target"))
    with pytest.raises(FatalError) as caught:
        transport.write(target, [outgoing({"product": "NOPE-1", "quantity": 5}, key="NOPE-1|W")])
    assert "relationship product: products with filter[sku]='NOPE-1' not found; create it" in str(
        caught.value
    )

    (level,) = transport.write(target, [outgoing({"product": "2RW93", "quantity": 7})])
    assert level == "2"
    assert _attributes(oro[0], "inventorylevels", "2") == {"quantity": 7}


def _attributes(fake: FakeOro, kind: str, rid: str) -> dict[str, Any]:
    return {k: v for k, v in fake.data[kind][rid]["attributes"].items() if k != "updatedAt"}


def test_an_order_is_created_with_its_line_items_included(
    oro: tuple[FakeOro, JsonApiTransport],
) -> None:
    fake, transport = oro
    target = JsonApiTargetOptions.model_validate(
        {
            "resource": "orders",
            "type": "orders",
            "mode": "create",
            "relationships": {"customer": {"type": "customers", "lookup": "filter[erpCode]"}},
            "included": {
                "lineItems": {
                    "type": "orderlineitems",
                    "relationships": {
                        "product": {"type": "products", "lookup": "filter[sku]"},
                        "productUnit": "productunits",
                    },
                }
            },
        }
    )
    order = {
        "identifier": "SO-1",
        "currency": "USD",
        "customer": "C-1002",
        "lineItems": [
            {"productSku": "2RW93", "product": "2RW93", "productUnit": "set", "quantity": 3},
            {"productSku": "4HC51", "product": "4HC51", "productUnit": "item", "quantity": 1},
        ],
    }
    (created,) = transport.write(target, [outgoing(order, key="SO-1")])

    sent = fake.writes()[0]["body"]
    assert sent["data"]["relationships"] == {
        "customer": {"data": {"type": "customers", "id": "2"}},
        "lineItems": {"data": [{"type": "orderlineitems", "id": "lineItems-1"},
                               {"type": "orderlineitems", "id": "lineItems-2"}]},
    }  # fmt: skip
    assert sent["included"][0] == {
        "type": "orderlineitems",
        "id": "lineItems-1",
        "attributes": {"productSku": "2RW93", "quantity": 3},
        "relationships": {
            "product": {"data": {"type": "products", "id": "24"}},
            "productUnit": {"data": {"type": "productunits", "id": "set"}},
        },
    }
    stored = fake.data["orders"][created]
    items = [
        fake.data["orderlineitems"][i["id"]] for i in stored["relationships"]["lineItems"]["data"]
    ]
    assert [i["attributes"]["productSku"] for i in items] == ["2RW93", "4HC51"]


def test_a_refused_document_fails_the_delivery_naming_the_field(
    oro: tuple[FakeOro, JsonApiTransport],
) -> None:
    fake, transport = oro
    target = JsonApiTargetOptions.model_validate(preset("customers-to-oro", "target"))
    with pytest.raises(FatalError) as caught:
        transport.write(target, [outgoing({"erpCode": "C-1001", "name": ""}, key="C-1001")])
    assert str(caught.value) == (
        "channel 'oro': customer 'C-1001' v1 (delivery 1): PATCH customers/1 refused (HTTP 400): "
        "field name (/data/attributes/name): not blank constraint: This value should not be blank."
    )
    assert fake.data["customers"]["1"]["attributes"]["name"] == "Company AB"  # unchanged


def test_documents_flatten_and_build() -> None:
    body = {
        "data": [{"type": "a", "id": "1", "relationships": {"b": {"data": {"type": "b", "id": "2"}},
                                                            "c": {"links": {"self": "x"}}}}],
        "included": [{"type": "b", "id": "2", "attributes": {"n": 1},
                      "relationships": {"a": {"data": {"type": "a", "id": "1"}}}}],
    }  # fmt: skip
    flat = flatten(body["data"][0], included_index(body))  # type: ignore[index]
    assert flat == {"id": "1", "type": "a", "b": {"id": "2", "type": "b", "n": 1,
                                                  "a": {"type": "a", "id": "1"}}}  # fmt: skip
    assert resource("a", {"id": "", "x": 1, "r": None}, None, {"r": "rs"}, {}) == {
        "data": {"type": "a", "attributes": {"x": 1}, "relationships": {"r": {"data": None}}}
    }
    assert error_text({"errors": [{"status": "400", "title": "t", "detail": "d",
                                   "source": {"pointer": "/included/0/attributes/quantity"}}]}
                      ) == "field quantity (/included/0/attributes/quantity): t: d"  # fmt: skip
    assert error_text({"data": []}) is None
