"""Events and webhooks at load, through the served hub (``erpbridge run`` as a subprocess):
concurrent events share transactions (group commit) yet each is stored exactly once and answered
on its own; an event answered 202 survives a kill -9 right after the answer and is delivered after
the restart; beyond ``max_pending_events`` the hub answers 503 with ``Retry-After`` at once and
stores nothing of it; a client that hangs up is one log line; a signed webhook sent twice at once
is accepted once."""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import signal
import socket
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from erpbridge.store import open_store
from erpbridge.store.apiclients import create_client
from hubprocess import ServedHub, serve_hub

HOOK_SECRET = "whsec-events-0123456789"


def _config(max_pending: int = 64, body_timeout: float = 10) -> str:
    return f"""
hub:
  api:
    max_pending_events: {max_pending}
    body_timeout_s: {body_timeout}
    rate_limits: {{per_client: "100000/second", per_route: {{}}, anonymous: "100000/second"}}
channels:
  shop:
    system: platform
    credentials: {{webhook_secret: "${{SHOP_HOOK_SECRET}}"}}
    inbound:
      webhook: {{flow: orders-in}}
  erp: {{system: folder, options: {{path: erp}}}}
flows:
  - name: orders-in
    channel: shop
    entity: customer
    direction: in
    trigger: immediate
    mapping: {{code: {{from: id, required: true}}, name: {{from: qty, required: true}}}}
  - name: orders-out
    channel: erp
    entity: customer
    direction: out
    trigger: immediate
    target: {{format: json, name: "{{key}}.json"}}
    mapping: {{Kunde: code, Menge: name}}
"""


def _prepare(root: Path) -> str:
    """The hub folder with its store and target folder; the events client's API key."""
    (root / "erp").mkdir(parents=True)
    engine = open_store(f"sqlite:///{root / 'erpbridge.db'}")
    _, key = create_client(engine, "shop", {"events", "admin"})
    engine.dispose()
    return key


@pytest.fixture
def hub_root(tmp_path: Path) -> tuple[Path, str]:
    root = tmp_path / "hub"
    return root, _prepare(root)


@contextlib.contextmanager
def _serve(root: Path, max_pending: int = 64, body_timeout: float = 10) -> Iterator[ServedHub]:
    env = {"SHOP_HOOK_SECRET": HOOK_SECRET}
    with serve_hub(
        root, _config(max_pending, body_timeout), command="run", args=("--interval", "0.2"), env=env
    ) as hub:
        yield hub


def _rows(root: Path, sql: str) -> list[tuple[object, ...]]:
    with sqlite3.connect(root / "erpbridge.db") as db:
        return db.execute(sql).fetchall()


def _wait_for(check: Callable[[], bool], what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


def _delivered(root: Path) -> dict[str, int]:
    """Key -> quantity (the name) written to the folder target."""
    found = {}
    for path in (root / "erp").glob("*.json"):
        data = json.loads(path.read_text(encoding="utf-8"))
        found[str(data["Kunde"])] = int(data["Menge"])
    return found


def test_concurrent_events_are_stored_once_each_and_delivered_in_version_order(
    hub_root: tuple[Path, str],
) -> None:
    root, key = hub_root
    keys = [f"O-{i}" for i in range(40)]
    sends = [(k, qty) for qty in range(1, 6) for k in keys]  # 5 versions of each key, in order
    with _serve(root) as hub, hub.client(headers={"X-API-Key": key}, timeout=30) as http:
        lock = threading.Lock()
        answers: list[tuple[str, int, dict[str, object]]] = []

        def send_versions(k: str) -> None:
            for qty in range(1, 6):  # one key's versions in order, keys concurrently
                answer = http.post("/api/v1/events/orders-in", json={"id": k, "qty": qty})
                with lock:
                    answers.append((k, answer.status_code, answer.json()))

        with ThreadPoolExecutor(max_workers=20) as pool:
            list(pool.map(send_versions, keys))
        assert {status for _, status, _ in answers} == {202}
        assert len(answers) == len(sends)
        _wait_for(lambda: _delivered(root) == dict.fromkeys(keys, 5), "the last versions")
    records = _rows(root, "SELECT key, version FROM records WHERE entity = 'customer'")
    assert sorted(records) == sorted((k, 5) for k in keys)  # each version stored once
    runs = _rows(root, "SELECT count(*), sum(read), sum(created), sum(updated) FROM runs")
    count, read, created, updated = runs[0]
    assert (read, created, updated) == (200, 40, 160)
    assert isinstance(count, int) and count < 200, "concurrent events shared no transaction"
    # Each answer names its own record and the version its event made.
    for k, _, body in answers:
        refs = body["records"]
        assert isinstance(refs, list) and [r["key"] for r in refs] == [k]
    # Deliveries of a key were written in version order: the ledger's done versions ascend.
    done = _rows(
        root,
        "SELECT key, version FROM deliveries WHERE state = 'delivered' ORDER BY delivered_at, id",
    )
    last: dict[str, int] = {}
    for k, version in done:
        assert isinstance(k, str) and isinstance(version, int)
        assert version > last.get(k, 0), f"{k}: version {version} after {last[k]}"
        last[k] = version
    assert last == dict.fromkeys(keys, 5)


def test_an_event_answered_202_survives_a_kill_right_after_the_answer(
    hub_root: tuple[Path, str],
) -> None:
    root, key = hub_root
    acknowledged: list[str] = []
    lock = threading.Lock()
    stop = threading.Event()
    with _serve(root) as hub:

        def send(worker: int) -> None:
            with hub.client(headers={"X-API-Key": key}, timeout=10) as http:
                for i in range(10_000):
                    if stop.is_set():
                        return
                    k = f"K-{worker}-{i}"
                    try:
                        answer = http.post("/api/v1/events/orders-in", json={"id": k, "qty": 1})
                    except httpx.HTTPError:
                        return  # the hub is gone: this event was not acknowledged
                    if answer.status_code == 202:
                        with lock:
                            acknowledged.append(k)
                            if len(acknowledged) == 150:
                                hub.process.send_signal(signal.SIGKILL)  # at once, mid-load
                                stop.set()

        threads = [threading.Thread(target=send, args=(w,)) for w in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        assert hub.process.wait(10) == -signal.SIGKILL
    stored = {str(k) for (k,) in _rows(root, "SELECT key FROM records WHERE entity = 'customer'")}
    assert len(acknowledged) >= 150
    missing = set(acknowledged) - stored
    assert not missing, (
        f"{len(missing)} acknowledged event(s) lost by the kill: {sorted(missing)[:5]}"
    )
    # After the restart every acknowledged event reaches the target.
    with _serve(root):
        _wait_for(lambda: set(acknowledged) <= set(_delivered(root)), "the deliveries")


def _slow_request(hub: ServedHub, key: str, body: bytes) -> socket.socket:
    """A request whose headers are sent and whose body is not (yet): it holds an admission."""
    host, port = hub.url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=10)
    sock.sendall(
        b"POST /api/v1/events/orders-in HTTP/1.1\r\nHost: hub\r\n"
        + f"X-API-Key: {key}\r\nContent-Type: application/json\r\n".encode()
        + f"Content-Length: {len(body)}\r\n\r\n".encode()
    )
    return sock


def test_beyond_max_pending_events_the_hub_answers_503_with_retry_after_and_stores_nothing(
    hub_root: tuple[Path, str],
) -> None:
    root, key = hub_root
    body = json.dumps({"id": "SLOW-1", "qty": 7}).encode()
    with _serve(root, max_pending=2) as hub, hub.client(headers={"X-API-Key": key}) as http:
        slow = [_slow_request(hub, key, body) for _ in range(2)]
        time.sleep(0.5)  # both are in the app, waiting for their bodies
        started = time.monotonic()
        refused = http.post("/api/v1/events/orders-in", json={"id": "NOW-1", "qty": 1})
        assert time.monotonic() - started < 1.0, "the refusal waited"
        assert refused.status_code == 503, refused.text
        assert refused.headers["retry-after"] == "1"
        assert refused.json()["error"]["code"] == "overloaded"
        hook = http.post("/hooks/shop", content=b"{}")
        assert hook.status_code == 503, hook.text  # webhooks share the bound
        assert http.get("/healthz").status_code == 200  # other routes are not bounded
        for sock in slow:
            sock.sendall(body)
            answer = sock.recv(65536)
            assert answer.startswith(b"HTTP/1.1 202"), answer[:200]
            sock.close()
        # The slots are free again.
        again = http.post("/api/v1/events/orders-in", json={"id": "NOW-2", "qty": 2})
        assert again.status_code == 202, again.text
    stored = {str(k) for (k,) in _rows(root, "SELECT key FROM records WHERE entity = 'customer'")}
    assert stored == {"SLOW-1", "NOW-2"}  # the refused event stored nothing


def test_a_sender_too_slow_with_its_body_gets_408_and_frees_its_slot(
    hub_root: tuple[Path, str],
) -> None:
    root, key = hub_root
    body = json.dumps({"id": "SLOW-1", "qty": 7}).encode()
    with (
        _serve(root, max_pending=1, body_timeout=1) as hub,
        hub.client(headers={"X-API-Key": key}) as http,
    ):
        started = time.monotonic()
        slow = _slow_request(hub, key, body)
        slow.sendall(body[:5])  # then nothing more
        answer = b""
        while chunk := slow.recv(65536):  # to the end: the hub closes the connection
            answer += chunk
        waited = time.monotonic() - started
        slow.close()
        assert answer.startswith(b"HTTP/1.1 408"), answer[:300]
        assert b"hub.api.body_timeout_s" in answer and b"5 byte(s) came" in answer, answer
        assert 0.9 < waited < 5, waited
        # Its one slot is free again.
        again = http.post("/api/v1/events/orders-in", json={"id": "NOW-1", "qty": 1})
        assert again.status_code == 202, again.text
        output = hub.output()
    assert "Traceback" not in output, output[-3000:]
    stored = {str(k) for (k,) in _rows(root, "SELECT key FROM records WHERE entity = 'customer'")}
    assert stored == {"NOW-1"}


def test_a_client_that_hangs_up_mid_body_is_one_log_line(hub_root: tuple[Path, str]) -> None:
    root, key = hub_root
    with _serve(root) as hub, hub.client(headers={"X-API-Key": key}) as http:
        for _ in range(5):
            sock = _slow_request(hub, key, b'{"id": "GONE", "qty": 1}')
            sock.sendall(b'{"id": ')
            sock.close()
        time.sleep(1.0)
        answer = http.post("/api/v1/events/orders-in", json={"id": "STAYS", "qty": 1})
        assert answer.status_code == 202, answer.text
        output = hub.output()
    assert output.count("client went away") == 5, output[-3000:]
    assert "Traceback" not in output, output[-3000:]
    stored = {str(k) for (k,) in _rows(root, "SELECT key FROM records WHERE entity = 'customer'")}
    assert stored == {"STAYS"}


def test_the_same_signed_webhook_sent_twice_at_once_is_accepted_once(
    hub_root: tuple[Path, str],
) -> None:
    root, _ = hub_root
    bodies = [json.dumps({"id": f"H-{i}", "qty": i}).encode() for i in range(30)]
    stamp = str(int(time.time()))
    signed = []  # each webhook signed once; both copies carry the same signature
    for body in bodies:
        digest = hmac.new(HOOK_SECRET.encode(), stamp.encode() + b"." + body, hashlib.sha256)
        headers = {"X-Timestamp": stamp, "X-Signature": f"sha256={digest.hexdigest()}"}
        signed += [(body, headers)] * 2
    with _serve(root) as hub, hub.client(timeout=30) as http:

        def post(request: tuple[bytes, dict[str, str]]) -> int:
            return http.post("/hooks/shop", content=request[0], headers=request[1]).status_code

        with ThreadPoolExecutor(max_workers=16) as pool:
            statuses = list(pool.map(post, signed))
    pairs = [sorted(statuses[i : i + 2]) for i in range(0, len(statuses), 2)]
    assert pairs == [[202, 409]] * len(bodies)
    stored = _rows(root, "SELECT key, version FROM records WHERE entity = 'customer'")
    assert sorted(stored) == sorted((f"H-{i}", 1) for i in range(30))
