"""The REST transport against a real API: json-server 0.17 behind an API gateway that adds auth
(API key, basic, bearer JWT from a real OAuth 2.0 server, mutual TLS), updatedAt stamps and
injected 429/500 answers (``scripts/restapi.sh``, ``tests/integration/rest_server/server.js``).

IN flows run through the real engine (``FlowRunner``) into a SQLite hub; OUT flows through the
real ``Worker``; what landed is checked with the API's own GETs. Each test uses its own
collections, so tests never see each other's data.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import yaml
from sqlalchemy import Engine, select

from erpbridge import FlowRunner, load_config, open_store
from erpbridge.config.loader import LoadedConfig
from erpbridge.engine.worker import Worker
from erpbridge.store.tables import bindings, deliveries, delivery_attempts, records
from erpbridge.transports.rest.transport import (
    RestChannelOptions,
    RestStreamOptions,
    RestTransport,
)
from integration.servers import require_server

MAPPING = {"code": "code", "name": "name"}


@pytest.fixture(scope="module")
def api() -> dict[str, str]:
    """The running test API: URLs, certificate files and its (random, test-only) secrets."""
    line = require_server("ERPBRIDGE_TEST_RESTAPI", "the REST test API (scripts/restapi.sh)")
    info: dict[str, str] = json.loads(line)
    return info


@pytest.fixture
def hub(tmp_path: Path) -> Iterator[Engine]:
    engine = open_store(f"sqlite:///{tmp_path / 'hub.db'}")
    yield engine
    engine.dispose()


def collection(api: dict[str, str], items: list[dict[str, Any]]) -> str:
    """A fresh collection on the server holding ``items``; returns its name."""
    name = f"c{uuid.uuid4().hex[:12]}"
    httpx.put(f"{api['url']}/_admin/collections/{name}", json=items).raise_for_status()
    return name


def arm(api: dict[str, str], prefix: str, status: int, times: int, **extra: Any) -> None:
    """The next ``times`` requests under ``prefix`` get ``status`` (a gateway's fault)."""
    body = {"prefix": prefix, "status": status, "times": times, **extra}
    httpx.post(f"{api['url']}/_admin/faults", json=body).raise_for_status()


def stats(api: dict[str, str]) -> dict[str, dict[str, int]]:
    result: dict[str, dict[str, int]] = httpx.get(f"{api['url']}/_admin/stats").json()
    return result


def items(api: dict[str, str], name: str) -> list[dict[str, Any]]:
    """The collection as the API lists it (the server's own view)."""
    found: list[dict[str, Any]] = httpx.get(f"{api['url']}/open/api/{name}").json()
    return found


def customers(n: int, day: int = 1) -> list[dict[str, Any]]:
    return [
        {
            "id": i,
            "code": f"C-{i}",
            "name": f"Customer {i}",
            "updatedAt": f"2026-01-{day:02d}T10:00:{i:02d}.000Z",
        }
        for i in range(1, n + 1)
    ]


def config(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    channel: dict[str, Any],
    flows: list[dict[str, Any]],
    secrets: dict[str, str] | None = None,
) -> LoadedConfig:
    """Write an erpbridge.yaml with the REST channel ``api`` (credentials as ${ENV} refs)."""
    credentials = {}
    for name, value in (secrets or {}).items():
        variable = f"REST_TEST_{name.upper()}"
        monkeypatch.setenv(variable, value)
        credentials[name] = f"${{{variable}}}"
    (tmp_path / "inbox").mkdir(exist_ok=True)
    document = {
        "hub": {"database_url": f"sqlite:///{tmp_path / 'hub.db'}"},
        "channels": {
            "api": {"system": "rest", "options": channel, "credentials": credentials},
            "drop": {"system": "folder", "options": {"path": "inbox"}},
        },
        "flows": flows,
    }
    path = tmp_path / "erpbridge.yaml"
    path.write_text(yaml.safe_dump(document), encoding="utf-8")
    return load_config(path)


def in_flow(source: dict[str, Any], name: str = "customers-in") -> dict[str, Any]:
    return {
        "name": name,
        "channel": "api",
        "entity": "customer",
        "direction": "in",
        "source": source,
        "key": "id",
        "batch_size": 2,
        "mapping": MAPPING,
    }


def out_flow(target: dict[str, Any]) -> list[dict[str, Any]]:
    """A CSV drop IN (to make hub changes) and the REST OUT flow under test."""
    return [
        {
            "name": "drop-in",
            "channel": "drop",
            "entity": "customer",
            "direction": "in",
            "source": {"pattern": "*.csv"},
            "mapping": MAPPING,
        },
        {
            "name": "customers-out",
            "channel": "api",
            "entity": "customer",
            "direction": "out",
            "target": target,
            "retry": {"max_attempts": 3, "backoff_s": 0.001, "min_delay_s": 0},
            "mapping": MAPPING,
        },
    ]


def hub_names(engine: Engine) -> dict[str, str]:
    with engine.connect() as conn:
        rows = conn.execute(select(records.c.key, records.c.payload))
        return {key: orjson.loads(payload)["name"] for key, payload in rows}


def drop(loaded: LoadedConfig, engine: Engine, csv: str) -> None:
    (loaded.base_dir / "inbox" / "c.csv").write_text(csv, encoding="utf-8")
    assert FlowRunner(loaded, engine).run("drop-in").status == "succeeded"


def deliver(loaded: LoadedConfig, engine: Engine) -> Any:
    worker = Worker(loaded, engine)
    try:
        return worker.run_once()
    finally:
        worker.close()


def ledger(engine: Engine) -> list[Any]:
    with engine.connect() as conn:
        query = select(deliveries).order_by(deliveries.c.id)
        return list(conn.execute(query))


# -- IN: every pagination style ------------------------------------------------------------------

STYLES = {
    "page": ("api", {"type": "page", "page_param": "_page", "size_param": "_limit"}, ""),
    "page-total": (
        "api",
        {
            "type": "page",
            "page_param": "_page",
            "size_param": "_limit",
            "total_header": "X-Total-Count",
        },
        "",
    ),
    "offset": ("api", {"type": "offset", "offset_param": "_start", "limit_param": "_limit"}, ""),
    "link": ("api", {"type": "link", "size_param": "_limit"}, ""),
    "cursor": (
        "paged",
        {"type": "cursor", "cursor_path": "meta.next_cursor", "size_param": "limit"},
        "data",
    ),
    "next_url": (
        "paged",
        {"type": "next_url", "next_path": "links.next", "size_param": "limit"},
        "data",
    ),
}


@pytest.mark.parametrize("style", sorted(STYLES))
def test_in_flow_reads_every_page(
    style: str, api: dict[str, str], hub: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    route, pagination, records_path = STYLES[style]
    name = collection(api, customers(7))
    params: dict[str, Any] = {"_page": 1} if style == "link" else {}
    source = {
        "resource": {"list_path": f"{route}/{name}", "records_path": records_path},
        "pagination": {**pagination, "page_size": 3},
        "params": params,
    }
    loaded = config(tmp_path, monkeypatch, {"base_url": f"{api['url']}/open/"}, [in_flow(source)])
    before = stats(api)["requests"].get(f"/open/{route}/{name}", 0)

    result = FlowRunner(loaded, hub).run("customers-in")

    assert result.status == "succeeded", result.error
    assert (result.read, result.created) == (7, 7)
    assert hub_names(hub) == {f"C-{i}": f"Customer {i}" for i in range(1, 8)}
    requests = stats(api)["requests"][f"/open/{route}/{name}"] - before
    # 3 + 3 + 1: the short last page (or the total, or the missing next link) ends the list.
    assert requests == 3
    with hub.connect() as conn:
        bound = conn.execute(select(bindings.c.external_id).where(bindings.c.channel == "api"))
        assert sorted(int(b) for b in bound.scalars()) == list(range(1, 8))


def test_in_flow_reads_only_changes_since_the_last_run(
    api: dict[str, str], hub: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    name = collection(api, customers(5))
    source = {
        "resource": f"api/{name}",
        "pagination": {"type": "page", "page_param": "_page", "size_param": "_limit"},
        "params": {"_sort": "updatedAt,id", "_order": "asc,asc"},
        "incremental": {
            "cursor_field": "updatedAt",
            "changed_since_param": "updatedAt_gte",
            "sorted": True,
        },
    }
    loaded = config(tmp_path, monkeypatch, {"base_url": f"{api['url']}/open/"}, [in_flow(source)])
    runner = FlowRunner(loaded, hub)

    first = runner.run("customers-in")
    assert (first.status, first.read, first.created) == ("succeeded", 5, 5), first.error
    assert first.cursor_after["value"] == "2026-01-01T10:00:05+00:00"

    base = f"{api['url']}/open/api/{name}"
    httpx.patch(f"{base}/2", json={"name": "Renamed 2"}).raise_for_status()
    httpx.patch(f"{base}/4", json={"name": "Renamed 4"}).raise_for_status()
    httpx.post(base, json={"id": 6, "code": "C-6", "name": "New 6"}).raise_for_status()
    second = runner.run("customers-in")

    assert second.status == "succeeded", second.error
    # The three changes, plus record 5 again: it sits on the boundary (>=), and is unchanged.
    assert (second.read, second.created, second.updated, second.unchanged) == (4, 1, 2, 1)
    assert hub_names(hub)["C-2"] == "Renamed 2"
    assert hub_names(hub)["C-6"] == "New 6"
    stamped = max(item["updatedAt"] for item in items(api, name))
    assert datetime.fromisoformat(second.cursor_after["value"]) == datetime.fromisoformat(stamped)

    third = runner.run("customers-in")
    # Only what shares the newest stamp comes back, and nothing changes.
    assert (third.created, third.updated) == (0, 0)
    assert third.read == sum(1 for i in items(api, name) if i["updatedAt"] == stamped)


# -- OUT: create, then update ----------------------------------------------------------------------


def test_out_flow_creates_then_updates_under_the_hub_key(
    api: dict[str, str], hub: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    name = collection(api, [])
    target = {"resource": f"api/{name}"}
    loaded = config(tmp_path, monkeypatch, {"base_url": f"{api['url']}/open/"}, out_flow(target))
    drop(loaded, hub, "code,name\nC-1,Anna\nC-2,Bob\n")

    stats_1 = deliver(loaded, hub)

    assert (stats_1.delivered, stats_1.dead) == (2, 0)
    created = {item["id"]: item for item in items(api, name)}
    assert sorted(created) == ["C-1", "C-2"]
    assert created["C-1"]["name"] == "Anna"
    assert [row.external_id for row in ledger(hub)] == ["C-1", "C-2"]

    drop(loaded, hub, "code,name\nC-1,Anna Maria\nC-2,Bob\n")
    stats_2 = deliver(loaded, hub)

    assert stats_2.delivered == 1
    after = items(api, name)
    assert len(after) == 2  # updated in place, not created twice
    one = httpx.get(f"{api['url']}/open/api/{name}/C-1").json()
    assert one["name"] == "Anna Maria"
    assert one["updatedAt"] > created["C-1"]["updatedAt"]


def test_out_flow_finds_server_assigned_ids_by_lookup(
    api: dict[str, str], hub: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    existing = {"id": 40, "code": "C-9", "name": "Old name"}
    name = collection(api, [existing])
    target = {
        "resource": {"path": f"api/{name}", "update_method": "PATCH"},
        "lookup": {"code": "code"},
    }
    loaded = config(tmp_path, monkeypatch, {"base_url": f"{api['url']}/open/"}, out_flow(target))
    drop(loaded, hub, "code,name\nC-9,New name\nC-10,Zoe\n")

    assert deliver(loaded, hub).delivered == 2

    by_code = {item["code"]: item for item in items(api, name)}
    assert len(by_code) == 2
    assert by_code["C-9"]["id"] == 40
    assert by_code["C-9"]["name"] == "New name"
    assert by_code["C-10"]["id"] == 41  # json-server's own id, returned in the create's body
    assert sorted(row.external_id for row in ledger(hub)) == ["40", "41"]


# -- auth modes ----------------------------------------------------------------------------------


def read_once(api: dict[str, str], channel: dict[str, Any], name: str, route: str = "api") -> int:
    """Records read by one pass of a fresh transport (page size 2)."""
    options = RestChannelOptions.model_validate(channel)
    paging = {"type": "page", "page_param": "_page", "size_param": "_limit", "page_size": 2}
    stream = RestStreamOptions.model_validate({"resource": f"{route}/{name}", "pagination": paging})
    transport = RestTransport("api", options, Path("/"))
    try:
        return sum(len(b.records) for b in transport.read(stream, None, 10, frozenset()))
    finally:
        transport.close()


def token(api: dict[str, str], client_id: str = "erpbridge") -> str:
    answer = httpx.post(
        api["token_url"],
        data={"grant_type": "client_credentials"},
        auth=(client_id, api["client_secret"]),
    )
    answer.raise_for_status()
    value: str = answer.json()["access_token"]
    return value


AUTH_MODES = ["api_key-header", "api_key-query", "basic", "bearer", "oauth2", "mtls"]


def authenticated(api: dict[str, str], mode: str, wrong: bool) -> tuple[dict[str, Any], Any]:
    """(channel options, credentials) of ``mode``; ``wrong`` gives a secret the API refuses."""
    bad = "wrong-" + uuid.uuid4().hex
    if mode == "mtls":
        channel = {
            "base_url": f"{api['https_url']}/open/",
            "verify": api["ca"],
            "client_cert": api["client_cert"],
            "client_key": api["client_key"],
        }
        return channel, {}
    prefix, auth, secret_name, secret = {
        "api_key-header": ("key", {"type": "api_key"}, "api_key", api["api_key"]),
        "api_key-query": (
            "key",
            {"type": "api_key", "in": "query", "name": "api_key"},
            "api_key",
            api["api_key"],
        ),
        "basic": ("basic", {"type": "basic", "username": "erp"}, "password", api["password"]),
        "bearer": ("jwt", {"type": "bearer"}, "token", None),
        "oauth2": (
            "jwt",
            {"type": "oauth2", "token_url": api["token_url"], "client_id": "erpbridge"},
            "client_secret",
            api["client_secret"],
        ),
    }[mode]
    if secret is None:
        secret = token(api)  # a JWT the OAuth server issued, used as a fixed bearer token
    channel = {"base_url": f"{api['url']}/{prefix}/", "auth": auth}
    return channel, {secret_name: bad if wrong else secret}


@pytest.mark.parametrize("mode", AUTH_MODES)
def test_in_flow_authenticates(
    mode: str, api: dict[str, str], hub: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    channel, secrets = authenticated(api, mode, wrong=False)
    name = collection(api, customers(3))
    source = {"resource": f"api/{name}"}
    loaded = config(tmp_path, monkeypatch, channel, [in_flow(source)], secrets)

    result = FlowRunner(loaded, hub).run("customers-in")

    assert (result.status, result.created) == ("succeeded", 3), result.error


@pytest.mark.parametrize("mode", [m for m in AUTH_MODES if m != "mtls"])
def test_wrong_credentials_fail_the_run_with_401(
    mode: str, api: dict[str, str], hub: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    channel, secrets = authenticated(api, mode, wrong=True)
    name = collection(api, customers(1))
    source = {"resource": f"api/{name}"}
    loaded = config(tmp_path, monkeypatch, channel, [in_flow(source)], secrets)

    result = FlowRunner(loaded, hub).run("customers-in")

    assert result.status == "failed"
    assert result.error is not None
    assert "HTTP 401" in result.error
    place = api["token_url"] if mode == "oauth2" else f"{channel['base_url']}api/{name}"
    assert place in result.error
    (wrong,) = secrets.values()
    assert wrong not in result.error
    assert hub_names(hub) == {}


def test_oauth2_token_is_cached_and_fetched_again_when_expired(api: dict[str, str]) -> None:
    name = collection(api, customers(5))

    def channel(client_id: str) -> dict[str, Any]:
        return {
            "base_url": f"{api['url']}/jwt/",
            "auth": {"type": "oauth2", "token_url": api["token_url"], "client_id": client_id},
            "credentials": {"client_secret": api["client_secret"]},
        }

    def tokens(client_id: str) -> int:
        return stats(api)["token_requests"].get(client_id, 0)

    before = tokens("erpbridge")
    assert read_once(api, channel("erpbridge"), name) == 5  # three pages
    assert tokens("erpbridge") - before == 1  # one token for every page

    # Tokens of -short live 2 s and say so: renewed before they run out.
    options = RestChannelOptions.model_validate(channel("erpbridge-short"))
    stream = RestStreamOptions.model_validate({"resource": f"api/{name}"})
    transport = RestTransport("api", options, Path("/"))
    try:
        before = tokens("erpbridge-short")
        assert sum(len(b.records) for b in transport.read(stream, None, 10, frozenset())) == 5
        time.sleep(1.2)
        assert sum(len(b.records) for b in transport.read(stream, None, 10, frozenset())) == 5
        assert tokens("erpbridge-short") - before == 2
    finally:
        transport.close()


def test_oauth2_token_refused_with_401_is_renewed_once(api: dict[str, str]) -> None:
    # A cached token the API refuses (revoked, or expired early) is fetched again after the 401.
    name = collection(api, customers(2))
    options = RestChannelOptions.model_validate(
        {
            "base_url": f"{api['url']}/jwt/",
            "auth": {"type": "oauth2", "token_url": api["token_url"], "client_id": "erpbridge"},
            "credentials": {"client_secret": api["client_secret"]},
        }
    )
    stream = RestStreamOptions.model_validate({"resource": f"api/{name}"})
    transport = RestTransport("api", options, Path("/"))
    path = f"/jwt/api/{name}"
    try:
        before = stats(api)
        assert sum(len(b.records) for b in transport.read(stream, None, 10, frozenset())) == 2
        httpx.post(f"{api['url']}/_admin/revoke", json={"client_id": "erpbridge"})
        assert sum(len(b.records) for b in transport.read(stream, None, 10, frozenset())) == 2
        after = stats(api)
    finally:
        transport.close()
    grabbed = after["token_requests"]["erpbridge"] - before["token_requests"].get("erpbridge", 0)
    assert grabbed == 2
    # the first read, then the second one twice: refused with 401, then with the new token
    assert after["requests"][path] - before["requests"].get(path, 0) == 3


def test_mutual_tls_without_a_client_certificate_is_a_tls_failure(api: dict[str, str]) -> None:
    options = RestChannelOptions.model_validate(
        {"base_url": f"{api['https_url']}/open/", "verify": api["ca"]}
    )
    without = RestTransport("api", options, Path("/"))
    try:
        health = without.health()
    finally:
        without.close()
    assert (health.ok, health.category) == (False, "tls")
    assert "CERTIFICATE_REQUIRED" in health.detail


# -- connection failures, by kind ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("where", "category", "words"),
    [
        ("untrusted", "tls", "certificate verify failed"),
        ("unknown-host", "dns", "host name not found"),
        ("refused", "refused", "connection refused"),
    ],
)
def test_unreachable_channel_is_named_by_kind(
    where: str,
    category: str,
    words: str,
    api: dict[str, str],
    hub: Engine,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    base_url = {
        "untrusted": f"{api['https_url']}/open/",  # no CA given: the test CA is not trusted
        "unknown-host": "http://erpbridge-no-such-host.invalid/open/",
        "refused": "http://127.0.0.1:9/open/",
    }[where]
    channel = {"base_url": base_url, "connect_timeout_s": 5}
    target = {"resource": "api/customers"}
    flows = [in_flow({"resource": "api/customers"}), *out_flow(target)]
    loaded = config(tmp_path, monkeypatch, channel, flows)

    options = RestChannelOptions.model_validate(channel)
    health = RestTransport("api", options, Path("/")).health()
    assert (health.ok, health.category) == (False, category)
    assert words in health.detail

    result = FlowRunner(loaded, hub).run("customers-in")
    assert result.status == "failed"
    assert result.error is not None
    assert words in result.error

    drop(loaded, hub, "code,name\nC-1,Anna\n")
    # Retries are due a few milliseconds apart (backoff 1 ms with jitter): a pass of the worker
    # may end before the next one is due, so deliver until the ledger settles.
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        deliver(loaded, hub)
        if ledger(hub)[-1].state == "dead":
            break
        time.sleep(0.01)
    with hub.connect() as conn:
        attempts = conn.execute(
            select(delivery_attempts.c.outcome, delivery_attempts.c.error).order_by(
                delivery_attempts.c.id
            )
        ).all()
    # A passing failure: retried (here without delay) until max_attempts, then dead, visible.
    assert [a.outcome for a in attempts] == ["retry", "retry", "dead"]
    assert all(words in a.error for a in attempts)


# -- server failures on writes and reads ---------------------------------------------------------


def test_html_500_is_summarised_and_the_write_retried(
    api: dict[str, str], hub: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    name = collection(api, [])
    loaded = config(
        tmp_path,
        monkeypatch,
        {"base_url": f"{api['url']}/open/"},
        out_flow({"resource": f"api/{name}"}),
    )
    drop(loaded, hub, "code,name\nC-1,Anna\n")
    arm(api, f"/open/api/{name}", 500, 1, html=True)

    outcome = deliver(loaded, hub)

    assert (outcome.retried, outcome.delivered, outcome.dead) == (1, 1, 0)
    with hub.connect() as conn:
        failed = conn.execute(
            select(delivery_attempts.c.error).where(delivery_attempts.c.outcome == "retry")
        ).scalar_one()
    assert "HTTP 500" in failed
    assert "customer 'C-1' v1" in failed
    assert "Internal Server Error The upstream ERP did not answer & the gateway gave up." in failed
    assert "<" not in failed
    assert "console.log" not in failed
    assert [item["name"] for item in items(api, name)] == ["Anna"]


def test_html_500_fails_the_read_and_the_next_run_reads_it_all(
    api: dict[str, str], hub: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    name = collection(api, customers(4))
    source = {
        "resource": f"api/{name}",
        "pagination": {"type": "page", "page_param": "_page", "size_param": "_limit"},
    }
    loaded = config(tmp_path, monkeypatch, {"base_url": f"{api['url']}/open/"}, [in_flow(source)])
    arm(api, f"/open/api/{name}", 500, 1, html=True)

    failed = FlowRunner(loaded, hub).run("customers-in")
    again = FlowRunner(loaded, hub).run("customers-in")

    assert failed.status == "failed"
    assert failed.error is not None
    assert f"GET {api['url']}/open/api/{name}?_page=…&_limit=…" in failed.error
    assert "HTTP 500 Internal Server Error:" in failed.error
    assert "The upstream ERP did not answer & the gateway gave up." in failed.error
    assert "<" not in failed.error
    assert (again.status, again.created) == ("succeeded", 4)


def test_429_retry_after_on_a_write_schedules_the_retry(
    api: dict[str, str], hub: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    name = collection(api, [])
    loaded = config(
        tmp_path,
        monkeypatch,
        {"base_url": f"{api['url']}/open/"},
        out_flow({"resource": f"api/{name}"}),
    )
    drop(loaded, hub, "code,name\nC-1,Anna\n")
    arm(api, f"/open/api/{name}", 429, 1, retry_after=1)

    asked = datetime.now(UTC)
    first = deliver(loaded, hub)

    assert (first.retried, first.delivered) == (1, 0)
    (row,) = ledger(hub)
    assert row.state == "failed"
    assert "HTTP 429" in row.last_error
    due = row.next_attempt_at.replace(tzinfo=row.next_attempt_at.tzinfo or UTC)
    assert 0.9 <= (due - asked).total_seconds() <= 3  # Retry-After: 1 (no backoff of ours)
    assert deliver(loaded, hub).delivered == 0  # not due yet
    time.sleep(max(0.0, (due - datetime.now(UTC)).total_seconds()) + 0.1)
    assert deliver(loaded, hub).delivered == 1
    assert [item["id"] for item in items(api, name)] == ["C-1"]


def test_429_retry_after_on_a_read_is_waited_out(
    api: dict[str, str], hub: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    name = collection(api, customers(2))
    loaded = config(
        tmp_path,
        monkeypatch,
        {"base_url": f"{api['url']}/open/", "max_wait_s": 5},
        [in_flow({"resource": f"api/{name}"})],
    )
    arm(api, f"/open/api/{name}", 429, 1, retry_after=1)
    began = time.monotonic()

    result = FlowRunner(loaded, hub).run("customers-in")

    assert (result.status, result.created) == ("succeeded", 2), result.error
    assert time.monotonic() - began >= 1


def test_wrong_credentials_make_the_delivery_dead(
    api: dict[str, str], hub: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    name = collection(api, [])
    channel = {"base_url": f"{api['url']}/basic/", "auth": {"type": "basic", "username": "erp"}}
    loaded = config(
        tmp_path, monkeypatch, channel, out_flow({"resource": f"api/{name}"}), {"password": "no"}
    )
    drop(loaded, hub, "code,name\nC-1,Anna\n")

    outcome = deliver(loaded, hub)

    assert (outcome.dead, outcome.delivered) == (1, 0)
    (row,) = ledger(hub)
    assert row.state == "dead"
    assert "HTTP 401" in row.last_error
    assert "wrong user name or password" in row.last_error
    assert items(api, name) == []
