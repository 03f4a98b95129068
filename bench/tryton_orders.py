"""Benchmark: the initial migration of Tryton sales into the hub (preset `orders-from-tryton`).

1. Starts a throwaway Tryton with ``scripts/tryton.sh`` on port ``--port`` (58200, its own data
   folder) unless ``--url`` names a running one (``http://admin:<password>@host:port/<db>``).
2. Creates ``--customers`` parties (10 000) with an address each, 20 products, and ``--sales``
   sales (50 000) of ``--lines`` lines each, through batched JSON-RPC ``create`` calls of
   ``--batch`` records (500). The sales stay drafts: quoting and confirming them would make
   Tryton number each, compute its taxes and create a shipment and an invoice for it (71 s per
   500 sales on the 2-core development machine: two hours for 50 000), which says nothing about
   the migration. Each draft
   carries a legacy order number in its Description, as history migrated from an older system
   (or orders made by the platform) would, and the preset takes it as the order number.
3. Writes an ``erpbridge.yaml`` with the Tryton channel and the preset ``orders-from-tryton``
   (and ``customers-from-tryton`` when the master-data presets offer it), and runs each once
   into a fresh SQLite hub through ``FlowRunner``: the first run of a preset is a full read,
   page by page (the preset's 500), checkpointed per page — the migration.
4. Checks that the hub holds one order record per sale (and one customer per party).

The last line printed is one JSON object with the figures.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import orjson
import yaml
from sqlalchemy import func, select

from erpbridge import FlowRunner, load_config, open_store
from erpbridge.store.tables import records
from erpbridge.systems import system_types

ROOT = Path(__file__).resolve().parent.parent


class Tryton:
    """A bare JSON-RPC client (Decimal tagged), logged in as the URL's user."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        self.base_url = f"{parts.scheme}://{parts.hostname}:{parts.port}/"
        self.database = parts.path.strip("/")
        self.username, self.password = str(parts.username), str(parts.password)
        self.http = httpx.Client(timeout=600)
        uid, session, *_ = self._post(
            "common.db.login", [self.username, {"password": self.password}, "en"], ""
        )
        token = base64.b64encode(f"{self.username}:{uid}:{session}".encode()).decode()
        self.auth = f"Session {token}"
        self.context = self._post("model.res.user.get_preferences", [True, {}], self.auth)

    def call(self, model: str, method: str, *params: Any) -> Any:
        return self._post(f"model.{model}.{method}", [*params, self.context], self.auth)

    def _post(self, method: str, params: list[Any], auth: str) -> Any:
        body = orjson.dumps({"id": 1, "method": method, "params": params}, default=_tag)
        answer = self.http.post(
            f"{self.base_url}{self.database}/rpc/",
            content=body,
            headers={"Content-Type": "application/json", "Authorization": auth},
        )
        answer.raise_for_status()
        data = orjson.loads(answer.content)
        if data.get("error"):
            raise RuntimeError(f"{method}: {data['error']}")
        return data["result"]

    def id_of(self, model: str, field: str, value: str) -> int:
        (found,) = self.call(model, "search", [[field, "=", value]], 0, 1, None)
        return int(found)


def _tag(value: Any) -> Any:
    if isinstance(value, Decimal):
        return {"__class__": "Decimal", "decimal": str(value)}
    raise TypeError(type(value).__name__)


@contextlib.contextmanager
def tryton_server(url: str | None, port: int) -> Iterator[str]:
    """The URL of a running Tryton: the given one, or a throwaway one stopped afterwards."""
    if url:
        yield url
        return
    env = {**os.environ, "ERPBRIDGE_TRYTON_PORT": str(port)}
    script = str(ROOT / "scripts" / "tryton.sh")
    started = subprocess.run(
        ["bash", script, "start"], env=env, check=True, capture_output=True, text=True
    )
    try:
        yield started.stdout.strip().splitlines()[-1]
    finally:
        subprocess.run(["bash", script, "stop"], env=env, check=False, capture_output=True)


def in_batches(total: int, size: int) -> Iterator[range]:
    for start in range(0, total, size):
        yield range(start, min(start + size, total))


def make_data(tryton: Tryton, args: argparse.Namespace, tag: str) -> dict[str, float]:
    """Customers, products and draft sales; returns the seconds each took."""
    took: dict[str, float] = {}
    country = tryton.id_of("country.country", "code", "DE")
    unit = tryton.id_of("product.uom", "symbol", "u")
    goods = tryton.id_of("product.category", "name", "Goods")
    started = time.perf_counter()
    templates = tryton.call(
        "product.template",
        "create",
        [
            {
                "code": f"{tag}P{i:02d}",
                "name": f"Bench product {i}",
                "type": "goods",
                "default_uom": unit,
                "sale_uom": unit,
                "salable": True,
                "account_category": goods,
                "list_price": Decimal(f"{i + 1}.50"),
                "products": [["create", [{}]]],
            }
            for i in range(20)
        ],
    )
    products = tryton.call(
        "product.product", "search", [["template", "in", templates]], 0, None, [["id", "ASC"]]
    )
    parties: list[tuple[int, int]] = []  # (party, its address)
    for chunk in in_batches(args.customers, args.batch):
        rows = [
            {
                "code": f"{tag}C{i:06d}",
                "name": f"Bench customer {i}",
                "addresses": [
                    [
                        "create",
                        [
                            {
                                "street": f"Street {i}",
                                "postal_code": f"{10000 + i % 89999}",
                                "city": "Berlin",
                                "country": country,
                            }
                        ],
                    ]
                ],
            }
            for i in chunk
        ]
        ids = tryton.call("party.party", "create", rows)
        found = tryton.call(
            "party.address", "search_read", [["party", "in", ids]], 0, None, [["id", "ASC"]],
            ["party"],
        )  # fmt: skip
        parties += [(row["party"], row["id"]) for row in found]
        print(f"customers: {len(parties):,}", file=sys.stderr)
    took["customers_s"] = time.perf_counter() - started
    started = time.perf_counter()
    made = 0
    for chunk in in_batches(args.sales, args.batch):
        rows = []
        for i in chunk:
            party, address = parties[i % len(parties)]
            lines = [
                {
                    "product": products[(i + n) % len(products)],
                    "quantity": float(1 + (i + n) % 9),
                    "unit": unit,
                    "unit_price": Decimal(f"{(i + n) % 20 + 1}.50"),
                    "sequence": 10 * (n + 1),
                }
                for n in range(args.lines)
            ]
            rows.append(
                {
                    "party": party,
                    "invoice_address": address,
                    "shipment_address": address,
                    "description": f"{tag}H-{i:06d}",
                    "reference": f"PO-{i}",
                    "lines": [["create", lines]],
                }
            )
        tryton.call("sale.sale", "create", rows)
        made += len(rows)
        if made % (args.batch * 10) == 0 or made == args.sales:
            rate = made / (time.perf_counter() - started)
            print(f"sales: {made:,} ({rate:,.0f}/s)", file=sys.stderr)
    took["sales_s"] = time.perf_counter() - started
    return took


def migrate(url: str, folder: Path, tag: str) -> dict[str, Any]:
    """Run the presets once each into a fresh hub; return their figures."""
    parts = urlsplit(url)
    os.environ["BENCH_TRYTON_PASSWORD"] = str(parts.password)
    presets = system_types()["tryton"].presets()
    flows: list[dict[str, Any]] = []
    if "customers-from-tryton" in presets:
        source = dict(presets["customers-from-tryton"].get("source", {}))
        source["domain"] = [*source.get("domain", []), ["code", "like", f"{tag}%"]]
        flows.append({"preset": "customers-from-tryton", "channel": "erp", "source": source})
    source = dict(presets["orders-from-tryton"]["source"])
    source["domain"] = [*source["domain"], ["party.code", "like", f"{tag}%"]]
    flows.append({"preset": "orders-from-tryton", "channel": "erp", "source": source})
    document = {
        "hub": {"database_url": f"sqlite:///{folder / 'hub.db'}"},
        "channels": {
            "erp": {
                "system": "tryton",
                "options": {
                    "base_url": f"{parts.scheme}://{parts.hostname}:{parts.port}/",
                    "database": parts.path.strip("/"),
                    "username": parts.username,
                    "timeout_s": 600,
                },
                "credentials": {"password": "${BENCH_TRYTON_PASSWORD}"},
            }
        },
        "flows": flows,
    }
    (folder / "erpbridge.yaml").write_text(yaml.safe_dump(document), encoding="utf-8")
    config = load_config(folder / "erpbridge.yaml")
    engine = open_store(str(config.model.hub.database_url))
    runner = FlowRunner(config, engine)
    figures: dict[str, Any] = {}
    for flow in config.model.flows:
        started = time.perf_counter()
        pages = [0]

        def progress(counts: Any, name: str = flow.name, pages: list[int] = pages) -> None:
            pages[0] += 1
            if pages[0] % 10 == 0:
                print(f"{name}: {pages[0]} pages", file=sys.stderr)

        result = runner.run(flow.name, progress=progress)
        seconds = time.perf_counter() - started
        if result.status != "succeeded" or result.rejected:
            raise SystemExit(f"{flow.name}: {result.status} {result.error} {result.warnings[:3]}")
        with engine.connect() as conn:
            held = conn.execute(
                select(func.count()).select_from(records).where(records.c.entity == flow.entity)
            ).scalar_one()
        figures[flow.name] = {
            "read": result.read,
            "created": result.created,
            "hub_records": held,
            "seconds": round(seconds, 1),
            "per_s": round(result.read / seconds),
        }
        print(f"{flow.name}: {figures[flow.name]}", file=sys.stderr)
    engine.dispose()
    return figures


def main() -> None:
    """Parse the command line, make the data, migrate it, print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sales", type=int, default=50_000, help="Draft sales to create.")
    parser.add_argument("--customers", type=int, default=10_000, help="Parties to create.")
    parser.add_argument("--lines", type=int, default=2, help="Lines per sale.")
    parser.add_argument("--batch", type=int, default=500, help="Records per create call.")
    parser.add_argument("--url", help="A running Tryton (default: start one with tryton.sh).")
    parser.add_argument("--port", type=int, default=58200, help="Port of the throwaway Tryton.")
    args = parser.parse_args()

    tag = f"B{uuid.uuid4().hex[:6]}-"  # the bench's own records, also on a shared server
    with (
        tryton_server(args.url, args.port) as url,
        tempfile.TemporaryDirectory(prefix="bench-tryton-") as tmp,
    ):
        made = make_data(Tryton(url), args, tag)
        figures = migrate(url, Path(tmp), tag)
    orders = figures["orders-from-tryton"]
    assert orders["hub_records"] == args.sales, orders
    summary = {
        "sales": args.sales,
        "lines_per_sale": args.lines,
        "customers": args.customers,
        "create_customers_s": round(made["customers_s"], 1),
        "create_sales_s": round(made["sales_s"], 1),
        "orders_migration_s": orders["seconds"],
        "orders_per_s": orders["per_s"],
    }
    if "customers-from-tryton" in figures:
        summary["customers_migration_s"] = figures["customers-from-tryton"]["seconds"]
        summary["customers_per_s"] = figures["customers-from-tryton"]["per_s"]
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
