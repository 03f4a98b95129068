"""Oro ↔ hub ↔ Tryton from presets only (``examples/oro/``), through real ``erpbridge``
processes: an order placed in Oro becomes a confirmed Tryton sale, Tryton's progress becomes the
Oro order's status, and a Tryton party becomes an Oro customer.

No Oro server can run here: the Oro side is :mod:`systems.oro.fakeoro`, a local test server
answering with the shapes of Oro's published API documentation. Tryton is the real Tryton 8.2 of
``scripts/tryton.sh`` (``ERPBRIDGE_TEST_TRYTON``), checked through its own JSON-RPC API. The
Tryton presets' reads are narrowed to this test's code prefix (the server is shared).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml

from erpbridge.systems import system_types
from hubprocess import cli_ok
from integration.servers import require_server
from integration.test_rpc_tryton import Tryton
from integration.test_tryton_sales import lines_of, new_party, new_products, sales_described
from systems.oro.fakeoro import CLIENT_ID, CLIENT_SECRET, FakeOro, serve_oro


@pytest.fixture
def tryton() -> Tryton:
    return Tryton(require_server("ERPBRIDGE_TEST_TRYTON", "Tryton (scripts/tryton.sh)"))


@pytest.fixture
def oro(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[FakeOro, str]]:
    monkeypatch.setenv("ORO_CLIENT_SECRET", CLIENT_SECRET)
    with serve_oro() as served:
        yield served


def narrowed(name: str, prefix: str) -> dict[str, Any]:
    """The Tryton preset's source, limited to this test's parties, without a safety window."""
    source = dict(system_types()["tryton"].presets()[name]["source"])
    field = "code" if name == "customers-from-tryton" else "party.code"
    source["domain"] = [*source.get("domain", []), [field, "like", f"{prefix}%"]]
    source["safety_window_s"] = 0
    return source


def test_an_oro_order_becomes_a_tryton_sale_and_its_progress_comes_back(
    tmp_path: Path,
    tryton: Tryton,
    oro: tuple[FakeOro, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fake, url = oro
    prefix = f"O{uuid.uuid4().hex[:8]}-"
    customer, sku, number = f"{prefix}C1", f"{prefix}P1", f"{prefix}FR1012401Z"
    new_party(tryton, customer, ("Hauptstr. 1", "10115", "Berlin", "DE"))
    new_products(tryton, sku)
    # Oro's example order, placed by this test's customer for this test's product.
    fake.data["customers"]["1"]["attributes"]["erpCode"] = customer
    order = fake.data["orders"]["1"]
    order["attributes"].update(identifier=number, currency="EUR")  # the Tryton company's
    order["relationships"]["status"]["data"]["id"] = "pending"
    fake.data["orderlineitems"]["1"]["attributes"].update(productSku=sku, currency="EUR")
    address = fake.data["orderaddresses"]["1"]
    address["attributes"].update(street="Hauptstr. 1", postalCode="10115", city="Berlin")
    address["relationships"]["country"]["data"]["id"] = "DE"

    monkeypatch.setenv("TRYTON_TEST_PASSWORD", tryton.password)
    document = {
        "version": 1,
        "hub": {"database_url": "sqlite:///hub.db"},
        "channels": {
            "oro": {
                "system": "oro",
                "options": {
                    "base_url": url,
                    "auth": {"type": "oauth2", "token_url": "/oauth2-token",
                             "client_id": CLIENT_ID, "client_auth": "body", "encoding": "json"},
                },
                "credentials": {"client_secret": "${ORO_CLIENT_SECRET}"},
            },
            "erp": {
                "system": "tryton",
                "options": {"base_url": tryton.base_url, "database": tryton.database,
                            "username": tryton.username},
                "credentials": {"password": "${TRYTON_TEST_PASSWORD}"},
            },
        },
        "owners": {"order": {"erp": ["status", "shipment_status", "invoice_status"]}},
        "flows": [
            {"preset": "orders-from-oro", "channel": "oro"},
            {"preset": "orders-to-tryton", "channel": "erp"},
            {"preset": "orders-from-tryton", "channel": "erp",
             "source": narrowed("orders-from-tryton", prefix)},
            {"preset": "order-status-to-oro", "channel": "oro"},
            {"preset": "customers-from-tryton", "channel": "erp",
             "source": narrowed("customers-from-tryton", prefix)},
            {"preset": "customers-to-oro", "channel": "oro"},
        ],
    }  # fmt: skip
    (tmp_path / "erpbridge.yaml").write_text(yaml.safe_dump(document), encoding="utf-8")

    cli_ok(tmp_path, "sync", "orders-from-oro")
    cli_ok(tmp_path, "worker", "--once")

    (sale,) = sales_described(tryton, number)
    assert sale["party."]["code"] == customer
    assert sale["reference"] == "CV032342USDD"
    assert sale["state"] == "processing"  # quoted and confirmed by the preset's buttons
    assert lines_of(sale) == [(sku, 19.0, "u", Decimal("23.55"))]

    # Tryton's progress comes back to the hub, and from there to the Oro order's status.
    cli_ok(tmp_path, "sync", "orders-from-tryton", "customers-from-tryton")
    cli_ok(tmp_path, "worker", "--once")

    assert order["relationships"]["status"]["data"] == {"type": "orderstatuses", "id": "open"}
    (created,) = fake.find("customers", erpCode=customer)
    assert created["attributes"]["name"] == f"Customer {customer}"
    assert len(sales_described(tryton, number)) == 1  # the status did not go back to Tryton
