"""System type ``odoo``: every flow preset against the replayed Odoo of the rpc tests.

Odoo cannot run here. :mod:`transports.rpc.odooreplay` answers as Odoo's documented external
API does; its records here are shaped as Odoo 17's models define them (``product.template``,
``res.partner``, ``sale.order`` and its lines, ``stock.picking``, ``stock.quant``, with the
fields, types and relations ``fields_get`` reports). Each preset runs through the real engine:
IN flows with the flow runner, OUT flows with the worker, checked field by field on the other
side. Bad input: a sale whose customer has no Internal Reference (rejected, naming the field),
an order for a customer Odoo does not know (dead, naming the lookup).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from sqlalchemy import Engine, select

from erpbridge import FlowRunner, load_config, open_store
from erpbridge.config.loader import LoadedConfig
from erpbridge.store.tables import records, rejected
from integration.ledger import deliver, ledger
from transports.rpc.odooreplay import DATABASE, PASSWORD, USER, FakeOdoo, serve_odoo


def _f(kind: str, relation: str | None = None, inverse: str | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {"type": kind}
    if relation:
        spec["relation"] = relation
    if inverse:
        spec["relation_field"] = inverse
    return spec


T0, T1 = "2024-05-01 10:00:00", "2024-05-02 09:31:00"
FIELDS: dict[str, dict[str, dict[str, Any]]] = {
    "res.partner": {
        "name": _f("char"), "ref": _f("char"), "email": _f("char"), "phone": _f("char"),
        "vat": _f("char"), "street": _f("char"), "zip": _f("char"), "city": _f("char"),
        "country_code": _f("char"), "country_id": _f("many2one", "res.country"),
        "is_company": _f("boolean"), "customer_rank": _f("integer"), "function": _f("char"),
        "parent_id": _f("many2one", "res.partner"),
        "child_ids": _f("one2many", "res.partner", "parent_id"), "write_date": _f("datetime"),
    },
    "res.country": {"name": _f("char"), "code": _f("char")},
    "uom.uom": {"name": _f("char")},
    "product.template": {
        "default_code": _f("char"), "name": _f("char"), "description_sale": _f("text"),
        "categ_id": _f("many2one", "product.category"), "uom_id": _f("many2one", "uom.uom"),
        "barcode": _f("char"), "weight": _f("float"), "active": _f("boolean"),
        "sale_ok": _f("boolean"), "list_price": _f("float"),
        "currency_id": _f("many2one", "res.currency"), "write_date": _f("datetime"),
    },
    "product.product": {"default_code": _f("char"), "name": _f("char")},
    "sale.order": {
        "name": _f("char"), "origin": _f("char"), "client_order_ref": _f("char"),
        "state": _f("selection"), "invoice_status": _f("selection"),
        "date_order": _f("datetime"), "currency_id": _f("many2one", "res.currency"),
        "amount_total": _f("monetary"), "partner_id": _f("many2one", "res.partner"),
        "order_line": _f("one2many", "sale.order.line", "order_id"),
        "write_date": _f("datetime"),
    },
    "sale.order.line": {
        "order_id": _f("many2one", "sale.order"), "sequence": _f("integer"),
        "name": _f("text"), "product_id": _f("many2one", "product.product"),
        "product_uom_qty": _f("float"), "product_uom": _f("many2one", "uom.uom"),
        "price_unit": _f("float"), "price_subtotal": _f("monetary"),
    },
    "stock.picking": {
        "name": _f("char"), "state": _f("selection"), "picking_type_code": _f("selection"),
        "sale_id": _f("many2one", "sale.order"), "write_date": _f("datetime"),
    },
    "stock.location": {"complete_name": _f("char")},
    "stock.quant": {
        "product_id": _f("many2one", "product.product"),
        "location_id": _f("many2one", "stock.location"), "quantity": _f("float"),
        "reserved_quantity": _f("float"), "product_uom_id": _f("many2one", "uom.uom"),
        "on_hand": _f("boolean"), "write_date": _f("datetime"),
    },
}  # fmt: skip

DESK, CHAIR = [11, "[FURN_7800] Desk Combination"], [12, "[FURN_0269] Office Chair Black"]
UNITS = [1, "Units"]
MODELS: dict[str, list[dict[str, Any]]] = {
    "res.partner": [
        {"id": 7, "name": "Agrolait", "ref": "C-7", "email": "info@agrolait.example",
         "phone": "+32 10 588 558", "vat": "BE0477472701", "street": "69 rue de Namur",
         "zip": "1300", "city": "Wavre", "country_code": "BE", "country_id": [21, "Belgium"],
         "is_company": True, "customer_rank": 1, "function": False, "parent_id": False,
         "child_ids": [30], "write_date": T0},
        {"id": 30, "name": "Michel Fletcher", "ref": False, "email": "michel@agrolait.example",
         "phone": False, "vat": False, "street": False, "zip": False, "city": False,
         "country_code": False, "country_id": False, "is_company": False, "customer_rank": 0,
         "function": "Analyst", "parent_id": [7, "Agrolait"], "child_ids": [], "write_date": T0},
        {"id": 18, "name": "Axelor", "ref": "V-18", "is_company": True, "customer_rank": 0,
         "child_ids": [], "write_date": T0},
        {"id": 19, "name": "Nameless Walk-in", "ref": False, "is_company": True,
         "customer_rank": 1, "child_ids": [], "write_date": T0},
    ],
    "res.country": [{"id": 21, "name": "Belgium", "code": "BE"},
                    {"id": 57, "name": "Germany", "code": "DE"}],
    "uom.uom": [{"id": 1, "name": "Units"}],
    "product.template": [
        {"id": 1, "default_code": "FURN_7800", "name": "Desk Combination",
         "description_sale": "Desk and chair", "categ_id": [8, "All / Saleable / Office"],
         "uom_id": UNITS, "barcode": "4006381333931", "weight": 32.5, "active": True,
         "sale_ok": True, "list_price": 450.0, "currency_id": [1, "EUR"], "write_date": T0},
        {"id": 2, "default_code": "FURN_0269", "name": "Office Chair Black",
         "description_sale": False, "categ_id": [8, "All / Saleable / Office"],
         "uom_id": UNITS, "barcode": False, "weight": 0.0, "active": True, "sale_ok": True,
         "list_price": 120.5, "currency_id": [1, "EUR"], "write_date": T0},
        {"id": 3, "default_code": False, "name": "Service on Timesheets", "sale_ok": True,
         "active": True, "write_date": T0},
        {"id": 4, "default_code": "E-COM11", "name": "Cabinet with Doors", "description_sale":
         False, "categ_id": [8, "All / Saleable / Office"], "uom_id": UNITS, "barcode": False,
         "weight": 0.0, "active": False, "sale_ok": True, "list_price": 140.0,
         "currency_id": [1, "EUR"], "write_date": T0},
    ],
    "product.product": [
        {"id": 11, "default_code": "FURN_7800", "name": "Desk Combination"},
        {"id": 12, "default_code": "FURN_0269", "name": "Office Chair Black"},
    ],
    "sale.order": [
        {"id": 5, "name": "S00005", "origin": False, "client_order_ref": "PO-77",
         "state": "sale", "invoice_status": "to invoice", "date_order": "2024-05-02 09:30:00",
         "currency_id": [1, "EUR"], "amount_total": 1141.0, "partner_id": [7, "Agrolait"],
         "order_line": [21, 22], "write_date": T1},
        {"id": 6, "name": "S00006", "origin": False, "client_order_ref": False,
         "state": "draft", "invoice_status": "no", "date_order": "2024-05-02 10:00:00",
         "currency_id": [1, "EUR"], "amount_total": 0.0, "partner_id": [19, "Nameless Walk-in"],
         "order_line": [], "write_date": T1},
    ],
    "sale.order.line": [
        {"id": 21, "order_id": [5, "S00005"], "sequence": 10, "name": "Desk Combination",
         "product_id": DESK, "product_uom_qty": 2.0, "product_uom": UNITS, "price_unit": 450.0,
         "price_subtotal": 900.0},
        {"id": 22, "order_id": [5, "S00005"], "sequence": 20, "name": "Office Chair Black",
         "product_id": CHAIR, "product_uom_qty": 2.0, "product_uom": UNITS,
         "price_unit": 120.5, "price_subtotal": 241.0},
    ],
    "stock.picking": [
        {"id": 9, "name": "WH/OUT/00009", "state": "assigned", "picking_type_code": "outgoing",
         "sale_id": [5, "S00005"], "write_date": T1},
        {"id": 10, "name": "WH/IN/00002", "state": "done", "picking_type_code": "incoming",
         "sale_id": False, "write_date": T1},
    ],
    "stock.location": [{"id": 8, "complete_name": "WH/Stock"},
                       {"id": 5, "complete_name": "Partners/Customers"}],
    "stock.quant": [
        {"id": 31, "product_id": DESK, "location_id": [8, "WH/Stock"], "quantity": 10.0,
         "reserved_quantity": 2.0, "product_uom_id": UNITS, "on_hand": True, "write_date": T0},
        {"id": 32, "product_id": CHAIR, "location_id": [8, "WH/Stock"], "quantity": 35.0,
         "reserved_quantity": 0.0, "product_uom_id": UNITS, "on_hand": True, "write_date": T0},
        {"id": 33, "product_id": CHAIR, "location_id": [5, "Partners/Customers"],
         "quantity": 4.0, "reserved_quantity": 0.0, "product_uom_id": UNITS,
         "on_hand": False, "write_date": T0},
    ],
}  # fmt: skip

PRESETS = [
    "products-from-odoo",
    "list-prices-from-odoo",
    "customers-from-odoo",
    "orders-from-odoo",
    "shipments-from-odoo",
    "inventory-from-odoo",
    "customers-to-odoo",
    "orders-to-odoo",
]


@pytest.fixture
def odoo() -> Iterator[tuple[FakeOdoo, str]]:
    fake = FakeOdoo(MODELS, FIELDS, {"sale.order": {"state": "draft"}})
    with serve_odoo(fake) as url:
        yield fake, url


@pytest.fixture
def hub(tmp_path: Path, odoo: tuple[FakeOdoo, str]) -> Iterator[tuple[LoadedConfig, Engine]]:
    """Every Odoo preset switched on the way a user would, and a folder the platform drops in."""
    (tmp_path / "inbox").mkdir()
    flows = "".join(f"\n  - {{preset: {name}, channel: odoo}}" for name in PRESETS)
    text = f"""version: 1
hub: {{database_url: "sqlite:///{tmp_path / "hub.db"}"}}
channels:
  odoo:
    system: odoo
    options: {{base_url: "{odoo[1]}", database: {DATABASE}, username: {USER}}}
    credentials: {{password: "${{ODOO_PASSWORD}}"}}
  shop:
    system: folder
    options: {{path: inbox}}
flows:{flows}
  - {{name: customers-from-shop, channel: shop, entity: customer, direction: in,
      source: {{pattern: "customer-*.json"}}}}
  - {{name: orders-from-shop, channel: shop, entity: order, direction: in,
      source: {{pattern: "order-*.json"}}}}
"""
    path = tmp_path / "erpbridge.yaml"
    path.write_text(text, encoding="utf-8")
    engine = open_store(f"sqlite:///{tmp_path / 'hub.db'}")
    yield load_config(path, env={"ODOO_PASSWORD": PASSWORD}), engine
    engine.dispose()


def payload(engine: Engine, entity: str, key: str) -> dict[str, Any]:
    with engine.connect() as conn:
        raw = conn.execute(
            select(records.c.payload).where(records.c.entity == entity, records.c.key == key)
        ).scalar_one()
    found: dict[str, Any] = orjson.loads(raw)
    return found


def run(config: LoadedConfig, engine: Engine, flow: str) -> Any:
    result = FlowRunner(config, engine).run(flow)
    assert result.status == "succeeded", result.error
    return result


def calls(fake: FakeOdoo, model: str, method: str) -> list[list[Any]]:
    return [a[5:] for _, m, a in fake.calls if m == "execute_kw" and a[3:5] == [model, method]]


def test_products_and_list_prices_from_product_templates(
    hub: tuple[LoadedConfig, Engine], odoo: tuple[FakeOdoo, str]
) -> None:
    config, engine = hub
    assert run(config, engine, "products-from-odoo").created == 3  # archived too, no service
    desk = payload(engine, "product", "FURN_7800")
    assert desk == {
        **desk, "name": "Desk Combination", "description": "Desk and chair",
        "category": "All / Saleable / Office", "unit": "pcs", "ean": "4006381333931",
        "weight": "32.5", "active": True,
    }  # fmt: skip
    assert payload(engine, "product", "E-COM11")["active"] is False
    (search,) = calls(odoo[0], "product.template", "search_read")[:1]
    assert search[1]["context"] == {"active_test": False}

    assert run(config, engine, "list-prices-from-odoo").created == 2
    assert payload(engine, "price", "list|FURN_0269||EUR|1")["amount"] == "120.5"
    assert run(config, engine, "list-prices-from-odoo").created == 0  # nothing changed


def test_customers_with_their_contacts_and_a_contact_changed_alone(
    hub: tuple[LoadedConfig, Engine], odoo: tuple[FakeOdoo, str]
) -> None:
    config, engine = hub
    fake = odoo[0]
    assert run(config, engine, "customers-from-odoo").created == 1  # vendors, no-ref left out
    customer = payload(engine, "customer", "C-7")
    assert customer["vat_id"] == "BE0477472701"
    assert customer["addresses"] == [
        {"type": "billing", "street": "69 rue de Namur", "postal_code": "1300", "city": "Wavre",
         "country": "BE"}
    ]  # fmt: skip
    assert customer["contacts"] == [
        {"name": "Michel Fletcher", "email": "michel@agrolait.example", "role": "Analyst"}
    ]
    # child_ids.* are read through the relation: one read of res.partner for the page
    (read,) = calls(fake, "res.partner", "read")
    assert read == [[[30]], {"fields": ["name", "email", "phone", "function"]}]

    fake.models["res.partner"][1].update(function="Head of IT", write_date="2024-05-06 10:00:00")
    again = run(config, engine, "customers-from-odoo")
    assert again.updated == 1
    assert payload(engine, "customer", "C-7")["contacts"][0]["role"] == "Head of IT"


def test_orders_with_lines_shipments_and_stock(
    hub: tuple[LoadedConfig, Engine], odoo: tuple[FakeOdoo, str]
) -> None:
    config, engine = hub
    first = run(config, engine, "orders-from-odoo")
    assert (first.created, first.rejected) == (1, 1)
    order = payload(engine, "order", "S00005")
    assert {k: order[k] for k in ("customer_code", "po_number", "status", "invoice_status",
                                   "order_date", "currency", "total")} == {
        "customer_code": "C-7", "po_number": "PO-77", "status": "confirmed",
        "invoice_status": "to invoice", "order_date": "2024-05-02", "currency": "EUR",
        "total": "1141",
    }  # fmt: skip
    assert order["lines"] == [
        {"line_no": 10, "sku": "FURN_7800", "description": "Desk Combination",
         "quantity": "2", "unit": "pcs", "unit_price": "450", "amount": "900"},
        {"line_no": 20, "sku": "FURN_0269", "description": "Office Chair Black",
         "quantity": "2", "unit": "pcs", "unit_price": "120.5", "amount": "241"},
    ]  # fmt: skip
    with engine.connect() as conn:
        (refused,) = conn.execute(select(rejected.c.field_path, rejected.c.position)).all()
    assert refused == ("customer_code", "sale.order#id=6")

    assert run(config, engine, "shipments-from-odoo").updated == 1  # the same order, merged
    assert payload(engine, "order", "S00005")["shipment_status"] == "ready"

    stock = run(config, engine, "inventory-from-odoo")
    assert stock.created == 2  # the customers' location holds no stock of ours
    assert payload(engine, "inventory", "FURN_7800|WH/Stock") == {
        **payload(engine, "inventory", "FURN_7800|WH/Stock"),
        "quantity": "10", "reserved": "2", "unit": "pcs",
    }  # fmt: skip


def drop(tmp: Path, name: str, data: dict[str, Any]) -> None:
    (tmp / "inbox" / name).write_text(json.dumps(data), encoding="utf-8")


def test_customers_and_orders_from_the_platform_reach_odoo(
    tmp_path: Path, hub: tuple[LoadedConfig, Engine], odoo: tuple[FakeOdoo, str]
) -> None:
    config, engine = hub
    fake = odoo[0]
    drop(tmp_path, "customer-1.json", {"code": "C-900", "name": "Neukunde GmbH",
         "email": "einkauf@neukunde.example", "vat_id": "DE123456789",
         "addresses": [{"street": "Hauptstr. 1", "postal_code": "10115", "city": "Berlin",
                        "country": "DE"}]})  # fmt: skip
    drop(tmp_path, "order-1.json", {"number": "WEB-1001", "customer_code": "C-7",
         "po_number": "PO-88", "lines": [{"sku": "FURN_0269", "description": "Chair",
                                          "quantity": "4", "unit_price": "110"}]})  # fmt: skip
    drop(tmp_path, "order-2.json", {"number": "WEB-1002", "customer_code": "C-404",
         "lines": [{"sku": "FURN_0269", "quantity": "1"}]})  # fmt: skip
    run(config, engine, "customers-from-shop")
    run(config, engine, "orders-from-shop")
    deliver(config, engine)

    partner = fake.models["res.partner"][-1]
    assert {k: partner[k] for k in ("ref", "name", "vat", "city", "country_id", "is_company",
                                    "customer_rank")} == {
        "ref": "C-900", "name": "Neukunde GmbH", "vat": "DE123456789", "city": "Berlin",
        "country_id": [57, "Germany"], "is_company": True, "customer_rank": 1,
    }  # fmt: skip
    sale = next(s for s in fake.models["sale.order"] if s.get("origin") == "WEB-1001")
    assert (sale["partner_id"], sale["client_order_ref"], sale["state"]) == (
        [7, "Agrolait"],
        "PO-88",
        "sale",  # confirmed by action_confirm
    )
    (line,) = [line for line in fake.models["sale.order.line"] if line["id"] in sale["order_line"]]
    assert (line["product_id"], line["product_uom_qty"], line["price_unit"]) == (
        [12, "Office Chair Black"], 4, 110,
    )  # fmt: skip
    states = {key: (state, error) for key, _, state, error in ledger(engine, "orders-to-odoo")}
    assert states["WEB-1001"][0] == "delivered"
    state, error = states["WEB-1002"]
    assert state == "dead"
    assert "C-404" in str(error) and "res.partner" in str(error)

    # A new version of the order updates its header; its lines stay as created.
    drop(tmp_path, "order-1.json", {"number": "WEB-1001", "customer_code": "C-7",
         "po_number": "PO-88-B", "lines": [{"sku": "FURN_0269", "quantity": "5"}]})  # fmt: skip
    run(config, engine, "orders-from-shop")
    deliver(config, engine)
    assert sale["client_order_ref"] == "PO-88-B"
    assert len(sale["order_line"]) == 1
    (write,) = calls(fake, "sale.order", "write")
    assert "order_line" not in write[0][1]
