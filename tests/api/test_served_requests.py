"""Malformed and hostile requests against the served hub (``erpbridge api`` as a subprocess), as
an attacker sends them: raw bytes on a socket where a client library would refuse. Each gets a 4xx
in the JSON error shape with the security headers, never a 500 or a traceback; unknown routes,
wrong methods and real failures answer in the same shape. Real-time operations: a parameter may
not change the upstream path, the body limit holds, and upstream details reach admins only."""

from __future__ import annotations

import json
import socket
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from api.servedconfig import CUSTOMERS_IN
from erpbridge.store import open_store
from erpbridge.store.apiclients import create_client
from httpserve import QuietHandler, serve_handler
from hubprocess import ServedHub, serve_hub

HOOK_SECRET = "whsec-served-0123456789"
UPSTREAM_SECRET_WORDS = "db 10.1.2.3 said no"


@dataclass
class Upstream:
    """A channel's REST API: records every path it is asked for."""

    url: str
    paths: list[str] = field(default_factory=list)


@pytest.fixture(scope="module")
def upstream() -> Iterator[Upstream]:
    seen = Upstream("")

    class Handler(QuietHandler):
        def do_GET(self) -> None:
            seen.paths.append(self.path)
            if self.path.startswith("/api/refuse/"):
                status, body = 400, {"error": UPSTREAM_SECRET_WORDS}
            else:
                status, body = 200, {"path": self.path}
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    with serve_handler(Handler) as served:
        seen.url = served.url
        yield seen


def _config(upstream: Upstream) -> str:
    return f"""
hub:
  api:
    max_body_mb: 1
    rate_limits: {{per_client: "1000/second", per_route: {{}}, anonymous: "1000/second"}}
channels:
  shop:
    system: platform
    credentials: {{webhook_secret: "${{SHOP_HOOK_SECRET}}"}}
    inbound:
      webhook: {{flow: customers-in, records_path: data}}
  erp:
    system: rest
    options: {{base_url: "{upstream.url}/api/"}}
    operations:
      customer: {{path: "customers/{{code}}"}}
      refuse: {{path: "refuse/{{code}}"}}
flows:{CUSTOMERS_IN}"""


def _serve(root: Path, upstream: Upstream) -> Iterator[tuple[ServedHub, dict[str, str]]]:
    root.mkdir(parents=True)
    engine = open_store(f"sqlite:///{root / 'erpbridge.db'}")
    keys = {
        name: create_client(engine, name, scopes)[1]
        for name, scopes in {
            "admin": {"admin"},
            "portal": {"operations"},
            "shop": {"events"},
        }.items()
    }
    engine.dispose()
    env = {"SHOP_HOOK_SECRET": HOOK_SECRET}
    with serve_hub(root, _config(upstream), command="api", env=env) as hub:
        yield hub, keys


@pytest.fixture(scope="module")
def served(
    tmp_path_factory: pytest.TempPathFactory, upstream: Upstream
) -> Iterator[tuple[ServedHub, dict[str, str]]]:
    yield from _serve(tmp_path_factory.mktemp("served") / "hub", upstream)


def _raw(hub: ServedHub, request: bytes) -> tuple[int, dict[str, str], bytes]:
    """Send ``request`` as it is on a new connection; the status, headers and body answered."""
    host, port = hub.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(request)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return int(lines[0].split()[1]), headers, body


def _logged(hub: ServedHub, text: str, timeout_s: float = 5) -> bool:
    """Whether the hub's output shows ``text`` within ``timeout_s`` (the log is written late)."""
    deadline = time.monotonic() + timeout_s
    while text not in hub.output():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def _hardened(headers: httpx.Headers | dict[str, str]) -> None:
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["x-frame-options"] == "DENY"
    assert "default-src 'none'" in headers["content-security-policy"]


def _error(answer: httpx.Response, status: int, code: str) -> str:
    assert answer.status_code == status, answer.text
    assert answer.json()["error"]["code"] == code, answer.text
    _hardened(answer.headers)
    message: str = answer.json()["error"]["message"]
    return message


def _hook(stamp: bytes, signature: bytes) -> bytes:
    body = b'{"data": [{"id": "1", "name": "x"}]}'
    return (
        b"POST /hooks/shop HTTP/1.1\r\nHost: hub\r\nConnection: close\r\n"
        b"Content-Type: application/json\r\nX-Timestamp: " + stamp + b"\r\n"
        b"X-Signature: "
        + signature
        + b"\r\nContent-Length: "
        + str(len(body)).encode()
        + b"\r\n\r\n"
        + body
    )


@pytest.mark.parametrize(
    ("stamp", "signature"),
    [
        (b"%d", b"\xe9\xe9\xe9"),  # latin-1 letters: not a hex digest
        (b"%d", "sha256=é".encode()),  # UTF-8 bytes in the signature
        (b"\xb2%d", b"abc"),  # superscript two: str.isdigit() says yes, int() says no
        (b"\xd9\xa1\xd9\xa2", b"abc"),  # Arabic-Indic digits in UTF-8
    ],
)
def test_non_ascii_signature_headers_are_401(
    served: tuple[ServedHub, dict[str, str]], stamp: bytes, signature: bytes
) -> None:
    hub, _ = served
    if b"%d" in stamp:
        stamp = stamp.replace(b"%d", str(int(time.time())).encode())
    status, headers, body = _raw(hub, _hook(stamp, signature))
    assert status == 401, body
    assert json.loads(body)["error"]["code"] == "bad_signature"
    _hardened(headers)


def test_non_ascii_basic_auth_at_the_token_endpoint_is_401(
    served: tuple[ServedHub, dict[str, str]],
) -> None:
    hub, _ = served
    form = b"grant_type=client_credentials"
    status, headers, body = _raw(
        hub,
        b"POST /oauth/token HTTP/1.1\r\nHost: hub\r\nConnection: close\r\n"
        b"Authorization: Basic \xe9\xe9\xe9\r\n"
        b"Content-Type: application/x-www-form-urlencoded\r\n"
        b"Content-Length: " + str(len(form)).encode() + b"\r\n\r\n" + form,
    )
    assert status == 401, body
    assert json.loads(body)["error"] == "invalid_client"
    _hardened(headers)


@pytest.mark.parametrize("depth", [101, 300, 1000])
def test_deeply_nested_json_events_are_400(
    served: tuple[ServedHub, dict[str, str]], depth: int
) -> None:
    hub, keys = served
    nested = "[" * depth + "]" * depth
    with hub.client(headers={"X-API-Key": keys["shop"]}) as http:
        for body in (
            f'{{"id": "d{depth}", "name": {nested}}}',
            f'{{"id": "e", "other": {nested}}}',
        ):
            answer = http.post("/api/v1/events/customers-in", content=body.encode())
            assert "100 levels" in _error(answer, 400, "too_deep")
        # The hub still takes the next event.
        fine = http.post("/api/v1/events/customers-in", json={"id": f"ok{depth}", "name": "x"})
        assert fine.status_code == 202, fine.text


def test_routes_methods_and_bodies_the_router_refuses_answer_in_the_error_shape(
    served: tuple[ServedHub, dict[str, str]],
) -> None:
    hub, keys = served
    with hub.client() as http:
        assert "/nope" in _error(http.get("/nope"), 404, "not_found")
        assert "/api/v1/nope" in _error(http.get("/api/v1/nope"), 404, "not_found")
        answer = http.delete("/healthz")
        assert "DELETE" in _error(answer, 405, "method_not_allowed")
        assert answer.headers["allow"] == "GET"
        portal = {"X-API-Key": keys["portal"], "Content-Type": "application/json"}
        url = "/api/v1/channels/erp/operations/customer"
        for body in (b"[" * 100_000 + b"]" * 100_000, b'{"code": "\xff"}', b"{", b"[1, 2]"):
            answer = http.post(url, content=body, headers=portal)
            assert answer.status_code == 400, answer.text
            assert answer.json()["error"]["code"] in {"malformed_json", "too_deep", "bad_shape"}
            _hardened(answer.headers)


def test_a_failure_is_a_500_in_the_error_shape_with_the_security_headers(
    tmp_path: Path, upstream: Upstream
) -> None:
    for hub, keys in _serve(tmp_path / "hub", upstream):
        with sqlite3.connect(hub.database) as conn:
            conn.execute("DROP TABLE runs")  # the store breaks under the running hub
        with hub.client(headers={"X-API-Key": keys["admin"]}) as http:
            answer = http.get("/api/v1/runs")
        assert answer.status_code == 500, answer.text
        assert answer.json() == {
            "error": {"code": "internal", "message": "the hub failed; its log has details"}
        }
        _hardened(answer.headers)
        assert answer.headers["cache-control"] == "no-store"
        assert _logged(hub, "no such table: runs")  # the log has what the caller does not


# -- real-time operations --------------------------------------------------------------------


@pytest.mark.parametrize(
    "code",
    [
        "..",
        ".",
        "%2e%2e",
        "%2E%2e",
        "%252e%252e",
        ".%2e",
        "a/b",
        "a%2Fb",
        "a?x=1",
        "a#x",
        "a\\b",
        "a%5cb",
        "a\nb",
        "",
    ],
)
def test_an_operation_parameter_may_not_change_the_path(
    served: tuple[ServedHub, dict[str, str]], upstream: Upstream, code: str
) -> None:
    hub, keys = served
    before = len(upstream.paths)
    with hub.client(headers={"X-API-Key": keys["portal"]}) as http:
        answer = http.post("/api/v1/channels/erp/operations/customer", json={"code": code})
    message = _error(answer, 422, "bad_parameters")
    assert "code:" in message and "path" in message
    assert upstream.paths[before:] == []  # nothing left the hub


def test_an_operation_parameter_that_is_one_segment_passes(
    served: tuple[ServedHub, dict[str, str]], upstream: Upstream
) -> None:
    hub, keys = served
    with hub.client(headers={"X-API-Key": keys["portal"]}) as http:
        answer = http.post("/api/v1/channels/erp/operations/customer", json={"code": "C 1.x%"})
    assert answer.status_code == 200, answer.text
    assert answer.json()["result"] == {"path": "/api/customers/C%201.x%25"}


def test_the_operations_route_keeps_max_body_mb(
    served: tuple[ServedHub, dict[str, str]], upstream: Upstream
) -> None:
    hub, keys = served
    before = len(upstream.paths)
    big = {"code": "C-1", "padding": "x" * (2 * 1024 * 1024)}
    with hub.client(headers={"X-API-Key": keys["portal"]}) as http:
        answer = http.post("/api/v1/channels/erp/operations/customer", json=big)
        assert "exceeds 1048576 bytes" in _error(answer, 413, "too_large")
        # Without a Content-Length (chunked) the limit holds while the body arrives.
        chunks = iter([json.dumps(big).encode()[i : i + 65536] for i in range(0, 2_200_000, 65536)])
        answer = http.post("/api/v1/channels/erp/operations/customer", content=chunks)
        _error(answer, 413, "too_large")
    assert upstream.paths[before:] == []


def test_upstream_urls_and_bodies_reach_admins_only(
    served: tuple[ServedHub, dict[str, str]], upstream: Upstream
) -> None:
    hub, keys = served
    url = "/api/v1/channels/erp/operations/refuse"
    with hub.client(headers={"X-API-Key": keys["portal"]}) as http:
        shown = _error(http.post(url, json={"code": "C-1"}), 502, "channel_refused")
    assert "channel 'erp', operation 'refuse'" in shown and "HTTP 400" in shown
    assert upstream.url.removeprefix("http://") not in shown
    assert UPSTREAM_SECRET_WORDS not in shown
    with hub.client(headers={"X-API-Key": keys["admin"]}) as http:
        whole = _error(http.post(url, json={"code": "C-2"}), 502, "channel_refused")
    assert upstream.url.removeprefix("http://") in whole and UPSTREAM_SECRET_WORDS in whole
    assert _logged(hub, "refuse/C-1")  # logged for the portal's call too
    assert UPSTREAM_SECRET_WORDS in hub.output()


def test_integers_beyond_64_bits_and_huge_timestamps_are_refused_not_rounded(
    served: tuple[ServedHub, dict[str, str]],
) -> None:
    hub, keys = served
    with hub.client(headers={"X-API-Key": keys["shop"]}) as http:
        for number in ("123456789012345678901234567890", "-9223372036854775809"):
            body = f'{{"id": {number}, "name": "x"}}'.encode()
            answer = http.post("/api/v1/events/customers-in", content=body)
            message = _error(answer, 400, "number_too_long")
            assert number[:10] not in message  # never echoed (a card number could hide in it)
        endless = http.post("/api/v1/events/customers-in", content=b'{"id": ' + b"9" * 5000 + b"}")
        assert "infinity" in _error(endless, 400, "malformed_json")
        # The edges of 64 bits still pass, exactly, and so does a real float.
        for number, key in (("18446744073709551615", "18446744073709551615"), ("1e30", "1e+30")):
            body = f'{{"id": {number}, "name": "x"}}'.encode()
            answer = http.post("/api/v1/events/customers-in", content=body)
            assert answer.status_code == 202, answer.text
            assert answer.json()["records"][0]["key"] == key
    status, headers, body = _raw(hub, _hook(b"9" * 5000, b"abc"))
    assert status == 401, body
    assert json.loads(body)["error"]["code"] == "bad_signature"
    _hardened(headers)


def test_a_card_number_in_a_path_or_a_search_is_never_echoed(
    served: tuple[ServedHub, dict[str, str]],
) -> None:
    """The router's 404/405 answers quoted the request path as it came, and a search answer its
    query: a card number a caller put there came back in clear."""
    hub, keys = served
    pan = "4929135780246819"
    with hub.client(headers={"X-API-Key": keys["admin"]}) as http:
        missing = http.get(f"/no/such/{pan}")
        assert "card number removed" in _error(missing, 404, "not_found")
        refused = http.get(f"/api/v1/flows/{pan}/run")
        assert "card number removed" in _error(refused, 405, "method_not_allowed")
        found = http.get("/api/v1/search/customer", params={"q": f"card {pan}"})
        assert found.status_code == 200, found.text
        assert found.json()["query"] == "card [card number removed]"
        for answer in (missing, refused, found):
            assert pan not in answer.text
