"""Real-time operations through the hub's API against the real REST test API (json-server behind
its gateway, ``scripts/restapi.sh``): a customer look-up and a PO check answered within the
caller's request, the cache, a missing parameter, a wrong key, and a channel that never answers
(a real TCP listener that accepts and stays silent)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from cryptography.fernet import Fernet

import httpserve
from api.conftest import ApiClient
from erpbridge.api import build_hub, create_app
from erpbridge.config.loader import load_config
from erpbridge.store import open_store
from erpbridge.store.apiclients import create_client
from integration.servers import require_server


@pytest.fixture(scope="module")
def api() -> dict[str, str]:
    info: dict[str, str] = json.loads(
        require_server("ERPBRIDGE_TEST_RESTAPI", "the REST test API (scripts/restapi.sh)")
    )
    return info


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port that accepts connections and never answers."""
    with httpserve.silent_port() as port:
        yield port


def _hub_client(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    api: dict[str, str],
    silent_port: int,
    collection: str,
    key: str | None = None,
) -> ApiClient:
    monkeypatch.setenv("SHOP_API_KEY", key or api["api_key"])
    monkeypatch.setenv("ERPBRIDGE_SECRET_KEY", Fernet.generate_key().decode())
    config = {
        "channels": {
            "shop": {
                "system": "rest",
                "options": {"base_url": f"{api['url']}/key/", "auth": {"type": "api_key"}},
                "credentials": {"api_key": "${SHOP_API_KEY}"},
                "operations": {
                    "customer": {
                        "path": f"api/{collection}/{{code}}",
                        "not_found": "null",
                        "cache_s": 60,
                        "description": "Look a customer up by code.",
                    },
                    "po_used": {
                        "path": f"api/{collection}",
                        "query": {"code": "{customer}", "po": "{po_number}"},
                        "timeout_s": 5,
                    },
                },
            },
            "slow": {
                "system": "rest",
                "options": {"base_url": f"http://127.0.0.1:{silent_port}/"},
                "operations": {"ping": {"path": "ping", "timeout_s": 0.5}},
            },
        }
    }
    (tmp_path / "erpbridge.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    engine = open_store(f"sqlite:///{tmp_path / 'hub.db'}")
    caller = create_client(engine, "portal", {"operations"})[1]
    hub = build_hub(load_config(tmp_path / "erpbridge.yaml"), engine)
    return ApiClient(create_app(hub), "127.0.0.1", {"X-API-Key": caller})


def _collection(api: dict[str, str], items: list[dict[str, Any]]) -> str:
    name = f"ops{uuid.uuid4().hex[:10]}"
    httpx.put(f"{api['url']}/_admin/collections/{name}", json=items).raise_for_status()
    return name


CUSTOMERS = [
    {"id": "C-1", "code": "C-1", "name": "Muster GmbH", "po": "PO-7", "locked": False},
    {"id": "C-2", "code": "C-2", "name": "Gesperrt AG", "po": "PO-9", "locked": True},
]


def test_lookup_answers_then_comes_from_the_cache(
    api: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, silent_port: int
) -> None:
    name = _collection(api, CUSTOMERS)
    http = _hub_client(tmp_path, monkeypatch, api, silent_port, name)
    first = http.post("/api/v1/channels/shop/operations/customer", json={"code": "C-1"})
    assert first.status_code == 200, first.text
    assert first.json()["result"]["name"] == "Muster GmbH"
    assert first.json()["cached"] is False
    # The server changes; the cached answer stands for cache_s.
    httpx.patch(f"{api['url']}/open/api/{name}/C-1", json={"name": "Renamed"}).raise_for_status()
    second = http.post("/api/v1/channels/shop/operations/customer", json={"code": "C-1"})
    assert second.json()["cached"] is True
    assert second.json()["result"]["name"] == "Muster GmbH"
    other = http.post("/api/v1/channels/shop/operations/customer", json={"code": "C-404"})
    assert other.status_code == 200 and other.json()["result"] is None
    listed = http.get("/api/v1/channels/shop/operations").json()
    assert [o["name"] for o in listed] == ["customer", "po_used"]


def test_po_check_with_query_parameters(
    api: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, silent_port: int
) -> None:
    name = _collection(api, CUSTOMERS)
    http = _hub_client(tmp_path, monkeypatch, api, silent_port, name)
    used = http.post(
        "/api/v1/channels/shop/operations/po_used", json={"customer": "C-1", "po_number": "PO-7"}
    )
    fresh = http.post(
        "/api/v1/channels/shop/operations/po_used", json={"customer": "C-1", "po_number": "PO-8"}
    )
    assert [c["code"] for c in used.json()["result"]] == ["C-1"]
    assert fresh.json()["result"] == []


def test_missing_parameter_unknown_operation_timeout_and_refusal(
    api: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, silent_port: int
) -> None:
    name = _collection(api, CUSTOMERS)
    http = _hub_client(tmp_path, monkeypatch, api, silent_port, name)
    missing = http.post("/api/v1/channels/shop/operations/po_used", json={"customer": "C-1"})
    assert missing.status_code == 422
    assert "po_number: missing parameter" in missing.json()["error"]["message"]
    unknown = http.post("/api/v1/channels/shop/operations/nope", json={})
    assert unknown.status_code == 404
    assert "operations: customer, po_used" in unknown.json()["error"]["message"]
    slow = http.post("/api/v1/channels/slow/operations/ping", json={})
    assert slow.status_code == 504
    assert "no answer within 0.5 s" in slow.json()["error"]["message"]


def test_wrong_channel_key_is_a_502_naming_the_refusal(
    api: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, silent_port: int
) -> None:
    name = _collection(api, CUSTOMERS)
    http = _hub_client(tmp_path, monkeypatch, api, silent_port, name, key="wrong-key")
    answer = http.post("/api/v1/channels/shop/operations/customer", json={"code": "C-1"})
    assert answer.status_code == 502
    message = answer.json()["error"]["message"]
    assert "HTTP 401" in message and "wrong-key" not in message


def test_a_stored_credential_is_set_through_the_api_and_kept_encrypted(
    api: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    name = _collection(api, CUSTOMERS)
    monkeypatch.setenv("ERPBRIDGE_SECRET_KEY", Fernet.generate_key().decode())
    config = {
        "channels": {
            "shop": {
                "system": "rest",
                "options": {"base_url": f"{api['url']}/key/", "auth": {"type": "api_key"}},
                "credentials": {"api_key": "stored"},
                "operations": {"customer": {"path": f"api/{name}/{{code}}"}},
            }
        }
    }
    (tmp_path / "erpbridge.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    engine = open_store(f"sqlite:///{tmp_path / 'hub.db'}")
    admin = create_client(engine, "ops-admin", {"admin"})[1]
    hub = build_hub(load_config(tmp_path / "erpbridge.yaml"), engine)
    http = ApiClient(create_app(hub), "127.0.0.1", {"X-API-Key": admin})

    before = http.post("/api/v1/channels/shop/operations/customer", json={"code": "C-1"})
    assert before.status_code == 503
    assert "api_key is `stored` but was never set" in before.json()["error"]["message"]

    put = http.put("/api/v1/channels/shop/credentials/api_key", json={"value": api["api_key"]})
    assert put.status_code == 204
    after = http.post("/api/v1/channels/shop/operations/customer", json={"code": "C-1"})
    assert after.status_code == 200 and after.json()["result"]["name"] == "Muster GmbH"

    with engine.connect() as conn:
        stored = conn.exec_driver_sql("SELECT ciphertext FROM channel_secrets").scalar_one()
        audit = conn.exec_driver_sql("SELECT action, target FROM admin_audit").all()
    assert api["api_key"] not in stored and stored.startswith("gAAAA")
    assert ("channel.credential", "shop/api_key") in [tuple(a) for a in audit]
    shown = http.get("/api/v1/channels/shop").text
    assert api["api_key"] not in shown
    engine.dispose()
