"""The Tryton sales presets end to end against a real Tryton 8.2 (``scripts/tryton.sh``,
``ERPBRIDGE_TEST_TRYTON``) and a platform played by the test: it pushes orders, returns and
allocations through the hub's events API (in-process, as a web shop would call it) and takes the
hub's changes as signed webhooks (a small receiver below).

Per flow: data made on one side, the flow run (``FlowRunner``, ``Worker``), the other side checked
field by field through its own API, a second run that changes nothing, and a change that comes
back without an echo to where it came from. Every test works under its own code prefix; the IN
presets are narrowed to it (their domain plus the prefix), everything else is the preset.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import uuid
from collections.abc import Iterator
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml
from cryptography.fernet import Fernet
from sqlalchemy import Engine, select

from api.conftest import ApiClient
from erpbridge import FlowRunner, load_config, open_store
from erpbridge.api import build_hub, create_app
from erpbridge.config.loader import LoadedConfig
from erpbridge.engine.worker import Worker
from erpbridge.store.apiclients import create_client
from erpbridge.store.deliveries import requeue
from erpbridge.store.runs import now
from erpbridge.store.tables import deliveries, records
from erpbridge.systems import system_types
from httpserve import QuietHandler, serve_handler
from integration.servers import require_server
from integration.test_rpc_tryton import Tryton

SECRET = "whsec-sales-0123456789"


class Platform:
    """The platform's webhook receiver: keeps every verified webhook, answers 200."""

    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []
        received = self.received

        class Handler(QuietHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                signed = self.headers["X-Timestamp"].encode() + b"." + body
                digest = hmac.new(SECRET.encode(), signed, hashlib.sha256).hexdigest()
                ok = self.headers["X-Signature"] == f"sha256={digest}"
                if ok:
                    received.append(json.loads(body))
                self.send_response(200 if ok else 401)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

        self.served = serve_handler(Handler)
        self.url = f"{self.served.url}/webhooks"

    def events(self, event: str) -> list[dict[str, Any]]:
        return [body["data"] for body in self.received if body["event"] == event]


@pytest.fixture(scope="module")
def tryton() -> Tryton:
    return Tryton(require_server("ERPBRIDGE_TEST_TRYTON", "Tryton (scripts/tryton.sh)"))


@pytest.fixture
def platform() -> Iterator[Platform]:
    receiver = Platform()
    with receiver.served:
        yield receiver


@pytest.fixture
def prefix() -> str:
    return f"S{uuid.uuid4().hex[:8]}-"


def preset_source(name: str, prefix: str) -> dict[str, Any]:
    """The preset's own ``source``, narrowed to this test's parties, with no safety window (so
    that a pass's boundary is the newest sale, not the last minute of them)."""
    source = dict(system_types()["tryton"].presets()[name]["source"])
    source["domain"] = [*source.get("domain", []), ["party.code", "like", f"{prefix}%"]]
    source["safety_window_s"] = 0
    return source


def day(value: dict[str, int]) -> str:
    """A date as Tryton's JSON-RPC tags it, in ISO form."""
    return date(value["year"], value["month"], value["day"]).isoformat()


PLATFORM_ORDER = {  # how the platform (an Oro-like shop) sends an order
    "number": "identifier",
    "customer_code": "customerNumber",
    "po_number": "poNumber",
    "currency": "currency",
    "order_date": "createdAt",
    "billing_address": {
        "fields": {
            "street": "billingAddress.street",
            "postal_code": "billingAddress.postalCode",
            "city": "billingAddress.city",
            "country": "billingAddress.countryIso2",
        }
    },
    "shipping_address": {
        "fields": {
            "street": "shippingAddress.street",
            "postal_code": "shippingAddress.postalCode",
            "city": "shippingAddress.city",
            "country": "shippingAddress.countryIso2",
        }
    },
    "lines": {
        "each": "lineItems",
        "fields": {
            "line_no": "position",
            "sku": "sku",
            "quantity": "quantity",
            "unit": "unit",
            "unit_price": "price",
        },
    },
}


@pytest.fixture
def hub(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    tryton: Tryton,
    platform: Platform,
    prefix: str,
) -> Iterator[Hub]:
    monkeypatch.setenv("TRYTON_TEST_PASSWORD", tryton.password)
    monkeypatch.setenv("SHOP_SECRET", SECRET)
    monkeypatch.setenv("ERPBRIDGE_SECRET_KEY", Fernet.generate_key().decode())
    immediate = {"trigger": "immediate", "retry": {"max_attempts": 3, "backoff_s": 60}}
    document = {
        "hub": {"database_url": f"sqlite:///{tmp_path / 'hub.db'}"},
        "channels": {
            "shop": {
                "system": "platform",
                "options": {"webhook_url": platform.url},
                "credentials": {"webhook_secret": "${SHOP_SECRET}"},
            },
            "erp": {
                "system": "tryton",
                "options": {
                    "base_url": tryton.base_url,
                    "database": tryton.database,
                    "username": tryton.username,
                },
                "credentials": {"password": "${TRYTON_TEST_PASSWORD}"},
            },
        },
        "flows": [
            {"name": "orders-from-shop", "channel": "shop", "entity": "order",
             "direction": "in", "trigger": "immediate", "mapping": PLATFORM_ORDER},
            {"name": "rma-from-shop", "channel": "shop", "entity": "rma",
             "direction": "in", "trigger": "immediate"},
            {"name": "allocations-from-shop", "channel": "shop", "entity": "allocation",
             "direction": "in", "trigger": "immediate"},
            *(
                {"name": f"{entity}-to-shop", "channel": "shop", "entity": entity,
                 "direction": "out", "trigger": "immediate", "target": {"event": event}}
                for entity, event in (
                    ("order", "order.updated"), ("rma", "rma.updated"),
                    ("invoice", "invoice.posted"),
                )
            ),
            {"preset": "orders-to-tryton", "channel": "erp", **immediate},
            {"preset": "rma-to-tryton", "channel": "erp", **immediate},
            {"preset": "allocations-to-tryton", "channel": "erp", **immediate},
            *(
                {"preset": name, "channel": "erp", "source": preset_source(name, prefix)}
                for name in ("orders-from-tryton", "rma-status-from-tryton",
                             "invoices-from-tryton")
            ),
        ],
    }  # fmt: skip
    path = tmp_path / "erpbridge.yaml"
    path.write_text(yaml.safe_dump(document), encoding="utf-8")
    config = load_config(path)
    engine = open_store(f"sqlite:///{tmp_path / 'hub.db'}")
    state = Hub(config, engine)
    yield state
    state.worker.close()
    engine.dispose()


class Hub:
    """The hub under test: its configuration, store, API (as the platform calls it), runner
    and worker."""

    def __init__(self, config: LoadedConfig, engine: Engine) -> None:
        self.config, self.engine = config, engine
        key = create_client(engine, "shop", {"events"}, channels={"shop"})[1]
        self.api = ApiClient(create_app(build_hub(config, engine)), "127.0.0.1", {"X-API-Key": key})
        self.runner = FlowRunner(config, engine)
        self.worker = Worker(config, engine)

    def push(self, flow: str, body: Any) -> None:
        answer = self.api.post(f"/api/v1/events/{flow}", json=body)
        assert answer.status_code == 202, answer.text

    def run(self, flow: str) -> tuple[int, int, int]:
        result = self.runner.run(flow)
        assert (result.status, result.rejected) == ("succeeded", 0), result.error
        return result.read, result.created, result.updated

    def deliver(self) -> tuple[int, int]:
        stats = self.worker.run_once()
        return stats.delivered, stats.dead

    def record(self, entity: str, key: str) -> dict[str, Any]:
        with self.engine.connect() as conn:
            payload = conn.execute(
                select(records.c.payload).where(records.c.entity == entity, records.c.key == key)
            ).scalar_one()
        found: dict[str, Any] = orjson.loads(payload)
        return found

    def ledger(self, flow: str) -> list[Any]:
        with self.engine.connect() as conn:
            query = select(deliveries).where(deliveries.c.flow == flow).order_by(deliveries.c.id)
            return list(conn.execute(query))


# -- Tryton data ---------------------------------------------------------------------------------


def new_party(tryton: Tryton, code: str, *addresses: tuple[str, str, str, str]) -> int:
    """A party with addresses (street, postal code, city, country code)."""
    rows = [
        {
            "street": street,
            "postal_code": postal,
            "city": city,
            "country": tryton.id_of("country.country", "code", country),
        }
        for street, postal, city, country in addresses
    ]
    values: dict[str, Any] = {"code": code, "name": f"Customer {code}"}
    if rows:
        values["addresses"] = [["create", rows]]
    (party,) = tryton.call("party.party", "create", [values])
    return int(party)


def new_products(tryton: Tryton, *codes: str) -> list[int]:
    """Goods (category ``Goods``, so they can be invoiced) that can be sold, one variant each."""
    unit = tryton.id_of("product.uom", "symbol", "u")
    goods = tryton.id_of("product.category", "name", "Goods")
    templates = tryton.call(
        "product.template",
        "create",
        [
            {
                "code": code,
                "name": f"Product {code}",
                "type": "goods",
                "default_uom": unit,
                "sale_uom": unit,
                "salable": True,
                "account_category": goods,
                "list_price": Decimal("10"),
                "products": [["create", [{}]]],
            }
            for code in codes
        ],
    )
    rows = tryton.call("product.product", "search_read", [["template", "in", templates]], 0,
                       None, [["id", "ASC"]], ["id"])  # fmt: skip
    return [row["id"] for row in rows]


def new_sale(tryton: Tryton, party: int, lines: list[tuple[int, str, str]]) -> int:
    """A draft sale of ``party`` with lines (product id, quantity, unit price), at the party's
    first address."""
    (address,) = tryton.call("party.address", "search", [["party", "=", party]], 0, 1, None)
    unit = tryton.id_of("product.uom", "symbol", "u")
    (sale,) = tryton.call(
        "sale.sale",
        "create",
        [
            {
                "party": party,
                "invoice_address": address,
                "shipment_address": address,
                "lines": [
                    [
                        "create",
                        [
                            {"product": p, "quantity": float(q), "unit": unit,
                             "unit_price": Decimal(price)}
                            for p, q, price in lines
                        ],
                    ]
                ],
            }
        ],
    )  # fmt: skip
    return int(sale)


SALE_VIEW = [
    "number", "description", "reference", "comment", "state", "shipment_state", "party.code",
    "invoice_address.street", "invoice_address.party", "shipment_address.street",
    "shipment_address.city", "shipment_address.party", "shipment_address.country.code",
    "warehouse.code", "line_lines.product.code", "line_lines.quantity", "line_lines.unit.symbol",
    "line_lines.unit_price", "line_lines.sequence", "line_lines.note",
]  # fmt: skip


def sales_described(tryton: Tryton, description: str) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = tryton.call(
        "sale.sale", "search_read", [["description", "=", description]], 0, None,
        [["id", "ASC"]], SALE_VIEW,
    )  # fmt: skip
    return rows


def lines_of(sale: dict[str, Any]) -> list[tuple[Any, ...]]:
    return [
        (line["product."]["code"], line["quantity"], line["unit."]["symbol"], line["unit_price"])
        for line in sale["line_lines."]
    ]


def ship(tryton: Tryton, sale: int) -> None:
    """Pick, pack and send the sale's shipment (forced: the warehouse holds no stock)."""
    (shipment,) = tryton.call("sale.sale", "read", [sale], ["shipments"])[0]["shipments"]
    for button in ("assign_force", "pick", "pack", "do"):
        tryton.call("stock.shipment.out", button, [shipment])


# -- orders --------------------------------------------------------------------------------------


def test_a_platform_order_becomes_a_confirmed_sale_whose_progress_comes_back(
    tryton: Tryton, hub: Hub, platform: Platform, prefix: str
) -> None:
    customer = f"{prefix}C1"
    party = new_party(tryton, customer, ("Hauptstr. 1", "10115", "Berlin", "DE"))
    new_products(tryton, f"{prefix}P1", f"{prefix}P2")
    number = f"{prefix}WEB-1001"
    order = {
        "identifier": number,
        "customerNumber": customer,
        "poNumber": "PO-4711",
        "currency": "EUR",
        "createdAt": "2026-11-20",
        "billingAddress": {
            "street": "Hauptstr. 1", "postalCode": "10115", "city": "Berlin", "countryIso2": "DE",
        },
        "shippingAddress": {
            "street": "Werkstr. 9", "postalCode": "14467", "city": "Potsdam", "countryIso2": "DE",
        },
        "lineItems": [
            {"position": 10, "sku": f"{prefix}P1", "quantity": 3, "unit": "pcs", "price": "9.50"},
            {"position": 20, "sku": f"{prefix}P2", "quantity": 1, "unit": "pcs", "price": "120"},
        ],
    }  # fmt: skip

    hub.push("orders-from-shop", order)
    assert hub.deliver() == (1, 0)  # to Tryton; not back to the shop it came from

    (sale,) = sales_described(tryton, number)
    assert sale["party."]["code"] == customer
    assert sale["reference"] == "PO-4711"
    assert sale["state"] == "processing"  # quoted, confirmed, then processed by Tryton
    assert sale["number"]  # Tryton numbered it when quoting
    assert sale["invoice_address."] == {  # the party's own address, found, not copied
        "id": tryton.call("party.address", "search", [["party", "=", party]], 0, 1, None)[0],
        "street": "Hauptstr. 1",
        "party": party,
    }
    shipment = sale["shipment_address."]
    assert (shipment["street"], shipment["city"], shipment["party"]) == (
        "Werkstr. 9", "Potsdam", party,
    )  # fmt: skip
    assert shipment["country."]["code"] == "DE"
    assert lines_of(sale) == [
        (f"{prefix}P1", 3.0, "u", Decimal("9.50")),
        (f"{prefix}P2", 1.0, "u", Decimal("120")),
    ]
    assert [line["sequence"] for line in sale["line_lines."]] == [10, 20]
    assert platform.received == []
    assert hub.deliver() == (0, 0)  # nothing left: a second pass sends nothing
    assert len(sales_described(tryton, number)) == 1

    # Tryton's view comes back: the hub's record moves on, the shop hears of it, Tryton does not.
    assert hub.run("orders-from-tryton")[1:] == (0, 1)
    record = hub.record("order", number)
    assert (record["status"], record["shipment_status"], record["invoice_status"]) == (
        "processing", "waiting", "pending",
    )  # fmt: skip
    assert (record["customer_code"], record["po_number"], record["total"]) == (
        customer, "PO-4711", "148.5",
    )  # fmt: skip
    assert record["shipping_address"]["city"] == "Potsdam"
    assert [(line["sku"], line["quantity"], line["unit"], line["amount"]) for line in
            record["lines"]] == [(f"{prefix}P1", "3", "pcs", "28.5"), (f"{prefix}P2", "1", "pcs",
                                                                          "120")]  # fmt: skip
    assert hub.deliver() == (1, 0)
    assert [e["status"] for e in platform.events("order.updated")] == ["processing"]
    assert len(hub.ledger("orders-to-tryton")) == 1  # no echo back to Tryton

    assert hub.run("orders-from-tryton")[1:] == (0, 0)  # a second run changes nothing
    assert hub.deliver() == (0, 0)

    ship(tryton, sale["id"])
    assert hub.run("orders-from-tryton")[1:] == (0, 1)
    assert hub.record("order", number)["shipment_status"] == "sent"
    assert hub.deliver() == (1, 0)
    assert platform.events("order.updated")[-1]["shipment_status"] == "sent"
    assert len(hub.ledger("orders-to-tryton")) == 1

    # The shop changes the order after Tryton confirmed it: Tryton refuses, the delivery waits.
    hub.push("orders-from-shop", {**order, "poNumber": "PO-4712"})
    assert hub.deliver() == (0, 1)
    (_, refused) = hub.ledger("orders-to-tryton")
    assert "You are not allowed to modify the field" in refused.last_error
    assert f"order '{number}' v4" in refused.last_error
    assert sales_described(tryton, number)[0]["reference"] == "PO-4711"


def test_a_sale_made_in_tryton_reaches_the_platform_and_its_lines_with_its_next_state(
    tryton: Tryton, hub: Hub, platform: Platform, prefix: str
) -> None:
    party = new_party(tryton, f"{prefix}C2", ("Quai 2", "75001", "Paris", "FR"))
    (product,) = new_products(tryton, f"{prefix}P3")
    sale = new_sale(tryton, party, [(product, "4", "10.00")])
    tryton.call("sale.sale", "quote", [sale])
    (number,) = (row["number"] for row in tryton.call("sale.sale", "read", [sale], ["number"]))

    assert hub.run("orders-from-tryton") == (1, 1, 0)  # the first run: every sale (migration)
    record = hub.record("order", number)  # keyed by Tryton's number: no platform number
    assert (record["status"], record["customer_code"], record["total"]) == (
        "quotation", f"{prefix}C2", "40",
    )  # fmt: skip
    assert record["billing_address"] == {
        "type": "other", "street": "Quai 2", "postal_code": "75001", "city": "Paris",
        "country": "FR",
    }  # fmt: skip
    assert record["lines"] == [
        {"sku": f"{prefix}P3", "quantity": "4", "unit": "pcs", "unit_price": "10", "amount": "40"}
    ]
    assert hub.deliver() == (1, 0)
    assert platform.events("order.updated")[0]["number"] == number

    tryton.call("sale.sale", "draft", [sale])  # back to draft to amend it
    assert hub.run("orders-from-tryton")[1:] == (0, 1)
    assert hub.record("order", number)["status"] == "draft"
    later = new_sale(tryton, party, [(product, "1", "10.00")])
    tryton.call("sale.sale", "quote", [later])  # another sale moves the pass boundary on
    assert hub.run("orders-from-tryton")[1:] == (1, 0)
    (line,) = tryton.call("sale.line", "search", [["sale", "=", sale]], 0, None, None)
    tryton.call("sale.line", "write", [line], {"quantity": 6.0})
    # A line edit leaves the sale's write_date alone; the preset follows the lines' own
    # write_date (`related`), so this run sees the change at once.
    assert hub.run("orders-from-tryton")[1:] == (0, 1)
    record = hub.record("order", number)
    assert (record["status"], record["lines"][0]["quantity"], record["total"]) == (
        "draft", "6", "60",
    )  # fmt: skip
    # A line added to the draft on its own, then the sale quoted: each change comes once.
    unit = tryton.id_of("product.uom", "symbol", "u")
    tryton.call("sale.line", "create", [{"sale": sale, "product": product, "quantity": 1.0,
                                         "unit": unit, "unit_price": Decimal("10")}])  # fmt: skip
    assert hub.run("orders-from-tryton")[1:] == (0, 1)
    assert [ln["quantity"] for ln in hub.record("order", number)["lines"]] == ["6", "1"]
    tryton.call("sale.sale", "quote", [sale])
    assert hub.run("orders-from-tryton")[1:] == (0, 1)
    record = hub.record("order", number)
    assert (record["status"], record["total"]) == ("quotation", "70")
    assert hub.run("orders-from-tryton")[1:] == (0, 0)

    # The party's address the sales ship to, changed on its own: both orders follow it.
    address = tryton.call("sale.sale", "read", [sale], ["shipment_address"])[0]["shipment_address"]
    tryton.call("party.address", "write", [address], {"street": "Quai 3"})
    assert hub.run("orders-from-tryton")[1:] == (0, 2)
    record = hub.record("order", number)
    assert record["shipping_address"]["street"] == record["billing_address"]["street"] == "Quai 3"
    view = tryton.call("sale.sale", "read", [sale], ["shipment_address.street", "total_amount"])[0]
    assert view["shipment_address."]["street"] == "Quai 3"
    assert Decimal(record["total"]) == view["total_amount"]
    assert hub.ledger("orders-to-tryton") == []  # Tryton's own sales never go back to it


# -- returns -------------------------------------------------------------------------------------


def test_a_return_request_becomes_a_return_sale_and_its_approval_and_receipt_come_back(
    tryton: Tryton, hub: Hub, platform: Platform, prefix: str
) -> None:
    customer = f"{prefix}C3"
    party = new_party(tryton, customer, ("Ring 5", "1010", "Wien", "AT"))
    new_products(tryton, f"{prefix}P4")
    rma = {
        "number": f"{prefix}RMA-1",
        "order_number": f"{prefix}WEB-77",
        "customer_code": customer,
        "reason": "arrived damaged",
        "lines": [
            {"line_no": 1, "sku": f"{prefix}P4", "quantity": "2", "unit_price": "19.90",
             "reason": "dented"},
        ],
    }  # fmt: skip

    hub.push("rma-from-shop", rma)
    assert hub.deliver() == (1, 0)

    (sale,) = sales_described(tryton, rma["number"])
    assert (sale["state"], sale["reference"], sale["comment"]) == (
        "quotation", f"{prefix}WEB-77", "arrived damaged",
    )  # fmt: skip
    assert sale["party."]["code"] == customer
    assert sale["invoice_address."]["party"] == party  # the party's first address
    assert lines_of(sale) == [(f"{prefix}P4", -2.0, "u", Decimal("19.90"))]
    assert sale["line_lines."][0]["note"] == "dented"
    assert hub.deliver() == (0, 0)

    assert hub.run("rma-status-from-tryton")[1:] == (0, 1)
    assert hub.record("rma", rma["number"])["status"] == "requested"
    tryton.call("sale.sale", "confirm", [sale["id"]])  # the sales desk approves the return
    assert hub.run("rma-status-from-tryton")[1:] == (0, 1)
    record = hub.record("rma", rma["number"])
    assert record["status"] == "approved"
    assert record["lines"] == [
        {"line_no": 1, "sku": f"{prefix}P4", "quantity": "2", "unit": "pcs",
         "unit_price": "19.9", "amount": "39.8", "reason": "dented"},
    ]  # fmt: skip
    assert hub.run("rma-status-from-tryton")[1:] == (0, 0)

    (back,) = tryton.call("sale.sale", "read", [sale["id"]], ["shipment_returns"])[0][
        "shipment_returns"
    ]
    for button in ("receive", "do"):
        tryton.call("stock.shipment.out.return", button, [back])
    assert hub.run("rma-status-from-tryton")[1:] == (0, 1)
    assert hub.record("rma", rma["number"])["status"] == "received"

    assert hub.deliver() == (3, 0)  # requested, approved, received: to the shop only
    assert [e["status"] for e in platform.events("rma.updated")] == [
        "requested", "approved", "received",
    ]  # fmt: skip
    assert len(hub.ledger("rma-to-tryton")) == 1


def test_a_return_started_in_tryton_waits_for_its_number_and_its_lines_are_followed(
    tryton: Tryton, hub: Hub, prefix: str
) -> None:
    party = new_party(tryton, f"{prefix}C9", ("Gasse 9", "8010", "Graz", "AT"))
    (product,) = new_products(tryton, f"{prefix}P9")
    later = new_sale(tryton, party, [(product, "1", "5.00")])  # an order, moves the boundary
    tryton.call("sale.sale", "quote", [later])
    hub.run("rma-status-from-tryton")
    # A return the sales desk starts in Tryton: a draft without a number (or Description).
    sale = new_sale(tryton, party, [(product, "-2", "10.00")])
    result = hub.runner.run("rma-status-from-tryton")
    assert (result.status, result.read, result.rejected, result.created) == ("succeeded", 0, 0, 0)
    assert hub.runner.run("rma-status-from-tryton").rejected == 0  # not on any pass

    tryton.call("sale.sale", "quote", [sale])  # now Tryton numbers it: it comes
    assert hub.run("rma-status-from-tryton")[1:] == (1, 0)
    (number,) = (row["number"] for row in tryton.call("sale.sale", "read", [sale], ["number"]))
    assert hub.record("rma", number)["lines"][0]["quantity"] == "2"

    tryton.call("sale.sale", "draft", [sale])
    hub.run("rma-status-from-tryton")
    (line,) = tryton.call("sale.line", "search", [["sale", "=", sale]], 0, None, None)
    tryton.call("sale.line", "write", [line], {"quantity": -3.0})  # a line changed on its own
    assert hub.run("rma-status-from-tryton")[1:] == (0, 1)
    record = hub.record("rma", number)
    assert (record["status"], record["lines"][0]["quantity"], record["lines"][0]["amount"]) == (
        "requested", "3", "30",
    )  # fmt: skip


# -- invoices ------------------------------------------------------------------------------------


def test_posted_invoices_reach_the_platform_with_lines_and_totals(
    tryton: Tryton, hub: Hub, platform: Platform, prefix: str
) -> None:
    party = new_party(tryton, f"{prefix}C4", ("Allee 3", "80331", "München", "DE"))
    first, second = new_products(tryton, f"{prefix}P5", f"{prefix}P6")
    sale = new_sale(tryton, party, [(first, "2", "15.00"), (second, "1", "5.25")])
    for button in ("quote", "confirm"):
        tryton.call("sale.sale", button, [sale])
    (sold,) = tryton.call("sale.sale", "read", [sale], ["number", "invoices"])
    (invoice,) = sold["invoices"]

    assert hub.run("invoices-from-tryton")[1:] == (0, 0)  # a draft invoice is not sent
    tryton.call("account.invoice", "post", [invoice])
    (posted,) = tryton.call("account.invoice", "read", [invoice], ["number", "invoice_date"])

    assert hub.run("invoices-from-tryton") == (1, 1, 0)
    record = hub.record("invoice", posted["number"])
    assert record == {
        "number": posted["number"],
        "order_number": sold["number"],
        "customer_code": f"{prefix}C4",
        "status": "open",
        "invoice_date": day(posted["invoice_date"]),
        "due_date": day(posted["invoice_date"]),  # payment term: upon receipt
        "currency": "EUR",
        "net": "35.25",
        "tax": "0",
        "total": "35.25",
        "lines": [
            {"sku": f"{prefix}P5", "quantity": "2", "unit": "pcs", "unit_price": "15",
             "amount": "30"},
            {"sku": f"{prefix}P6", "quantity": "1", "unit": "pcs", "unit_price": "5.25",
             "amount": "5.25"},
        ],
    }  # fmt: skip
    assert hub.run("invoices-from-tryton")[1:] == (0, 0)
    assert hub.deliver() == (1, 0)
    (sent,) = platform.events("invoice.posted")
    assert (sent["number"], sent["total"]) == (posted["number"], "35.25")


# -- allocations ---------------------------------------------------------------------------------


def test_an_allocation_becomes_a_draft_sale_that_follows_its_quantity(
    tryton: Tryton, hub: Hub, prefix: str
) -> None:
    customer = f"{prefix}C5"
    new_party(tryton, customer, ("Weg 1", "20095", "Hamburg", "DE"))
    new_products(tryton, f"{prefix}P7")
    allocation = {"customer_code": customer, "sku": f"{prefix}P7", "warehouse": "WH2",
                  "quantity": "5", "valid_until": "2026-12-31"}  # fmt: skip

    hub.push("allocations-from-shop", allocation)
    assert hub.deliver() == (1, 0)
    description = f"allocation:{customer}:{prefix}P7@WH2"
    (sale,) = sales_described(tryton, description)
    assert (sale["state"], sale["party."]["code"], sale["warehouse."]["code"]) == (
        "draft", customer, "WH2",
    )  # fmt: skip
    assert sale["comment"] == "Set aside by the platform until 2026-12-31"
    assert lines_of(sale) == [(f"{prefix}P7", 5.0, "u", Decimal("0"))]

    hub.push("allocations-from-shop", {**allocation, "quantity": "2"})
    assert hub.deliver() == (1, 0)
    (changed,) = sales_described(tryton, description)  # the same sale, its line replaced
    assert changed["id"] == sale["id"]
    assert lines_of(changed) == [(f"{prefix}P7", 2.0, "u", Decimal("0"))]
    assert hub.deliver() == (0, 0)
    assert hub.run("orders-from-tryton") == (0, 0, 0)  # an allocation is not an order


# -- bad input -----------------------------------------------------------------------------------


def test_an_unknown_customer_or_a_refused_quotation_waits_dead_and_a_retry_makes_one_sale(
    tryton: Tryton, hub: Hub, prefix: str
) -> None:
    party = new_party(tryton, f"{prefix}C6")  # no address: Tryton cannot quote its sales
    new_products(tryton, f"{prefix}P8")
    line = {"position": 1, "sku": f"{prefix}P8", "quantity": 1, "unit": "pcs", "price": "3"}
    stranger = {"identifier": f"{prefix}WEB-1", "customerNumber": f"{prefix}NOPE",
                "lineItems": [line]}  # fmt: skip
    homeless = {"identifier": f"{prefix}WEB-2", "customerNumber": f"{prefix}C6",
                "lineItems": [line]}  # fmt: skip

    hub.push("orders-from-shop", [stranger, homeless])
    assert hub.deliver() == (0, 2)

    errors = {row.key: row.last_error for row in hub.ledger("orders-to-tryton")}
    assert f"order '{prefix}WEB-1' v1" in errors[f"{prefix}WEB-1"]
    assert f"no party.party with code = '{prefix}NOPE'" in errors[f"{prefix}WEB-1"]
    assert "sale.sale.quote" in errors[f"{prefix}WEB-2"]
    assert "invoice address" in errors[f"{prefix}WEB-2"]
    assert sales_described(tryton, f"{prefix}WEB-1") == []
    (draft,) = sales_described(tryton, f"{prefix}WEB-2")  # created, not quoted: nothing lost
    assert draft["state"] == "draft"

    # The desk gives the customer an address; the dead deliveries are retried.
    country = tryton.id_of("country.country", "code", "DE")
    tryton.call(
        "party.address",
        "create",
        [{"party": party, "street": "Neu 1", "city": "Köln", "country": country}],
    )
    with hub.engine.begin() as conn:
        assert requeue(conn, None, now(), all_dead=True) == 2
    assert hub.deliver() == (1, 1)  # the stranger is still a stranger
    (sale,) = sales_described(tryton, f"{prefix}WEB-2")  # the same sale, now confirmed
    assert (sale["id"], sale["state"]) == (draft["id"], "processing")
    assert sale["invoice_address."]["street"] == "Neu 1"
