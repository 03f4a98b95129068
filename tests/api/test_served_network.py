"""The client address and scheme of the served hub (``erpbridge api`` and ``erpbridge run``, HTTP
and HTTPS): ``X-Forwarded-For`` and ``X-Forwarded-Proto`` change them only when the TCP peer is one
of ``hub.api.trusted_proxies``. uvicorn's own proxy-header handling believed them from 127.0.0.1,
so any local process could claim an allowed address, dodge the per-address throttle, or turn an
HTTPS redirect into plain http; that lives in how the server is started, hence the subprocess."""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from pathlib import Path

import pytest

from api.servedconfig import CUSTOMERS_IN
from erpbridge.store import open_store
from erpbridge.store.apiclients import create_client
from hubprocess import ServedHub, serve_hub
from integration.pki import make_pki

HOOK_SECRET = "whsec-served-0123456789"

FLOWS = (
    """
channels:
  shop:
    system: platform
    credentials: {webhook_secret: "${SHOP_HOOK_SECRET}"}
    inbound:
      allowed_ips: ["10.9.0.0/16"]
      webhook: {flow: customers-in, records_path: data}
flows:"""
    + CUSTOMERS_IN
)


def _api(trusted: str = "[]", allowed: str = "null") -> str:
    return f"""
hub:
  api:
    trusted_proxies: {trusted}
    allowed_ips: {allowed}
    rate_limits: {{per_client: "1000/second", per_route: {{}}, anonymous: "3/minute"}}
{FLOWS}"""


def _keys(root: Path) -> dict[str, str]:
    """Clients made before the hub starts: a plain reader and one allowed from 192.168.10.0/24."""
    root.mkdir(parents=True, exist_ok=True)
    engine = open_store(f"sqlite:///{root / 'erpbridge.db'}")
    keys = {
        "reader": create_client(engine, "reader", {"read"})[1],
        "office": create_client(engine, "office", {"read"}, allowed_ips=["192.168.10.0/24"])[1],
    }
    engine.dispose()
    return keys


def _served(
    root: Path, config: str, command: str, args: tuple[str, ...] = (), **kwargs: object
) -> Iterator[tuple[ServedHub, dict[str, str]]]:
    keys = _keys(root)
    env = {"SHOP_HOOK_SECRET": HOOK_SECRET}
    with serve_hub(root, config, command=command, args=args, env=env, **kwargs) as hub:  # type: ignore[arg-type]
        yield hub, keys


def _xff(address: str, **more: str) -> dict[str, str]:
    return {"X-Forwarded-For": address, **more}


@pytest.fixture(params=["api", "run"])
def untrusted(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[tuple[ServedHub, dict[str, str]]]:
    """No trusted proxies: forwarded headers from 127.0.0.1 must change nothing."""
    yield from _served(tmp_path / request.param, _api(), request.param)


def test_forwarded_for_does_not_satisfy_a_client_allow_list(
    untrusted: tuple[ServedHub, dict[str, str]],
) -> None:
    hub, keys = untrusted
    with hub.client() as http:
        key = {"X-API-Key": keys["office"]}
        spoofed = http.get("/api/v1/channels", headers={**key, **_xff("192.168.10.7")})
        assert spoofed.status_code == 403, spoofed.text
        assert "may not call from 127.0.0.1" in spoofed.json()["error"]["message"]
        # The form of a token request is no way round it either.
        form = {"grant_type": "client_credentials", "client_id": "office"}
        form["client_secret"] = keys["office"]
        token = http.post("/oauth/token", data=form, headers=_xff("192.168.10.7"))
        assert token.status_code == 403, token.text


def test_forwarded_for_does_not_satisfy_a_webhook_allow_list(
    untrusted: tuple[ServedHub, dict[str, str]],
) -> None:
    hub, _ = untrusted
    with hub.client() as http:
        answer = http.post("/hooks/shop", content=b'{"data": []}', headers=_xff("10.9.0.5"))
    assert answer.status_code == 403, answer.text
    assert answer.json()["error"]["code"] == "address_not_allowed"


def test_forwarded_for_does_not_reset_the_per_address_throttle(
    untrusted: tuple[ServedHub, dict[str, str]],
) -> None:
    hub, _ = untrusted
    statuses = []
    with hub.client() as http:
        for n in range(6):
            bad = {"X-API-Key": "ebk_wrong", **_xff(f"198.51.100.{n}")}
            statuses.append(http.get("/api/v1/channels", headers=bad).status_code)
    assert statuses[:3] == [401, 401, 401]
    assert statuses[3:] == [429, 429, 429]


def test_forwarded_for_does_not_reset_the_token_endpoint_throttle(
    untrusted: tuple[ServedHub, dict[str, str]],
) -> None:
    hub, _ = untrusted
    statuses = []
    with hub.client() as http:
        for n in range(6):
            form = {"grant_type": "client_credentials", "client_id": f"guess{n}"}
            form["client_secret"] = "wrong"
            answer = http.post("/oauth/token", data=form, headers=_xff(f"198.51.100.{n}"))
            statuses.append(answer.status_code)
    assert statuses[:3] == [401, 401, 401]
    assert statuses[3:] == [429, 429, 429]


@pytest.mark.parametrize("command", ["api", "run"])
def test_forwarded_for_does_not_satisfy_the_api_allow_list(tmp_path: Path, command: str) -> None:
    for hub, keys in _served(tmp_path, _api(allowed='["10.9.0.0/16"]'), command):
        with hub.client() as http:
            key = {"X-API-Key": keys["reader"]}
            answer = http.get("/api/v1/channels", headers={**key, **_xff("10.9.0.5")})
            assert answer.status_code == 403, answer.text
            assert "address 127.0.0.1 may not call" in answer.json()["error"]["message"]
            form = {"grant_type": "client_credentials", "client_id": "reader"}
            form["client_secret"] = keys["reader"]
            token = http.post("/oauth/token", data=form, headers=_xff("10.9.0.5"))
            assert token.status_code == 403, token.text


def test_forwarded_proto_does_not_turn_an_https_redirect_to_http(tmp_path: Path) -> None:
    (tmp_path / "pki").mkdir()
    pki = make_pki(tmp_path / "pki")
    args = ("--tls-cert", str(pki.server_cert), "--tls-key", str(pki.server_key))
    for hub, keys in _served(
        tmp_path / "hub",
        _api(),
        "run",
        args,
        scheme="https",
        verify=ssl.create_default_context(cafile=str(pki.ca)),
    ):
        with hub.client() as http:
            spoofed = {"X-Forwarded-Proto": "http", **_xff("192.168.10.7")}
            answer = http.get("/api/v1/channels/", headers=spoofed)
            assert answer.status_code == 307
            assert answer.headers["location"].startswith("https://127.0.0.1:")
            key = {"X-API-Key": keys["office"], **spoofed}
            assert http.get("/api/v1/channels", headers=key).status_code == 403


def test_trusted_proxy_forwarded_address_and_scheme_are_used(tmp_path: Path) -> None:
    config = _api(trusted='["127.0.0.1"]', allowed='["10.9.0.0/16", "192.168.10.0/24"]')
    for hub, keys in _served(tmp_path, config, "api"):
        with hub.client() as http:
            reader = {"X-API-Key": keys["reader"]}
            assert http.get("/api/v1/channels", headers=reader).status_code == 403
            assert http.get("/api/v1/channels", headers={**reader, **_xff("10.9.0.5")}).is_success
            office = {"X-API-Key": keys["office"]}
            assert (
                http.get("/api/v1/channels", headers={**office, **_xff("10.9.0.5")}).status_code
                == 403
            )
            assert http.get(
                "/api/v1/channels", headers={**office, **_xff("192.168.10.7")}
            ).is_success
            # The webhook allow-list sees the forwarded address: past it, the signature is checked.
            hook = http.post("/hooks/shop", content=b'{"data": []}', headers=_xff("10.9.0.5"))
            assert hook.status_code == 401, hook.text
            # The proxy terminated TLS: the redirect keeps the scheme it names.
            moved = http.get(
                "/api/v1/channels/", headers=_xff("10.9.0.5", **{"X-Forwarded-Proto": "https"})
            )
            assert moved.status_code == 307
            assert moved.headers["location"].startswith("https://")


def test_a_second_forwarded_line_from_the_proxy_is_not_hidden_by_the_clients(
    tmp_path: Path,
) -> None:
    """HAProxy appends its own ``X-Forwarded-For`` line below one the client wrote; reading
    only the first line believed the client's address (the first ``X-Forwarded-Proto``, scheme)."""
    config = _api(trusted='["127.0.0.1"]', allowed='["10.9.0.0/16", "192.168.10.0/24"]')
    for hub, keys in _served(tmp_path, config, "api"):
        with hub.client() as http:
            office = [("X-API-Key", keys["office"])]
            lines = [("X-Forwarded-For", "192.168.10.7"), ("X-Forwarded-For", "10.9.0.5")]
            answer = http.get("/api/v1/channels", headers=office + lines)
            assert answer.status_code == 403, answer.text
            assert "may not call from 10.9.0.5" in answer.json()["error"]["message"]
            protos = [("X-Forwarded-Proto", "http"), ("X-Forwarded-Proto", "https")]
            moved = http.get("/api/v1/channels/", headers=lines + protos)
            assert moved.status_code == 307
            assert moved.headers["location"].startswith("https://")
