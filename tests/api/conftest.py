"""An erpbridge project with the API in front of it: a platform channel pushing customers and
card tokens, and an ERP folder the customers go OUT to. Requests go through httpx to the real
FastAPI app (in-process ASGI transport, so a test can choose the peer address)."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.fernet import Fernet
from sqlalchemy import Engine, func, select

from erpbridge.api import build_hub, create_app
from erpbridge.api.context import Hub
from erpbridge.config.loader import load_config
from erpbridge.store import open_store
from erpbridge.store.apiclients import create_client
from erpbridge.store.tables import admin_audit, deliveries, records, runs

CONFIG = """
hub:
  api:
    trusted_proxies: ["10.0.0.1"]
    rate_limits:
      per_client: "1000/second"
      per_route: {}
      anonymous: "1000/second"
channels:
  shop:
    system: platform
    credentials: {webhook_secret: "${SHOP_HOOK_SECRET}"}
    inbound:
      allowed_ips: ["127.0.0.1", "10.9.0.0/16"]
      webhook: {flow: customers-in, records_path: data}
  other:
    system: platform
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
      email: email
      credit_limit: limit
  - name: tokens-in
    channel: shop
    entity: payment_token
    direction: in
    trigger: immediate
    key: token
    mapping:
      token: {from: token, required: true}
      customer_code: customer
      last4: last4
  - name: other-in
    channel: other
    entity: product
    direction: in
    trigger: immediate
    mapping:
      sku: {from: sku, required: true}
      name: name
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

HOOK_SECRET = "whsec-test-0123456789"


class ApiClient:
    """A synchronous face on httpx's ASGI transport, which lets a test choose the peer address
    (Starlette's TestClient would too, but warns about its httpx use)."""

    def __init__(self, app: Any, peer: str, headers: dict[str, str]) -> None:
        self.app, self.peer, self.headers = app, peer, headers

    def __enter__(self) -> ApiClient:
        return self

    def __exit__(self, *_: object) -> None:
        pass

    def request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        async def send() -> httpx.Response:
            transport = httpx.ASGITransport(app=self.app, client=(self.peer, 50000))
            async with httpx.AsyncClient(
                transport=transport, base_url="http://hub", headers=self.headers
            ) as http:
                return await http.request(method, url, **kwargs)

        return asyncio.run(send())

    def get(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("GET", url, **kwargs)

    def post(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("POST", url, **kwargs)

    def put(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("PUT", url, **kwargs)


@dataclass
class Project:
    root: Path
    hub: Hub
    engine: Engine
    keys: dict[str, str]

    def client(self, peer: str = "127.0.0.1", **headers: str) -> ApiClient:
        return ApiClient(create_app(self.hub), peer, headers)

    def counts(self) -> tuple[int, int, int, int]:
        """records, deliveries, runs, admin audit rows: 'nothing written' is all four unchanged."""
        with self.engine.connect() as conn:
            return tuple(  # type: ignore[return-value]
                conn.execute(select(func.count()).select_from(t)).scalar_one()
                for t in (records, deliveries, runs, admin_audit)
            )


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Project]:
    monkeypatch.setenv("SHOP_HOOK_SECRET", HOOK_SECRET)
    monkeypatch.setenv("ERPBRIDGE_SECRET_KEY", Fernet.generate_key().decode())
    (tmp_path / "erp").mkdir()
    (tmp_path / "erpbridge.yaml").write_text(CONFIG, encoding="utf-8")
    config = load_config(tmp_path / "erpbridge.yaml")
    engine = open_store(f"sqlite:///{tmp_path / 'hub.db'}")
    keys = {}
    for name, scopes in {
        "shop": {"events", "read"},
        "reader": {"read"},
        "operator": {"read", "write"},
        "admin": {"admin"},
    }.items():
        keys[name] = create_client(engine, name, scopes)[1]
    keys["shop-only"] = create_client(engine, "shop-only", {"events"}, channels={"shop"})[1]
    keys["office"] = create_client(
        engine, "office", {"read"}, allowed_ips=["192.168.10.0/24", "2001:db8::/32"]
    )[1]
    yield Project(tmp_path, build_hub(config, engine), engine, keys)
    engine.dispose()
    os.environ.pop("ERPBRIDGE_SECRET_KEY", None)
