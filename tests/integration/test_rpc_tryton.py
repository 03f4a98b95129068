"""The RPC transport against a real Tryton 8.2 (trytond from PyPI on SQLite, started once per test
session by ``scripts/tryton.sh``; ``ERPBRIDGE_TEST_TRYTON`` holds its URL), over JSON-RPC and
XML-RPC.

IN flows run through the real engine (``FlowRunner``) into a SQLite hub; OUT flows through the
real ``Worker``; what landed is checked with Tryton's own JSON-RPC API (the small client below,
independent of erpbridge). Every test works on records under its own code prefix.
"""

from __future__ import annotations

import base64
import functools
import logging
import socket
import time
import uuid
from collections.abc import Iterator
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import orjson
import pytest
import yaml
from sqlalchemy import Engine, select

from erpbridge import FlowRunner, load_config, open_store
from erpbridge.config.loader import LoadedConfig
from erpbridge.engine.diagnose import check_channel
from erpbridge.engine.worker import Worker
from erpbridge.store.deliveries import requeue
from erpbridge.store.runs import now
from erpbridge.store.tables import deliveries, records
from integration.servers import require_server

PROTOCOLS = ["jsonrpc", "xmlrpc"]


class Tryton:
    """Tryton's own JSON-RPC API: the test's independent view of the server."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        self.base_url = f"{parts.scheme}://{parts.hostname}:{parts.port}/"
        self.database = parts.path.strip("/")
        self.username, self.password = str(parts.username), str(parts.password)
        self.auth = ""
        self.context: dict[str, Any] = {}
        self.login()

    def login(self) -> None:
        uid, session, *_ = self._post(
            "common.db.login", [self.username, {"password": self.password}, "en"]
        )
        token = f"{self.username}:{uid}:{session}".encode()
        self.auth = "Session " + base64.b64encode(token).decode()
        self.context = self._post("model.res.user.get_preferences", [True, {}])

    def call(self, model: str, method: str, *params: Any) -> Any:
        """``model.<model>.<method>`` with the context; logs in again after a 401."""
        try:
            return self._post(f"model.{model}.{method}", [*params, self.context])
        except PermissionError:
            self.login()
            return self._post(f"model.{model}.{method}", [*params, self.context])

    def _post(self, method: str, params: list[Any]) -> Any:
        body = orjson.dumps({"id": 1, "method": method, "params": params}, default=_tag)
        answer = httpx.post(
            f"{self.base_url}{self.database}/rpc/",
            content=body,
            headers={"Content-Type": "application/json", "Authorization": self.auth},
        )
        if answer.status_code == 401:
            raise PermissionError(method)
        answer.raise_for_status()
        data = orjson.loads(answer.content)
        assert "error" not in data, data["error"]
        return _untag(data["result"])

    @functools.cache  # noqa: B019 - one client per test session
    def id_of(self, model: str, field: str, value: Any) -> int:
        (found,) = self.call(model, "search", [[field, "=", value]], 0, None, None)
        return int(found)

    def find(self, model: str, prefix: str, fields: list[str]) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = self.call(
            model, "search_read", [["code", "like", f"{prefix}%"]], 0, None, [["id", "ASC"]], fields
        )
        return rows


def _tag(value: Any) -> Any:
    if isinstance(value, Decimal):
        return {"__class__": "Decimal", "decimal": str(value)}
    raise TypeError(type(value).__name__)


def _untag(value: Any) -> Any:
    if isinstance(value, list):
        return [_untag(v) for v in value]
    if not isinstance(value, dict):
        return value
    value = {k: _untag(v) for k, v in value.items()}
    if value.get("__class__") == "Decimal":
        return Decimal(value["decimal"])
    if value.get("__class__") == "datetime":
        names = ("year", "month", "day", "hour", "minute", "second", "microsecond")
        return datetime(*(value[n] for n in names))
    return value


@pytest.fixture(scope="session")
def tryton() -> Tryton:
    """The running Tryton (one per test session: its start is paid once)."""
    return Tryton(require_server("ERPBRIDGE_TEST_TRYTON", "Tryton (scripts/tryton.sh)"))


@pytest.fixture
def hub(tmp_path: Path) -> Iterator[Engine]:
    engine = open_store(f"sqlite:///{tmp_path / 'hub.db'}")
    yield engine
    engine.dispose()


@pytest.fixture
def prefix() -> str:
    return f"T{uuid.uuid4().hex[:8]}-"


def config(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    tryton: Tryton,
    flows: list[dict[str, Any]],
    *,
    protocol: str = "jsonrpc",
    password: str | None = None,
    username: str | None = None,
    base_url: str | None = None,
    database: str | None = None,
) -> LoadedConfig:
    """An erpbridge.yaml with the Tryton channel ``erp`` (password as an ${ENV} reference) and a
    drop folder ``drop`` to make hub changes with."""
    monkeypatch.setenv("TRYTON_TEST_PASSWORD", tryton.password if password is None else password)
    (tmp_path / "inbox").mkdir(exist_ok=True)
    document = {
        "hub": {"database_url": f"sqlite:///{tmp_path / 'hub.db'}"},
        "channels": {
            "erp": {
                "system": "tryton",
                "options": {
                    "base_url": base_url or tryton.base_url,
                    "database": database or tryton.database,
                    "username": username or tryton.username,
                    "protocol": protocol,
                    "timeout_s": 10,
                },
                "credentials": {"password": "${TRYTON_TEST_PASSWORD}"},
            },
            "drop": {"system": "folder", "options": {"path": "inbox"}},
        },
        "flows": flows,
    }
    path = tmp_path / "erpbridge.yaml"
    path.write_text(yaml.safe_dump(document), encoding="utf-8")
    return load_config(path)


def payloads(engine: Engine, entity: str) -> dict[str, dict[str, Any]]:
    with engine.connect() as conn:
        rows = conn.execute(
            select(records.c.key, records.c.payload).where(records.c.entity == entity)
        )
        return {key: orjson.loads(payload) for key, payload in rows}


def ledger(engine: Engine) -> list[Any]:
    with engine.connect() as conn:
        return list(conn.execute(select(deliveries).order_by(deliveries.c.id)))


def drop(loaded: LoadedConfig, engine: Engine, csv: str, flow: str = "drop-in") -> None:
    (loaded.base_dir / "inbox" / "drop.csv").write_text(csv, encoding="utf-8")
    result = FlowRunner(loaded, engine).run(flow)
    assert result.status == "succeeded", result.error


def deliver(loaded: LoadedConfig, engine: Engine, worker: Worker | None = None) -> Any:
    own = worker or Worker(loaded, engine)
    try:
        return own.run_once()
    finally:
        if worker is None:
            own.close()


def new_parties(tryton: Tryton, items: list[tuple[str, str, str]]) -> list[int]:
    """Parties (code, name, city) with one address each, in one transaction."""
    country = tryton.id_of("country.country", "code", "DE")
    values = [
        {
            "code": code,
            "name": name,
            "addresses": [
                [
                    "create",
                    [
                        {
                            "street": f"{city}str. 1",
                            "city": city,
                            "postal_code": "10115",
                            "country": country,
                        }
                    ],
                ]
            ],
        }
        for code, name, city in items
    ]
    return [int(i) for i in tryton.call("party.party", "create", values)]


def new_templates(tryton: Tryton, items: list[tuple[str, str, str]]) -> list[int]:
    """Product templates (code, name, list price) with one variant each, in one transaction."""
    unit = tryton.id_of("product.uom", "symbol", "u")
    values = [
        {
            "code": code,
            "name": name,
            "type": "goods",
            "default_uom": unit,
            "list_price": Decimal(price),
            "products": [["create", [{}]]],
        }
        for code, name, price in items
    ]
    return [int(i) for i in tryton.call("product.template", "create", values)]


# -- IN ------------------------------------------------------------------------------------------


def in_flows(prefix: str) -> list[dict[str, Any]]:
    domain = [["code", "like", f"{prefix}%"]]
    return [
        {
            "name": "customers-in",
            "channel": "erp",
            "entity": "customer",
            "direction": "in",
            "source": {
                "model": "party.party",
                "domain": domain,
                "fields": [
                    "code",
                    "name",
                    "addresses.street",
                    "addresses.city",
                    "addresses.postal_code",
                    "addresses.country.code",
                ],
                "cursor_field": "write_date",
                "page_size": 2,
            },
            "key": "id",
            "mapping": {
                "code": "code",
                "name": "name",
                "addresses": {
                    "each": "addresses",
                    "fields": {
                        "street": "street",
                        "city": "city",
                        "postal_code": "postal_code",
                        "country": "country.code",
                    },
                },
            },
        },
        {
            "name": "products-in",
            "channel": "erp",
            "entity": "product",
            "direction": "in",
            "source": {
                "model": "product.template",
                "domain": domain,
                "fields": ["code", "name", "default_uom.symbol"],
                "cursor_field": "write_date",
                "page_size": 2,
            },
            "key": "id",
            "mapping": {"sku": "code", "name": "name", "unit": "default_uom.symbol"},
        },
        {
            "name": "prices-in",
            "channel": "erp",
            "entity": "price",
            "direction": "in",
            "source": {
                "model": "product.template",
                "domain": domain,
                "fields": ["code", "list_price"],
            },
            "key": "id",
            "mapping": {"sku": "code", "currency": {"value": "EUR"}, "amount": "list_price"},
        },
    ]


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_in_flows_read_every_page_then_only_what_changed(
    protocol: str,
    tryton: Tryton,
    prefix: str,
    hub: Engine,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    new_parties(tryton, [(f"{prefix}{i}", f"Party {i}", "Berlin") for i in (1, 2, 3, 4)])
    if protocol == "xmlrpc":  # its datetimes are whole seconds: party 5 gets a second of its own
        time.sleep(1 - datetime.now().microsecond / 1e6)
    new_parties(tryton, [(f"{prefix}5", "Party 5", "Berlin")])
    new_templates(tryton, [(f"{prefix}P{i}", f"Product {i}", f"{i}9.90") for i in (1, 2, 3)])
    loaded = config(tmp_path, monkeypatch, tryton, in_flows(prefix), protocol=protocol)
    runner = FlowRunner(loaded, hub)
    pages: list[int] = []

    first = runner.run("customers-in", progress=lambda counts: pages.append(counts.read))

    assert (first.status, first.read, first.created) == ("succeeded", 5, 5), first.error
    assert pages == [2, 2, 1]  # page_size 2, ordered by id
    customer = payloads(hub, "customer")[f"{prefix}3"]
    assert customer["name"] == "Party 3"
    assert customer["addresses"] == [
        {
            "type": "other",
            "street": "Berlinstr. 1",
            "city": "Berlin",
            "postal_code": "10115",
            "country": "DE",
        }
    ]
    products = runner.run("products-in")
    assert (products.status, products.created) == ("succeeded", 3), products.error
    assert payloads(hub, "product")[f"{prefix}P2"]["unit"] == "u"
    prices = runner.run("prices-in")
    assert (prices.status, prices.created) == ("succeeded", 3), prices.error
    amounts = {p["sku"]: Decimal(p["amount"]) for p in payloads(hub, "price").values()}
    assert amounts == {f"{prefix}P{i}": Decimal(f"{i}9.90") for i in (1, 2, 3)}

    again = runner.run("customers-in")
    assert (again.read, again.created, again.updated) == (1, 0, 0)  # the boundary (>=): party 5

    (second_id,) = tryton.call("party.party", "search", [["code", "=", f"{prefix}2"]], 0, 1, None)
    tryton.call("party.party", "write", [second_id], {"name": "Party 2, renamed"})
    new_parties(tryton, [(f"{prefix}6", "Party 6", "Hamburg")])
    (template,) = new_templates(tryton, [(f"{prefix}P4", "Product 4", "49.90")])
    # The trap: Tryton leaves write_date empty until a record's first update.
    (fresh,) = tryton.call("product.template", "read", [template], ["write_date", "create_date"])
    assert fresh["write_date"] is None
    assert fresh["create_date"] is not None

    changed = runner.run("customers-in")
    assert (changed.status, changed.created, changed.updated) == ("succeeded", 1, 1)
    assert changed.read == 3  # party 2, party 6 and the boundary, party 5
    assert payloads(hub, "customer")[f"{prefix}2"]["name"] == "Party 2, renamed"
    assert payloads(hub, "customer")[f"{prefix}6"]["addresses"][0]["city"] == "Hamburg"
    products = runner.run("products-in")
    assert (products.status, products.created, products.updated) == ("succeeded", 1, 0)
    assert products.read == 4  # template 4, and the three of the boundary transaction
    assert payloads(hub, "product")[f"{prefix}P4"]["name"] == "Product 4"


# -- OUT -----------------------------------------------------------------------------------------

DROP_CUSTOMERS = {
    "name": "drop-in",
    "channel": "drop",
    "entity": "customer",
    "direction": "in",
    "source": {"pattern": "*.csv"},
    "mapping": {
        "code": "code",
        "name": "name",
        "addresses": {
            "items": [{"street": "street", "city": "city", "postal_code": "zip", "country": "land"}]
        },
    },
}

CUSTOMERS_OUT = {
    "name": "customers-out",
    "channel": "erp",
    "entity": "customer",
    "direction": "out",
    "retry": {"max_attempts": 3, "backoff_s": 0.001, "min_delay_s": 0},
    "target": {
        "model": "party.party",
        "method": "upsert",
        "match_field": "code",
        "one2many": {"addresses": "replace"},
        "lookups": {"addresses.country": {"model": "country.country", "field": "code"}},
    },
    "mapping": {
        "code": "code",
        "name": "name",
        "addresses": {
            "each": "addresses",
            "fields": {
                "street": "street",
                "city": "city",
                "postal_code": "postal_code",
                "country": "country",
            },
        },
    },
}


def party_view(tryton: Tryton, prefix: str) -> list[dict[str, Any]]:
    fields = ["code", "name", "addresses.city", "addresses.country.code"]
    rows = tryton.find("party.party", prefix, fields)
    return [
        {
            "id": r["id"],
            "code": r["code"],
            "name": r["name"],
            "addresses": [(a["city"], a["country."]["code"]) for a in r["addresses."]],
        }
        for r in rows
    ]


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_out_flow_creates_the_party_then_updates_it(
    protocol: str,
    tryton: Tryton,
    prefix: str,
    hub: Engine,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    loaded = config(
        tmp_path, monkeypatch, tryton, [DROP_CUSTOMERS, CUSTOMERS_OUT], protocol=protocol
    )
    header = "code,name,street,city,zip,land\n"
    drop(loaded, hub, f"{header}{prefix}1,Anna GmbH,Hauptstr. 1,Berlin,10115,DE\n")

    stats = deliver(loaded, hub)

    assert (stats.delivered, stats.dead) == (1, 0)
    (created,) = party_view(tryton, prefix)
    assert created["code"] == f"{prefix}1"
    assert created["name"] == "Anna GmbH"
    assert created["addresses"] == [("Berlin", "DE")]
    assert [row.external_id for row in ledger(hub)] == [str(created["id"])]

    drop(loaded, hub, f"{header}{prefix}1,Anna Schmidt GmbH,Quai 2,Paris,75001,FR\n")
    stats = deliver(loaded, hub)

    assert (stats.delivered, stats.dead) == (1, 0)
    (updated,) = party_view(tryton, prefix)  # written in place: still one party
    assert updated["id"] == created["id"]
    assert updated["name"] == "Anna Schmidt GmbH"
    assert updated["addresses"] == [("Paris", "FR")]  # the lines were replaced


def test_an_expired_session_is_renewed_by_one_new_login(
    tryton: Tryton,
    prefix: str,
    hub: Engine,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    loaded = config(tmp_path, monkeypatch, tryton, [DROP_CUSTOMERS, CUSTOMERS_OUT])
    header = "code,name,street,city,zip,land\n"
    worker = Worker(loaded, hub)  # a long-lived worker keeps its channel's session
    try:
        drop(loaded, hub, f"{header}{prefix}1,Anna,Hauptstr. 1,Berlin,10115,DE\n")
        assert deliver(loaded, hub, worker).delivered == 1
        # Writing a user's password ends every session of that user (res.user.on_modification).
        tryton.call("res.user", "write", [1], {"password": tryton.password})
        drop(loaded, hub, f"{header}{prefix}1,Anna Maria,Hauptstr. 1,Berlin,10115,DE\n")
        with caplog.at_level(logging.INFO, logger="erpbridge.transports.rpc.tryton"):
            stats = deliver(loaded, hub, worker)
    finally:
        worker.close()

    assert (stats.delivered, stats.dead, stats.retried) == (1, 0, 0)
    renewals = [r for r in caplog.records if "logging in again" in r.getMessage()]
    assert len(renewals) == 1
    assert "session refused (HTTP 401)" in renewals[0].getMessage()
    (party,) = party_view(tryton, prefix)
    assert party["name"] == "Anna Maria"


def test_a_user_error_kills_the_delivery_with_trytons_message_and_loses_nothing(
    tryton: Tryton, prefix: str, hub: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    drop_products = {
        "name": "drop-in",
        "channel": "drop",
        "entity": "product",
        "direction": "in",
        "source": {"pattern": "*.csv"},
        "mapping": {"sku": "sku", "name": "name"},
    }
    products_out: dict[str, Any] = {
        "name": "products-out",
        "channel": "erp",
        "entity": "product",
        "direction": "out",
        "retry": {"max_attempts": 3, "backoff_s": 0.001, "min_delay_s": 0},
        "target": {"model": "product.template", "method": "upsert", "match_field": "code"},
        # No default_uom: Tryton refuses the template with a UserError.
        "mapping": {
            "code": "sku",
            "name": "name",
            "type": {"value": "goods"},
            "list_price": {"value": "12.50", "transforms": ["decimal"]},
        },
    }
    loaded = config(tmp_path, monkeypatch, tryton, [drop_products, products_out])
    drop(loaded, hub, f"sku,name\n{prefix}P1,Bolt\n")

    stats = deliver(loaded, hub)

    assert (stats.delivered, stats.dead) == (0, 1)
    (dead,) = ledger(hub)
    assert dead.state == "dead"
    assert 'A value is required for field "Default UoM"' in dead.last_error
    assert f"product '{prefix}P1' v1" in dead.last_error
    assert "product.template" in dead.last_error
    assert tryton.find("product.template", prefix, ["code"]) == []
    assert f"{prefix}P1" in payloads(hub, "product")  # the record waits in the hub

    # Fixed mapping, dead delivery retried: it goes out.
    products_out["mapping"]["default_uom"] = {"value": "u"}
    products_out["target"]["lookups"] = {"default_uom": {"model": "product.uom", "field": "symbol"}}
    loaded = config(tmp_path, monkeypatch, tryton, [drop_products, products_out])
    with hub.begin() as conn:
        assert requeue(conn, None, now(), all_dead=True) == 1
    assert deliver(loaded, hub).delivered == 1
    (template,) = tryton.find("product.template", prefix, ["code", "list_price", "default_uom"])
    assert template["list_price"] == Decimal("12.50")
    assert template["default_uom"] == tryton.id_of("product.uom", "symbol", "u")


# -- bad input -----------------------------------------------------------------------------------


def test_a_wrong_password_is_an_auth_failure(
    tryton: Tryton, prefix: str, hub: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Its own user: failed logins slow down later logins of the same user in Tryton.
    login = f"{prefix}user".lower()
    user = {"name": login, "login": login, "password": "Right-Horse-Staple-1"}
    tryton.call("res.user", "create", [user])
    wrong = "Wrong-" + uuid.uuid4().hex
    loaded = config(
        tmp_path, monkeypatch, tryton, in_flows(prefix)[:1], password=wrong, username=login
    )

    report = check_channel(loaded, "erp", sample=False)
    result = FlowRunner(loaded, hub).run("customers-in")

    assert (report.health.ok, report.health.category) == (False, "auth")
    assert f"login refused for user {login!r}" in report.health.detail
    assert f"database {tryton.database!r}" in report.health.detail
    assert result.status == "failed"
    assert result.error is not None
    assert "login refused" in result.error
    assert wrong not in result.error
    assert wrong not in report.health.detail


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def test_a_server_that_is_down_is_refused_and_the_delivery_waits(
    tryton: Tryton, prefix: str, hub: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    down = f"http://127.0.0.1:{free_port()}/"
    patient = {**CUSTOMERS_OUT, "retry": {"max_attempts": 3, "backoff_s": 60}}
    flows = [DROP_CUSTOMERS, patient, in_flows(prefix)[0]]
    loaded = config(tmp_path, monkeypatch, tryton, flows, base_url=down)

    report = check_channel(loaded, "erp", sample=False)
    result = FlowRunner(loaded, hub).run("customers-in")
    drop(loaded, hub, f"code,name,street,city,zip,land\n{prefix}1,Anna,Str. 1,Berlin,10115,DE\n")
    stats = deliver(loaded, hub)

    assert (report.health.ok, report.health.category) == (False, "refused")
    assert "connection refused" in report.health.detail
    assert down.rstrip("/") in report.health.detail
    assert result.status == "failed"
    assert result.error is not None
    assert "connection refused" in result.error
    assert (stats.delivered, stats.retried, stats.dead) == (0, 1, 0)
    (waiting,) = ledger(hub)
    assert waiting.state == "failed"  # due again later, not dead
    assert "connection refused" in waiting.last_error


def test_an_unknown_model_or_database_is_a_schema_problem(
    tryton: Tryton, prefix: str, hub: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    flow = in_flows(prefix)[0]
    flow["source"]["model"] = "party.customer"
    loaded = config(tmp_path, monkeypatch, tryton, [flow])

    report = check_channel(loaded, "erp")
    result = FlowRunner(loaded, hub).run("customers-in")
    elsewhere = config(tmp_path, monkeypatch, tryton, [flow], database="erp_typo")
    no_database = check_channel(elsewhere, "erp").health

    assert (no_database.ok, no_database.category) == (False, "schema")
    assert "database 'erp_typo' does not exist" in no_database.detail
    assert report.health.ok, report.health.detail
    (sample,) = report.samples
    assert (sample.ok, sample.category) == (False, "schema")
    assert "party.customer does not exist" in sample.detail
    assert result.status == "failed"
    assert result.error is not None
    assert "party.customer does not exist" in result.error
