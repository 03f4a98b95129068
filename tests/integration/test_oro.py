"""System type ``oro``: the presets end to end through real ``erpbridge`` processes, with
PostgreSQL as the ERP on the other side of the hub.

No Oro server can run here. The Oro side is :mod:`systems.oro.fakeoro`, a local test server
(``httpserve``) answering with the request and response shapes of Oro's published API
documentation — JSON:API, the client credentials grant, ``filter[updatedAt][gte]``,
``page[number]``/``page[size]``, ``include``, ``errors`` with ``source.pointer`` — and its
example resources. What the hub sends to Oro is checked on that server; what reaches the ERP is
checked with PostgreSQL's own SQL.

Each step is a process a user would start: ``erpbridge sync`` reads, ``erpbridge worker --once``
delivers. Bad input: an order whose customer has no ERP number (rejected, naming the field;
the other order goes through), a customer name Oro refuses (dead, naming Oro's field), a price
for a product Oro does not have (dead, naming the relationship; its batch's prices go through).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from erpbridge import open_store
from erpbridge.store.tables import deliveries, rejected
from hubprocess import cli_ok, run_cli
from systems.oro.fakeoro import CLIENT_ID, CLIENT_SECRET, FakeOro, serve_oro

ORO_CHANNEL = """
  oro:
    system: oro
    options:
      base_url: "{url}"
      auth: {{type: oauth2, token_url: /oauth2-token, client_id: {client}, client_auth: body,
             encoding: json}}
    credentials: {{client_secret: "${{ORO_CLIENT_SECRET}}"}}"""

ORO_TO_ERP = """version: 1
hub: {{database_url: "sqlite:///hub.db"}}
channels:{oro}
  erp:
    system: sql
    transport: sqlwrite
    options: {{url: "{pg}"}}
flows:
  - {{preset: customers-from-oro, channel: oro}}
  - {{preset: orders-from-oro, channel: oro}}
  - name: customers-to-erp
    channel: erp
    entity: customer
    direction: out
    trigger: immediate
    target: {{table: erp_customers, key: [code]}}
    mapping: {{code: code, name: name, email: email, contacts: contacts}}
  - name: orders-to-erp
    channel: erp
    entity: order
    direction: out
    trigger: immediate
    target: {{table: erp_orders, key: [number]}}
    mapping:
      number: number
      customer_code: customer_code
      po_number: po_number
      order_date: order_date
      currency: currency
      total: total
      ship_to: shipping_address.city
      lines: lines
"""

ERP_TO_ORO = """version: 1
hub: {{database_url: "sqlite:///hub.db"}}
channels:{oro}
  erp:
    system: sql
    options: {{url: "{pg}"}}
flows:
  - name: customers-from-erp
    channel: erp
    entity: customer
    direction: in
    source: {{table: erp_customer_master}}
    key: code
    cursor: {{column: updated_at, tiebreaker: code}}
    mapping: {{code: code, name: name}}
  - name: prices-from-erp
    channel: erp
    entity: price
    direction: in
    source: {{table: erp_prices}}
    key: id
    mapping: {{price_list: price_list, sku: sku, currency: currency, amount: amount,
               min_quantity: min_quantity}}
  - name: stock-from-erp
    channel: erp
    entity: inventory
    direction: in
    source: {{table: erp_stock}}
    key: [sku, warehouse]
    mapping: {{sku: sku, warehouse: warehouse, quantity: quantity}}
  - name: statuses-from-erp
    channel: erp
    entity: order
    direction: in
    source: {{table: erp_order_status}}
    key: number
    mapping: {{number: number, customer_code: customer_code, status: status}}
  - {{preset: customers-to-oro, channel: oro}}
  - {{preset: prices-to-oro, channel: oro}}
  - preset: inventory-to-oro
    channel: oro
    when: {{condition: "warehouse == 'MAIN'"}}
  - {{preset: order-status-to-oro, channel: oro}}
"""


@pytest.fixture
def oro(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[FakeOro, str]]:
    monkeypatch.setenv("ORO_CLIENT_SECRET", CLIENT_SECRET)
    with serve_oro() as served:
        yield served


def write_config(root: Path, template: str, url: str, pg: str) -> None:
    oro = ORO_CHANNEL.format(url=url, client=CLIENT_ID)
    (root / "erpbridge.yaml").write_text(template.format(oro=oro, pg=pg), encoding="utf-8")


def erp(pg: str, *statements: str) -> list[Any]:
    engine = sa.create_engine(pg)
    try:
        with engine.begin() as conn:
            rows: list[Any] = []
            for statement in statements:
                result = conn.exec_driver_sql(statement)
                rows = list(result.mappings()) if result.returns_rows else rows
            return rows
    finally:
        engine.dispose()


def hub_rows(root: Path, table: sa.Table) -> list[Any]:
    engine = open_store(f"sqlite:///{root / 'hub.db'}")
    try:
        with engine.connect() as conn:
            return list(conn.execute(sa.select(table).order_by(table.c.id)).mappings())
    finally:
        engine.dispose()


def test_oro_customers_and_orders_reach_the_erp(
    tmp_path: Path, oro: tuple[FakeOro, str], pg_database: str
) -> None:
    fake, url = oro
    erp(
        pg_database,
        "CREATE TABLE erp_customers (code text PRIMARY KEY, name text NOT NULL, email text, "
        "contacts jsonb)",
        "CREATE TABLE erp_orders (number text PRIMARY KEY, customer_code text NOT NULL, "
        "po_number text, order_date date, currency text, total numeric(12, 4), ship_to text, "
        "lines jsonb)",
    )
    # A second order, from the customer who has no ERP number yet: rejected, never lost.
    fake.data["orders"]["2"] = json.loads(json.dumps(fake.data["orders"]["1"]))
    walk_in = fake.data["orders"]["2"]
    walk_in.update(id="2")
    walk_in["attributes"]["identifier"] = "FR1012402Z"
    walk_in["relationships"]["customer"]["data"]["id"] = "3"
    write_config(tmp_path, ORO_TO_ERP, url, pg_database)

    out = cli_ok(tmp_path, "sync", "customers-from-oro", "orders-from-oro")
    assert "succeeded" in out
    cli_ok(tmp_path, "worker", "--once")

    customers = erp(pg_database, "SELECT * FROM erp_customers ORDER BY code")
    assert [(c["code"], c["name"], c["email"]) for c in customers] == [
        ("C-1001", "Company AB", "AmandaFCole@example.org"),
        ("C-1002", "Company AC", None),
    ]
    assert customers[0]["contacts"] == [
        {"name": "Amanda Cole", "email": "AmandaFCole@example.org", "role": "customer user"}
    ]
    (order,) = erp(pg_database, "SELECT * FROM erp_orders")
    assert (order["number"], order["customer_code"], order["po_number"]) == (
        "FR1012401Z",
        "C-1001",
        "CV032342USDD",
    )
    assert str(order["order_date"]) == "2017-08-15" and str(order["total"]) == "447.4500"
    assert order["ship_to"] == "Rochester"
    assert order["lines"] == [
        {"sku": "4HC51", "description": "Physician's 5-Pocket Lab Coat", "quantity": "19",
         "unit": "pcs", "unit_price": "23.55"}
    ]  # fmt: skip
    (refused,) = [r for r in hub_rows(tmp_path, rejected) if r["status"] == "open"]
    assert refused["flow"] == "orders-from-oro" and refused["field_path"] == "customer_code"
    assert refused["position"] == "orders#id=2"

    # A change in Oro: the next pass asks only for what changed since, and the ERP follows.
    fake.touch("customers", "2", name="Company AC Ltd")
    cli_ok(tmp_path, "sync", "customers-from-oro")
    cli_ok(tmp_path, "worker", "--once")

    asked = [r["query"] for r in fake.requests if r["path"] == "/admin/api/customers"]
    assert "filter[updatedAt][gte]" not in asked[0]
    assert asked[-1]["filter[updatedAt][gte]"] == "2017-08-16T09:55:00Z"
    rows = erp(pg_database, "SELECT code, name FROM erp_customers ORDER BY code")
    assert [tuple(r.values()) for r in rows] == [
        ("C-1001", "Company AB"),
        ("C-1002", "Company AC Ltd"),
    ]
    assert all(d["state"] == "delivered" for d in hub_rows(tmp_path, deliveries))


def test_erp_customers_prices_stock_and_statuses_reach_oro(
    tmp_path: Path, oro: tuple[FakeOro, str], pg_database: str
) -> None:
    fake, url = oro
    too_long = "Z" * 300
    erp(
        pg_database,
        "CREATE TABLE erp_customer_master (code text PRIMARY KEY, name text, updated_at "
        "timestamptz)",
        "INSERT INTO erp_customer_master VALUES ('C-1001', 'Company AB GmbH', now()), "
        f"('C-1003', 'Neukunde KG', now()), ('C-1004', '{too_long}', now())",
        "CREATE TABLE erp_prices (id int PRIMARY KEY, price_list text, sku text, currency text, "
        "amount numeric(12, 2), min_quantity int)",
        "INSERT INTO erp_prices VALUES (1, 'Default Price List', '4HC51', 'USD', 120.00, 24), "
        "(2, 'C-1001', '2RW93', 'USD', 9.90, 1), (3, 'Default Price List', 'NOPE-1', 'USD', "
        "1.00, 1)",
        "CREATE TABLE erp_stock (sku text, warehouse text, quantity numeric(12, 3), "
        "PRIMARY KEY (sku, warehouse))",
        "INSERT INTO erp_stock VALUES ('4HC51', 'MAIN', 42), ('4HC51', 'EAST', 5)",
        "CREATE TABLE erp_order_status (number text PRIMARY KEY, customer_code text, status text)",
        "INSERT INTO erp_order_status VALUES ('FR1012401Z', 'C-1001', 'shipped')",
    )
    write_config(tmp_path, ERP_TO_ORO, url, pg_database)

    flows = ("customers-from-erp", "prices-from-erp", "stock-from-erp", "statuses-from-erp")
    cli_ok(tmp_path, "sync", *flows)
    cli_ok(tmp_path, "worker", "--once")

    customers = {r["attributes"]["erpCode"]: r for r in fake.data["customers"].values()}
    assert customers["C-1001"]["id"] == "1"
    assert customers["C-1001"]["attributes"]["name"] == "Company AB GmbH"
    assert customers["C-1003"]["attributes"]["name"] == "Neukunde KG"  # created
    # once: the batch failed on C-1004 and was written again record by record
    assert len(fake.find("customers", erpCode="C-1003")) == 1
    assert "C-1004" not in customers
    list_price = fake.data["productprices"]["6390cd7b-7c1b-11e7-bda0-080027fb53ad-1"]
    assert list_price["attributes"]["value"] == "120"  # the hub's decimal, as text
    (customer_price,) = fake.find("productprices", product="24")
    assert customer_price["attributes"] == {
        **customer_price["attributes"], "quantity": 1, "currency": "USD", "value": "9.9",
    }  # fmt: skip
    assert customer_price["relationships"]["priceList"]["data"]["id"] == "2"
    assert fake.data["inventorylevels"]["1"]["attributes"]["quantity"] == "42"
    assert fake.data["orders"]["1"]["relationships"]["status"]["data"] == {
        "type": "orderstatuses",
        "id": "shipped",
    }
    inventory_writes = [w for w in fake.writes() if w["path"].startswith("/admin/api/inventory")]
    assert len(inventory_writes) == 1  # EAST is not Oro's warehouse

    states = {(d["flow"], d["key"]): d for d in hub_rows(tmp_path, deliveries)}
    dead = {k: d["last_error"] for k, d in states.items() if d["state"] == "dead"}
    assert set(dead) == {
        ("customers-to-oro", "C-1004"),
        ("prices-to-oro", "Default Price List|NOPE-1||USD|1"),
    }
    assert (
        "refused (HTTP 400): field name (/data/attributes/name): length constraint: This value is "
        "too long. It should have 255 characters or less." in dead[("customers-to-oro", "C-1004")]
    )
    missing = "relationship product: products with filter[sku]='NOPE-1' not found; create it"
    assert missing in dead[("prices-to-oro", "Default Price List|NOPE-1||USD|1")]
    assert sum(d["state"] == "delivered" for d in states.values()) == 6


def test_channels_test_checks_the_preset_flows_and_names_a_refused_secret(
    tmp_path: Path, oro: tuple[FakeOro, str], pg_database: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, url = oro
    write_config(tmp_path, ORO_TO_ERP, url, pg_database)

    out = cli_ok(tmp_path, "channels", "test", "oro")
    assert "customers-from-oro" in out and "orders-from-oro" in out

    monkeypatch.setenv("ORO_CLIENT_SECRET", "not-the-secret")
    refused = run_cli(tmp_path, "channels", "test", "oro")
    text = refused.stdout + refused.stderr
    assert refused.returncode != 0, text
    assert "auth" in text and "refused the client credentials (HTTP 401" in text, text
    assert "not-the-secret" not in text and "Traceback" not in text
