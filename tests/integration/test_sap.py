"""System type ``sap``: every OData flow preset against a real SAP CAP service (scripts/cap.sh)
with S/4HANA's entity and field names, over V2 (S/4HANA's protocol, the presets as they are)
and V4 (the same presets, the prices filter written in V4).

Each test changes data through the service's own OData API, runs the preset flow through the
real engine (IN: FlowRunner; OUT: the real Worker), checks the other side field by field, and
runs again to see that nothing changes. Bad input: a status code the value map does not know,
an order the service refuses.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
import pytest
from sqlalchemy import Engine, select

from erpbridge import FlowRunner, load_config, open_store
from erpbridge.config.loader import LoadedConfig
from erpbridge.store.tables import bindings, records, rejected
from integration.cap_service import PASSWORD, USER, Service
from integration.ledger import deliver, ledger
from integration.servers import require_server
from integration.versions import actions

API = {
    "s4_bp": "API_BUSINESS_PARTNER",
    "s4_products": "API_PRODUCT_SRV",
    "s4_prices": "API_SLSPRICINGCONDITIONRECORD_SRV",
    "s4_sales": "API_SALES_ORDER_SRV",
}
# The prices preset filters in V2 syntax (S/4HANA's); on a V4 path the filter is written anew.
V4_PRICES = """
    source:
      entity_set: A_SlsPrcgCndnRecdValidity
      filter: "ConditionType eq 'PR00' and ConditionValidityEndDate eq 9999-12-31"
      expand: [to_SlsPrcgConditionRecord]"""
FLOWS = """
  - {{preset: customers-in, channel: s4_bp}}
  - {{preset: products-in, channel: s4_products}}
  - preset: prices-in
    channel: s4_prices{prices}
  - preset: orders-out
    channel: s4_sales
    retry: {{max_attempts: 3, backoff_s: 0.001, min_delay_s: 0}}
  - {{preset: order-status-in, channel: s4_sales}}
  - name: orders-from-shop
    channel: shop
    entity: order
    direction: in
    source: {{pattern: "*.json"}}
"""


@pytest.fixture(scope="module")
def cap() -> str:
    return require_server("ERPBRIDGE_TEST_CAP_URL", "the SAP CAP OData service (scripts/cap.sh)")


@pytest.fixture(params=["2", "4"])
def version(request: pytest.FixtureRequest) -> str:
    value: str = request.param
    return value


@pytest.fixture
def service(cap: str) -> Iterator[Service]:
    own = Service(cap)
    yield own
    own.client.close()


@pytest.fixture
def hub(tmp_path: Path, cap: str, version: str) -> Iterator[tuple[LoadedConfig, Engine]]:
    """A configuration that switches every preset on, the way a user would, and its store."""
    (tmp_path / "inbox").mkdir()
    channels = "".join(
        f"""
  {name}:
    system: sap
    options:
      base_url: "{cap}/odata/v{version}/{api}/"
      version: "{version}"
      auth: {{type: basic, username: {USER}}}
    credentials: {{password: "${{CAP_PASSWORD}}"}}"""
        for name, api in API.items()
    )
    text = (
        f'hub: {{database_url: "sqlite:///{tmp_path / "hub.db"}"}}\nchannels:{channels}\n'
        "  shop:\n    system: folder\n    options: {path: inbox}\nflows:"
        + FLOWS.format(prices=V4_PRICES if version == "4" else "")
    )
    path = tmp_path / "erpbridge.yaml"
    path.write_text(text, encoding="utf-8")
    engine = open_store(f"sqlite:///{tmp_path / 'hub.db'}")
    yield load_config(path, env={"CAP_PASSWORD": PASSWORD}), engine
    engine.dispose()


def unique(prefix: str) -> str:
    return prefix + uuid.uuid4().hex[:7].upper()  # at most 10 characters, as the keys allow


def payload_of(engine: Engine, entity: str, key: str) -> dict[str, Any] | None:
    with engine.connect() as conn:
        row = conn.execute(
            select(records.c.payload).where(records.c.entity == entity, records.c.key == key)
        ).scalar_one_or_none()
    return None if row is None else dict(orjson.loads(row))


def moment(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def bound(engine: Engine, channel: str, entity: str) -> set[str]:
    with engine.connect() as conn:
        rows = conn.execute(
            select(bindings.c.external_id).where(
                bindings.c.channel == channel, bindings.c.entity == entity
            )
        )
        return {r.external_id for r in rows}


# -- customers ---------------------------------------------------------------------------------


def test_customers_in_reads_partners_with_a_customer_number(
    hub: tuple[LoadedConfig, Engine], service: Service
) -> None:
    config, engine = hub
    code, supplier = unique("C"), unique("V")
    service.post(
        "API_BUSINESS_PARTNER/A_BusinessPartner",
        {
            "BusinessPartner": code,
            "Customer": code,
            "BusinessPartnerCategory": "2",
            "BusinessPartnerFullName": "Nordwind Handel GmbH",
            "OrganizationBPName1": "Nordwind Handel GmbH",
            "to_BusinessPartnerAddress": [
                {"AddressID": "1", "StreetName": "Am Sandtorkai", "HouseNumber": "5",
                 "PostalCode": "20457", "CityName": "Hamburg", "Country": "DE"},
                {"AddressID": "2", "StreetName": "Ringstraße", "HouseNumber": "9",
                 "PostalCode": "1010", "CityName": "Wien", "Country": "AT"},
            ],
        },
    )  # fmt: skip
    # A supplier: a business partner without a customer number is no customer.
    service.post(
        "API_BUSINESS_PARTNER/A_BusinessPartner",
        {"BusinessPartner": supplier, "BusinessPartnerFullName": "Stahl Süd AG"},
    )
    runner = FlowRunner(config, engine)

    first = runner.run("customers-in")

    assert (first.status, first.error, first.rejected) == ("succeeded", None, 0)
    partner = service.get(f"API_BUSINESS_PARTNER/A_BusinessPartner('{code}')")
    assert partner is not None
    customer = payload_of(engine, "customer", code)
    assert customer is not None
    assert moment(customer.pop("updated_at")) == moment(partner["LastChangeDateTime"])
    assert customer == {
        "code": code,
        "name": "Nordwind Handel GmbH",
        "locked": False,
        "addresses": [
            {"type": "other", "street": "Am Sandtorkai 5", "postal_code": "20457",
             "city": "Hamburg", "country": "DE"},
            {"type": "other", "street": "Ringstraße 9", "postal_code": "1010", "city": "Wien",
             "country": "AT"},
        ],
    }  # fmt: skip
    assert payload_of(engine, "customer", supplier) is None
    assert code in bound(engine, "s4_bp", "customer")
    assert payload_of(engine, "customer", "1000006") == {
        **(payload_of(engine, "customer", "1000006") or {}),
        "name": "Cobalt Tools SE",
        "locked": True,
    }

    again = runner.run("customers-in")
    assert (again.status, again.read, again.created, again.updated) == ("succeeded", 0, 0, 0)

    service.patch(
        f"API_BUSINESS_PARTNER/A_BusinessPartner('{code}')",
        {"BusinessPartnerFullName": "Nordwind Handel AG", "BusinessPartnerIsBlocked": True},
    )
    third = runner.run("customers-in")
    assert (third.read, third.created, third.updated) == (1, 0, 1)
    changed = payload_of(engine, "customer", code)
    assert changed is not None
    assert (changed["name"], changed["locked"]) == ("Nordwind Handel AG", True)
    assert changed["addresses"] == customer["addresses"]


# -- products ----------------------------------------------------------------------------------


def test_products_in_name_them_by_their_english_description(
    hub: tuple[LoadedConfig, Engine], service: Service
) -> None:
    config, engine = hub
    sku, german_only = unique("P"), unique("P")
    service.post(
        "API_PRODUCT_SRV/A_Product",
        {
            "Product": sku,
            "ProductType": "HAWA",
            "BaseUnit": "PC",
            "GrossWeight": "2.500",
            "WeightUnit": "KG",
            "to_Description": [
                {"Language": "DE", "ProductDescription": "Sechskantschraube M8"},
                {"Language": "EN", "ProductDescription": "Hexagon screw M8"},
            ],
        },
    )
    service.post(
        "API_PRODUCT_SRV/A_Product",
        {
            "Product": german_only,
            "BaseUnit": "KG",
            "to_Description": [{"Language": "DE", "ProductDescription": "Schüttgut"}],
        },
    )
    runner = FlowRunner(config, engine)

    first = runner.run("products-in")

    assert first.status == "succeeded", first.error
    product = payload_of(engine, "product", sku)
    created = service.get(f"API_PRODUCT_SRV/A_Product('{sku}')")
    assert product is not None and created is not None
    assert moment(product.pop("updated_at")) == moment(created["LastChangeDateTime"])
    assert product == {
        "sku": sku,
        "name": "Hexagon screw M8",
        "unit": "pcs",
        "weight": "2.5",
        "weight_unit": "kg",
        "active": True,
    }
    assert payload_of(engine, "product", "RM-100") == {
        **(payload_of(engine, "product", "RM-100") or {}),
        "name": "Steel sheet",
        "unit": "kg",
    }
    # No English description: rejected with the field and the path, not dropped.
    with engine.connect() as conn:
        field, reason = conn.execute(
            select(rejected.c.field_path, rejected.c.reason).where(
                rejected.c.flow == "products-in",
                rejected.c.position == f"A_Product('{german_only}')",
            )
        ).one()
    assert field == "name"
    assert "'to_Description[Language=EN].ProductDescription' is empty" in reason
    assert payload_of(engine, "product", german_only) is None

    again = runner.run("products-in")
    assert (again.read, again.created, again.updated) == (0, 0, 0)

    service.patch(f"API_PRODUCT_SRV/A_Product('{sku}')", {"GrossWeight": "2.750"})
    third = runner.run("products-in")
    assert (third.read, third.updated) == (1, 1)
    assert (payload_of(engine, "product", sku) or {})["weight"] == "2.75"


# -- prices ------------------------------------------------------------------------------------


def condition(record: str, material: str, amount: str, *, start: str, end: str = "9999-12-31",
              customer: str | None = None, kind: str = "PR00") -> dict[str, Any]:  # fmt: skip
    """A condition record with its validity, as VK11 would make it."""
    return {
        "ConditionRecord": record,
        "ConditionType": kind,
        "ConditionValidityStartDate": start,
        "ConditionValidityEndDate": end,
        "ConditionRateValue": amount,
        "ConditionRateValueUnit": "EUR",
        "ConditionQuantity": "1",
        "ConditionQuantityUnit": "PC",
        "to_SlsPrcgCndnRecdValidity": [
            {
                "ConditionValidityEndDate": end,
                "ConditionValidityStartDate": start,
                "ConditionType": kind,
                "SalesOrganization": "1010",
                "DistributionChannel": "10",
                "Customer": customer,
                "Material": material,
            }
        ],
    }


def test_prices_in_reads_current_list_and_customer_prices(
    hub: tuple[LoadedConfig, Engine], service: Service
) -> None:
    config, engine = hub
    sku = unique("M")
    records_path = "API_SLSPRICINGCONDITIONRECORD_SRV/A_SlsPrcgConditionRecord"
    list_price, customer_price = unique("R"), unique("R")
    service.post(records_path, condition(list_price, sku, "19.900", start="2024-06-01"))
    service.post(
        records_path,
        condition(customer_price, sku, "17.500", start="2024-07-01", customer="1000002"),
    )
    # Not a current sales price: an expired record, and a discount (another condition type).
    service.post(records_path, condition(unique("R"), sku, "18.000", start="2024-01-01",
                                         end="2024-05-31"))  # fmt: skip
    service.post(records_path, condition(unique("R"), sku, "-3.000", start="2024-01-01",
                                         kind="K004"))  # fmt: skip
    runner = FlowRunner(config, engine)

    first = runner.run("prices-in")

    assert (first.status, first.error, first.rejected) == ("succeeded", None, 0)
    with engine.connect() as conn:
        rows = conn.execute(
            select(records.c.key, records.c.payload).where(
                records.c.entity == "price", records.c.key.contains(f"|{sku}|")
            )
        ).all()
    prices = {key: orjson.loads(payload) for key, payload in rows}
    assert prices == {
        f"1010/10|{sku}||EUR|1": {
            "price_list": "1010/10", "sku": sku, "customer_code": "", "currency": "EUR",
            "amount": "19.9", "min_quantity": "1", "valid_from": "2024-06-01",
            "valid_to": "9999-12-31",
        },
        f"1010/10|{sku}|1000002|EUR|1": {
            "price_list": "1010/10", "sku": sku, "customer_code": "1000002", "currency": "EUR",
            "amount": "17.5", "min_quantity": "1", "valid_from": "2024-07-01",
            "valid_to": "9999-12-31",
        },
    }  # fmt: skip
    assert {f"{list_price}|9999-12-31", f"{customer_price}|9999-12-31"} <= bound(
        engine, "s4_prices", "price"
    )

    # Condition records carry no change time: every run reads them all, the hub keeps nothing.
    again = runner.run("prices-in")
    assert (again.read, again.created, again.updated) == (first.read, 0, 0)
    assert again.unchanged == first.read

    service.patch(f"{records_path}('{list_price}')", {"ConditionRateValue": "21.000"})
    third = runner.run("prices-in")
    assert (third.created, third.updated) == (0, 1)
    assert prices[f"1010/10|{sku}||EUR|1"] | {"amount": "21"} == payload_of(
        engine, "price", f"1010/10|{sku}||EUR|1"
    )

    # VK11's deletion flag: the price is deleted in the hub (a tombstone), the other stays.
    service.patch(f"{records_path}('{list_price}')", {"ConditionIsDeleted": True})
    fourth = runner.run("prices-in")
    assert (fourth.status, fourth.deleted, fourth.updated) == ("succeeded", 1, 0)
    assert actions(engine, "price", f"1010/10|{sku}||EUR|1")[-1] == "(deleted)"
    assert actions(engine, "price", f"1010/10|{sku}|1000002|EUR|1")[-1] == "created"


# -- sales orders ------------------------------------------------------------------------------


def drop_order(config: LoadedConfig, name: str, order: dict[str, Any]) -> None:
    (config.base_dir / "inbox" / name).write_bytes(orjson.dumps([order]))


def test_orders_go_out_as_sales_orders_and_their_status_comes_back(
    hub: tuple[LoadedConfig, Engine], service: Service
) -> None:
    config, engine = hub
    number = unique("S")
    line = {"line_no": 10, "sku": "TG11", "quantity": "2", "unit": "pcs", "amount": "20.00"}
    order = {
        "number": number,
        "customer_code": "1000002",
        "po_number": "PO-77",
        "currency": "EUR",
        "order_date": "2024-06-03",
        "total": "31.00",
        "lines": [line, {**line, "line_no": 20, "sku": "RM-100", "quantity": "1.5",
                         "unit": "kg", "amount": "11.00"}],
    }  # fmt: skip
    drop_order(config, "o1.json", order)
    runner = FlowRunner(config, engine)
    assert runner.run("orders-from-shop").created == 1

    deliver(config, engine)

    assert ledger(engine, "orders-out") == [(number, 1, "delivered", None)]
    path = f"API_SALES_ORDER_SRV/A_SalesOrder('{number}')"
    sales_order = service.get(f"{path}?$expand=to_Item")
    assert sales_order is not None
    header = {k: sales_order[k] for k in (
        "SalesOrderType", "SalesOrganization", "DistributionChannel", "OrganizationDivision",
        "SoldToParty", "PurchaseOrderByCustomer", "TransactionCurrency")}  # fmt: skip
    assert header == {
        "SalesOrderType": "OR",
        "SalesOrganization": "1010",
        "DistributionChannel": "10",
        "OrganizationDivision": "00",
        "SoldToParty": "1000002",
        "PurchaseOrderByCustomer": "PO-77",
        "TransactionCurrency": "EUR",
    }
    items = [
        (i["SalesOrderItem"], i["Material"], Decimal(i["RequestedQuantity"]),
         i["RequestedQuantityUnit"])
        for i in sorted(sales_order["to_Item"], key=lambda i: int(i["SalesOrderItem"]))
    ]  # fmt: skip
    assert items == [("10", "TG11", Decimal(2), "PC"), ("20", "RM-100", Decimal("1.5"), "KG")]
    assert number in bound(engine, "s4_sales", "order")

    # The shop sends the same order again: nothing changes, nothing goes out, SAP's order stays.
    drop_order(config, "o1-again.json", order)
    assert runner.run("orders-from-shop").unchanged == 1
    deliver(config, engine)
    assert len(ledger(engine, "orders-out")) == 1
    same = service.get(path)
    assert same is not None and same["LastChangeDateTime"] == sales_order["LastChangeDateTime"]

    # SAP works on the order: in process, with the net value its pricing found.
    service.patch(path, {"OverallSDProcessStatus": "B", "TotalNetAmount": "35.500"})
    status = runner.run("order-status-in")
    assert (status.status, status.error) == ("succeeded", None)
    back = payload_of(engine, "order", number)
    assert back is not None
    changed = service.get(path)
    assert changed is not None
    assert moment(back.pop("updated_at")) == moment(changed["LastChangeDateTime"])
    assert back == {
        "number": number,
        "customer_code": "1000002",
        "po_number": "PO-77",
        "status": "processing",
        "order_date": changed["CreationDate"],
        "currency": "EUR",
        "total": "35.5",
        "lines": [
            {"line_no": 10, "sku": "TG11", "quantity": "2", "unit": "pcs"},
            {"line_no": 20, "sku": "RM-100", "quantity": "1.5", "unit": "kg"},
        ],
    }
    # The status came from the channel the order goes out to: it is not sent back (no echo).
    deliver(config, engine)
    assert len(ledger(engine, "orders-out")) == 1
    assert runner.run("order-status-in").read == 0

    # The shop changes the order: a new PO reference and a third line → PATCH and a new item.
    third = {**line, "line_no": 30, "sku": "TG12", "quantity": "4", "amount": "44.00"}
    drop_order(config, "o2.json", {**order, "po_number": "PO-78",
                                   "lines": [*order["lines"], third]})  # fmt: skip
    assert runner.run("orders-from-shop").updated == 1
    deliver(config, engine)
    assert [state for _, _, state, _ in ledger(engine, "orders-out")] == ["delivered"] * 2
    updated = service.get(f"{path}?$expand=to_Item")
    assert updated is not None and updated["PurchaseOrderByCustomer"] == "PO-78"
    assert updated["OverallSDProcessStatus"] == "B"  # SAP's own field, never sent
    assert sorted(i["Material"] for i in updated["to_Item"]) == ["RM-100", "TG11", "TG12"]
    again = runner.run("order-status-in")
    assert (again.read, again.updated) == (1, 1)
    final = payload_of(engine, "order", number)
    assert final is not None
    assert (final["status"], final["po_number"], len(final["lines"])) == ("processing", "PO-78", 3)


# -- bad input ---------------------------------------------------------------------------------


@pytest.mark.parametrize("version", ["2"], indirect=True)
def test_an_unknown_status_code_is_rejected_and_the_order_kept(
    hub: tuple[LoadedConfig, Engine], service: Service
) -> None:
    config, engine = hub
    number = unique("S")
    path = f"API_SALES_ORDER_SRV/A_SalesOrder('{number}')"
    service.post(
        "API_SALES_ORDER_SRV/A_SalesOrder",
        {"SalesOrder": number, "SoldToParty": "1000003", "OverallSDProcessStatus": "C"},
    )
    runner = FlowRunner(config, engine)
    assert runner.run("order-status-in").status == "succeeded"
    before = payload_of(engine, "order", number)
    assert before is not None and before["status"] == "completed"

    service.patch(path, {"OverallSDProcessStatus": "Z"})
    try:
        result = runner.run("order-status-in")
    finally:  # leave no status the presets cannot read on the shared server
        service.patch(path, {"OverallSDProcessStatus": "C"})

    assert (result.status, result.read, result.rejected) == ("succeeded", 1, 1)
    columns = (rejected.c.field_path, rejected.c.reason, rejected.c.payload)
    with engine.connect() as conn:
        refused = conn.execute(
            select(*columns).where(rejected.c.position == f"A_SalesOrder('{number}')")
        ).one()
    assert refused.field_path == "status" and "no mapping for value 'Z'" in refused.reason
    assert orjson.loads(refused.payload)["OverallSDProcessStatus"] == "Z"  # kept for a replay
    assert payload_of(engine, "order", number) == before


@pytest.mark.parametrize("version", ["2"], indirect=True)
def test_an_order_the_service_refuses_is_dead_with_its_reason(
    hub: tuple[LoadedConfig, Engine], service: Service
) -> None:
    config, engine = hub
    good, too_long = unique("S"), unique("S") + "XYZ"  # SalesOrder is 10 characters at most
    line = {"line_no": 10, "sku": "TG11", "quantity": "1", "unit": "pcs"}
    for name, number in (("a.json", good), ("b.json", too_long)):
        drop_order(config, name, {"number": number, "customer_code": "1000001", "lines": [line]})
    assert FlowRunner(config, engine).run("orders-from-shop").created == 2

    deliver(config, engine)

    states = {key: (state, error) for key, _, state, error in ledger(engine, "orders-out")}
    assert states[good] == ("delivered", None)
    state, error = states[too_long]
    assert state == "dead" and error is not None
    assert "POST A_SalesOrder answered HTTP 400" in error and "(target SalesOrder)" in error
    assert too_long in error  # the value the service refused
    assert service.get(f"API_SALES_ORDER_SRV/A_SalesOrder('{too_long}')") is None
