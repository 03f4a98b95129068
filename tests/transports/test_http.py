"""The shared HTTP client against a real HTTP server (uvicorn on 127.0.0.1, started here).

The server is a small FastAPI app that behaves the way the APIs we integrate do: keys in a header
or the query, basic auth, bearer tokens, an OAuth 2.0 token endpoint whose tokens can be revoked,
429 with Retry-After, 500 with an HTML page, and TLS with and without client certificates made at
test time. Every check goes over a real socket.
"""

from __future__ import annotations

import base64
import datetime as dt
import socket
import ssl
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import pytest
from fastapi import FastAPI, Request, Response
from fastapi.responses import HTMLResponse, JSONResponse
from pydantic import ValidationError

from erpbridge.errors import FatalError, RetriableError, SourceUnavailable
from erpbridge.transports.http import (
    HttpChannelOptions,
    HttpClient,
    HttpRefused,
    HttpRetriable,
    HttpUnreachable,
    health_of,
    retry_after_seconds,
)
from httpserve import serve_app
from integration.pki import Pki, make_pki


@dataclass
class ServerState:
    tokens: set[str] = field(default_factory=set)
    token_requests: int = 0
    busy_left: int = 0
    expires_in: int = 3600
    storm_requests: int = 0


def _app(state: ServerState) -> FastAPI:
    app = FastAPI()

    def items() -> JSONResponse:
        return JSONResponse([{"id": 1}])

    def unauthorized() -> JSONResponse:
        return JSONResponse({"error": "invalid credentials"}, status_code=401)

    @app.get("/key/items")
    def key_items(request: Request) -> JSONResponse:
        given = request.headers.get("X-API-Key") or request.query_params.get("api_key")
        return items() if given == "k-123" else unauthorized()

    @app.get("/basic/items")
    def basic_items(request: Request) -> JSONResponse:
        expected = "Basic " + base64.b64encode(b"erp:s3cret").decode()
        return items() if request.headers.get("Authorization") == expected else unauthorized()

    @app.get("/bearer/items")
    def bearer_items(request: Request) -> JSONResponse:
        header = request.headers.get("Authorization", "")
        token = header.removeprefix("Bearer ")
        ok = token == "static-token" or token in state.tokens
        return items() if ok else unauthorized()

    @app.post("/token")
    async def token(request: Request) -> JSONResponse:
        state.token_requests += 1
        grant_type = parse_qs((await request.body()).decode()).get("grant_type", [""])[0]
        expected = "Basic " + base64.b64encode(b"hub:client-secret").decode()
        if grant_type != "client_credentials" or request.headers.get("Authorization") != expected:
            return JSONResponse({"error": "invalid_client"}, status_code=401)
        value = f"tok-{state.token_requests}"
        state.tokens.add(value)
        return JSONResponse({"access_token": value, "expires_in": state.expires_in})

    @app.get("/busy")
    def busy() -> Response:
        if state.busy_left > 0:
            state.busy_left -= 1
            return JSONResponse(
                {"error": "slow down"}, status_code=429, headers={"Retry-After": "1"}
            )
        return items()

    @app.get("/storm")
    def storm() -> Response:
        state.storm_requests += 1
        return JSONResponse({"error": "again"}, status_code=503, headers={"Retry-After": "0"})

    @app.post("/busy")
    def busy_write() -> Response:
        return JSONResponse({"error": "slow down"}, status_code=429, headers={"Retry-After": "7"})

    @app.get("/broken")
    def broken() -> HTMLResponse:
        page = (
            "<html><head><style>body{color:red}</style><title>Oops</title></head>"
            "<body><h1>Internal Server Error</h1><p>The database &amp; cache are down.</p>"
            "</body></html>"
        )
        return HTMLResponse(page, status_code=500)

    @app.get("/forbidden")
    def forbidden() -> JSONResponse:
        return JSONResponse({"error": "not for you"}, status_code=403)

    @app.get("/slow")
    def slow() -> JSONResponse:
        time.sleep(1.5)
        return items()

    @app.get("/items")
    def plain_items() -> JSONResponse:
        return items()

    return app


@pytest.fixture(scope="module")
def state() -> ServerState:
    return ServerState()


@pytest.fixture(scope="module")
def server(state: ServerState) -> Iterator[str]:
    with serve_app(_app(state)) as served:
        yield served.url


_OPEN: list[HttpClient] = []


def _client(base_url: str, tmp: Path | None = None, **options: Any) -> HttpClient:
    model = HttpChannelOptions.model_validate({"base_url": base_url, **options})
    client = HttpClient("erp", model, tmp or Path("."))
    _OPEN.append(client)
    return client


@pytest.fixture(autouse=True)
def _close_clients() -> Iterator[None]:
    yield
    while _OPEN:
        _OPEN.pop().close()


def test_api_key_in_header_and_query(server: str) -> None:
    creds = {"api_key": "k-123"}
    header = _client(server, auth={"type": "api_key"}, credentials=creds)
    assert header.request("GET", "key/items").json() == [{"id": 1}]
    query = _client(
        server, auth={"type": "api_key", "in": "query", "name": "api_key"}, credentials=creds
    )
    assert query.request("GET", "key/items").json() == [{"id": 1}]


def test_a_key_in_the_query_never_shows_in_a_message(server: str) -> None:
    client = _client(
        server,
        auth={"type": "api_key", "in": "query", "name": "api_key"},
        credentials={"api_key": "wrong-key-999"},
    )
    with pytest.raises(HttpRefused) as caught:
        client.request("GET", "key/items")
    assert caught.value.category == "auth"
    assert "wrong-key-999" not in str(caught.value)
    assert "api_key=…" in str(caught.value)


def test_basic_and_bearer(server: str) -> None:
    basic = _client(
        server, auth={"type": "basic", "username": "erp"}, credentials={"password": "s3cret"}
    )
    assert basic.request("GET", "basic/items").status_code == 200
    bearer = _client(server, auth={"type": "bearer"}, credentials={"token": "static-token"})
    assert bearer.request("GET", "bearer/items").status_code == 200


def test_wrong_password_is_an_auth_failure_naming_channel_and_url(server: str) -> None:
    client = _client(
        server, auth={"type": "basic", "username": "erp"}, credentials={"password": "nope"}
    )
    with pytest.raises(HttpRefused) as caught:
        client.request("GET", "basic/items")
    error = caught.value
    assert isinstance(error, FatalError)
    assert error.category == "auth" and error.status == 401
    assert "channel 'erp': GET" in str(error) and "/basic/items" in str(error)
    assert "invalid credentials" in str(error)
    assert "nope" not in str(error)


def test_oauth2_token_is_cached_and_renewed_after_a_401(server: str, state: ServerState) -> None:
    client = _client(
        server,
        auth={"type": "oauth2", "token_url": "token", "client_id": "hub"},
        credentials={"client_secret": "client-secret"},
    )
    before = state.token_requests
    for _ in range(3):
        assert client.request("GET", "bearer/items").status_code == 200
    assert state.token_requests == before + 1, "the token is fetched once and cached"
    state.tokens.clear()  # the server revokes every token: the next call gets a 401
    assert client.request("GET", "bearer/items").status_code == 200
    assert state.token_requests == before + 2, "a 401 fetches a new token once"


def test_oauth2_token_is_renewed_when_it_expires(server: str, state: ServerState) -> None:
    state.expires_in = 1  # renewed at half its life at the latest
    try:
        client = _client(
            server,
            auth={"type": "oauth2", "token_url": "token", "client_id": "hub"},
            credentials={"client_secret": "client-secret"},
        )
        before = state.token_requests
        client.request("GET", "bearer/items")
        time.sleep(0.6)
        client.request("GET", "bearer/items")
        assert state.token_requests == before + 2
    finally:
        state.expires_in = 3600


def test_oauth2_wrong_secret_is_an_auth_failure(server: str) -> None:
    client = _client(
        server,
        auth={"type": "oauth2", "token_url": "token", "client_id": "hub"},
        credentials={"client_secret": "guessed"},
    )
    with pytest.raises(HttpRefused) as caught:
        client.request("GET", "bearer/items")
    assert caught.value.category == "auth"
    assert "refused the client credentials" in str(caught.value)
    assert "guessed" not in str(caught.value)


def test_a_get_waits_out_retry_after(server: str, state: ServerState) -> None:
    state.busy_left = 1
    client = _client(server)
    started = time.monotonic()
    assert client.request("GET", "busy").status_code == 200
    assert time.monotonic() - started >= 0.9


def test_a_get_gives_up_when_retry_after_exceeds_max_wait(server: str, state: ServerState) -> None:
    state.busy_left = 5
    client = _client(server, max_wait_s=0)
    with pytest.raises(HttpRetriable) as caught:
        client.request("GET", "busy")
    assert caught.value.retry_after == 1 and caught.value.status == 429
    state.busy_left = 0


def test_retry_after_zero_is_not_a_storm(server: str, state: ServerState) -> None:
    with pytest.raises(HttpRetriable):
        _client(server, max_wait_s=2.5).request("GET", "storm")
    assert state.storm_requests == 3, "waits of at least 1 s: two retries within 2.5 s"


def test_a_write_answered_429_hands_retry_after_to_the_worker(server: str) -> None:
    with pytest.raises(RetriableError) as caught:
        _client(server).request("POST", "busy", json={})
    assert caught.value.retry_after == 7


def test_a_500_html_page_becomes_one_readable_line(server: str) -> None:
    with pytest.raises(HttpRetriable) as caught:
        _client(server).request("GET", "broken")
    message = str(caught.value)
    assert "HTTP 500" in message
    assert "Internal Server Error The database & cache are down." in message
    assert "<" not in message and "color:red" not in message


def test_403_is_forbidden(server: str) -> None:
    with pytest.raises(HttpRefused) as caught:
        _client(server).request("GET", "forbidden")
    assert health_of(caught.value).category == "forbidden"


def test_timeout(server: str) -> None:
    with pytest.raises(HttpUnreachable) as caught:
        _client(server, timeout_s=0.3).request("GET", "slow")
    assert caught.value.category == "timeout"
    assert isinstance(caught.value, SourceUnavailable)


def test_refused_and_unknown_host() -> None:
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()
    with pytest.raises(HttpUnreachable) as refused:
        _client(f"http://127.0.0.1:{port}").request("GET", "items")
    assert refused.value.category == "refused"
    assert f"127.0.0.1:{port}/items" in str(refused.value)
    with pytest.raises(HttpUnreachable) as unknown:
        _client("http://erp.does-not-exist.invalid").request("GET", "items")
    assert unknown.value.category == "dns"


def test_pacing_spaces_requests(server: str) -> None:
    client = _client(server, requests_per_s=10)
    started = time.monotonic()
    for _ in range(4):
        client.request("GET", "items")
    assert time.monotonic() - started >= 0.29


def test_auth_needs_its_credentials() -> None:
    with pytest.raises(ValidationError, match="needs credentials: client_secret"):
        HttpChannelOptions.model_validate(
            {
                "base_url": "https://x",
                "auth": {"type": "oauth2", "token_url": "t", "client_id": "c"},
            }
        )
    with pytest.raises(ValidationError, match="http:// or https://"):
        HttpChannelOptions.model_validate({"base_url": "ftp://x"})


def test_retry_after_forms() -> None:
    assert retry_after_seconds("120") == 120
    assert retry_after_seconds(None) is None
    assert retry_after_seconds("soon") is None
    date = "Wed, 21 Oct 2015 07:28:00 GMT"
    at = dt.datetime(2015, 10, 21, 7, 27, 30, tzinfo=dt.UTC).timestamp()
    assert retry_after_seconds(date, now=at) == 30


# --- TLS -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    made = make_pki(tmp_path_factory.mktemp("pki"))
    made.client("erpbridge")
    return made


@pytest.fixture(scope="module")
def mtls_server(state: ServerState, pki: Pki) -> Iterator[str]:
    with serve_app(
        _app(state),
        ssl_certfile=str(pki.server_cert),
        ssl_keyfile=str(pki.server_key),
        ssl_ca_certs=str(pki.ca),
        ssl_cert_reqs=ssl.CERT_REQUIRED,
    ) as served:
        yield served.url


def test_untrusted_server_certificate_is_a_tls_failure(mtls_server: str) -> None:
    with pytest.raises(HttpUnreachable) as caught:
        _client(mtls_server).request("GET", "items")
    assert caught.value.category == "tls"
    assert "certificate verify failed" in str(caught.value).lower()


def test_mutual_tls_with_own_ca(mtls_server: str, pki: Pki) -> None:
    client = _client(
        mtls_server,
        verify=str(pki.ca),
        client_cert=str(pki.clients["erpbridge"][0]),
        client_key=str(pki.clients["erpbridge"][1]),
    )
    assert client.request("GET", "items").json() == [{"id": 1}]


def test_missing_client_certificate_is_refused_by_the_server(mtls_server: str, pki: Pki) -> None:
    with pytest.raises(HttpUnreachable) as caught:
        _client(mtls_server, verify=str(pki.ca)).request("GET", "items")
    assert caught.value.category in ("tls", "error")


def test_missing_certificate_file_is_a_tls_configuration_error(tmp_path: Path) -> None:
    with pytest.raises(HttpRefused, match="TLS files cannot be loaded") as caught:
        _client("https://127.0.0.1:1", tmp_path, client_cert="missing.pem")
    assert caught.value.category == "tls"
