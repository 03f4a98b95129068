"""Every way into the API and every way it refuses: right status, clear message, nothing written."""

from __future__ import annotations

import time
from datetime import timedelta

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy import update

from api.conftest import Project
from erpbridge.store.apiclients import create_client
from erpbridge.store.runs import now
from erpbridge.store.tables import api_clients, signing_keys

EVENT = {"id": "C-1", "name": "Muster GmbH"}


def _token(project: Project, name: str, secret: str, scope: str | None = None) -> str:
    form = {"grant_type": "client_credentials"}
    if scope:
        form["scope"] = scope
    with project.client() as http:
        answer = http.post("/oauth/token", data=form, auth=(name, secret))
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["token_type"] == "Bearer" and body["expires_in"] == 900
    assert answer.headers["Cache-Control"] == "no-store"
    return str(body["access_token"])


def test_api_key_opens_and_event_lands(project: Project) -> None:
    with project.client(**{"X-API-Key": project.keys["shop"]}) as http:
        answer = http.post("/api/v1/events/customers-in", json=EVENT)
    assert answer.status_code == 202, answer.text
    assert answer.json()["records"][0]["key"] == "C-1"


@pytest.mark.parametrize(
    ("headers", "message"),
    [
        ({}, "no credentials"),
        ({"X-API-Key": "ebk_000000000000_nope"}, "unknown API key"),
        ({"X-API-Key": "not-a-key"}, "malformed API key"),
        ({"Authorization": "Bearer not.a.jwt"}, "malformed token"),
    ],
)
def test_missing_or_wrong_credentials_are_401(
    project: Project, headers: dict[str, str], message: str
) -> None:
    before = project.counts()
    with project.client(**headers) as http:
        answer = http.post("/api/v1/events/customers-in", json=EVENT)
    assert answer.status_code == 401
    assert message in answer.json()["error"]["message"]
    assert answer.headers["WWW-Authenticate"].startswith("Bearer")
    assert project.counts() == before


def test_revoked_and_expired_keys_are_refused(project: Project) -> None:
    client, key = create_client(
        project.engine, "temp", {"events"}, expires_at=now() + timedelta(days=1)
    )
    with project.client(**{"X-API-Key": key}) as http:
        assert http.get("/api/v1/events/customers-in").status_code == 405  # in, but wrong verb
        with project.engine.begin() as conn:
            conn.execute(
                update(api_clients)
                .where(api_clients.c.id == client.id)
                .values(expires_at=now() - timedelta(seconds=1))
            )
        before = project.counts()
        answer = http.post("/api/v1/events/customers-in", json=EVENT)
        assert answer.status_code == 401
        assert "has expired" in answer.json()["error"]["message"]
        assert project.counts() == before
    with project.client(**{"X-API-Key": project.keys["shop"]}) as http:
        with project.engine.begin() as conn:
            conn.execute(
                update(api_clients).where(api_clients.c.name == "shop").values(revoked_at=now())
            )
        answer = http.post("/api/v1/events/customers-in", json=EVENT)
        assert answer.status_code == 401 and "was revoked" in answer.json()["error"]["message"]


def test_oauth_token_opens_and_dies_with_its_client(project: Project) -> None:
    token = _token(project, "shop", project.keys["shop"])
    with project.client(Authorization=f"Bearer {token}") as http:
        assert http.post("/api/v1/events/customers-in", json=EVENT).status_code == 202
        with project.engine.begin() as conn:
            conn.execute(
                update(api_clients).where(api_clients.c.name == "shop").values(revoked_at=now())
            )
        answer = http.post("/api/v1/events/customers-in", json=EVENT)
    assert answer.status_code == 401 and "revoked" in answer.json()["error"]["message"]


def test_token_endpoint_refusals(project: Project) -> None:
    with project.client() as http:
        wrong = http.post(
            "/oauth/token", data={"grant_type": "client_credentials"}, auth=("shop", "guess")
        )
        assert wrong.status_code == 401 and wrong.json()["error"] == "invalid_client"
        grant = http.post(
            "/oauth/token", data={"grant_type": "password"}, auth=("shop", project.keys["shop"])
        )
        assert grant.status_code == 400 and grant.json()["error"] == "unsupported_grant_type"
        scope = http.post(
            "/oauth/token",
            data={"grant_type": "client_credentials", "scope": "admin"},
            auth=("shop", project.keys["shop"]),
        )
        assert scope.status_code == 400 and scope.json()["error"] == "invalid_scope"


def test_narrower_token_scope_is_enforced(project: Project) -> None:
    token = _token(project, "shop", project.keys["shop"], scope="read")
    before = project.counts()
    with project.client(Authorization=f"Bearer {token}") as http:
        answer = http.post("/api/v1/events/customers-in", json=EVENT)
    assert answer.status_code == 403
    assert "lacks the scope 'events'" in answer.json()["error"]["message"]
    assert project.counts() == before


def test_expired_jwt_is_refused(project: Project) -> None:
    _token(project, "shop", project.keys["shop"])  # makes the signing key
    key = project.hub.keyring._signing_key()
    past = int(time.time()) - 3600
    claims = {"iss": "erpbridge", "aud": "erpbridge-api", "sub": "shop", "scope": "events"}
    expired = jwt.encode(
        {**claims, "iat": past, "exp": past + 60}, key.private, "ES256", {"kid": key.kid}
    )
    before = project.counts()
    with project.client(Authorization=f"Bearer {expired}") as http:
        answer = http.post("/api/v1/events/customers-in", json=EVENT)
    assert answer.status_code == 401 and "expired" in answer.json()["error"]["message"]
    assert project.counts() == before


def test_jwt_with_a_foreign_signature_is_refused(project: Project) -> None:
    _token(project, "shop", project.keys["shop"])
    kid = project.hub.keyring._signing_key().kid
    forger = ec.generate_private_key(ec.SECP256R1())
    stamp = int(time.time())
    claims = {
        "iss": "erpbridge",
        "aud": "erpbridge-api",
        "sub": "admin",
        "scope": "admin",
        "iat": stamp,
        "exp": stamp + 300,
    }
    forged = jwt.encode(claims, forger, "ES256", {"kid": kid})
    with project.client(Authorization=f"Bearer {forged}") as http:
        answer = http.get("/api/v1/audit")
    assert answer.status_code == 401
    assert "Signature verification failed" in answer.json()["error"]["message"]


def test_rotated_key_still_verifies_its_tokens(project: Project) -> None:
    token = _token(project, "reader", project.keys["reader"])
    project.hub.keyring._rotate()
    with project.engine.connect() as conn:
        rows = conn.execute(signing_keys.select()).all()
    assert len(rows) == 2 and sum(r.retired_at is None for r in rows) == 1
    with project.client(Authorization=f"Bearer {token}") as http:
        assert http.get("/api/v1/flows").status_code == 200
        jwks = http.get("/.well-known/jwks.json").json()
    assert {k["kid"] for k in jwks["keys"]} == {r.kid for r in rows}


def test_identity_provider_token_via_public_key(project: Project) -> None:
    idp_key = ec.generate_private_key(ec.SECP256R1())
    pem = idp_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    (project.root / "idp.pem").write_bytes(pem)
    from erpbridge.api import build_hub
    from erpbridge.config.loader import load_config

    text = (project.root / "erpbridge.yaml").read_text()
    text = text.replace(
        "    trusted_proxies:",
        "    identity_providers:\n"
        "      - {issuer: 'https://idp.example', audience: erp, public_key_file: idp.pem,\n"
        "         unmapped: {scopes: [read, events]}}\n"
        "    trusted_proxies:",
    )
    (project.root / "erpbridge.yaml").write_text(text)
    project.hub = build_hub(load_config(project.root / "erpbridge.yaml"), project.engine)
    stamp = int(time.time())
    claims = {"iss": "https://idp.example", "aud": "erp", "sub": "crm", "iat": stamp}
    good = jwt.encode({**claims, "exp": stamp + 300, "scope": "read"}, idp_key, "ES256")
    with project.client(Authorization=f"Bearer {good}") as http:
        assert http.get("/api/v1/flows").status_code == 200
        denied = http.post("/api/v1/events/customers-in", json=EVENT)
        assert denied.status_code == 403
    wrong_audience = jwt.encode(
        {**claims, "aud": "other", "exp": stamp + 300, "scope": "read"}, idp_key, "ES256"
    )
    with project.client(Authorization=f"Bearer {wrong_audience}") as http:
        assert http.get("/api/v1/flows").status_code == 401


def test_missing_scope_is_403_and_writes_nothing(project: Project) -> None:
    before = project.counts()
    with project.client(**{"X-API-Key": project.keys["reader"]}) as http:
        answer = http.post("/api/v1/events/customers-in", json=EVENT)
        assert answer.status_code == 403
        assert http.post("/api/v1/deliveries/retry-dead").status_code == 403
    assert project.counts() == before


def test_channel_restricted_client(project: Project) -> None:
    with project.client(**{"X-API-Key": project.keys["shop-only"]}) as http:
        assert http.post("/api/v1/events/customers-in", json=EVENT).status_code == 202
        other = http.post("/api/v1/events/other-in", json={"sku": "A"})
    assert other.status_code == 403
    assert "may not use channel 'other'" in other.json()["error"]["message"]


def test_client_allow_list_ipv4_and_ipv6(project: Project) -> None:
    key = {"X-API-Key": project.keys["office"]}
    with project.client("192.168.10.77", **key) as http:
        assert http.get("/api/v1/flows").status_code == 200
    with project.client("2001:db8::42", **key) as http:
        assert http.get("/api/v1/flows").status_code == 200
    with project.client("192.168.11.1", **key) as http:
        blocked = http.get("/api/v1/flows")
    assert blocked.status_code == 403
    assert "may not call from 192.168.11.1" in blocked.json()["error"]["message"]


def test_forwarded_for_believed_only_from_trusted_proxy(project: Project) -> None:
    key = {"X-API-Key": project.keys["office"]}
    spoofed = {**key, "X-Forwarded-For": "192.168.10.5"}
    with project.client("203.0.113.9", **spoofed) as http:  # not a trusted proxy
        assert http.get("/api/v1/flows").status_code == 403
    with project.client("10.0.0.1", **spoofed) as http:  # the trusted proxy
        assert http.get("/api/v1/flows").status_code == 200
    chained = {**key, "X-Forwarded-For": "192.168.10.5, 203.0.113.9"}
    with project.client("10.0.0.1", **chained) as http:  # the proxy saw 203.0.113.9
        assert http.get("/api/v1/flows").status_code == 403


def test_rate_limit_answers_429_with_headers(project: Project) -> None:
    create_client(project.engine, "tiny", {"read"}, rate_limit="3/minute")
    key = create_client(project.engine, "tiny2", {"read"}, rate_limit="3/minute")[1]
    with project.client(**{"X-API-Key": key}) as http:
        answers = [http.get("/api/v1/flows") for _ in range(4)]
    assert [a.status_code for a in answers] == [200, 200, 200, 429]
    assert answers[0].headers["RateLimit-Limit"] == "3"
    assert answers[1].headers["RateLimit-Remaining"] == "1"
    refused = answers[3]
    assert int(refused.headers["Retry-After"]) >= 1
    assert refused.json()["error"]["code"] == "rate_limited"


def test_failed_logins_from_one_address_are_limited(project: Project) -> None:
    project.hub.limiter.settings = project.hub.limiter.settings.model_copy(
        update={"anonymous": "5/minute"}
    )
    with project.client("198.51.100.7", **{"X-API-Key": "ebk_000000000000_x"}) as http:
        codes = [http.get("/api/v1/flows").status_code for _ in range(7)]
    assert codes[:5] == [401] * 5 and codes[5:] == [429, 429]


def test_failures_in_a_clients_name_never_lock_it_out(project: Project) -> None:
    project.hub.limiter.settings = project.hub.limiter.settings.model_copy(
        update={"per_route": {"oauth": "3/minute"}, "anonymous": "4/minute"}
    )
    form = {"grant_type": "client_credentials"}
    with project.client("203.0.113.1") as http:  # a stranger, guessing in the name of 'shop'
        codes = [
            http.post("/oauth/token", data=form, auth=("shop", "wrong")).status_code
            for _ in range(6)
        ]
    with project.client("192.0.2.200") as http:  # the real client, from its own address
        answer = http.post("/oauth/token", data=form, auth=("shop", project.keys["shop"]))
    assert answer.status_code == 200, answer.text
    # The stranger's address is throttled (anonymous: 4/minute), not the client's name.
    assert codes == [401] * 4 + [429] * 2


def test_security_headers(project: Project) -> None:
    with project.client(**{"X-API-Key": project.keys["reader"]}) as http:
        answer = http.get("/api/v1/flows")
    assert answer.headers["X-Content-Type-Options"] == "nosniff"
    assert answer.headers["X-Frame-Options"] == "DENY"
    assert answer.headers["Cache-Control"] == "no-store"
    assert "default-src 'none'" in answer.headers["Content-Security-Policy"]
    assert "Strict-Transport-Security" not in answer.headers  # plain HTTP here; see test_tls
