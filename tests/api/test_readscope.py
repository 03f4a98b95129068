"""A client restricted to channels reads only what belongs to them, on every resource, on SQLite
and PostgreSQL: runs, deliveries, rejected records, conflicts, records (payload, bindings,
lineage), search results and the admin audit. Pages are full (the restriction is in SQL before
``LIMIT``), and a row outside the restriction answers 404 like one that does not exist."""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import Engine, Table, insert, select

from api.conftest import ApiClient
from erpbridge.api import build_hub, create_app
from erpbridge.api.context import Hub
from erpbridge.config.loader import load_config
from erpbridge.store import open_store, search
from erpbridge.store.apiclients import create_client
from erpbridge.store.tables import admin_audit, conflicts, deliveries, records, rejected, runs
from hubprocess import serve_hub

CONFIG = """
hub:
  api:
    rate_limits: {per_client: "1000/second", per_route: {}, anonymous: "1000/second"}
channels:
  shop: {system: platform}
  other: {system: platform}
  erp:
    system: folder
    options: {path: erp}
flows:
  - name: customers-in
    channel: shop
    entity: customer
    direction: in
    trigger: immediate
    key: id
    mapping:
      code: {from: id, required: true}
      name: {from: name, required: true}
  - name: partners-in
    channel: other
    entity: customer
    direction: in
    trigger: immediate
    key: id
    mapping:
      code: {from: id, required: true}
      name: {from: name, required: true}
  - name: customers-out
    channel: erp
    entity: customer
    direction: out
    trigger: immediate
    target: {format: json, name: "customer-{key}-v{version}.json"}
    mapping:
      Kunde: code
      Name: name
"""

#: Who calls: unrestricted ones, and clients restricted to one channel.
CLIENTS: dict[str, tuple[set[str], set[str] | None]] = {
    "admin": ({"admin"}, None),
    "feeder": ({"events"}, None),
    "shop-reader": ({"read", "write"}, {"shop"}),
    "shop-admin": ({"admin"}, {"shop"}),
    "erp-reader": ({"read"}, {"erp"}),
}


class Scoped:
    """A hub on the test's dialect and a client per entry of :data:`CLIENTS`."""

    def __init__(self, hub: Hub, engine: Engine, keys: dict[str, str]) -> None:
        self.hub, self.engine, self.keys = hub, engine, keys

    def client(self, name: str) -> ApiClient:
        return ApiClient(create_app(self.hub), "127.0.0.1", {"X-API-Key": self.keys[name]})

    def push(self, flow: str, *items: dict[str, str]) -> None:
        with self.client("feeder") as http:
            answer = http.post(f"/api/v1/events/{flow}", json=list(items))
        assert answer.status_code == 202, answer.text

    def insert(self, table: Table, rows: list[dict[str, Any]]) -> list[int]:
        with self.engine.begin() as conn:
            return [
                conn.execute(insert(table).values(**row)).inserted_primary_key[0] for row in rows
            ]


@pytest.fixture
def scoped(hub_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Scoped]:
    monkeypatch.setenv("ERPBRIDGE_SECRET_KEY", Fernet.generate_key().decode())
    (tmp_path / "erp").mkdir()
    (tmp_path / "erpbridge.yaml").write_text(CONFIG, encoding="utf-8")
    engine = open_store(hub_url)
    keys = {
        name: create_client(engine, name, scopes, channels=channels)[1]
        for name, (scopes, channels) in CLIENTS.items()
    }
    yield Scoped(build_hub(load_config(tmp_path / "erpbridge.yaml"), engine), engine, keys)
    engine.dispose()
    os.environ.pop("ERPBRIDGE_SECRET_KEY", None)


AT = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)


def _run(channel: str, flow: str) -> dict[str, Any]:
    return {"flow": flow, "channel": channel, "entity": "customer", "mode": "incremental",
            "status": "succeeded", "dry_run": False, "started_at": AT}  # fmt: skip


def _rejection(channel: str, flow: str) -> dict[str, Any]:
    return {"flow": flow, "channel": channel, "entity": "customer", "position": "row 1",
            "field_path": "name", "reason": "missing", "status": "open",
            "created_at": AT}  # fmt: skip


def _record(scoped: Scoped, key: str) -> int:
    with scoped.engine.connect() as conn:
        return int(conn.execute(select(records.c.id).where(records.c.key == key)).scalar_one())


def _delivery(record_id: int, channel: str, flow: str, n: int, state: str) -> dict[str, Any]:
    return {"flow": flow, "channel": channel, "entity": "customer", "record_id": record_id,
            "key": "K", "version": 1, "ordering_key": f"{flow}|customer|K{n}",
            "idempotency_key": f"{flow}|{record_id}|{n}", "priority": 0, "state": state,
            "attempts": 0, "max_attempts": 5, "next_attempt_at": AT, "fence": 0,
            "created_at": AT, "updated_at": AT}  # fmt: skip


def _conflict(record_id: int, channel: str, flow: str) -> dict[str, Any]:
    return {"flow": flow, "channel": channel, "entity": "customer", "record_id": record_id,
            "key": "K", "hub_version": 1, "incoming_payload": '{"code": "K"}',
            "policy": "manual", "status": "open", "created_at": AT}  # fmt: skip


def _seed(scoped: Scoped, resource: str) -> tuple[list[int], list[int]]:
    """Five rows of ``resource`` for the shop, then thirty newer ones of another channel; the
    ids of both. Newest first, the first page of 5 is all foreign."""
    if resource == "runs":
        return (
            scoped.insert(runs, [_run("shop", "customers-in")] * 5),
            scoped.insert(runs, [_run("other", "partners-in")] * 30),
        )
    if resource == "rejected":
        return (
            scoped.insert(rejected, [_rejection("shop", "customers-in")] * 5),
            scoped.insert(rejected, [_rejection("other", "partners-in")] * 30),
        )
    scoped.push("customers-in", {"id": "S-1", "name": "Shop One"})
    record = _record(scoped, "S-1")
    if resource == "deliveries":
        # The shop's own deliveries are to its OUT flow's channel in this test: erp-reader's.
        return (
            scoped.insert(deliveries, [_delivery(record, "shop", "customers-in", n, "dead")
                                       for n in range(5)]),
            scoped.insert(deliveries, [_delivery(record, "other", "partners-in", n, "dead")
                                       for n in range(5, 35)]),
        )  # fmt: skip
    assert resource == "conflicts"
    return (
        scoped.insert(conflicts, [_conflict(record, "shop", "customers-in")] * 5),
        scoped.insert(conflicts, [_conflict(record, "other", "partners-in")] * 30),
    )


@pytest.mark.parametrize("resource", ["runs", "deliveries", "rejected", "conflicts"])
def test_pages_are_full_and_hold_only_own_channels(scoped: Scoped, resource: str) -> None:
    own, foreign = _seed(scoped, resource)
    with scoped.client("shop-reader") as http:
        page = http.get(f"/api/v1/{resource}", params={"limit": 5})
        every = http.get(f"/api/v1/{resource}", params={"limit": 1000})
        foreign_flow = http.get(f"/api/v1/{resource}", params={"flow": "partners-in"})
    assert page.status_code == 200, page.text
    assert [r["id"] for r in page.json()] == sorted(own, reverse=True)
    assert {r["channel"] for r in every.json()} == {"shop"}
    assert foreign_flow.json() == []
    with scoped.client("admin") as http:
        unrestricted = http.get(f"/api/v1/{resource}", params={"limit": 1000}).json()
    assert {*own, *foreign} <= {r["id"] for r in unrestricted}


def test_foreign_run_and_delivery_are_404_not_403(scoped: Scoped) -> None:
    (own_run,), (foreign_run,) = (
        scoped.insert(runs, [_run("shop", "customers-in")]),
        scoped.insert(runs, [_run("other", "partners-in")]),
    )
    scoped.push("customers-in", {"id": "S-1", "name": "Shop One"})
    record = _record(scoped, "S-1")
    (foreign,) = scoped.insert(deliveries, [_delivery(record, "other", "partners-in", 9, "dead")])
    with scoped.client("shop-reader") as http:
        assert http.get(f"/api/v1/runs/{own_run}").status_code == 200
        assert http.get(f"/api/v1/runs/{foreign_run}").status_code == 404
        for action in ("retry", "cancel"):
            answer = http.post(f"/api/v1/deliveries/{foreign}/{action}")
            assert answer.status_code == 404, answer.text
            assert answer.json()["error"] == {
                "code": "not_found",
                "message": f"no delivery {foreign}",
            } | {k: v for k, v in answer.json()["error"].items() if k not in ("code", "message")}
    with scoped.engine.connect() as conn:
        assert (
            conn.execute(select(deliveries.c.state).where(deliveries.c.id == foreign)).scalar_one()
            == "dead"
        )


def test_records_bound_or_flowing_through_own_channels_only(scoped: Scoped) -> None:
    scoped.push("customers-in", {"id": "S-1", "name": "Shop One"}, {"id": "B-1", "name": "Both"})
    scoped.push("partners-in", {"id": "O-1", "name": "Other One"}, {"id": "B-1", "name": "Both!"})
    with scoped.client("shop-reader") as http:
        own = http.get("/api/v1/records/customer/S-1")
        foreign = http.get("/api/v1/records/customer/O-1")
        missing = http.get("/api/v1/records/customer/NOPE")
        shared = http.get("/api/v1/records/customer/B-1")
    assert own.status_code == 200, own.text
    assert foreign.status_code == 404
    # Indistinguishable from a key that does not exist.
    assert foreign.json()["error"]["code"] == missing.json()["error"]["code"] == "not_found"
    body = shared.json()
    # Bound to both channels: visible, with its current payload (written by the other channel),
    # the shop's binding only, every version, and the other channel's lineage withheld.
    assert body["payload"]["name"] == "Both!"
    assert body["bindings"] == [{"channel": "shop", "external_id": "B-1"}]
    first, second = body["versions"]
    assert (first["flow"], first["channel"], first["lineage_withheld"]) == (
        "customers-in",
        "shop",
        False,
    )
    assert first["run_id"] is not None
    assert second["payload"]["name"] == "Both!"
    assert second["lineage_withheld"] is True
    assert {second[k] for k in ("run_id", "flow", "channel", "external_id", "source_position")} == {
        None
    }
    with scoped.client("admin") as http:
        full = http.get("/api/v1/records/customer/B-1").json()
    assert [b["channel"] for b in full["bindings"]] == ["other", "shop"]
    assert [v["channel"] for v in full["versions"]] == ["shop", "other"]
    assert not any(v["lineage_withheld"] for v in full["versions"])


def test_a_record_going_out_to_a_channel_is_visible_to_it(scoped: Scoped) -> None:
    # customers-out delivers every customer to erp: erp-reader sees them (no binding yet, the
    # versions came in through channels it may not see).
    scoped.push("customers-in", {"id": "S-1", "name": "Shop One"})
    with scoped.client("erp-reader") as http:
        record = http.get("/api/v1/records/customer/S-1")
        ledger = http.get("/api/v1/deliveries")
    assert record.status_code == 200, record.text
    assert record.json()["bindings"] == []
    assert [v["lineage_withheld"] for v in record.json()["versions"]] == [True]
    assert [(d["channel"], d["key"]) for d in ledger.json()] == [("erp", "S-1")]


@pytest.mark.parametrize("few", [2000, 0], ids=["visible-set", "probe-each"])
def test_search_finds_own_records_only_and_fills_the_page(
    scoped: Scoped, few: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Foreign customers sort first (by label and by key) and are newer: a filter after the
    # look-up's cap would leave nothing for the shop. Both ways of applying the restriction:
    # reading the few visible records first, and probing each candidate (many visible).
    monkeypatch.setattr(search, "_FEW_VISIBLE", few)
    scoped.push("customers-in", *({"id": f"Z-{n}", "name": f"Acme Zulu {n}"} for n in range(5)))
    scoped.push("partners-in", *({"id": f"A-{n}", "name": f"Acme Alpha {n}"} for n in range(30)))
    scoped.push("partners-in", {"id": "Z-0", "name": "Acme Zulu 0"})  # shared: stays visible
    with scoped.client("shop-reader") as http:
        prefix = http.get("/api/v1/search/customer", params={"q": "acme", "limit": 5})
        substring = http.get("/api/v1/search/customer", params={"q": "cme z", "limit": 5})
        words = http.get("/api/v1/search/customer", params={"q": "alpha acme"})
        key = http.get("/api/v1/search/customer", params={"q": "a-1"})
    assert prefix.status_code == 200, prefix.text
    assert sorted(h["key"] for h in prefix.json()["hits"]) == [f"Z-{n}" for n in range(5)]
    assert sorted(h["key"] for h in substring.json()["hits"]) == [f"Z-{n}" for n in range(5)]
    assert words.json()["hits"] == []
    assert key.json()["hits"] == []
    with scoped.client("admin") as http:
        everything = http.get("/api/v1/search/customer", params={"q": "acme", "limit": 100})
    assert len(everything.json()["hits"]) == 35


def test_audit_shows_own_actions_and_rows_about_own_channels(scoped: Scoped) -> None:
    scoped.push("customers-in", {"id": "S-1", "name": "Shop One"})
    record = _record(scoped, "S-1")
    own_delivery, foreign_delivery = scoped.insert(
        deliveries,
        [
            _delivery(record, "shop", "customers-in", 1, "dead"),
            _delivery(record, "other", "partners-in", 2, "dead"),
        ],
    )
    rows = [
        ("admin", "channel.test", "shop", True),
        ("admin", "channel.test", "other", False),
        ("admin", "channel.credential", "shop/token", True),
        ("admin", "channel.credential", "other/token", False),
        ("admin", "channel.credential", "shopx/token", False),
        ("admin", "flow.disable", "customers-in", True),
        ("admin", "flow.disable", "partners-in", False),
        ("admin", "flow.run", "shop", False),  # a flow named like the channel is not the channel
        ("admin", "delivery.retry", str(own_delivery), True),
        ("admin", "delivery.cancel", str(foreign_delivery), False),
        ("admin", "delivery.retry_dead", "customers-in", True),
        ("admin", "delivery.retry_dead", None, False),
        ("admin", "client.create", "shop-admin", False),
        ("shop-admin", "client.whatever", None, True),
    ]
    ids = scoped.insert(
        admin_audit,
        [
            {"at": AT, "actor": actor, "action": action, "target": target, "outcome": "ok"}
            for actor, action, target, _ in rows
        ],
    )
    # Thirty newer rows about the other channel: the page of 5 must still be full.
    scoped.insert(
        admin_audit,
        [{"at": AT, "actor": "admin", "action": "channel.test", "target": "other",
          "outcome": "ok"}] * 30,
    )  # fmt: skip
    expected = [i for i, (*_, visible) in zip(ids, rows, strict=True) if visible]
    with scoped.client("shop-admin") as http:
        seen = http.get("/api/v1/audit", params={"limit": 1000}).json()
        page = http.get("/api/v1/audit", params={"limit": 5}).json()
    assert sorted(r["id"] for r in seen) == expected
    assert [r["id"] for r in page] == sorted(expected, reverse=True)[:5]
    with scoped.client("admin") as http:
        assert len(http.get("/api/v1/audit", params={"limit": 1000}).json()) == len(rows) + 30


def test_retry_dead_of_a_restricted_admin_touches_its_flows_only(scoped: Scoped) -> None:
    scoped.push("customers-in", {"id": "S-1", "name": "Shop One"})
    record = _record(scoped, "S-1")
    own, foreign = scoped.insert(
        deliveries,
        [
            _delivery(record, "shop", "customers-in", 1, "dead"),
            _delivery(record, "other", "partners-in", 2, "dead"),
        ],
    )
    with scoped.client("shop-admin") as http:
        answer = http.post("/api/v1/deliveries/retry-dead")
    assert answer.json() == {"changed": 1, "superseded": 0}
    with scoped.engine.connect() as conn:
        states = dict(conn.execute(select(deliveries.c.id, deliveries.c.state)).all())
    assert (states[own], states[foreign]) == ("pending", "dead")


def test_delivery_states_are_one_vocabulary_with_held(scoped: Scoped) -> None:
    scoped.push("customers-in", {"id": "S-1", "name": "Shop One"})
    record = _record(scoped, "S-1")
    scoped.insert(deliveries, [_delivery(record, "shop", "customers-in", 1, "held")])
    with scoped.client("shop-reader") as http:
        held = http.get("/api/v1/deliveries", params={"state": "held"})
        bogus = http.get("/api/v1/deliveries", params={"state": "lost"})
        schema = http.get("/openapi.json").json()
    assert [d["state"] for d in held.json()] == ["held"]
    assert bogus.status_code == 422
    state = next(
        p for p in schema["paths"]["/api/v1/deliveries"]["get"]["parameters"]
        if p["name"] == "state"
    )  # fmt: skip
    assert "held" in str(state["schema"])


def test_served_hub_applies_the_restriction(hub_url: str, tmp_path: Path) -> None:
    """``erpbridge api`` as a user starts it, on the test's dialect: the restriction holds on the
    served process's records, search, runs and deliveries."""
    config = CONFIG.replace("options: {path: erp}", f"options: {{path: {tmp_path / 'erp'}}}")
    (tmp_path / "erp").mkdir()
    with serve_hub(tmp_path / "hub", config, env={"ERPBRIDGE_DATABASE_URL": hub_url}) as served:
        engine = open_store(hub_url)
        try:
            feeder = create_client(engine, "feeder", {"events"})[1]
            reader = create_client(engine, "shop-reader", {"read"}, channels={"shop"})[1]
        finally:
            engine.dispose()
        with served.client(headers={"X-API-Key": feeder}) as http:
            for flow, key in (("customers-in", "S-1"), ("partners-in", "O-1")):
                pushed = http.post(
                    f"/api/v1/events/{flow}", json={"id": key, "name": f"Acme {key}"}
                )
                assert pushed.status_code == 202, pushed.text
        with served.client(headers={"X-API-Key": reader}) as http:
            own = http.get("/api/v1/records/customer/S-1")
            foreign = http.get("/api/v1/records/customer/O-1")
            hits = http.get("/api/v1/search/customer", params={"q": "acme"}).json()["hits"]
            ran = http.get("/api/v1/runs", params={"limit": 1}).json()
            ledger = http.get("/api/v1/deliveries").json()
    assert own.status_code == 200, own.text
    assert foreign.status_code == 404
    assert [h["key"] for h in hits] == ["S-1"]
    assert [r["flow"] for r in ran] == ["customers-in"]
    assert ledger == []  # the deliveries go to erp, not to the shop
