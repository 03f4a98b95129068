"""The OData transport against a real SAP CAP service (scripts/cap.sh), over V4 and V2.

IN: business partners with their addresses → ``customer``, sales orders with their items →
``order``, through the real engine, with server-driven paging and an incremental second run
after a change made through the service's own API. OUT: customers and orders from a drop folder
→ the service through the real Worker (deep insert, then PATCH with If-Match), checked with GETs.
Bad input: a wrong password, an OData error payload, a stale ETag, CSRF tokens (V2), an unknown
entity set, a service that is down.
"""

from __future__ import annotations

import socket
import time
import uuid
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from sqlalchemy import Engine, select

from erpbridge import FlowRunner, load_config, open_store
from erpbridge.config.loader import LoadedConfig
from erpbridge.engine.worker import Worker
from erpbridge.store.tables import bindings, cursors, deliveries, delivery_attempts, records
from erpbridge.transports.odata.client import ODataClient
from erpbridge.transports.odata.transport import ODataChannelOptions, ODataTransport
from integration.cap_service import PASSWORD, USER, Service
from integration.ledger import deliver, ledger
from integration.servers import require_server

CHANNELS = """
  s4_bp:
    system: odata
    options:
      base_url: "{base}/odata/v{v}/API_BUSINESS_PARTNER/"
      version: "{v}"
      auth: {{type: basic, username: {user}}}
      entity_sets: [A_BusinessPartner, A_BusinessPartnerAddress]
    credentials: {{password: "${{CAP_PASSWORD}}"}}
  s4_sales:
    system: odata
    options:
      base_url: "{base}/odata/v{v}/API_SALES_ORDER_SRV/"
      version: "{v}"
      auth: {{type: basic, username: {user}}}
    credentials: {{password: "${{CAP_PASSWORD}}"}}
  shop:
    system: folder
    options: {{path: inbox}}
"""

IN_FLOWS = """
  - name: partners-in
    channel: s4_bp
    entity: customer
    direction: in
    source:
      entity_set: A_BusinessPartner
      expand: [to_BusinessPartnerAddress]
      cursor_field: LastChangeDateTime
      page_size: 4
    key: BusinessPartner
    mapping:
      code: BusinessPartner
      name: BusinessPartnerFullName
      locked: BusinessPartnerIsBlocked
      updated_at: LastChangeDateTime
      addresses:
        each: to_BusinessPartnerAddress
        fields: {street: StreetName, postal_code: PostalCode, city: CityName, country: Country}
  - name: orders-in
    channel: s4_sales
    entity: order
    direction: in
    source:
      entity_set: A_SalesOrder
      select: [SalesOrder, SoldToParty, TotalNetAmount]
      expand: [to_Item]
      cursor_field: LastChangeDateTime
      page_size: 5
    key: SalesOrder
    mapping:
      number: SalesOrder
      customer_code: SoldToParty
      po_number: PurchaseOrderByCustomer
      currency: TransactionCurrency
      total: TotalNetAmount
      order_date: CreationDate
      updated_at: LastChangeDateTime
      lines:
        each: to_Item
        fields:
          line_no: SalesOrderItem
          sku: Material
          quantity: RequestedQuantity
          unit: RequestedQuantityUnit
          amount: NetAmount
"""

OUT_FLOWS = """
  - name: customers-in
    channel: shop
    entity: customer
    direction: in
    source: {pattern: "*.csv"}
    mapping:
      code: code
      name: name
      addresses:
        items:
          - {type: {value: billing}, city: city, country: country}
          - {type: {value: shipping}, city: ship_city, country: ship_country}
  - name: orders-in
    channel: shop
    entity: order
    direction: in
    source: {pattern: "*.json"}
  - name: customers-out
    channel: s4_bp
    entity: customer
    direction: out
    target: {entity_set: A_BusinessPartner}
    retry: {max_attempts: 5, backoff_s: 0.001, min_delay_s: 0}
    mapping:
      BusinessPartner: code
      BusinessPartnerCategory: {value: "2"}
      BusinessPartnerFullName: name
      OrganizationBPName1: name
      to_BusinessPartnerAddress:
        each: addresses
        fields:
          AddressID: {from: type, map: {billing: "1", shipping: "2", other: "3"}}
          CityName: city
          Country: country
  - name: orders-out
    channel: s4_sales
    entity: order
    direction: out
    target: {entity_set: A_SalesOrder}
    retry: {max_attempts: 5, backoff_s: 0.001, min_delay_s: 0}
    mapping:
      SalesOrder: number
      SalesOrderType: {value: OR}
      SoldToParty: customer_code
      PurchaseOrderByCustomer: po_number
      TotalNetAmount: total
      TransactionCurrency: currency
      to_Item:
        each: lines
        fields:
          SalesOrderItem: line_no
          Material: sku
          RequestedQuantity: quantity
          RequestedQuantityUnit: unit
          NetAmount: amount
"""


@pytest.fixture(scope="module")
def cap() -> str:
    return require_server("ERPBRIDGE_TEST_CAP_URL", "the SAP CAP OData service (scripts/cap.sh)")


@pytest.fixture(params=["4", "2"])
def version(request: pytest.FixtureRequest) -> str:
    value: str = request.param
    return value


@pytest.fixture
def service(cap: str) -> Iterator[Service]:
    own = Service(cap)
    yield own
    own.client.close()


def make_config(tmp_path: Path, cap: str, version: str, flows: str) -> Path:
    (tmp_path / "inbox").mkdir(exist_ok=True)
    text = (
        f'hub: {{database_url: "sqlite:///{tmp_path / "hub.db"}"}}\nchannels:'
        + CHANNELS.format(base=cap, v=version, user=USER)
        + "flows:"
        + flows
    )
    path = tmp_path / "erpbridge.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def load(path: Path, password: str = PASSWORD) -> LoadedConfig:
    return load_config(path, env={"CAP_PASSWORD": password})


def hub_payload(engine: Engine, entity: str, key: str) -> dict[str, Any]:
    with engine.connect() as conn:
        row = conn.execute(
            select(records.c.payload).where(records.c.entity == entity, records.c.key == key)
        ).scalar_one()
    payload: dict[str, Any] = orjson.loads(row)
    return payload


def drop(config_path: Path, name: str, content: str | list[dict[str, Any]]) -> None:
    data = content.encode() if isinstance(content, str) else orjson.dumps(content)
    (config_path.parent / "inbox" / name).write_bytes(data)


def unique(prefix: str) -> str:
    return prefix + uuid.uuid4().hex[:7].upper()  # at most 10 characters, as the keys allow


# -- IN --------------------------------------------------------------------------------------------


def test_in_flows_page_through_the_service_and_read_incrementally(
    tmp_path: Path, cap: str, version: str, service: Service
) -> None:
    path = make_config(tmp_path, cap, version, IN_FLOWS)
    engine = open_store(f"sqlite:///{tmp_path / 'hub.db'}")
    runner = FlowRunner(load(path), engine)
    # The service pages on its own (3 per answer) below the flow's page_size of 4: every window
    # is only complete when the next links are followed.
    first = service.client.get("API_BUSINESS_PARTNER/A_BusinessPartner?$top=4").json()
    assert len(first["value"]) == 3 and "@odata.nextLink" in first
    partners = service.count("API_BUSINESS_PARTNER/A_BusinessPartner")

    result = runner.run("partners-in")

    assert (result.status, result.error) == ("succeeded", None)
    assert (result.read, result.created, result.rejected) == (partners, partners, 0)
    acme = hub_payload(engine, "customer", "1000002")
    assert acme["name"] == "Acme Industrie GmbH"
    assert acme["updated_at"] == "2024-05-01T08:01:00Z"  # /Date(ms)/ in V2, ISO in V4
    assert [(a["city"], a["postal_code"], a["country"]) for a in acme["addresses"]] == [
        ("München", "80331", "DE"),
        ("Wien", "1010", "AT"),
    ]
    assert hub_payload(engine, "customer", "1000006")["locked"] is True

    # Changes made through the service's own API: one update, one new partner.
    new = unique("N")
    service.patch(
        "API_BUSINESS_PARTNER/A_BusinessPartner('1000003')",
        {"BusinessPartnerFullName": f"Bernd Müller {version}"},
    )
    service.post(
        "API_BUSINESS_PARTNER/A_BusinessPartner",
        {
            "BusinessPartner": new,
            "BusinessPartnerFullName": "Nordlicht O'Brien KG",
            "to_BusinessPartnerAddress": [{"AddressID": "1", "CityName": "Kiel", "Country": "DE"}],
        },
    )
    second = runner.run("partners-in")

    assert second.status == "succeeded", second.error
    # Exactly the two changes: the boundary record of the first run was skipped by key.
    assert (second.read, second.created, second.updated, second.unchanged) == (2, 1, 1, 0)
    assert hub_payload(engine, "customer", "1000003")["name"] == f"Bernd Müller {version}"
    assert hub_payload(engine, "customer", new)["addresses"][0]["city"] == "Kiel"
    assert runner.run("partners-in").read == 0

    orders = runner.run("orders-in")
    assert orders.status == "succeeded", orders.error
    assert orders.read == service.count("API_SALES_ORDER_SRV/A_SalesOrder")
    order = hub_payload(engine, "order", "5000002")
    assert (order["customer_code"], order["po_number"], order["order_date"]) == (
        "1000002",
        "PO-4712",
        "2024-05-02",
    )
    assert Decimal(order["total"]) == Decimal("43")
    lines = [(line["line_no"], line["sku"], Decimal(line["quantity"])) for line in order["lines"]]
    assert lines == [(10, "TG12", Decimal(1)), (20, "RM-100", Decimal(2))]
    with engine.connect() as conn:
        stored = conn.execute(select(cursors.c.value).where(cursors.c.flow == "orders-in"))
        cursor = orjson.loads(stored.scalar_one())
    assert cursor["value"] >= "2024-05-02T09:07:00Z"  # the newest LastChangeDateTime read
    engine.dispose()


# -- OUT -------------------------------------------------------------------------------------------


def test_out_flows_create_with_deep_insert_then_patch_with_if_match(
    tmp_path: Path, cap: str, version: str, service: Service
) -> None:
    path = make_config(tmp_path, cap, version, OUT_FLOWS)
    engine = open_store(f"sqlite:///{tmp_path / 'hub.db'}")
    config = load(path)
    code, number = unique("C"), unique("S")
    header = "code,name,city,country,ship_city,ship_country\n"
    drop(path, "c1.csv", header + f"{code},Nordwind Handel GmbH,Hamburg,DE,,\n")
    line = {"line_no": 10, "sku": "TG11", "quantity": "2", "unit": "PC", "amount": "20.50"}
    order = {"number": number, "customer_code": code, "po_number": "PO-1", "currency": "EUR"}
    drop(path, "o1.json", [{**order, "total": "20.50", "lines": [line]}])
    runner = FlowRunner(config, engine)
    assert runner.run("customers-in").status == "succeeded"
    assert runner.run("orders-in").status == "succeeded"

    deliver(config, engine)

    assert [state for _, _, state, _ in ledger(engine, "customers-out")] == ["delivered"]
    partner = service.get(
        f"API_BUSINESS_PARTNER/A_BusinessPartner('{code}')?$expand=to_BusinessPartnerAddress"
    )
    assert partner is not None
    assert partner["BusinessPartnerFullName"] == "Nordwind Handel GmbH"
    assert [(a["AddressID"], a["CityName"]) for a in partner["to_BusinessPartnerAddress"]] == [
        ("1", "Hamburg")
    ]
    created = service.get(f"API_SALES_ORDER_SRV/A_SalesOrder('{number}')?$expand=to_Item")
    assert created is not None and created["PurchaseOrderByCustomer"] == "PO-1"
    assert [(i["SalesOrderItem"], i["Material"]) for i in created["to_Item"]] == [("10", "TG11")]
    with engine.connect() as conn:
        bound = conn.execute(select(bindings.c.channel, bindings.c.external_id)).all()
    assert set(bound) >= {("s4_bp", code), ("s4_sales", number)}

    # Version 2: the header changes (PATCH with the ETag just read), the billing address moves
    # (PATCH of A_BusinessPartnerAddress with its compound key), a shipping address and an order
    # line are new (POST through the navigation property).
    drop(path, "c2.csv", header + f"{code},Nordwind Handel AG,Bremen,DE,Kiel,DE\n")
    second = {**line, "line_no": 20, "sku": "TG12", "quantity": "1", "amount": "5"}
    drop(path, "o2.json", [{**order, "po_number": "PO-2", "lines": [line, second]}])
    assert runner.run("customers-in").updated == 1
    assert runner.run("orders-in").updated == 1
    deliver(config, engine)

    assert [s for _, _, s, _ in ledger(engine, "customers-out")] == ["delivered", "delivered"]
    assert [s for _, _, s, _ in ledger(engine, "orders-out")] == ["delivered", "delivered"]
    partner = service.get(
        f"API_BUSINESS_PARTNER/A_BusinessPartner('{code}')?$expand=to_BusinessPartnerAddress"
    )
    assert partner is not None and partner["BusinessPartnerFullName"] == "Nordwind Handel AG"
    assert sorted(
        (a["AddressID"], a["CityName"]) for a in partner["to_BusinessPartnerAddress"]
    ) == [
        ("1", "Bremen"),
        ("2", "Kiel"),
    ]
    updated = service.get(f"API_SALES_ORDER_SRV/A_SalesOrder('{number}')?$expand=to_Item")
    assert updated is not None and updated["PurchaseOrderByCustomer"] == "PO-2"
    items = sorted((i["SalesOrderItem"], i["Material"]) for i in updated["to_Item"])
    assert items == [("10", "TG11"), ("20", "TG12")]
    engine.dispose()


# -- bad input -------------------------------------------------------------------------------------


def test_a_wrong_password_is_an_auth_failure(tmp_path: Path, cap: str, version: str) -> None:
    path = make_config(tmp_path, cap, version, IN_FLOWS)
    config = load(path, password="wrong")
    transport = ODataTransport("s4_bp", config.channel_options["s4_bp"], tmp_path)
    health = transport.health()
    transport.close()
    assert (health.ok, health.category) == (False, "auth")
    assert "channel 's4_bp'" in health.detail and "401" in health.detail
    assert "wrong" not in health.detail

    engine = open_store(f"sqlite:///{tmp_path / 'hub.db'}")
    result = FlowRunner(config, engine).run("partners-in")
    assert result.status == "failed"
    assert result.error is not None and "HTTP 401" in result.error and "$metadata" in result.error
    engine.dispose()


def test_an_odata_error_payload_makes_the_delivery_dead_with_code_and_message(
    tmp_path: Path, cap: str, version: str, service: Service
) -> None:
    path = make_config(tmp_path, cap, version, OUT_FLOWS)
    engine = open_store(f"sqlite:///{tmp_path / 'hub.db'}")
    config = load(path)
    good, bad = unique("G"), unique("B")
    too_long = "Einkaufsgenossenschaft der Elektrohandwerker eG"  # OrganizationBPName1: 40 chars
    header = "code,name,city,country,ship_city,ship_country\n"
    drop(path, "c.csv", header + f"{good},Kurz GmbH,Ulm,DE,,\n{bad},{too_long},Ulm,DE,,\n")
    assert FlowRunner(config, engine).run("customers-in").created == 2

    deliver(config, engine)

    states = {key: (state, error) for key, _, state, error in ledger(engine, "customers-out")}
    assert states[good] == ("delivered", None)
    state, error = states[bad]
    assert state == "dead"
    assert error is not None
    assert "HTTP 400" in error and "ASSERT_DATA_TYPE" in error and "String(40)" in error
    assert "OrganizationBPName1" in error and "A_BusinessPartner" in error
    assert service.get(f"API_BUSINESS_PARTNER/A_BusinessPartner('{bad}')") is None
    assert service.get(f"API_BUSINESS_PARTNER/A_BusinessPartner('{good}')") is not None
    engine.dispose()


def test_a_stale_etag_is_a_retriable_conflict(
    tmp_path: Path, cap: str, version: str, service: Service, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = make_config(tmp_path, cap, version, OUT_FLOWS)
    engine = open_store(f"sqlite:///{tmp_path / 'hub.db'}")
    config = load(path)
    code = unique("E")
    header = "code,name,city,country,ship_city,ship_country\n"
    drop(path, "c1.csv", header + f"{code},Etag Erste GmbH,Ulm,DE,,\n")
    runner = FlowRunner(config, engine)
    runner.run("customers-in")
    deliver(config, engine)
    drop(path, "c2.csv", header + f"{code},Etag Zweite GmbH,Ulm,DE,,\n")
    runner.run("customers-in")

    # Another user changes the partner right after the worker has read it and its ETag (once).
    original = ODataClient.entity
    entity_path = f"A_BusinessPartner('{code}')"
    interfered: list[str] = []

    def read_then_someone_else_writes(
        self: ODataClient, path: str
    ) -> tuple[dict[str, Any] | None, str | None]:
        found = original(self, path)
        if path == entity_path and not interfered:
            interfered.append(path)
            time.sleep(0.005)  # the ETag is a millisecond timestamp
            service.patch(f"API_BUSINESS_PARTNER/{entity_path}", {"FirstName": "Concurrent"})
        return found

    monkeypatch.setattr(ODataClient, "entity", read_then_someone_else_writes)
    deliver(config, engine)  # attempt 1 meets the conflict; its retry is due at once

    assert ledger(engine, "customers-out")[-1][:3] == (code, 2, "delivered")
    with engine.connect() as conn:
        attempts = conn.execute(
            select(delivery_attempts.c.outcome, delivery_attempts.c.error)
            .join(deliveries, deliveries.c.id == delivery_attempts.c.delivery_id)
            .where(deliveries.c.key == code, deliveries.c.version == 2)
            .order_by(delivery_attempts.c.attempt)
        ).all()
    assert [outcome for outcome, _ in attempts] == ["retry", "delivered"]
    error = attempts[0][1]
    assert error is not None and "HTTP 412" in error and "changed since its ETag was read" in error
    assert f"PATCH {entity_path}" in error
    partner = service.get(f"API_BUSINESS_PARTNER/{entity_path}")
    assert partner is not None
    # The retry read the other user's change and its ETag, and kept it.
    assert (partner["BusinessPartnerFullName"], partner["FirstName"]) == (
        "Etag Zweite GmbH",
        "Concurrent",
    )
    engine.dispose()


def test_v2_writes_fetch_a_csrf_token_and_fetch_again_when_it_went_stale(
    tmp_path: Path, cap: str, service: Service
) -> None:
    # The service refuses a V2 write without a token, as SAP Gateway does.
    refused = httpx.post(
        f"{cap}/odata/v2/API_BUSINESS_PARTNER/A_BusinessPartner",
        json={"BusinessPartner": unique("X")},
        auth=(USER, PASSWORD),
    )
    assert refused.status_code == 403 and refused.headers["x-csrf-token"] == "Required"

    path = make_config(tmp_path, cap, "2", OUT_FLOWS)
    engine = open_store(f"sqlite:///{tmp_path / 'hub.db'}")
    config = load(path)
    code = unique("T")
    header = "code,name,city,country,ship_city,ship_country\n"
    runner = FlowRunner(config, engine)
    drop(path, "c1.csv", header + f"{code},Token Eins GmbH,Ulm,DE,,\n")
    runner.run("customers-in")
    worker = Worker(config, engine)
    try:
        worker.run_once()  # fetches a token, then POSTs
        assert ledger(engine, "customers-out")[-1][2] == "delivered"

        # The session's token expires (a Gateway session timeout); the same worker, with its
        # old token, is refused once, fetches a new token and writes.
        httpx.post(f"{cap}/-/csrf/expire").raise_for_status()
        drop(path, "c2.csv", header + f"{code},Token Zwei GmbH,Ulm,DE,,\n")
        runner.run("customers-in")
        worker.run_once()
    finally:
        worker.close()

    assert [state for _, _, state, _ in ledger(engine, "customers-out")] == [
        "delivered",
        "delivered",
    ]
    partner = service.get(f"API_BUSINESS_PARTNER/A_BusinessPartner('{code}')")
    assert partner is not None and partner["BusinessPartnerFullName"] == "Token Zwei GmbH"
    engine.dispose()


def test_an_unknown_entity_set_is_a_schema_problem(tmp_path: Path, cap: str, version: str) -> None:
    flows = IN_FLOWS.replace("entity_set: A_BusinessPartner\n", "entity_set: A_Nope\n")
    path = make_config(tmp_path, cap, version, flows)
    text = path.read_text().replace("[A_BusinessPartner, A_BusinessPartnerAddress]", "[A_Nope]")
    path.write_text(text)
    config = load(path)
    transport = ODataTransport("s4_bp", config.channel_options["s4_bp"], tmp_path)
    health = transport.health()
    transport.close()
    assert (health.ok, health.category) == (False, "schema")
    assert "A_Nope" in health.detail and "A_BusinessPartner" in health.detail  # what it offers

    engine = open_store(f"sqlite:///{tmp_path / 'hub.db'}")
    result = FlowRunner(config, engine).run("partners-in")
    assert result.status == "failed"
    assert result.error is not None and "no entity set 'A_Nope'" in result.error
    engine.dispose()


def test_a_service_that_is_down_is_refused_and_nothing_is_lost(
    tmp_path: Path, cap: str, version: str
) -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        down = f"http://127.0.0.1:{probe.getsockname()[1]}"
    patient = OUT_FLOWS.replace("backoff_s: 0.001", "backoff_s: 60")
    path = make_config(tmp_path, down, version, patient)
    config = load(path)
    transport = ODataTransport("s4_bp", config.channel_options["s4_bp"], tmp_path)
    health = transport.health()
    transport.close()
    assert (health.ok, health.category) == (False, "refused")
    assert "connection refused" in health.detail and "s4_bp" in health.detail

    engine = open_store(f"sqlite:///{tmp_path / 'hub.db'}")
    header = "code,name,city,country,ship_city,ship_country\n"
    drop(path, "c.csv", header + "D1,Down GmbH,Ulm,DE,,\n")
    FlowRunner(config, engine).run("customers-in")
    deliver(config, engine)
    [(key, _, state, error)] = ledger(engine, "customers-out")
    assert (key, state) == ("D1", "failed")  # retried later, not dead
    assert error is not None and "connection refused" in error

    engine.dispose()

    (tmp_path / "in").mkdir()
    in_path = make_config(tmp_path / "in", down, version, IN_FLOWS)
    engine = open_store(f"sqlite:///{tmp_path / 'in' / 'hub.db'}")
    result = FlowRunner(load(in_path), engine).run("partners-in")
    assert result.status == "failed"
    assert result.error is not None and "connection refused" in result.error
    with engine.connect() as conn:  # no cursor moved: the next run reads everything
        assert conn.execute(select(cursors.c.value)).all() == []
    engine.dispose()


def test_a_version_the_service_does_not_speak_is_a_protocol_problem(
    tmp_path: Path, cap: str
) -> None:
    options = ODataChannelOptions.model_validate(
        {
            "base_url": f"{cap}/odata/v2/API_BUSINESS_PARTNER/",
            "version": "4",
            "auth": {"type": "basic", "username": USER},
            "credentials": {"password": PASSWORD},
        }
    )
    transport = ODataTransport("s4_bp", options, tmp_path)
    health = transport.health()
    transport.close()
    assert (health.ok, health.category) == (False, "protocol")
    assert "speaks OData V2" in health.detail and "version: '4'" in health.detail
