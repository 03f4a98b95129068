"""Authentication of the served API (``erpbridge api`` over HTTPS with mutual TLS, as an operator
starts it): an expired or revoked client is stopped on every credential at once, tokens carry the
scopes asked for, failed logins are throttled per address without locking out the real client,
and an identity provider's tokens act as a client only through an explicit (issuer, subject)
mapping. The identity provider is a JWKS served by the test, its RS256 key made at test time."""

from __future__ import annotations

import json
import ssl
import time
from collections.abc import Iterator
from datetime import timedelta

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm
from sqlalchemy import Engine, update

from erpbridge.store import open_store
from erpbridge.store.apiclients import create_client, revoke_client
from erpbridge.store.runs import now
from erpbridge.store.tables import api_clients
from httpserve import QuietHandler, serve_handler
from hubprocess import ServedHub, serve_hub
from integration.pki import Pki, make_pki

IDP = "https://idp.test"
PARTNERS = "https://partners.test"

CONFIG = """
hub:
  api:
    trusted_proxies: ["127.0.0.1"]
    rate_limits:
      per_client: "1000/second"
      per_route: {oauth: "5/minute"}
      anonymous: "6/minute"
    identity_providers:
      - issuer: "%(idp)s"
        audience: erpbridge
        jwks_url: "%(jwks)s"
        algorithms: [RS256]
        identities:
          svc-fleet: fleet
          svc-courier: courier
          svc-kiosk: kiosk
      - issuer: "%(partners)s"
        audience: erpbridge
        jwks_url: "%(jwks)s"
        algorithms: [RS256]
        unmapped: {scopes: [read], channels: [shop]}
channels:
  shop:
    system: platform
  other:
    system: platform
flows:
  - name: customers-in
    channel: shop
    entity: customer
    direction: in
    trigger: immediate
    mapping:
      code: {from: id, required: true}
      name: {from: name, required: true}
  - name: products-in
    channel: other
    entity: product
    direction: in
    trigger: immediate
    mapping:
      sku: {from: sku, required: true}
"""


class Idp:
    """An identity provider: an RSA key made now, its JWKS served on 127.0.0.1."""

    def __init__(self) -> None:
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        jwk = json.loads(RSAAlgorithm.to_jwk(self.key.public_key()))
        body = json.dumps({"keys": [jwk | {"kid": "test-1", "use": "sig", "alg": "RS256"}]})

        class Handler(QuietHandler):
            def do_GET(self) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(body.encode())

        self.served = serve_handler(Handler)
        self.url = f"{self.served.url}/jwks"

    def token(self, subject: str, scope: str, issuer: str = IDP) -> str:
        stamp = int(time.time())
        claims = {
            "iss": issuer,
            "aud": "erpbridge",
            "sub": subject,
            "scope": scope,
            "iat": stamp,
            "exp": stamp + 300,
        }
        return jwt.encode(claims, self.key, "RS256", headers={"kid": "test-1"})


class Served:
    def __init__(self, hub: ServedHub, pki: Pki, idp: Idp, engine: Engine, keys: dict[str, str]):
        self.hub, self.pki, self.idp, self.engine, self.keys = hub, pki, idp, engine, keys

    def http(self, address: str, cert: str | None = None, **headers: str) -> httpx.Client:
        """A client calling from ``address`` (forwarded by the trusted proxy 127.0.0.1), with
        the client certificate of ``cert`` when given."""
        context = ssl.create_default_context(cafile=self.pki.ca)
        if cert:
            context.load_cert_chain(*self.pki.client(cert))
        return self.hub.client(verify=context, headers={"X-Forwarded-For": address, **headers})

    def token(self, address: str, name: str, scope: str | None = None) -> httpx.Response:
        form = {"grant_type": "client_credentials"} | ({"scope": scope} if scope else {})
        with self.http(address) as http:
            return http.post("/oauth/token", data=form, auth=(name, self.keys[name]))


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    root = tmp_path_factory.mktemp("served-auth")
    pki = make_pki(root)
    idp = Idp()
    engine = open_store(f"sqlite:///{root / 'erpbridge.db'}")
    keys = {
        "fleet": create_client(engine, "fleet", {"read", "events"})[1],
        "courier": create_client(engine, "courier", {"read", "events"})[1],
        "kiosk": create_client(engine, "kiosk", {"events"}, channels={"shop"})[1],
        "boss": create_client(engine, "boss", {"admin"})[1],
        "operator": create_client(engine, "operator", {"write"})[1],
        "target": create_client(engine, "target", {"read"})[1],
    }
    config = CONFIG % {"idp": IDP, "partners": PARTNERS, "jwks": idp.url}
    args = ["--tls-cert", str(pki.server_cert), "--tls-key", str(pki.server_key)]
    args += ["--tls-client-ca", str(pki.ca)]
    verify = ssl.create_default_context(cafile=pki.ca)
    with serve_hub(root, config, args=args, scheme="https", verify=verify) as hub:
        yield Served(hub, pki, idp, engine, keys)
    idp.served.close()
    engine.dispose()


def _credentials(served: Served, name: str, address: str) -> dict[str, dict[str, str]]:
    """Every credential of client ``name``: its key, a token of ours (asked for now, while the
    client is usable), its certificate, and the identity provider's token mapped to it."""
    token = served.token(address, name)
    assert token.status_code == 200, token.text
    idp_token = served.idp.token(f"svc-{name}", "read events")
    return {
        "key": {"X-API-Key": served.keys[name]},
        "token": {"Authorization": f"Bearer {token.json()['access_token']}"},
        "certificate": {},
        "identity": {"Authorization": f"Bearer {idp_token}"},
    }


def _statuses(
    served: Served, name: str, address: str, credentials: dict[str, dict[str, str]]
) -> dict[str, int]:
    """The status of ``GET /api/v1/flows`` with each credential."""
    found: dict[str, int] = {}
    for kind, headers in credentials.items():
        cert = name if kind == "certificate" else None
        with served.http(address, cert, **headers) as http:
            found[kind] = http.get("/api/v1/flows").status_code
    return found


@pytest.mark.parametrize(
    ("name", "address", "stop"),
    [("fleet", "192.0.2.11", "expire"), ("courier", "192.0.2.12", "revoke")],
)
def test_expired_or_revoked_client_is_stopped_on_every_credential(
    served: Served, name: str, address: str, stop: str
) -> None:
    credentials = _credentials(served, name, address)
    kinds = ("key", "token", "certificate", "identity")
    assert _statuses(served, name, address, credentials) == dict.fromkeys(kinds, 200)
    if stop == "expire":
        with served.engine.begin() as conn:
            conn.execute(
                update(api_clients)
                .where(api_clients.c.name == name)
                .values(expires_at=now() - timedelta(seconds=1))
            )
    else:
        assert revoke_client(served.engine, name)
    assert _statuses(served, name, address, credentials) == dict.fromkeys(kinds, 401)
    refused = served.token("192.0.2.13", name)
    assert refused.status_code == 401 and refused.json()["error"] == "invalid_client"


def _scopes_of(answer: httpx.Response) -> str:
    assert answer.status_code == 200, answer.text
    scope: str = answer.json()["scope"]
    return scope


def test_narrowed_tokens_carry_the_scopes_asked_for(served: Served) -> None:
    address = "192.0.2.21"
    # admin implies read: an admin client's read-only token reads, and only reads.
    token = served.token(address, "boss", "read")
    assert _scopes_of(token) == "read"
    bearer = {"Authorization": f"Bearer {token.json()['access_token']}"}
    with served.http(address, **bearer) as http:
        assert http.get("/api/v1/flows").status_code == 200
        refused = http.post("/api/v1/flows/customers-in/disable")
    assert refused.status_code == 403 and "lacks the scope 'admin'" in refused.text
    # write implies read.
    token = served.token(address, "operator", "read")
    assert _scopes_of(token) == "read"
    with served.http(address, Authorization=f"Bearer {token.json()['access_token']}") as http:
        assert http.get("/api/v1/flows").status_code == 200
    # Nothing asked for: everything the client holds, as held.
    assert _scopes_of(served.token(address, "operator")) == "write"
    # A scope not held (nor implied), or unknown: RFC 6749 invalid_scope, even for admin.
    for name, scope, why in [
        ("operator", "read events", "does not hold events"),
        ("boss", "read root", "unknown scope(s) root"),
    ]:
        answer = served.token(address, name, scope)
        assert answer.status_code == 400, answer.text
        assert (
            answer.json()["error"] == "invalid_scope" and why in answer.json()["error_description"]
        )


def test_a_flood_of_failed_logins_is_throttled_per_address_not_per_client(
    served: Served,
) -> None:
    flood = "203.0.113.66"
    with served.http(flood) as http:
        answers = [
            http.post(
                "/oauth/token",
                data={"grant_type": "client_credentials"},
                auth=(name, "ebk_000000000000_wrong"),
            )
            for name in [f"guess-{i}" for i in range(6)] + ["target"] * 6
        ]
    codes = [a.status_code for a in answers]
    # anonymous: 6/minute per address: six 401s, then 429 for every try, whatever the client_id.
    assert codes == [401] * 6 + [429] * 6, codes
    refused = answers[-1]
    assert int(refused.headers["Retry-After"]) >= 1 and refused.json()["error"] == "slow_down"
    # The address is refused first, before its credential is looked at: even a right secret.
    assert served.token(flood, "target").status_code == 429
    with served.http(flood, **{"X-API-Key": served.keys["target"]}) as http:
        assert http.get("/api/v1/flows").status_code == 429
    # The real client, from its own address, is not locked out by failures in its name
    # (the per-client oauth limit, 5/minute, counts only its own authenticated requests).
    answer = served.token("198.51.100.20", "target", "read")
    assert answer.status_code == 200, answer.text
    # Failures spread over many addresses in the client's name do not lock it out either.
    for i in range(8):
        with served.http(f"198.18.0.{i + 1}") as http:
            wrong = http.post(
                "/oauth/token",
                data={"grant_type": "client_credentials"},
                auth=("target", "ebk_000000000000_wrong"),
            )
            assert wrong.status_code == 401
    assert served.token("198.51.100.20", "target").status_code == 200


def test_identity_provider_tokens_act_only_through_an_explicit_mapping(served: Served) -> None:
    address = "192.0.2.31"
    # A subject equal to a local client's name is not that client: unmapped, refused.
    impostor = served.idp.token("kiosk", "admin read events")
    with served.http(address, Authorization=f"Bearer {impostor}") as http:
        answer = http.get("/api/v1/flows")
    assert answer.status_code == 401
    assert "'kiosk' of https://idp.test is not mapped" in answer.json()["error"]["message"]
    # The mapped identity acts as 'kiosk' with its restrictions: events only, channel shop only,
    # whatever the token claims.
    mapped = served.idp.token("svc-kiosk", "admin read events")
    with served.http(address, Authorization=f"Bearer {mapped}") as http:
        assert http.get("/api/v1/flows").status_code == 403
        pushed = http.post("/api/v1/events/customers-in", json={"id": "K-1", "name": "Kiosk"})
        assert pushed.status_code == 202, pushed.text
        other = http.post("/api/v1/events/products-in", json={"sku": "P-1"})
    assert other.status_code == 403 and other.json()["error"]["code"] == "channel_not_allowed"
    # The token's scopes narrow the client's: a read-only token of the mapped identity pushes
    # nothing.
    narrow = served.idp.token("svc-kiosk", "read")
    with served.http(address, Authorization=f"Bearer {narrow}") as http:
        assert http.post("/api/v1/events/customers-in", json={"id": "K-2"}).status_code == 403
    # A provider with an 'unmapped' grant gives its unmapped identities that much and no more.
    partner = served.idp.token("boss", "admin read", issuer=PARTNERS)
    with served.http(address, Authorization=f"Bearer {partner}") as http:
        flows = http.get("/api/v1/flows")
        assert flows.status_code == 200
        assert [f["name"] for f in flows.json()] == ["customers-in"]
        assert http.post("/api/v1/flows/customers-in/disable").status_code == 403
