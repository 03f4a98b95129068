"""The SOAP transport against a real SOAP service: ``soap_erp.py`` (spyne), started per module.

IN: customers page by page from ``ListCustomers`` into the hub through the real engine, then an
incremental run after changes made through the service. OUT: hub changes delivered by the real
Worker to ``UpsertCustomer``, read back with the service's own ``GetCustomer``. Bad input: a wrong
password, SOAP faults (``Client.*`` dead, ``Server.*`` retried), a refused endpoint, a missing or
malformed WSDL, an unknown operation, an HTML error page, an answer that is not XML.
"""

from __future__ import annotations

import select
import socket
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest
import requests
import zeep
from sqlalchemy import Engine, update
from sqlalchemy import select as sql_select
from zeep.transports import Transport as ZeepTransport

from erpbridge import FlowRunner, load_config, open_store
from erpbridge.config.loader import LoadedConfig
from erpbridge.engine.worker import Worker
from erpbridge.errors import SourceUnavailable
from erpbridge.store.runs import now
from erpbridge.store.tables import bindings, cursors, deliveries, records
from erpbridge.transports.base import OutgoingRecord
from erpbridge.transports.soap.transport import SoapStreamOptions, SoapTransport
from httpserve import silent_port

SERVICE = Path(__file__).with_name("soap_erp.py")
USER, PASSWORD = "erpbridge", "Pa55-word-of-the-ERP"
HEADER = "code,name,email,limit,street,city,country\n"

CONFIG = """
hub: {{database_url: "{hub}"}}
channels:
  shop:
    system: folder
    options: {{path: inbox}}
  erp:
    system: soap
    options:
      wsdl: "{wsdl}"
      auth: {auth}
      username: {user}
      operations: {operations}
{extra}
    credentials: {{password: "${{ERP_PASSWORD}}"}}
flows:
  - name: customers-from-erp
    channel: erp
    entity: customer
    direction: in
    source:
      operation: {list_operation}
      params: {{changedSince: "{{cursor}}", offset: "{{offset}}", limit: "{{limit}}"}}
      records_path: customers.Customer
      cursor_field: modified_at
      key_field: id
    key: id
    batch_size: 10
    mapping:
      code: code
      name: name
      email: email
      credit_limit: credit_limit
      locked: locked
      updated_at: modified_at
      addresses:
        items:
          - street: address.street
            postal_code: address.postal_code
            city: address.city
            country: address.country
            type: {{value: billing}}
  - name: customers-from-shop
    channel: shop
    entity: customer
    direction: in
    source: {{pattern: "*.csv"}}
    key: code
    mapping:
      code: code
      name: name
      email: email
      credit_limit: limit
      addresses:
        items:
          - {{street: street, city: city, country: country, type: {{value: billing}}}}
  - name: customers-to-erp
    channel: erp
    entity: customer
    direction: out
    target: {{operation: UpsertCustomer, argument: customer}}
    retry: {{max_attempts: 3, backoff_s: 60}}
    mapping:
      code: code
      name: name
      email: email
      credit_limit: credit_limit
      address:
        fields:
          street: addresses.0.street
          city: addresses.0.city
          country: addresses.0.country
"""


@dataclass
class Erp:
    """The running service: its address, its SQLite file and a client of its own API."""

    url: str
    db: Path
    api: Any

    @property
    def wsdl(self) -> str:
        return self.url + "?wsdl"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def api_client(wsdl: str, password: str = PASSWORD) -> Any:
    session = requests.Session()
    session.auth = (USER, password)
    return zeep.Client(wsdl, transport=ZeepTransport(session=session))


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """The SOAP service as a subprocess on a free port of 127.0.0.1."""
    folder = tmp_path_factory.mktemp("soap")
    db, log = folder / "erp.db", folder / "erp.log"
    command = [sys.executable, "-W", "ignore", str(SERVICE), "--db", str(db)]
    with log.open("w") as errors:  # a file, not a pipe: a full pipe would stall the service
        process = subprocess.Popen(
            [*command, "--user", USER, "--password", PASSWORD],
            stdout=subprocess.PIPE,
            stderr=errors,
            text=True,
        )
    assert process.stdout is not None
    try:
        ready, _, _ = select.select([process.stdout], [], [], 30)
        line = process.stdout.readline().strip() if ready else ""
        if not line.startswith("http://"):
            pytest.fail(f"the SOAP service did not start: {log.read_text()[-2000:]}")
        yield line, db
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
        process.stdout.close()


@pytest.fixture(scope="module")
def api(server: tuple[str, Path]) -> Iterator[Any]:
    """A client of the service's own API, to set up and check data on its side."""
    client = api_client(server[0] + "?wsdl")
    yield client
    client.transport.session.close()


@pytest.fixture
def erp(server: tuple[str, Path], api: Any) -> Erp:
    """The service with no customers and no locks (its database is emptied between tests)."""
    url, db = server
    with sqlite3.connect(db) as conn:
        conn.executescript("DELETE FROM customers; DELETE FROM locks;")
    conn.close()
    return Erp(url, db, api)


def write_config(
    folder: Path,
    hub: str,
    wsdl: str,
    *,
    auth: str = "basic",
    extra: str = "",
    list_operation: str = "ListCustomers",
    operations: str = "[ListCustomers, UpsertCustomer]",
) -> Path:
    """A configuration in ``folder``; ``extra`` is more channel options (YAML lines)."""
    (folder / "inbox").mkdir(exist_ok=True)
    path = folder / "erpbridge.yaml"
    text = CONFIG.format(
        hub=hub,
        wsdl=wsdl,
        auth=auth,
        user=USER,
        extra=extra,
        list_operation=list_operation,
        operations=operations,
    )
    path.write_text(text, encoding="utf-8")
    return path


def config(path: Path, password: str = PASSWORD) -> LoadedConfig:
    return load_config(path, env={"ERP_PASSWORD": password})


@pytest.fixture
def hub(hub_url: str) -> Iterator[Engine]:
    engine = open_store(hub_url)
    yield engine
    engine.dispose()


@pytest.fixture
def sqlite_hub(tmp_path: Path) -> Iterator[tuple[str, Engine]]:
    url = f"sqlite:///{tmp_path / 'hub.db'}"
    engine = open_store(url)
    yield url, engine
    engine.dispose()


def upsert(erp: Erp, code: str, name: str, **fields: Any) -> int:
    customer = {"code": code, "name": name, **fields}
    result: int = erp.api.service.UpsertCustomer(customer=customer)
    return result


def payload(engine: Engine, key: str) -> dict[str, Any]:
    with engine.connect() as conn:
        text = conn.execute(sql_select(records.c.payload).where(records.c.key == key)).scalar_one()
    data: dict[str, Any] = orjson.loads(text)
    return data


def ledger(engine: Engine) -> list[tuple[str, str, int, str | None, str | None]]:
    with engine.connect() as conn:
        rows = conn.execute(
            sql_select(
                deliveries.c.key,
                deliveries.c.state,
                deliveries.c.version,
                deliveries.c.external_id,
                deliveries.c.last_error,
            )
            .where(deliveries.c.flow == "customers-to-erp")
            .order_by(deliveries.c.id)
        )
        return [tuple(r) for r in rows]  # type: ignore[misc]


def deliver(path: Path, engine: Engine) -> Any:
    worker = Worker(config(path), engine)
    try:
        return worker.run_once()
    finally:
        worker.close()


def backoff_passes(engine: Engine) -> None:
    """Make the deliveries that wait for a retry due now, as if their backoff had passed."""
    with engine.begin() as conn:
        conn.execute(
            update(deliveries).where(deliveries.c.state == "failed").values(next_attempt_at=now())
        )


def drop_csv(path: Path, engine: Engine, text: str) -> None:
    """Customers into the hub from the shop's CSV: each new version is queued for the ERP."""
    (path.parent / "inbox" / "customers.csv").write_text(text, encoding="utf-8")
    result = FlowRunner(config(path), engine).run("customers-from-shop")
    assert result.status == "succeeded", result.error


# -- IN ------------------------------------------------------------------------------------------


def test_in_pages_through_the_service_then_reads_only_what_changed(
    erp: Erp, tmp_path: Path, hub: Engine, hub_url: str
) -> None:
    ids = {
        f"K-{n:03d}": upsert(
            erp,
            f"K-{n:03d}",
            f"Customer {n}",
            credit_limit=f"{n}00.50",
            address={"street": f"Road {n}", "city": "Bonn", "country": "DE"},
        )
        for n in range(1, 24)
    }
    path = write_config(tmp_path, hub_url, erp.wsdl)
    loaded = config(path)
    transport = SoapTransport("erp", loaded.channel_options["erp"], tmp_path)
    health = transport.health()
    transport.close()
    assert (health.ok, health.category) == (True, "ok")
    assert health.detail == (
        f"SOAP service at {erp.url}; operations: ListCustomers, GetCustomer, UpsertCustomer, "
        "DeleteCustomer, SetLock"
    )
    runner = FlowRunner(loaded, hub)

    first = runner.run("customers-from-erp")

    # 23 customers in pages of 10: only paging to the short third page reads them all.
    assert (first.status, first.error) == ("succeeded", None)
    assert (first.read, first.created) == (23, 23)
    k7 = payload(hub, "K-007")
    assert k7["name"] == "Customer 7"
    assert k7["credit_limit"] == "700.5"  # the hub keeps decimals normalised
    assert k7["addresses"] == [
        {"type": "billing", "street": "Road 7", "city": "Bonn", "country": "DE"}
    ]
    served = erp.api.service.GetCustomer(id=ids["K-007"])
    assert k7["updated_at"].startswith(served.modified_at.strftime("%Y-%m-%dT%H:%M:%S"))
    with hub.connect() as conn:
        query = sql_select(bindings.c.external_id, records.c.key).join(records)
        bound = dict(conn.execute(query).all())
        stored = conn.execute(sql_select(cursors.c.value)).scalar_one()
    assert bound == {str(i): code for code, i in ids.items()}
    newest = max(erp.api.service.GetCustomer(id=i).modified_at for i in ids.values())
    assert orjson.loads(stored)["value"] == newest.isoformat()

    # Changes made in the ERP: one renamed, one new. The next run starts at the cursor (>=):
    # the boundary customer is read again and found unchanged.
    upsert(erp, "K-005", "Renamed Five", address={"city": "Köln", "country": "DE"})
    upsert(erp, "K-100", "Newcomer")
    second = FlowRunner(config(path), hub).run("customers-from-erp")

    assert (second.status, second.error) == ("succeeded", None)
    assert (second.read, second.created, second.updated, second.unchanged) == (3, 1, 1, 1)
    assert payload(hub, "K-005")["name"] == "Renamed Five"
    assert payload(hub, "K-005")["addresses"][0]["city"] == "Köln"
    assert payload(hub, "K-100")["name"] == "Newcomer"


def test_a_record_changed_while_paging_holds_the_cursor_back(erp: Erp, tmp_path: Path) -> None:
    ids = [upsert(erp, f"M-{n}", f"Moving {n}") for n in range(1, 13)]
    first_stamp = erp.api.service.GetCustomer(id=ids[0]).modified_at
    path = write_config(tmp_path, "sqlite:///hub.db", erp.wsdl)
    loaded = config(path)
    stream = loaded.streams["customers-from-erp"]
    assert isinstance(stream, SoapStreamOptions)
    transport = SoapTransport("erp", loaded.channel_options["erp"], tmp_path)
    try:
        batches = transport.read(stream, None, 5, frozenset())
        seen = [r.data["code"] for r in next(batches).records]
        # A user edits M-1 while the run is between pages: it moves to the end of the result,
        # and M-6 slides back into the page already read.
        upsert(erp, "M-1", "Moved")
        rest = list(batches)
    finally:
        transport.close()
    seen += [r.data["code"] for batch in rest for r in batch.records]

    assert "M-6" not in seen  # skipped by this run, as offset paging does
    assert seen.count("M-1") == 2
    held = rest[-1].cursor
    assert held["value"] == first_stamp.isoformat()  # where M-1 was first
    assert "appeared twice" in rest[-1].warnings[0]
    assert "the cursor stays at" in rest[-1].warnings[0]

    # The next run starts at the held cursor and reads what slid by.
    transport = SoapTransport("erp", loaded.channel_options["erp"], tmp_path)
    try:
        again = [
            r.data["code"] for b in transport.read(stream, held, 5, frozenset()) for r in b.records
        ]
    finally:
        transport.close()
    assert "M-6" in again


# -- OUT -----------------------------------------------------------------------------------------


def test_out_delivers_through_the_worker_and_the_service_has_it(
    erp: Erp, tmp_path: Path, hub: Engine, hub_url: str
) -> None:
    path = write_config(tmp_path, hub_url, erp.wsdl)
    drop_csv(
        path,
        hub,
        HEADER + "C-1,Anna Alm,anna@example.com,1500.5,Hauptstr. 1,Bonn,DE\n"
        "C-2,Bert Berg,,,,Wien,AT\n",
    )

    stats = deliver(path, hub)

    assert (stats.delivered, stats.retried, stats.dead) == (2, 0, 0)
    sent = {key: external for key, _, _, external, _ in ledger(hub)}
    anna = erp.api.service.GetCustomer(id=int(sent["C-1"]))
    assert (anna.code, anna.name, anna.email) == ("C-1", "Anna Alm", "anna@example.com")
    assert str(anna.credit_limit) == "1500.5"
    assert (anna.address.street, anna.address.city, anna.address.country) == (
        "Hauptstr. 1",
        "Bonn",
        "DE",
    )
    bert = erp.api.service.GetCustomer(id=int(sent["C-2"]))
    assert (bert.code, bert.email, bert.address.city) == ("C-2", None, "Wien")
    with hub.connect() as conn:
        bound = set(conn.execute(sql_select(bindings.c.channel, bindings.c.external_id)))
    assert {("erp", sent["C-1"]), ("erp", sent["C-2"])} <= bound

    # A change in the hub goes out as version 2 and updates the same ERP customer.
    drop_csv(path, hub, f"{HEADER}C-1,Anna Alm-Berg,,9,,Bonn,DE")
    assert deliver(path, hub).delivered == 1
    again = erp.api.service.GetCustomer(id=int(sent["C-1"]))
    assert (again.name, again.email, str(again.credit_limit)) == ("Anna Alm-Berg", None, "9")
    assert ledger(hub)[-1][:4] == ("C-1", "delivered", 2, sent["C-1"])


def test_server_fault_is_retried_client_fault_is_dead(
    erp: Erp, tmp_path: Path, sqlite_hub: tuple[str, Engine]
) -> None:
    url, hub = sqlite_hub
    path = write_config(tmp_path, url, erp.wsdl)
    erp.api.service.SetLock(code="C-1", locked=True)  # a user edits C-1 in the ERP
    # C-2 goes first: its Client fault makes the worker retry the batch record by record, so
    # C-1 meets its Server fault on its own.
    drop_csv(
        path,
        hub,
        HEADER + "C-2,Bert,bert-at-example.com,,,Wien,AT\nC-1,Anna,anna@example.com,,,Bonn,DE\n",
    )

    stats = deliver(path, hub)

    assert (stats.delivered, stats.retried, stats.dead) == (0, 1, 1)
    state = {key: (s, error) for key, s, _, _, error in ledger(hub)}
    assert state["C-1"][0] == "failed"  # waits for its retry
    assert "SOAP fault Server.Locked: customer C-1 is being edited" in str(state["C-1"][1])
    assert state["C-2"][0] == "dead"
    assert "UpsertCustomer" in str(state["C-2"][1])
    assert "customer C-2 v1" in str(state["C-2"][1])
    assert "SOAP fault Client.Invalid: email 'bert-at-example.com' has no @" in str(state["C-2"][1])

    erp.api.service.SetLock(code="C-1", locked=False)
    backoff_passes(hub)
    assert deliver(path, hub).delivered == 1
    state = {key: (s, external) for key, s, _, external, _ in ledger(hub)}
    assert state["C-1"][0] == "delivered"
    assert erp.api.service.GetCustomer(id=int(str(state["C-1"][1]))).name == "Anna"


# -- bad input -----------------------------------------------------------------------------------


def test_a_wrong_password_is_an_auth_failure(
    erp: Erp, tmp_path: Path, sqlite_hub: tuple[str, Engine]
) -> None:
    url, hub = sqlite_hub
    path = write_config(tmp_path, url, erp.wsdl)
    loaded = config(path, password="Wr0ng-Pa55")
    transport = SoapTransport("erp", loaded.channel_options["erp"], tmp_path)
    health = transport.health()
    transport.close()

    assert (health.ok, health.category) == (False, "auth")
    assert "channel erp: WSDL http://127.0.0.1" in health.detail
    assert "HTTP 401" in health.detail
    assert "Wr0ng-Pa55" not in health.detail
    result = FlowRunner(loaded, hub).run("customers-from-erp")
    assert result.status == "failed"
    assert "HTTP 401" in str(result.error)


def test_a_refused_endpoint_is_retried_and_nothing_is_lost(
    erp: Erp, tmp_path: Path, sqlite_hub: tuple[str, Engine]
) -> None:
    url, hub = sqlite_hub
    closed = f"http://127.0.0.1:{free_port()}/"
    path = write_config(tmp_path, url, erp.wsdl, extra=f"      endpoint: {closed}")
    loaded = config(path)
    transport = SoapTransport("erp", loaded.channel_options["erp"], tmp_path)
    health = transport.health()
    transport.close()
    assert (health.ok, health.category) == (False, "refused")
    assert closed in health.detail

    drop_csv(path, hub, f"{HEADER}C-1,Anna,,,,Bonn,DE\n")
    stats = deliver(path, hub)

    assert (stats.delivered, stats.retried, stats.dead) == (0, 1, 0)
    [(key, state, version, _, error)] = ledger(hub)
    assert (key, state, version) == ("C-1", "failed", 1)
    assert f"UpsertCustomer at {closed}" in str(error)
    assert "connection refused" in str(error)
    result = FlowRunner(loaded, hub).run("customers-from-erp")
    assert result.status == "failed"
    assert "connection refused" in str(result.error)


def test_an_endpoint_that_does_not_answer_times_out(erp: Erp, tmp_path: Path) -> None:
    with silent_port() as silent:  # accepts connections (backlog), never answers
        endpoint = f"http://127.0.0.1:{silent}/"
        extra = f"      endpoint: {endpoint}\n      timeout: 0.3"
        path = write_config(tmp_path, "sqlite:///hub.db", erp.wsdl, extra=extra)
        loaded = config(path)
        transport = SoapTransport("erp", loaded.channel_options["erp"], tmp_path)
        target = loaded.targets["customers-to-erp"]
        record = OutgoingRecord(1, "customer", "C-1", 1, "k", {"code": "C-1", "name": "Anna"})
        try:
            with pytest.raises(SourceUnavailable) as caught:
                transport.write(target, [record])
        finally:
            transport.close()
    assert str(caught.value).startswith(f"channel erp: UpsertCustomer at {endpoint}, customer C-1")
    assert "no answer in time (ReadTimeout)" in str(caught.value)


@pytest.mark.parametrize(
    ("wsdl", "category", "cause"),
    [
        ("{url}missing.wsdl", "schema", "HTTP 404"),
        ("{url}malformed.wsdl", "protocol", "malformed answer"),
        ("nowhere/erp.wsdl", "error", "file not found"),
    ],
)
def test_a_wsdl_that_is_missing_or_malformed(
    erp: Erp, tmp_path: Path, wsdl: str, category: str, cause: str
) -> None:
    path = write_config(tmp_path, "sqlite:///hub.db", wsdl.format(url=erp.url))
    loaded = config(path)
    transport = SoapTransport("erp", loaded.channel_options["erp"], tmp_path)
    health = transport.health()
    transport.close()

    assert (health.ok, health.category) == (False, category)
    assert health.detail.startswith("channel erp: WSDL ")
    assert wsdl.format(url=erp.url).rsplit("/", 1)[-1] in health.detail
    assert cause in health.detail


def test_an_operation_the_wsdl_does_not_offer(
    erp: Erp, tmp_path: Path, sqlite_hub: tuple[str, Engine]
) -> None:
    url, hub = sqlite_hub
    path = write_config(
        tmp_path,
        url,
        erp.wsdl,
        list_operation="ListClients",
        operations="[ListClients, UpsertCustomer]",
        extra=f"      service: CustomerService\n      port: ErpService\n      endpoint: {erp.url}",
    )
    loaded = config(path)
    transport = SoapTransport("erp", loaded.channel_options["erp"], tmp_path)
    health = transport.health()
    transport.close()

    assert (health.ok, health.category) == (False, "schema")
    assert "has no operation(s) ListClients" in health.detail
    assert "ListCustomers" in health.detail  # the ones it has
    result = FlowRunner(loaded, hub).run("customers-from-erp")
    assert result.status == "failed"
    assert "has no operation ListClients" in str(result.error)


def test_an_html_error_page_is_retried_a_non_xml_answer_is_dead(
    erp: Erp, tmp_path: Path, sqlite_hub: tuple[str, Engine]
) -> None:
    url, hub = sqlite_hub
    path = write_config(tmp_path, url, erp.wsdl, extra=f"      endpoint: {erp.url}html500")
    drop_csv(path, hub, f"{HEADER}C-1,Anna,,,,Bonn,DE\n")

    assert deliver(path, hub).retried == 1
    [(_, state, _, _, error)] = ledger(hub)
    assert state == "failed"
    assert "HTTP 500: 500 Internal Server Error The application crashed." in str(error)
    result = FlowRunner(config(path), hub).run("customers-from-erp")
    assert result.status == "failed"
    assert "HTTP 500" in str(result.error)

    # The same delivery against an endpoint that answers 200 with plain text: dead, with why.
    path.write_text(path.read_text().replace("html500", "notxml"))
    backoff_passes(hub)
    assert deliver(path, hub).dead == 1
    [(_, state, _, _, error)] = ledger(hub)
    assert state == "dead"
    assert "the answer is not SOAP XML: OK, thanks" in str(error)


def test_ws_security_username_token_with_a_local_wsdl(
    erp: Erp, tmp_path: Path, sqlite_hub: tuple[str, Engine]
) -> None:
    url, hub = sqlite_hub
    wsdl = requests.get(erp.wsdl, auth=(USER, PASSWORD), timeout=10)
    wsdl.raise_for_status()
    (tmp_path / "wsdl").mkdir()
    (tmp_path / "wsdl" / "erp.wsdl").write_bytes(wsdl.content)
    upsert(erp, "W-1", "Secured")
    path = write_config(tmp_path, url, "wsdl/erp.wsdl", auth="wsse")

    result = FlowRunner(config(path), hub).run("customers-from-erp")
    assert (result.status, result.error, result.created) == ("succeeded", None, 1)
    assert payload(hub, "W-1")["name"] == "Secured"

    refused = FlowRunner(config(path, password="not-it"), hub).run("customers-from-erp")
    assert refused.status == "failed"
    assert "HTTP 401" in str(refused.error)
    assert "not-it" not in str(refused.error)
