"""The reconciliation API on a served ``erpbridge api``: reconcile a flow now, repair it, list
and show the stored results; refusals with their codes; a client restricted to other channels
sees nothing of them; a channel gone away is a stored ``failed`` reconciliation, not a 500."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from typing import Any

import pytest

from erpbridge import FlowRunner, load_config, open_store
from erpbridge.store.apiclients import create_client
from hubprocess import ServedHub, serve_hub

CONFIG = """
entities:
  account:
    key: [code]
    fields: {code: {type: string, required: true}, name: string, balance: decimal}
channels:
  erp: {system: sql, options: {url: "sqlite:///erp.db"}}
  gone: {system: sql, options: {url: "sqlite:///gone/erp.db"}}
  shop: {system: platform}
flows:
  - {name: accounts-in, channel: erp, entity: account, direction: in,
     source: {table: accounts}, reconcile: {amounts: [balance]}}
  - {name: gone-in, channel: gone, entity: account, direction: in,
     source: {table: accounts}, reconcile: {}}
  - {name: customers-in, channel: shop, entity: customer, direction: in, trigger: immediate,
     mapping: {code: {from: id, required: true}, name: name}}
"""


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServedHub, dict[str, str]]]:
    root = tmp_path_factory.mktemp("reconcile-api") / "hub"
    (root / "gone").mkdir(parents=True)
    for database in (root / "erp.db", root / "gone" / "erp.db"):
        erp = sqlite3.connect(database)
        erp.execute("CREATE TABLE accounts (code TEXT PRIMARY KEY, name TEXT, balance NUMERIC)")
        erp.executemany(
            "INSERT INTO accounts VALUES (?, ?, ?)", [("A1", "Alpha", "1.5"), ("A2", "Beta", "2")]
        )
        erp.commit()
        erp.close()
    (root / "erpbridge.yaml").write_text(CONFIG, encoding="utf-8")
    engine = open_store(f"sqlite:///{root / 'erpbridge.db'}")
    FlowRunner(load_config(root / "erpbridge.yaml"), engine).run("accounts-in")
    keys = {
        "writer": create_client(engine, "writer", {"read", "write"})[1],
        "shop-only": create_client(engine, "shop-only", {"read"}, channels={"shop"})[1],
    }
    engine.dispose()
    with sqlite3.connect(root / "erp.db") as erp:
        erp.execute("INSERT INTO accounts VALUES ('A3', 'Gamma', '3')")
    (root / "gone" / "erp.db").unlink()
    (root / "gone").rmdir()  # the channel's database goes away
    with serve_hub(root, CONFIG, command="api") as hub:
        yield hub, keys


def _call(hub: ServedHub, key: str, method: str, path: str, **kwargs: Any) -> Any:
    with hub.client(headers={"X-API-Key": key}) as http:
        return http.request(method, path, **kwargs)


def test_reconcile_now_then_repair_then_list(served: tuple[ServedHub, dict[str, str]]) -> None:
    hub, keys = served
    answer = _call(hub, keys["writer"], "POST", "/api/v1/flows/accounts-in/reconcile", json={})
    assert answer.status_code == 200, answer.text
    found = answer.json()
    assert (found["status"], found["trigger"], found["missing_in_hub"]) == ("succeeded", "api", 1)
    assert found["report"]["differences"] == [
        {"key": "A3", "kind": "missing_in_hub", "field": None, "hub": None, "channel": None}
    ]
    assert found["report"]["sums"]["balance"] == {
        "hub": "3.5", "channel": "6.5", "difference": "-3.0", "unreadable": 0,
    }  # fmt: skip

    repaired = _call(
        hub, keys["writer"], "POST", "/api/v1/flows/accounts-in/reconcile",
        json={"repair": "reread"},
    ).json()  # fmt: skip
    assert (repaired["repair"], repaired["repaired"]) == ("reread", 1)
    clean = _call(hub, keys["writer"], "POST", "/api/v1/flows/accounts-in/reconcile", json={})
    assert clean.json()["missing_in_hub"] == 0 and clean.json()["report"]["differences"] == []

    listed = _call(hub, keys["writer"], "GET", "/api/v1/reconciliations?flow=accounts-in").json()
    assert [r["id"] for r in listed] == [clean.json()["id"], repaired["id"], found["id"]]
    assert all(r["report"] is None for r in listed)
    one = _call(hub, keys["writer"], "GET", f"/api/v1/reconciliations/{found['id']}")
    assert one.json()["report"]["counts"]["channel"] == 3


@pytest.mark.parametrize(
    ("path", "body", "status", "code"),
    [
        ("/api/v1/flows/customers-in/reconcile", {}, 409, "no_reconcile_block"),
        ("/api/v1/flows/accounts-in/reconcile", {"repair": "redeliver"}, 409, "repair_refused"),
        ("/api/v1/flows/nothing/reconcile", {}, 404, "not_found"),
        ("/api/v1/flows/accounts-in/reconcile", {"repair": "fix"}, 422, None),
    ],
)
def test_refusals(
    served: tuple[ServedHub, dict[str, str]],
    path: str,
    body: dict[str, Any],
    status: int,
    code: str | None,
) -> None:
    hub, keys = served
    answer = _call(hub, keys["writer"], "POST", path, json=body)
    assert answer.status_code == status, answer.text
    if code is not None:
        assert code in answer.text


def test_a_channel_gone_is_a_failed_reconciliation(
    served: tuple[ServedHub, dict[str, str]],
) -> None:
    hub, keys = served
    answer = _call(hub, keys["writer"], "POST", "/api/v1/flows/gone-in/reconcile", json={})
    assert answer.status_code == 200, answer.text
    failed = answer.json()
    assert failed["status"] == "failed"
    assert failed["error"].startswith(
        "reconcile of flow 'gone-in': channel 'gone' failed after 0 record(s) read:"
    )
    assert "nothing was changed" in failed["error"]


def test_a_restricted_client_sees_no_other_channel(
    served: tuple[ServedHub, dict[str, str]],
) -> None:
    hub, keys = served
    assert _call(hub, keys["shop-only"], "GET", "/api/v1/reconciliations").json() == []
    answer = _call(hub, keys["shop-only"], "GET", "/api/v1/reconciliations/1")
    assert answer.status_code == 404
