"""``examples/file-erp`` as it is, end to end: the warehouse system's files on a real SFTP server
(scripts/sshd.sh), the ERP's delivery orders pushed as events, its webhooks received here.

Only what the example leaves to environment variables is set: the server, its folders, the key
and the webhook receiver. Products and stock arrive from files; delivery orders collect and go
out at the next full hour, which the test brings forward by making the waiting delivery due.
"""

from __future__ import annotations

import hashlib
import hmac
import shutil
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
from sqlalchemy import Engine, select, update

from erpbridge import FlowRunner, load_config, open_store
from erpbridge.config.loader import LoadedConfig
from erpbridge.engine.worker import Worker
from erpbridge.store.tables import deliveries, records, rejected
from httpserve import QuietHandler, serve_handler
from integration.sftp_server import Sftp, sftp_server

EXAMPLE = Path(__file__).parents[2] / "examples" / "file-erp" / "erpbridge.yaml"
SECRET = "webhook-secret-for-the-test"

ARTICLES = """<?xml version="1.0" encoding="UTF-8"?>
<Articles exported="2024-06-03T06:00:00">
  <Article no="TG11" status="active">
    <Name>Trad.Good 11</Name><Description>Handelsware 11</Description><Unit>PCE</Unit>
    <EAN>4006381333931</EAN><WeightKg>1.25</WeightKg>
  </Article>
  <Article no=" RM-100 " status="blocked">
    <Name>Steel sheet</Name><Unit>KGM</Unit><WeightKg>1</WeightKg>
  </Article>
</Articles>
"""
STOCK = (
    "ARTNR;LAGER;BESTAND;RESERVIERT;VERFUEGBAR;EINHEIT;ZEITPUNKT\n"
    "TG11;WH1;120,000;20,000;100,000;ST;03.06.2024 10:15\n"
    "RM-100;WH1;1.250,500;;1.250,500;KG;03.06.2024 10:15\n"
    "TG12;WH1;viel;;;ST;03.06.2024 10:15\n"
)
DELIVERY = {
    "name": "WH/OUT/00042",
    "origin": "SO-1001",
    "partner_ref": "1000002",
    "scheduled_date": "2024-06-04 08:00:00",
    "carrier": "DHL",
    "partner_name": "Acme Lager Wien",
    "street": "Ringstraße 3",
    "zip": "1010",
    "city": "Wien",
    "country_code": "at",
    "move_lines": [
        {"product_code": "TG11", "quantity": "2", "uom": "pcs"},
        {"product_code": "RM-100", "quantity": "0.5", "uom": "kg"},
    ],
}


class Receiver(QuietHandler):
    """The ERP's webhook endpoint: keeps every POST."""

    received: list[tuple[dict[str, str], bytes]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.received.append((dict(self.headers.items()), body))
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(b"{}")


@pytest.fixture
def erp() -> Iterator[str]:
    Receiver.received = []
    with serve_handler(Receiver) as served:
        yield f"{served.url}/hooks"


@pytest.fixture(scope="module")
def sftp() -> Sftp:
    return sftp_server()


@pytest.fixture
def example(tmp_path: Path, sftp: Sftp, erp: str) -> Iterator[tuple[LoadedConfig, Engine, str]]:
    """The example file, loaded with the variables a user would export."""
    with sftp.box("exchange/from-wms", "exchange/to-wms") as box:
        shutil.copy(EXAMPLE, tmp_path / "erpbridge.yaml")
        env = {
            "WMS_SFTP_HOST": sftp.host,
            "WMS_SFTP_PORT": str(sftp.port),
            "WMS_SFTP_USER": sftp.user,
            "WMS_EXPORT_FOLDER": f"{box}/exchange/from-wms",
            "WMS_IMPORT_FOLDER": f"{box}/exchange/to-wms",
            "WMS_KNOWN_HOSTS": str(sftp.known_hosts),
            "WMS_PRIVATE_KEY": str(sftp.encrypted_key),
            "WMS_KEY_PASSPHRASE": sftp.passphrase,
            "ERP_WEBHOOK_URL": erp,
            "ERP_WEBHOOK_SECRET": SECRET,
        }
        config = load_config(tmp_path / "erpbridge.yaml", env=env)
        engine = open_store(config.database_url(env={}))
        yield config, engine, box
        engine.dispose()


def payload(engine: Engine, entity: str, key: str) -> dict[str, Any]:
    with engine.connect() as conn:
        row = conn.execute(
            select(records.c.payload).where(records.c.entity == entity, records.c.key == key)
        ).scalar_one()
    return dict(orjson.loads(row))


def deliver(config: LoadedConfig, engine: Engine) -> None:
    worker = Worker(config, engine)
    try:
        worker.run_once()
    finally:
        worker.close()


def webhooks() -> list[dict[str, Any]]:
    """The webhooks received, each checked against its signature."""
    found = []
    for headers, body in Receiver.received:
        signed = headers["X-Timestamp"].encode() + b"." + body
        digest = hmac.new(SECRET.encode(), signed, hashlib.sha256).hexdigest()
        assert headers["X-Signature"] == f"sha256={digest}"
        found.append(orjson.loads(body))
    return found


def test_the_warehouse_example_moves_products_stock_and_delivery_orders(
    example: tuple[LoadedConfig, Engine, str], sftp: Sftp
) -> None:
    config, engine, box = example
    exports = sftp.files / box / "exchange" / "from-wms"
    sftp.drop(f"{box}/exchange/from-wms/articles_20240603.xml", ARTICLES)
    sftp.drop(f"{box}/exchange/from-wms/stock_202406031015.csv", STOCK.encode("utf-8"))
    runner = FlowRunner(config, engine)

    # 1. products IN (twice a day)
    products = runner.run("products-from-wms")
    assert (products.status, products.error, products.created) == ("succeeded", None, 2)
    assert payload(engine, "product", "TG11") == {
        "sku": "TG11",
        "name": "Trad.Good 11",
        "description": "Handelsware 11",
        "ean": "4006381333931",
        "unit": "pcs",
        "weight": "1.25",
        "weight_unit": "kg",
        "active": True,
    }
    steel = payload(engine, "product", "RM-100")
    assert (steel["unit"], steel["active"], steel["weight"]) == ("kg", False, "1")
    assert sorted(p.name for p in (exports / "archive").iterdir()) == ["articles_20240603.xml"]
    assert runner.run("products-from-wms").read == 0

    # 3. quantities IN (every 15 minutes): decimal commas, the WMS's local time; a bad row waits
    stock = runner.run("stock-from-wms")
    assert (stock.status, stock.created, stock.rejected) == ("succeeded", 2, 1)
    assert payload(engine, "inventory", "TG11|WH1") == {
        "sku": "TG11",
        "warehouse": "WH1",
        "quantity": "120",
        "reserved": "20",
        "available": "100",
        "unit": "pcs",
        "updated_at": "2024-06-03T08:15:00Z",
    }
    steel_stock = payload(engine, "inventory", "RM-100|WH1")
    assert (steel_stock["quantity"], steel_stock["reserved"]) == ("1250.5", "0")
    with engine.connect() as conn:
        [(position, field, reason)] = conn.execute(
            select(rejected.c.position, rejected.c.field_path, rejected.c.reason).where(
                rejected.c.flow == "stock-from-wms"
            )
        ).all()
    assert (position, field) == ("stock_202406031015.csv:4", "quantity")
    assert "'viel'" in reason

    # 2. delivery orders OUT (every hour): pushed by the ERP, collected until the full hour
    runner.ingest("delivery-orders-from-erp", [DELIVERY], "test")
    with engine.connect() as conn:
        [(delivery_id, due)] = conn.execute(
            select(deliveries.c.id, deliveries.c.next_attempt_at).where(
                deliveries.c.flow == "delivery-orders-to-wms"
            )
        ).all()
    due = due if due.tzinfo else due.replace(tzinfo=UTC)
    assert due > datetime.now(UTC) and (due.minute, due.second) == (0, 0)
    deliver(config, engine)  # products and stock go to the ERP now; the delivery order waits
    imports = sftp.files / box / "exchange" / "to-wms"
    assert list(imports.iterdir()) == []
    with engine.begin() as conn:  # the clock reaches the full hour
        conn.execute(
            update(deliveries)
            .where(deliveries.c.id == delivery_id)
            .values(next_attempt_at=datetime.now(UTC))
        )
    deliver(config, engine)

    [written] = list(imports.iterdir())
    assert written.name.startswith("deliveries_") and written.suffix == ".xml"
    root = ET.fromstring(written.read_bytes())
    [order] = root.findall("DeliveryOrder")
    assert root.tag == "DeliveryOrders" and order.get("no") == "WH/OUT/00042"
    fields = {child.tag: child.text for child in order if len(child) == 0 and child.tag != "Line"}
    assert fields == {
        "OrderNo": "SO-1001",
        "Customer": "1000002",
        "ShipDate": "20240604",
        "Carrier": "DHL",
    }
    ship = order.find("ShipTo")
    assert ship is not None
    ship_to = {child.tag: child.text for child in ship}
    assert ship_to == {
        "Name": "Acme Lager Wien",
        "Street": "Ringstraße 3",
        "Zip": "1010",
        "City": "Wien",
        "Country": "AT",
    }
    lines = [
        (line.get("sku"), line.findtext("Qty"), line.findtext("Unit"))
        for line in order.findall("Line")
    ]
    assert lines == [("TG11", "2", "PCE"), ("RM-100", "0.5", "KGM")]

    # What the ERP got back: every product and the stock, signed.
    received = webhooks()
    products_sent = sorted(w["key"] for w in received if w["event"] == "product.updated")
    assert products_sent == ["RM-100", "TG11"]
    [stock_sent] = [w for w in received if w["event"] == "stock.updated"]
    assert sorted(r["key"] for r in stock_sent["records"]) == ["RM-100|WH1", "TG11|WH1"]
