"""The Tryton demo's helpers (``run.sh`` calls them): sample data in Tryton, the shop's webhook
receiver, the shop's pushes to the hub's API, Tryton's side of the story, and what it shows.

    python demo.py seed                  customers, products, stock, sales and an invoice
    python demo.py receive PORT LOG      the shop's webhook receiver (HMAC checked), until killed
    python demo.py push API KEY          the shop pushes an order, a return, an allocation, …
    python demo.py tryton                what the shop's documents became in Tryton
    python demo.py ship                  Tryton ships the shop's order and approves the return
    python demo.py webhooks LOG          what the shop received, by event

Tryton is reached through TRYTON_URL, TRYTON_DATABASE, TRYTON_USER and TRYTON_PASSWORD; the
webhooks are verified with SHOP_WEBHOOK_SECRET.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import sys
from collections import Counter
from datetime import date
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import httpx
import orjson

CUSTOMERS = [
    ("C-1001", "Acme Maschinenbau GmbH", "Hauptstr. 1", "10115", "Berlin", "DE"),
    ("C-1002", "Bolzen & Söhne KG", "Hafenweg 7", "20457", "Hamburg", "DE"),
    ("C-1003", "Atelier Lumière SARL", "Quai 2", "75001", "Paris", "FR"),
    ("C-1004", "Alpen Werkzeuge GmbH", "Ring 5", "1010", "Wien", "AT"),
]
PRODUCTS = [
    ("BOLT-M8", "Hex bolt M8x40", "0.35"),
    ("NUT-M8", "Hex nut M8", "0.12"),
    ("DRILL-10", "Drill bit 10 mm", "7.90"),
    ("GLOVE-L", "Work gloves, size L", "4.50"),
]


class Tryton:
    """A bare JSON-RPC client of the demo's Tryton."""

    def __init__(self) -> None:
        self.url = f"{os.environ['TRYTON_URL'].rstrip('/')}/{os.environ['TRYTON_DATABASE']}/rpc/"
        user, password = os.environ["TRYTON_USER"], os.environ["TRYTON_PASSWORD"]
        uid, session, *_ = self._post("common.db.login", [user, {"password": password}, "en"], "")
        self.auth = "Session " + base64.b64encode(f"{user}:{uid}:{session}".encode()).decode()
        self.context = self._post("model.res.user.get_preferences", [True, {}], self.auth)

    def __call__(self, model: str, method: str, *params: Any) -> Any:
        return self._post(f"model.{model}.{method}", [*params, self.context], self.auth)

    def _post(self, method: str, params: list[Any], auth: str) -> Any:
        body = orjson.dumps({"id": 1, "method": method, "params": params}, default=_tag)
        headers = {"Content-Type": "application/json", "Authorization": auth}
        answer = httpx.post(self.url, content=body, headers=headers, timeout=60)
        answer.raise_for_status()
        data = orjson.loads(answer.content)
        if data.get("error"):
            raise SystemExit(f"Tryton refused {method}: {data['error']}")
        return data["result"]

    def ids(self, model: str, domain: list[Any]) -> list[int]:
        return [int(i) for i in self(model, "search", domain, 0, None, [["id", "ASC"]])]

    def one(self, model: str, domain: list[Any]) -> int:
        (found,) = self.ids(model, domain)
        return found


def _tag(value: Any) -> Any:
    if isinstance(value, Decimal):
        return {"__class__": "Decimal", "decimal": str(value)}
    if isinstance(value, date):
        return {"__class__": "date", "year": value.year, "month": value.month, "day": value.day}
    raise TypeError(type(value).__name__)


def seed() -> None:
    """Customers with addresses, products with list prices, stock in WH, and sales in three
    states made in Tryton itself (one of them shipped and invoiced)."""
    t = Tryton()
    countries = {c: t.one("country.country", [["code", "=", c]]) for c in ("DE", "FR", "AT")}
    parties = t(
        "party.party",
        "create",
        [
            {
                "code": code,
                "name": name,
                "addresses": [
                    [
                        "create",
                        [{"street": s, "postal_code": z, "city": c, "country": countries[k]}],
                    ]
                ],
                "contact_mechanisms": [
                    ["create", [{"type": "email", "value": f"{code.lower()}@example.com"}]]
                ],
            }
            for code, name, s, z, c, k in CUSTOMERS
        ],
    )
    unit = t.one("product.uom", [["symbol", "=", "u"]])
    goods = t.one("product.category", [["name", "=", "Goods"]])
    templates = t(
        "product.template",
        "create",
        [
            {
                "code": sku,
                "name": name,
                "type": "goods",
                "default_uom": unit,
                "sale_uom": unit,
                "salable": True,
                "account_category": goods,
                "list_price": Decimal(price),
                "products": [["create", [{}]]],
            }
            for sku, name, price in PRODUCTS
        ],
    )
    products = t.ids("product.product", [["template", "in", templates]])
    storage = t.one("stock.location", [["code", "=", "STO"]])
    (inventory,) = t(
        "stock.inventory",
        "create",
        [
            {
                "location": storage,
                "date": date.today(),
                "lines": [["create", [{"product": p, "quantity": 500.0} for p in products]]],
            }
        ],
    )
    t("stock.inventory", "confirm", [inventory])
    sales = []
    for party, quantities in zip(parties, ([40, 40], [100, 0], [5, 2]), strict=False):
        address = t.one("party.address", [["party", "=", party]])
        lines = [
            {"product": p, "quantity": float(q), "unit": unit, "unit_price": Decimal(price)}
            for p, q, (_, _, price) in zip(products, quantities, PRODUCTS, strict=False)
            if q
        ]
        (sale,) = t(
            "sale.sale",
            "create",
            [
                {
                    "party": party,
                    "invoice_address": address,
                    "shipment_address": address,
                    "reference": f"PO-{party}",
                    "lines": [["create", lines]],
                }
            ],
        )
        sales.append(sale)
    t("sale.sale", "quote", sales)
    t("sale.sale", "confirm", sales[1:])
    shipped = sales[2]
    _ship(t, shipped)
    invoices = t("sale.sale", "read", [shipped], ["invoices"])[0]["invoices"]
    t("account.invoice", "post", invoices)
    print(
        f"Tryton: {len(parties)} customers, {len(products)} products (500 each in WH), "
        f"3 sales (quoted, confirmed, shipped), {len(invoices)} invoice posted"
    )


def _ship(t: Tryton, sale: int) -> None:
    for shipment in t("sale.sale", "read", [sale], ["shipments"])[0]["shipments"]:
        for button in ("assign_try", "pick", "pack", "do"):
            t("stock.shipment.out", button, [shipment])


def receive(port: int, log: Path) -> None:
    """Take webhooks on 127.0.0.1:``port``; append each verified one to ``log``."""
    secret = os.environ["SHOP_WEBHOOK_SECRET"].encode()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            signed = self.headers.get("X-Timestamp", "").encode() + b"." + body
            expected = "sha256=" + hmac.new(secret, signed, hashlib.sha256).hexdigest()
            ok = hmac.compare_digest(self.headers.get("X-Signature", ""), expected)
            if ok:
                with log.open("a", encoding="utf-8") as out:
                    out.write(body.decode() + "\n")
            self.send_response(200 if ok else 401)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(b'{"ok": true}' if ok else b'{"error": "bad signature"}')

        def log_message(self, *args: Any) -> None:
            pass  # the log file is the record

    HTTPServer(("127.0.0.1", port), Handler).serve_forever()


def push(api: str, key: str) -> None:
    """The shop sends what MDS's shop would: an order, a return of the shipped sale, an
    allocation, a customer's lock status and e-mail preferences, and a card token."""
    t = Tryton()
    shipped = t("sale.sale", "search_read", [["shipment_state", "=", "sent"]], 0, 1, None,
                ["number"])[0]["number"]  # fmt: skip
    events: list[tuple[str, Any]] = [
        (
            "orders-from-shop",
            {
                "identifier": "WEB-5001",
                "customerNumber": "C-1001",
                "poNumber": "PO-2026-77",
                "currency": "EUR",
                "createdAt": date.today().isoformat(),
                "billingAddress": {"street": "Hauptstr. 1", "postalCode": "10115",
                                   "city": "Berlin", "countryIso2": "DE"},
                "shippingAddress": {"street": "Werkstr. 9", "postalCode": "14467",
                                    "city": "Potsdam", "countryIso2": "DE"},
                "lineItems": [
                    {"position": 10, "sku": "BOLT-M8", "quantity": 200, "unit": "pcs",
                     "price": "0.35"},
                    {"position": 20, "sku": "DRILL-10", "quantity": 3, "unit": "pcs",
                     "price": "7.90"},
                ],
            },
        ),
        (
            "rma-from-shop",
            {"number": "RMA-0042", "order_number": shipped, "customer_code": "C-1003",
             "reason": "wrong size", "lines": [{"line_no": 1, "sku": "NUT-M8", "quantity": "2",
                                                "unit_price": "0.12", "reason": "too small"}]},
        ),
        (
            "allocations-from-shop",
            {"customer_code": "C-1002", "sku": "GLOVE-L", "warehouse": "WH", "quantity": "50",
             "valid_until": "2026-12-31"},
        ),
        (
            "customer-settings-from-shop",
            {"code": "C-1004", "name": "Alpen Werkzeuge GmbH", "locked": True,
             "lock_reason": "payment overdue",
             "email_preferences": {"newsletter": True, "order_updates": True, "invoices": False}},
        ),
        (
            "payment-tokens-from-shop",
            {"token": "tok_demo_4f9a2c", "customer_code": "C-1001", "brand": "visa",
             "last4": "4242", "exp_month": 12, "exp_year": 2029},
        ),
    ]  # fmt: skip
    with httpx.Client(base_url=api, headers={"X-API-Key": key}, timeout=30) as http:
        for flow, body in events:
            answer = http.post(f"/api/v1/events/{flow}", json=body)
            print(f"POST /api/v1/events/{flow} → {answer.status_code} {answer.text}")
        check = {"customer": "C-1001", "po_number": "PO-2026-77"}
        answer = http.post("/api/v1/channels/erp/operations/validate_po", json=check)
        print(f"POST /api/v1/channels/erp/operations/validate_po {check} → {answer.text}")


def tryton_view() -> None:
    """The shop's documents as Tryton holds them."""
    t = Tryton()
    fields = [
        "number", "description", "reference", "state", "party.code", "warehouse.code",
        "shipment_address.city", "line_lines.product.code", "line_lines.quantity",
    ]  # fmt: skip
    domain = ["OR", ["description", "like", "WEB-%"], ["description", "like", "RMA-%"],
              ["description", "like", "allocation:%"]]  # fmt: skip
    for sale in t("sale.sale", "search_read", domain, 0, None, [["id", "ASC"]], fields):
        lines = ", ".join(
            f"{line['quantity']:g} × {line['product.']['code']}" for line in sale["line_lines."]
        )
        ship_to = (sale.get("shipment_address.") or {}).get("city", "-")
        print(
            f"sale {sale['number'] or '(draft)'}: {sale['description']} of "
            f"{sale['party.']['code']}, {sale['state']}, PO {sale['reference'] or '-'}, "
            f"ship to {ship_to}, warehouse {sale['warehouse.']['code']}: {lines}"
        )
    party = t("party.party", "search_read", [["code", "=", "C-1004"]], 0, 1, None,
              ["code", "categories.name"])[0]  # fmt: skip
    names = ", ".join(c["name"] for c in party["categories."]) or "none"
    print(f"party C-1004: categories {names}")
    for card in t("party.contact_mechanism", "search_read", [["type", "=", "other"]], 0, None,
                  None, ["value", "name", "party.code"]):  # fmt: skip
        print(f"party {card['party.']['code']}: {card['name']} ({card['value']})")


def ship() -> None:
    """Tryton's side: the shop's order is shipped and invoiced, the return approved."""
    t = Tryton()
    (order,) = t.ids("sale.sale", [["description", "=", "WEB-5001"]])
    _ship(t, order)
    t("account.invoice", "post", t("sale.sale", "read", [order], ["invoices"])[0]["invoices"])
    t("sale.sale", "confirm", t.ids("sale.sale", [["description", "=", "RMA-0042"]]))
    print("Tryton: WEB-5001 shipped and invoiced, RMA-0042 approved (confirmed)")


def webhooks(log: Path) -> None:
    """What the shop received, by event (a batch webhook counts its records), and the
    versions of the shop's order and return."""
    bodies = [json.loads(line) for line in log.read_text(encoding="utf-8").splitlines()]
    items = [
        (body["event"], item) for body in bodies for item in body.get("records", [body])
    ]  # a batch: {"event", "records": [...]}; one record: {"event", "key", …}
    counts = Counter(event for event, _ in items)
    print(
        f"{len(bodies)} webhooks, {len(items)} records: "
        + ", ".join(f"{n} {e}" for e, n in sorted(counts.items()))
    )
    interesting = {"status", "shipment_status", "invoice_status", "total", "order_number"}
    for event, item in items:
        if item["key"] in ("WEB-5001", "RMA-0042") or event == "invoice.posted":
            data = {k: v for k, v in item["data"].items() if k in interesting}
            print(f"  {event} {item['key']} v{item['version']}: {data}")


def main() -> None:
    """Dispatch the subcommand."""
    command, *args = sys.argv[1:] or ["help"]
    if command == "seed":
        seed()
    elif command == "receive":
        receive(int(args[0]), Path(args[1]))
    elif command == "push":
        push(args[0], args[1])
    elif command == "tryton":
        tryton_view()
    elif command == "ship":
        ship()
    elif command == "webhooks":
        webhooks(Path(args[0]))
    else:
        raise SystemExit(__doc__)


if __name__ == "__main__":
    main()
