"""JWTs of an external identity provider, verified through its JWKS URL: the OAuth 2.0 server of
the REST test API (``oauth2-mock-server`` from npm, started by ``scripts/restapi.sh``) issues RS256
tokens by the client credentials grant, and the hub's API accepts them for the local client their
(issuer, subject) is mapped to, narrowed to their scopes; an identity not mapped is refused."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
import yaml
from cryptography.fernet import Fernet

from api.conftest import ApiClient
from erpbridge.api import build_hub, create_app
from erpbridge.config.loader import load_config
from erpbridge.store import open_store
from erpbridge.store.apiclients import create_client
from integration.servers import require_server


@pytest.fixture(scope="module")
def idp() -> dict[str, str]:
    info: dict[str, str] = json.loads(
        require_server("ERPBRIDGE_TEST_RESTAPI", "the REST test API (scripts/restapi.sh)")
    )
    return info


def _token(idp: dict[str, str], scope: str, client_id: str | None = None) -> str:
    answer = httpx.post(
        idp["token_url"],
        data={"grant_type": "client_credentials", "scope": scope},
        auth=(client_id or idp["client_id"], idp["client_secret"]),
    )
    answer.raise_for_status()
    token: str = answer.json()["access_token"]
    return token


@pytest.fixture
def app(idp: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> object:
    monkeypatch.setenv("ERPBRIDGE_SECRET_KEY", Fernet.generate_key().decode())
    issuer = idp["token_url"].rsplit("/", 1)[0]
    config = {
        "hub": {
            "api": {
                "identity_providers": [
                    {
                        "issuer": issuer,
                        "jwks_url": f"{issuer}/jwks",
                        "algorithms": ["RS256"],
                        "identities": {idp["client_id"]: "crm"},
                    }
                ]
            }
        },
        "channels": {"shop": {"system": "platform"}},
        "flows": [
            {
                "name": "customers-in",
                "channel": "shop",
                "entity": "customer",
                "direction": "in",
                "trigger": "immediate",
                "mapping": {"code": {"from": "id", "required": True}, "name": "name"},
            }
        ],
    }
    (tmp_path / "erpbridge.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    engine = open_store(f"sqlite:///{tmp_path / 'hub.db'}")
    create_client(engine, "crm", {"read", "events"}, channels={"shop"})
    return create_app(build_hub(load_config(tmp_path / "erpbridge.yaml"), engine))


def test_provider_tokens_open_the_api_with_their_scopes(idp: dict[str, str], app: object) -> None:
    reader = ApiClient(app, "127.0.0.1", {"Authorization": f"Bearer {_token(idp, 'read')}"})
    assert reader.get("/api/v1/flows").status_code == 200
    refused = reader.post("/api/v1/events/customers-in", json={"id": "C-1", "name": "x"})
    assert refused.status_code == 403 and "lacks the scope 'events'" in refused.text
    pusher = ApiClient(app, "127.0.0.1", {"Authorization": f"Bearer {_token(idp, 'events')}"})
    assert (
        pusher.post("/api/v1/events/customers-in", json={"id": "C-1", "name": "x"}).status_code
        == 202
    )


def test_a_tampered_provider_token_is_refused(idp: dict[str, str], app: object) -> None:
    header, claims, signature = _token(idp, "read").split(".")
    forged = f"{header}.{claims}.{signature[::-1]}"
    answer = ApiClient(app, "127.0.0.1", {"Authorization": f"Bearer {forged}"}).get("/api/v1/flows")
    assert answer.status_code == 401


def test_an_unmapped_provider_identity_is_refused(idp: dict[str, str], app: object) -> None:
    # The provider's other client ("<client_id>-short") has a valid token, but no mapping.
    token = _token(idp, "read events admin", f"{idp['client_id']}-short")
    answer = ApiClient(app, "127.0.0.1", {"Authorization": f"Bearer {token}"}).get("/api/v1/flows")
    assert answer.status_code == 401
    assert "is not mapped to an API client" in answer.json()["error"]["message"]
