"""What the served hub (``erpbridge run`` as a subprocess, scheduler and worker included) does
with credentials it cannot store, delivery errors it shows, and the files it makes.

- ``PUT …/credentials/{name}`` of an unknown channel or credential is a 404, of one the
  configuration fills from the environment a 422; nothing is stored then.
- A file name too long for the file system is permanent: the delivery goes dead at its first
  attempt instead of being retried forever; read clients see its error without local paths.
- The SQLite store and its WAL/SHM files are 0600, served or made by ``erpbridge sync``.
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.fernet import Fernet

from api.servedconfig import CUSTOMERS_IN
from erpbridge.store import open_store
from erpbridge.store.apiclients import create_client
from hubprocess import ServedHub, serve_hub

CONFIG = (
    """
channels:
  shop:
    system: platform
    credentials: {webhook_secret: "${SHOP_HOOK_SECRET}"}
    inbound:
      webhook: {flow: customers-in}
  erp:
    system: folder
    options: {path: erp}
  vault:
    system: rest
    options: {base_url: "http://127.0.0.1:9/", auth: {type: api_key}}
    credentials: {api_key: stored}
flows:"""
    + CUSTOMERS_IN
    + """  - name: customers-out
    channel: erp
    entity: customer
    direction: out
    trigger: immediate
    target: {format: json, name: "{key}.json"}
    mapping:
      Kunde: code
      Name: name
"""
)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServedHub, dict[str, str]]]:
    root = tmp_path_factory.mktemp("admin") / "hub"
    (root / "erp").mkdir(parents=True)
    engine = open_store(f"sqlite:///{root / 'erpbridge.db'}")
    keys = {
        name: create_client(engine, name, scopes)[1]
        for name, scopes in {"admin": {"admin"}, "reader": {"read"}, "shop": {"events"}}.items()
    }
    engine.dispose()
    (root / "erpbridge.db").chmod(0o600)  # made by the test's own open_store; the hub's own below
    env = {"SHOP_HOOK_SECRET": "whsec-admin-0123456789"}
    with serve_hub(root, CONFIG, command="run", args=("--interval", "0.2"), env=env) as hub:
        yield hub, keys


def _put(hub: ServedHub, key: str, path: str) -> httpx.Response:
    with hub.client(headers={"X-API-Key": key}) as http:
        return http.put(f"/api/v1/channels/{path}", json={"value": "s3cret-value"})


def _stored(hub: ServedHub) -> list[tuple[Any, ...]]:
    import sqlite3

    with sqlite3.connect(hub.database) as conn:
        return conn.execute("SELECT channel, name FROM channel_secrets ORDER BY 1, 2").fetchall()


def test_a_credential_that_is_not_stored_is_refused_and_nothing_is_kept(
    served: tuple[ServedHub, dict[str, str]],
) -> None:
    hub, keys = served
    unknown_channel = _put(hub, keys["admin"], "nowhere/credentials/api_key")
    assert unknown_channel.status_code == 404, unknown_channel.text
    assert "no channel named 'nowhere'" in unknown_channel.json()["error"]["message"]
    unknown = _put(hub, keys["admin"], "vault/credentials/passwort")
    assert unknown.status_code == 404, unknown.text
    message = unknown.json()["error"]["message"]
    assert "no credential 'passwort'" in message and "stored credentials: api_key" in message
    from_env = _put(hub, keys["admin"], "shop/credentials/webhook_secret")
    assert from_env.status_code == 422, from_env.text
    assert from_env.json()["error"]["code"] == "credential_not_stored"
    assert "webhook_secret: stored" in from_env.json()["error"]["message"]
    assert _stored(hub) == []
    stored = _put(hub, keys["admin"], "vault/credentials/api_key")
    assert stored.status_code == 204, stored.text
    assert _stored(hub) == [("vault", "api_key")]


def _deliveries(hub: ServedHub, key: str) -> list[dict[str, Any]]:
    with hub.client(headers={"X-API-Key": key}) as http:
        answer = http.get("/api/v1/deliveries", params={"flow": "customers-out"})
    assert answer.status_code == 200, answer.text
    found: list[dict[str, Any]] = answer.json()
    return found


def test_a_file_name_too_long_goes_dead_at_once_and_read_clients_see_no_local_path(
    served: tuple[ServedHub, dict[str, str]],
) -> None:
    hub, keys = served
    long_key = "K" * 300
    with hub.client(headers={"X-API-Key": keys["shop"]}) as http:
        for item in ({"id": long_key, "name": "Lang"}, {"id": "C-1", "name": "Kurz"}):
            answer = http.post("/api/v1/events/customers-in", json=item)
            assert answer.status_code == 202, answer.text
    deadline = time.monotonic() + 30
    while True:
        states = {d["key"]: d for d in _deliveries(hub, keys["admin"])}
        if {d["state"] for d in states.values()} == {"dead", "delivered"} or (
            time.monotonic() > deadline
        ):
            break
        time.sleep(0.3)
    dead, delivered = states[long_key], states["C-1"]
    assert (dead["state"], dead["attempts"]) == ("dead", 1), dead
    assert delivered["state"] == "delivered"
    assert (hub.root / "erp" / "C-1.json").is_file()
    folder = str(hub.root / "erp")
    assert "305 bytes long" in dead["last_error"] and folder in dead["last_error"]
    shown = {d["key"]: d for d in _deliveries(hub, keys["reader"])}[long_key]["last_error"]
    assert "305 bytes long" in shown and "[path]" in shown
    assert str(hub.root) not in shown and "/tmp" not in shown


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_the_store_and_its_wal_and_shm_are_0600_when_served(tmp_path: Path) -> None:
    root = tmp_path / "fresh"
    old = os.umask(0o022)  # the usual umask: without care the store would be 0644
    try:
        with serve_hub(root, CONFIG, command="api", env={"SHOP_HOOK_SECRET": "x" * 20}) as hub:
            files = {p.name: _mode(p) for p in root.glob("erpbridge.db*")}
    finally:
        os.umask(old)
    assert files == {"erpbridge.db": 0o600, "erpbridge.db-wal": 0o600, "erpbridge.db-shm": 0o600}
    assert hub.process.returncode is not None


def test_the_store_made_by_sync_is_0600(tmp_path: Path) -> None:
    (tmp_path / "inbox").mkdir()
    (tmp_path / "erpbridge.yaml").write_text(
        """
channels:
  files: {system: folder, options: {path: inbox}}
flows:
  - name: customers-in
    channel: files
    entity: customer
    direction: in
    source: {format: json}
    mapping: {code: id, name: name}
""",
        encoding="utf-8",
    )
    (tmp_path / "inbox" / "c.json").write_text('[{"id": "C-1", "name": "Anna"}]', encoding="utf-8")
    env = {**os.environ, "ERPBRIDGE_SECRET_KEY": Fernet.generate_key().decode()}
    env.pop("ERPBRIDGE_DATABASE_URL", None)
    done = subprocess.run(
        [sys.executable, "-m", "erpbridge", "sync", "--all", "-c", "erpbridge.yaml"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        preexec_fn=lambda: os.umask(0o022),
    )
    assert done.returncode == 0, done.stdout + done.stderr
    made = sorted(tmp_path.glob("erpbridge.db*"))
    assert made and all(_mode(p) == 0o600 for p in made), {p.name: oct(_mode(p)) for p in made}
