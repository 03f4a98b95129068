"""The Tryton master-data presets end to end: a real Tryton 8.2 (``scripts/tryton.sh``,
``ERPBRIDGE_TEST_TRYTON``) on one side, the commerce platform on the other — played by this test:
it pushes through the hub's events API as a platform would, and receives the hub's signed
webhooks on a real HTTP endpoint that verifies every signature (``webhook_receiver``).

Each flow: change data on one side through its own API (Tryton JSON-RPC, or the hub's events
API), run the flow (``FlowRunner`` for IN, the real ``Worker`` for OUT), check the other side
field by field, run again to see nothing change, and let a change come back without an echo.
Every test works on its own codes (a random prefix), so they share the one Tryton server.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import orjson
import pytest
import yaml
from cryptography.fernet import Fernet
from sqlalchemy import Engine

from api.conftest import ApiClient
from erpbridge import FlowRunner, load_config, open_store
from erpbridge.api import build_hub, create_app
from erpbridge.config.loader import LoadedConfig
from erpbridge.engine.worker import Worker
from erpbridge.store.apiclients import create_client
from erpbridge.systems import system_types
from integration.servers import require_server
from integration.webhook_receiver import Receiver, receiving

SECRET = "whsec-tryton-masterdata-0123456789"
README = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")


class Tryton:
    """Tryton's own JSON-RPC API: the test's independent view of the server."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        self.base_url = f"{parts.scheme}://{parts.hostname}:{parts.port}/"
        self.database = parts.path.strip("/")
        self.username, self.password = str(parts.username), str(parts.password)
        uid, session, *_ = self._post(
            "common.db.login", [self.username, {"password": self.password}, "en"], ""
        )
        token = base64.b64encode(f"{self.username}:{uid}:{session}".encode()).decode()
        self.auth = f"Session {token}"
        self.context = self._post("model.res.user.get_preferences", [True, {}], self.auth)

    def call(self, model: str, method: str, *params: Any, **context: Any) -> Any:
        """``model.<model>.<method>`` with the user's context (plus ``context``)."""
        return self._post(
            f"model.{model}.{method}", [*params, {**self.context, **context}], self.auth
        )

    def one(self, model: str, domain: list[Any], fields: list[str], **context: Any) -> Any:
        (row,) = self.call(model, "search_read", domain, 0, None, None, fields, **context)
        return row

    def id_of(self, model: str, field: str, value: Any) -> int:
        return int(self.one(model, [[field, "=", value]], ["id"])["id"])

    def _post(self, method: str, params: list[Any], auth: str) -> Any:
        body = orjson.dumps({"id": 1, "method": method, "params": params}, default=_tag)
        answer = httpx.post(
            f"{self.base_url}{self.database}/rpc/",
            content=body,
            headers={"Content-Type": "application/json", "Authorization": auth},
            timeout=30,
        )
        answer.raise_for_status()
        data = orjson.loads(answer.content)
        assert data.get("error") is None, data["error"]
        return _untag(data["result"])


def _tag(value: Any) -> Any:
    if isinstance(value, Decimal):
        return {"__class__": "Decimal", "decimal": str(value)}
    if isinstance(value, dt.date):
        return {"__class__": "date", "year": value.year, "month": value.month, "day": value.day}
    raise TypeError(type(value).__name__)


def _untag(value: Any) -> Any:
    if isinstance(value, list):
        return [_untag(v) for v in value]
    if not isinstance(value, dict):
        return value
    value = {k: _untag(v) for k, v in value.items()}
    if value.get("__class__") == "Decimal":
        return Decimal(value["decimal"])
    return value


@pytest.fixture(scope="module")
def tryton() -> Tryton:
    return Tryton(require_server("ERPBRIDGE_TEST_TRYTON", "Tryton (scripts/tryton.sh)"))


@pytest.fixture(scope="module")
def platform() -> Iterator[Receiver]:
    with receiving(SECRET) as receiver:
        yield receiver


@pytest.fixture
def code() -> str:
    return f"M{uuid.uuid4().hex[:8]}"


@dataclass
class Hub:
    """One hub (its own store) wired to Tryton and to the platform."""

    config: LoadedConfig
    engine: Engine
    api: ApiClient
    platform: Receiver

    def run(self, flow: str) -> Any:
        result = FlowRunner(self.config, self.engine).run(flow)
        assert result.status == "succeeded", result.error
        return result

    def deliver(self) -> Any:
        worker = Worker(self.config, self.engine)
        try:
            stats = worker.run_once()
        finally:
            worker.close()
        with self.engine.connect() as conn:
            dead = conn.exec_driver_sql(
                "SELECT flow, last_error FROM deliveries WHERE state = 'dead'"
            ).all()
        assert not dead, dead
        return stats

    def push(self, flow: str, body: Any) -> httpx.Response:
        return self.api.post(f"/api/v1/events/{flow}", json=body)


#: The platform's own flows (no presets: any platform): what it pushes, what it is sent.
PLATFORM_FLOWS: list[dict[str, Any]] = [
    {"name": "customers-from-shop", "channel": "shop", "entity": "customer",
     "direction": "in", "trigger": "immediate"},
    {"name": "payment-tokens-from-shop", "channel": "shop", "entity": "payment_token",
     "direction": "in", "trigger": "immediate"},
    {"name": "customers-to-shop", "channel": "shop", "entity": "customer", "direction": "out",
     "trigger": "immediate", "target": {"event": "customer.updated"}},
    {"name": "prices-to-shop", "channel": "shop", "entity": "price", "direction": "out",
     "trigger": "immediate", "target": {"event": "price.updated", "batch": True}},
    {"name": "inventory-to-shop", "channel": "shop", "entity": "inventory", "direction": "out",
     "trigger": "immediate", "target": {"event": "inventory.updated", "batch": True}},
    {"name": "payment-tokens-to-shop", "channel": "shop", "entity": "payment_token",
     "direction": "out", "trigger": "immediate", "target": {"event": "payment_token.updated"}},
]  # fmt: skip


@pytest.fixture
def make_hub(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tryton: Tryton, platform: Receiver
) -> Iterator[Any]:
    engines: list[Engine] = []

    def make(
        presets: list[str],
        operations: dict[str, Any] | None = None,
        sources: dict[str, dict[str, Any]] | None = None,
    ) -> Hub:
        monkeypatch.setenv("TRYTON_PASSWORD", tryton.password)
        monkeypatch.setenv("SHOP_WEBHOOK_SECRET", SECRET)
        monkeypatch.setenv("ERPBRIDGE_SECRET_KEY", Fernet.generate_key().decode())
        document = {
            "hub": {"database_url": f"sqlite:///{tmp_path / 'hub.db'}"},
            "channels": {
                "tryton": {
                    "system": "tryton",
                    "options": {
                        "base_url": tryton.base_url,
                        "database": tryton.database,
                        "username": tryton.username,
                    },
                    "credentials": {"password": "${TRYTON_PASSWORD}"},
                    "operations": operations or {},
                },
                "shop": {
                    "system": "platform",
                    "options": {"webhook_url": platform.url},
                    "credentials": {"webhook_secret": "${SHOP_WEBHOOK_SECRET}"},
                },
            },
            "flows": [
                {
                    "preset": p,
                    "channel": "tryton",
                    **({"source": sources[p]} if p in (sources or {}) else {}),
                }
                for p in presets
            ]
            + PLATFORM_FLOWS,
        }
        path = tmp_path / "erpbridge.yaml"
        path.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
        config = load_config(path)
        engine = open_store(config.database_url())
        engines.append(engine)
        key = create_client(engine, "shop", {"events", "operations"})[1]
        api = ApiClient(create_app(build_hub(config, engine)), "127.0.0.1", {"X-API-Key": key})
        platform.clear()
        return Hub(config, engine, api, platform)

    yield make
    for engine in engines:
        engine.dispose()


def _new_party(tryton: Tryton, code: str, name: str, **values: Any) -> int:
    (party,) = tryton.call("party.party", "create", [{"code": code, "name": name, **values}])
    return int(party)


def _categories(tryton: Tryton, code: str) -> set[str]:
    row = tryton.one("party.party", [["code", "=", code]], ["categories.name"])
    return {c["name"] for c in row["categories."]}


def _category_ids(tryton: Tryton, *names: str) -> list[int]:
    return [tryton.id_of("party.category", "name", n) for n in names]


def test_customers_tryton_to_platform_then_lock_and_preferences_back_without_echo(
    make_hub: Any, tryton: Tryton, code: str
) -> None:
    hub: Hub = make_hub(
        [
            "customers-from-tryton",
            "customer-lock-to-tryton",
            "customer-email-preferences-to-tryton",
        ]
    )
    germany = tryton.id_of("country.country", "code", "DE")
    _new_party(
        tryton,
        code,
        "Muster GmbH",
        addresses=[["create", [{"street": "Hauptstr. 1", "postal_code": "10115",
                                "city": "Berlin", "country": germany}]]],
        contact_mechanisms=[["create", [{"type": "email", "value": f"{code}@example.com"},
                                        {"type": "phone", "value": "+49 30 1234567"}]]],
        categories=[["add", _category_ids(tryton, "E-mail: newsletter")]],
    )  # fmt: skip
    tryton_view = tryton.one("party.party", [["code", "=", code]], ["email", "phone"])

    first = hub.run("customers-from-tryton")
    assert first.created >= 1
    hub.deliver()
    sent = hub.platform.by_key("customer.updated")[code]
    assert sent == {
        "code": code,
        "name": "Muster GmbH",
        "email": tryton_view["email"],
        "phone": tryton_view["phone"],
        "locked": False,
        "email_preferences": {"newsletter": True, "order_updates": False, "invoices": False},
        "addresses": [
            {"type": "other", "street": "Hauptstr. 1", "postal_code": "10115",
             "city": "Berlin", "country": "DE"}
        ],
    }  # fmt: skip
    assert tryton_view["email"] == f"{code}@example.com"

    # A second run changes nothing and sends nothing.
    hub.platform.clear()
    again = hub.run("customers-from-tryton")
    assert (again.created, again.updated) == (0, 0)
    assert hub.deliver().delivered == 0

    # The platform locks the customer and changes the e-mail preferences (it sends its record).
    changed = {
        **sent,
        "locked": True,
        "email_preferences": {"newsletter": False, "order_updates": True, "invoices": False},
    }
    assert hub.push("customers-from-shop", changed).status_code == 202
    stats = hub.deliver()
    assert stats.delivered == 2  # lock and e-mail preferences to Tryton; nothing back to the shop
    assert _categories(tryton, code) == {"Locked", "E-mail: order updates"}
    assert hub.platform.events() == []

    # Tryton's party changed (write_date): read again, it is what the hub has — no new version,
    # so no webhook goes back to the platform.
    back = hub.run("customers-from-tryton")
    assert back.read >= 1 and (back.created, back.updated) == (0, 0)
    assert hub.deliver().delivered == 0
    assert hub.platform.events() == []

    # Unlocked in Tryton: the platform hears of it.
    locked_id = _category_ids(tryton, "Locked")
    tryton.call("party.party", "write", [tryton.id_of("party.party", "code", code)],
                {"categories": [["remove", locked_id]]})  # fmt: skip
    assert hub.run("customers-from-tryton").updated == 1
    hub.deliver()
    assert hub.platform.by_key("customer.updated")[code] == {**changed, "locked": False}


def _unwindowed(preset: str) -> dict[str, Any]:
    """The preset's own ``source`` without its safety window, so that a pass starts at the
    newest change and a record is read again only for a change of its own (or a related one)."""
    source = dict(system_types()["tryton"].presets()[preset]["source"])
    source["safety_window_s"] = 0
    return source


def _tryton_customer(tryton: Tryton, code: str) -> dict[str, Any]:
    """Tryton's own read of a party, in the customer's shape (the fields the preset maps)."""
    row = tryton.one(
        "party.party",
        [["code", "=", code]],
        ["name", "email", "phone", "addresses.street", "addresses.postal_code",
         "addresses.city", "addresses.country.code"],
    )  # fmt: skip
    view = {"code": code, "name": row["name"], "email": row["email"], "phone": row["phone"]}
    view["addresses"] = [
        {"type": "other", "street": a["street"], "postal_code": a["postal_code"],
         "city": a["city"], "country": (a["country."] or {}).get("code")}
        for a in row["addresses."]
    ]  # fmt: skip
    return {k: v for k, v in view.items() if v not in (None, "")}


def _hub_record(hub: Hub, entity: str, key: str) -> dict[str, Any]:
    with hub.engine.connect() as conn:
        payload = conn.exec_driver_sql(
            "SELECT payload FROM records WHERE entity = ? AND key = ?", (entity, key)
        ).scalar_one()
    found: dict[str, Any] = orjson.loads(payload)
    return found


def _same_as_tryton(hub: Hub, tryton: Tryton, code: str) -> dict[str, Any]:
    """The hub's customer, checked field by field against Tryton's own read."""
    record = _hub_record(hub, "customer", code)
    for name, value in _tryton_customer(tryton, code).items():
        assert record.get(name) == value, (name, record.get(name), value)
    return record


def test_a_field_only_the_hub_keeps_survives_the_next_read_from_tryton(
    make_hub: Any, tryton: Tryton, code: str
) -> None:
    hub: Hub = make_hub(["customers-from-tryton"])
    party = _new_party(tryton, code, "Sperr GmbH")
    hub.run("customers-from-tryton")
    hub.deliver()
    sent = hub.platform.by_key("customer.updated")[code]
    # The platform locks the customer with a reason; Tryton has no field for the reason.
    pushed = {**sent, "locked": True, "lock_reason": "payment overdue"}
    assert hub.push("customers-from-shop", pushed).status_code == 202
    hub.deliver()

    # A change in Tryton: its read changes what Tryton owns and leaves the reason alone.
    locked = _category_ids(tryton, "Locked")
    tryton.call(
        "party.party", "write", [party], {"name": "Sperr AG", "categories": [["add", locked]]}
    )
    hub.platform.clear()
    result = hub.run("customers-from-tryton")
    assert result.updated == 1
    hub.deliver()
    assert hub.platform.by_key("customer.updated")[code] == {**pushed, "name": "Sperr AG"}
    record = _same_as_tryton(hub, tryton, code)
    assert (record["locked"], record["lock_reason"]) == (True, "payment overdue")

    # Read again with nothing changed: the merged record is the stored one, nothing is sent.
    tryton.call("party.party", "write", [party], {"name": "Sperr AG"})  # write_date moves
    hub.platform.clear()
    assert (hub.run("customers-from-tryton").updated, hub.deliver().delivered) == (0, 0)


def test_addresses_and_contact_mechanisms_changed_on_their_own_are_read(
    make_hub: Any, tryton: Tryton, code: str
) -> None:
    hub: Hub = make_hub(
        ["customers-from-tryton"],
        sources={"customers-from-tryton": _unwindowed("customers-from-tryton")},
    )
    germany = tryton.id_of("country.country", "code", "DE")
    party = _new_party(
        tryton, code, "Adress GmbH",
        addresses=[["create", [{"street": "Hauptstr. 1", "postal_code": "10115",
                                "city": "Berlin", "country": germany}]]],
        contact_mechanisms=[["create", [{"type": "email", "value": f"{code}@example.com"}]]],
    )  # fmt: skip
    hub.run("customers-from-tryton")
    _new_party(tryton, f"{code}N", "Neben KG")  # moves the pass boundary past this party
    hub.run("customers-from-tryton")
    _same_as_tryton(hub, tryton, code)

    # An address made through party.address (as the hub does for an order's ship-to address).
    tryton.call("party.address", "create", [{"party": party, "street": "Isartorplatz 2",
                                             "postal_code": "80331", "city": "München",
                                             "country": germany}])  # fmt: skip
    assert hub.run("customers-from-tryton").updated == 1
    assert len(_same_as_tryton(hub, tryton, code)["addresses"]) == 2

    # An address changed on its own.
    (first, _) = tryton.call(
        "party.address", "search", [["party", "=", party]], 0, None, [["id", "ASC"]]
    )
    tryton.call("party.address", "write", [first], {"street": "Hauptstr. 10"})
    assert hub.run("customers-from-tryton").updated == 1
    assert _same_as_tryton(hub, tryton, code)["addresses"][0]["street"] == "Hauptstr. 10"

    # An e-mail changed through party.contact_mechanism, and a phone added there.
    emails = [["party", "=", party], ["type", "=", "email"]]
    (mechanism,) = tryton.call("party.contact_mechanism", "search", emails, 0, None, None)
    tryton.call(
        "party.contact_mechanism", "write", [mechanism], {"value": f"new-{code}@example.com"}
    )
    assert hub.run("customers-from-tryton").updated == 1
    assert _same_as_tryton(hub, tryton, code)["email"] == f"new-{code}@example.com"
    tryton.call("party.contact_mechanism", "create",
                [{"party": party, "type": "phone", "value": "+49 89 123"}])  # fmt: skip
    assert hub.run("customers-from-tryton").updated == 1
    assert _same_as_tryton(hub, tryton, code)["phone"] == "+49 89 123"

    # Nothing changed: nothing read again as an update, the platform hears each change once.
    assert hub.run("customers-from-tryton").updated == 0
    hub.deliver()
    assert hub.platform.by_key("customer.updated")[code] == _hub_record(hub, "customer", code)


def test_a_customer_from_the_platform_becomes_a_party_without_echo(
    make_hub: Any, tryton: Tryton, code: str
) -> None:
    hub: Hub = make_hub(["customers-to-tryton", "customers-from-tryton"])
    customer = {
        "code": code,
        "name": "Neukunde AG",
        "email": f"{code}@shop.example.com",
        "phone": "+43 1 234567",
        "locked": True,
        "email_preferences": {"newsletter": True, "order_updates": False, "invoices": True},
        "addresses": [{"type": "other", "street": "Ring 5", "postal_code": "1010",
                       "city": "Wien", "country": "AT"}],
    }  # fmt: skip
    assert hub.push("customers-from-shop", customer).status_code == 202
    assert hub.deliver().delivered == 1
    party = tryton.one(
        "party.party",
        [["code", "=", code]],
        ["name", "email", "phone", "addresses.street", "addresses.postal_code",
         "addresses.city", "addresses.country.code"],
    )  # fmt: skip
    assert (party["name"], party["email"], party["phone"]) == (
        "Neukunde AG",
        f"{code}@shop.example.com",
        "+43 1 234567",
    )
    (address,) = party["addresses."]
    assert (address["street"], address["postal_code"], address["city"]) == (
        "Ring 5",
        "1010",
        "Wien",
    )
    assert address["country."]["code"] == "AT"
    assert _categories(tryton, code) == {"Locked", "E-mail: newsletter", "E-mail: invoices"}

    # Read back from Tryton it is the platform's record: no new version, no echo.
    hub.run("customers-from-tryton")
    with hub.engine.connect() as conn:
        versions = conn.exec_driver_sql(
            "SELECT version FROM records WHERE entity = 'customer' AND key = ?", (code,)
        ).scalar_one()
    assert versions == 1
    hub.deliver()
    assert code not in hub.platform.by_key("customer.updated")

    # A second delivery of a changed name updates the same party (matched by code).
    assert hub.push("customers-from-shop", {**customer, "name": "Neukunde GmbH"}).status_code == 202
    hub.deliver()
    assert tryton.one("party.party", [["code", "=", code]], ["name"])["name"] == "Neukunde GmbH"


def _cards(tryton: Tryton, token: str) -> dict[str, Any]:
    row: dict[str, Any] = tryton.one(
        "party.contact_mechanism",
        [["value", "=", token]],
        ["type", "name", "comment", "active", "party.code"],
        active_test=False,
    )
    return row


def test_payment_tokens_both_ways(make_hub: Any, tryton: Tryton, code: str) -> None:
    hub: Hub = make_hub(["payment-tokens-to-tryton", "payment-tokens-from-tryton"])
    party = _new_party(tryton, code, "Kartenkunde")
    token = f"tok_{code}"
    card = {
        "token": token, "customer_code": code, "brand": "visa", "last4": "4242",
        "exp_month": 12, "exp_year": 2030, "holder": "Anna Muster", "default": True,
    }  # fmt: skip
    assert hub.push("payment-tokens-from-shop", card).status_code == 202
    assert hub.deliver().delivered == 1
    stored = _cards(tryton, token)
    # Tryton on SQLite answers booleans as 0/1.
    assert stored["type"] == "other" and stored["active"] == 1
    assert stored["party."]["code"] == code
    assert stored["name"] == "Payment card visa 4242"
    assert stored["comment"] == (
        "brand: visa\nlast4: 4242\nexp_month: 12\nexp_year: 2030\nholder: Anna Muster\n"
        "default: True"
    )

    # Update, then delete: the same contact mechanism, changed, then archived.
    assert hub.push("payment-tokens-from-shop", {**card, "exp_year": 2031}).status_code == 202
    hub.deliver()
    assert "exp_year: 2031" in _cards(tryton, token)["comment"]
    gone = {**card, "exp_year": 2031, "active": False}
    assert hub.push("payment-tokens-from-shop", gone).status_code == 202
    hub.deliver()
    assert _cards(tryton, token)["active"] == 0
    ids = tryton.call("party.contact_mechanism", "search", [["value", "=", token]], 0, None,
                      None, active_test=False)  # fmt: skip
    assert len(ids) == 1

    # A raw card number never gets in.
    raw = hub.push("payment-tokens-from-shop", {**card, "token": "4111111111111111"})
    assert raw.status_code == 422 and "4111111111111111" not in raw.text

    # A card added in Tryton reaches the platform; the platform's own card comes back unchanged.
    other = f"tok_{code}_erp"
    tryton.call("party.contact_mechanism", "create", [{
        "party": party, "type": "other", "value": other, "name": "Payment card mastercard 5454",
        "comment": "brand: mastercard\nlast4: 5454\nexp_month: 3\nexp_year: 2029\ndefault: False",
    }])  # fmt: skip
    hub.platform.clear()
    hub.run("payment-tokens-from-tryton")
    hub.deliver()
    # (The shared Tryton may hold other tests' cards: this hub reads them for the first time.)
    got = {k: v for k, v in hub.platform.by_key("payment_token.updated").items() if code in k}
    assert got == {
        other: {"token": other, "customer_code": code, "brand": "mastercard", "last4": "5454",
                "exp_month": 3, "exp_year": 2029, "default": False, "active": True},
    }  # fmt: skip
    hub.platform.clear()
    assert (hub.run("payment-tokens-from-tryton").updated, hub.deliver().delivered) == (0, 0)


def _product(tryton: Tryton, code: str, list_price: str, kind: str = "goods") -> int:
    unit = tryton.id_of("product.uom", "symbol", "u")
    goods = tryton.id_of("product.category", "name", "Goods")
    (template,) = tryton.call("product.template", "create", [{
        "name": f"Product {code}", "code": code, "type": kind, "default_uom": unit,
        "list_price": Decimal(list_price), "salable": True, "sale_uom": unit,
        "account_category": goods, "products": [["create", [{}]]],
    }])  # fmt: skip
    return tryton.id_of("product.product", "template", template)


def _price_list(tryton: Tryton, name: str, lines: list[dict[str, Any]]) -> int:
    (price_list,) = tryton.call(
        "product.price_list", "create", [{"name": name, "lines": [["create", lines]]}]
    )
    return int(price_list)


def test_list_and_customer_prices_reach_the_platform(
    make_hub: Any, tryton: Tryton, code: str
) -> None:
    hub: Hub = make_hub(["list-prices-from-tryton", "customer-prices-from-tryton"])
    sku = f"{code}-P"
    product = _product(tryton, sku, "19.90")
    # Tryton takes the first matching line: the larger tier comes first (see the next test).
    price_list = _price_list(tryton, f"{code} prices", [
        {"product": product, "quantity": 10, "formula": "15.00"},
        {"product": product, "quantity": 0, "formula": "17.50"},
        {"product": product, "quantity": 50, "formula": "unit_price * 0.5"},  # computed: left out
    ])  # fmt: skip
    _new_party(tryton, code, "Preiskunde", sale_price_list=price_list)

    hub.run("list-prices-from-tryton")
    hub.run("customer-prices-from-tryton")
    hub.deliver()
    got = hub.platform.by_key("price.updated")
    assert got[f"list|{sku}||EUR|1"] == {"price_list": "list", "sku": sku, "customer_code": "",
                                         "currency": "EUR", "amount": "19.9",
                                         "min_quantity": "1"}  # fmt: skip
    mine = {k: v for k, v in got.items() if f"|{code}|" in k}
    assert mine == {
        f"{code} prices|{sku}|{code}|EUR|0": {"price_list": f"{code} prices", "sku": sku,
            "customer_code": code, "currency": "EUR", "amount": "17.5", "min_quantity": "0"},
        f"{code} prices|{sku}|{code}|EUR|10": {"price_list": f"{code} prices", "sku": sku,
            "customer_code": code, "currency": "EUR", "amount": "15", "min_quantity": "10"},
    }  # fmt: skip

    hub.platform.clear()
    assert hub.run("customer-prices-from-tryton").updated == 0
    assert hub.run("list-prices-from-tryton").updated == 0
    assert hub.deliver().delivered == 0

    tier = [["price_list", "=", price_list], ["quantity", "=", 10]]
    (line,) = tryton.call("product.price_list.line", "search", tier, 0, None, None)
    tryton.call("product.price_list.line", "write", [line], {"formula": "14.25"})
    assert hub.run("customer-prices-from-tryton").updated == 1
    hub.deliver()
    assert hub.platform.by_key("price.updated") == {
        f"{code} prices|{sku}|{code}|EUR|10": {"price_list": f"{code} prices", "sku": sku,
            "customer_code": code, "currency": "EUR", "amount": "14.25", "min_quantity": "10"},
    }  # fmt: skip


def _sale_price(tryton: Tryton, sku: str, price_list: int, quantity: float) -> Decimal:
    """Tryton's own answer: the unit price a sale of ``quantity`` under ``price_list`` gets."""
    row = tryton.one("product.product", [["code", "=", sku]], ["sale_price_uom"],
                     price_list=price_list, quantity=quantity)  # fmt: skip
    return Decimal(str(row["sale_price_uom"]))


def test_customer_prices_are_what_tryton_charges_not_shadowed_lines(
    make_hub: Any, tryton: Tryton, code: str
) -> None:
    hub: Hub = make_hub(["customer-prices-from-tryton"])
    first, second = f"{code}-A", f"{code}-B"
    a, b = _product(tryton, first, "20"), _product(tryton, second, "30")
    price_list = _price_list(tryton, f"{code} tiers", [
        {"product": a, "quantity": 0, "formula": "17.50"},    # first match at every quantity
        {"product": a, "quantity": 100, "formula": "15.00"},  # shadowed: never charged
        {"product": b, "quantity": 100, "formula": "25.00"},  # a real tier: before its base
        {"product": b, "quantity": 0, "formula": "28.1234"},
        {"product": b, "quantity": 5, "formula": "27.00"},    # shadowed by the base line
        {"quantity": 500, "formula": "1.00"},                 # any product from 500: wins there
        {"product": b, "quantity": 1000, "formula": "20.00"}, # shadowed by the line above
    ])  # fmt: skip
    _new_party(tryton, code, "Staffelkunde", sale_price_list=price_list)

    hub.run("customer-prices-from-tryton")
    hub.deliver()
    got = {k: v for k, v in hub.platform.by_key("price.updated").items() if f"|{code}|" in k}
    assert {(v["sku"], v["min_quantity"], v["amount"]) for v in got.values()} == {
        (first, "0", "17.5"), (second, "100", "25"), (second, "0", "28.1234"),
    }  # fmt: skip
    for row in got.values():  # every exported row is Tryton's own price at its quantity
        charged = _sale_price(tryton, row["sku"], price_list, float(row["min_quantity"]))
        assert charged == Decimal(row["amount"]), row


def _stock(tryton: Tryton, warehouse: str, product: int, quantity: int) -> None:
    wh = tryton.one("stock.location", [["code", "=", warehouse]], ["storage_location"])
    (inventory,) = tryton.call("stock.inventory", "create", [{
        "location": wh["storage_location"],
        "lines": [["create", [{"product": product, "quantity": quantity}]]],
    }])  # fmt: skip
    tryton.call("stock.inventory", "confirm", [inventory])


def test_inventory_per_warehouse(make_hub: Any, tryton: Tryton, code: str) -> None:
    hub: Hub = make_hub(["inventory-from-tryton"])
    sku = f"{code}-S"
    product = _product(tryton, sku, "5")
    _stock(tryton, "WH", product, 7)
    _stock(tryton, "WH2", product, 5)
    # A planned delivery of 3 from WH: on hand stays 7, the forecast drops.
    wh = tryton.one("stock.location", [["code", "=", "WH"]], ["id", "storage_location"])
    customer = tryton.id_of("stock.location", "type", "customer")
    tryton.call("stock.move", "create", [{
        "product": product, "quantity": 3, "unit": tryton.id_of("product.uom", "symbol", "u"),
        "from_location": wh["storage_location"], "to_location": customer,
        "planned_date": dt.date.today() + dt.timedelta(days=1),
        "unit_price": Decimal("5"), "currency": tryton.id_of("currency.currency", "code", "EUR"),
        "company": tryton.context["company"],
    }])  # fmt: skip

    hub.run("inventory-from-tryton")
    hub.deliver()
    got = hub.platform.by_key("inventory.updated")
    for warehouse in ("WH", "WH2"):
        location = tryton.id_of("stock.location", "code", warehouse)
        own = tryton.one("product.product", [["id", "=", product]],
                         ["quantity", "forecast_quantity"], locations=[location])  # fmt: skip
        assert got[f"{sku}|{warehouse}"] == {
            "sku": sku, "warehouse": warehouse, "unit": "pcs",
            "quantity": str(Decimal(str(own["quantity"])).normalize()),
            "available": str(Decimal(str(own["forecast_quantity"])).normalize()),
        }  # fmt: skip
    assert (got[f"{sku}|WH"]["quantity"], got[f"{sku}|WH"]["available"]) == ("7", "4")
    assert (got[f"{sku}|WH2"]["quantity"], got[f"{sku}|WH2"]["available"]) == ("5", "5")

    hub.platform.clear()
    assert hub.run("inventory-from-tryton").updated == 0
    assert hub.deliver().delivered == 0
    _stock(tryton, "WH2", product, 9)
    assert hub.run("inventory-from-tryton").updated == 1
    hub.deliver()
    assert hub.platform.by_key("inventory.updated")[f"{sku}|WH2"]["quantity"] == "9"


OPERATIONS = {
    "validate_po": {"kind": "validate_po", "timeout_s": 10,
                    "description": "Is this PO number free for this customer?"},
    "price": {"kind": "sale_price", "timeout_s": 10},
    "party_name": {"model": "party.party", "method": "search_read",
                   "args": [[["code", "=", "{code}"]], 0, 1, None, ["name"]],
                   "result_path": "0.name"},
}  # fmt: skip


def test_real_time_po_check_and_price(make_hub: Any, tryton: Tryton, code: str) -> None:
    hub: Hub = make_hub([], OPERATIONS)
    sku = f"{code}-R"
    product = _product(tryton, sku, "15")
    price_list = _price_list(tryton, f"{code} rt", [
        {"product": product, "quantity": 10, "formula": "10.00"},
        {"product": product, "quantity": 0, "formula": "12.00"},
    ])  # fmt: skip
    party = _new_party(tryton, code, "Echtzeit KG", sale_price_list=price_list)
    _new_party(tryton, f"{code}L", "Gesperrt KG",
               categories=[["add", _category_ids(tryton, "Locked")]])  # fmt: skip
    tryton.call("sale.sale", "create", [{"party": party, "reference": "PO-1"}])

    def ask(name: str, **params: Any) -> Any:
        answer = hub.api.post(f"/api/v1/channels/tryton/operations/{name}", json=params)
        assert answer.status_code == 200, answer.text
        return answer.json()["result"]

    used = ask("validate_po", customer=code, po_number="PO-1")
    assert (used["valid"], used["customer_exists"], used["locked"], used["po_used"]) == (
        False, True, False, True)  # fmt: skip
    assert "PO-1" in used["reason"] and len(used["orders"]) == 1
    assert ask("validate_po", customer=code, po_number="PO-2")["valid"] is True
    locked = ask("validate_po", customer=f"{code}L", po_number="PO-1")
    assert (locked["valid"], locked["locked"], locked["reason"]) == (
        False, True, f"customer '{code}L' is locked")  # fmt: skip
    unknown = ask("validate_po", customer=f"{code}X", po_number="PO-1")  # a 200, as documented
    assert (unknown["valid"], unknown["customer_exists"]) == (False, False)
    documented = re.search(r"`validate_po`\s+answers an unknown customer with a 200: `(\{.*?\})`",
                           README, re.S)  # fmt: skip
    assert documented is not None, "README: validate_po's answer for an unknown customer"
    example = json.loads(documented.group(1).replace("\n", " ").replace("C-9", f"{code}X"))
    assert {k: unknown[k] for k in example} == example
    assert "unknown customer or product is a 422" not in README

    one = ask("price", customer=code, sku=sku, quantity=1)
    assert Decimal(one["unit_price"]) == Decimal("12") and Decimal(one["list_price"]) == 15
    assert one["price_list"] == f"{code} rt"
    assert Decimal(ask("price", customer=code, sku=sku, quantity=10)["unit_price"]) == 10
    assert Decimal(ask("price", sku=sku)["unit_price"]) == 15
    assert ask("party_name", code=code) == "Echtzeit KG"

    missing = hub.api.post(
        "/api/v1/channels/tryton/operations/validate_po", json={"customer": code}
    )
    assert missing.status_code == 422 and "po_number: missing parameter" in missing.text
    no_sku = hub.api.post("/api/v1/channels/tryton/operations/price", json={"sku": f"{code}-?"})
    assert no_sku.status_code == 422 and "no product with code" in no_sku.text
