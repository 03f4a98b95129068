"""The served hub's logs and status while a flow fails and after it recovers.

``erpbridge run --log-format json``: each failed run is one JSON event ``run.finished`` with its
flow, channel, run id and cause; a dead delivery one ``delivery.dead`` with its delivery id; no
line holds a secret value or a card number (the cause quotes a folder path holding both).
``erpbridge status`` exits 1 while the flow fails and 0 once it recovers; ``/readyz`` says
whether the process is ready (store, migrations, scheduler, worker).
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from erpbridge.pci import CARD_NUMBER_REMOVED as CARD_REMOVED
from erpbridge.store import open_store
from erpbridge.store.apiclients import create_client
from hubprocess import ServedHub, serve_hub
from observe.obshub import CONFIG, query, wait_for

TOKEN = "tok-Zq81vX4rLmP0"
CARD = "4111111111111111"
INBOX = f"inbox-{TOKEN}-{CARD}"

SECRETIVE = (
    CONFIG.format(alerts="").replace(
        "options: {path: inbox}", f'options: {{path: "inbox-${{SHOP_TOKEN}}-{CARD}"}}'
    )
).replace(
    "channels:\n",
    "channels:\n  vault:\n    system: rest\n"
    '    options: {base_url: "http://127.0.0.1:9/", auth: {type: api_key}}\n'
    '    credentials: {api_key: "${SHOP_TOKEN}"}\n',
    1,
)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServedHub]:
    root = tmp_path_factory.mktemp("logs") / "hub"
    (root / "erp").mkdir(parents=True)  # the inbox is missing: every run fails
    engine = open_store(f"sqlite:///{root / 'erpbridge.db'}")
    key = create_client(engine, "pusher", {"events"})[1]
    engine.dispose()
    args = ("--interval", "0.2", "--log-format", "json")
    env = {"SHOP_TOKEN": TOKEN}
    with serve_hub(root, SECRETIVE, command="run", args=args, env=env) as hub:
        hub.extra["key"] = key
        yield hub


def _events(hub: ServedHub) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in hub.output().splitlines() if line.startswith("{")]


def _status(hub: ServedHub) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "erpbridge", "status", "-c", str(hub.config)],
        env=hub.env,
        cwd=hub.root,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_each_failure_is_one_json_event_without_secret_or_card_number_and_status_follows(
    served: ServedHub,
) -> None:
    hub = served
    failed = wait_for(
        lambda: query(hub.database, "SELECT id FROM runs WHERE status = 'failed'")[2:],
        30,
        "three failed runs",
    )
    failing = _status(hub)
    assert failing.returncode == 1, failing.stdout + failing.stderr
    assert "FAILING" in failing.stdout and "flow customers-in (channel shop)" in failing.stdout
    assert "channel shop: down since" in failing.stdout

    (hub.root / INBOX).mkdir()  # the fault removed: the next run succeeds
    (hub.root / INBOX / "a.csv").write_text(
        "id,name\nC1,Ann\n" + "L" * 300 + ",Long\n", encoding="utf-8"
    )
    dead = wait_for(
        lambda: query(hub.database, "SELECT id, last_error FROM deliveries WHERE state = 'dead'"),
        30,
        "a dead delivery (its file name is too long)",
    )
    recovered = wait_for(
        lambda: query(hub.database, "SELECT max(id) FROM runs WHERE status = 'succeeded'")[0][0],
        30,
    )
    time.sleep(0.5)  # the last events are flushed
    events = _events(hub)
    output = hub.output()
    assert TOKEN not in output and CARD not in output
    assert "4111 1111" not in output and "4111-1111" not in output

    finished = [e for e in events if e["event"] == "run.finished"]
    failures = [e for e in finished if e["status"] == "failed"]
    all_failed = {
        row[0] for row in query(hub.database, "SELECT id FROM runs WHERE status = 'failed'")
    }
    assert {e["run_id"] for e in failures} == all_failed
    assert len(failures) == len(all_failed)  # one event per failed run
    assert {row[0] for row in failed} <= all_failed
    for event in failures:
        assert event["flow"] == "customers-in" and event["channel"] == "shop"
        assert event["level"] == "error" and event["logger"] == "erpbridge.events"
        assert "cannot read inbox folder" in event["cause"], event
        assert f"inbox-[secret]-{CARD_REMOVED}" in event["cause"], event
        assert event["timestamp"].endswith("Z")
    assert any(e["run_id"] == recovered and e["status"] == "succeeded" for e in finished)

    deaths = [e for e in events if e["event"] == "delivery.dead"]
    assert [(e["delivery_id"], e["flow"], e["channel"]) for e in deaths] == [
        (dead[0][0], "customers-out", "erp")
    ]
    assert "bytes long, file systems take at most 255" in deaths[0]["cause"]
    assert deaths[0]["cause"] == dead[0][1] and deaths[0]["level"] == "error"

    # The flow recovered but a delivery is dead: still failing, for that reason only.
    still = _status(hub)
    assert still.returncode == 1, still.stdout
    assert (
        "dead deliveries" in still.stdout and "flow customers-in (channel shop)" not in still.stdout
    )
    subprocess.run(
        [sys.executable, "-m", "erpbridge", "cancel", str(dead[0][0]), "-c", str(hub.config)],
        env=hub.env,
        cwd=hub.root,
        check=True,
        capture_output=True,
        timeout=60,
    )
    well = _status(hub)
    assert well.returncode == 0, well.stdout + well.stderr
    assert well.stdout.startswith("OK")
    with hub.client() as http:
        assert http.get("/readyz").json()["status"] == "ready"


def test_readyz_tells_a_store_behind_its_migrations(served: ServedHub) -> None:
    with served.client() as http:
        ready = http.get("/readyz")
        assert ready.status_code == 200, ready.text
        assert ready.json() == {
            "status": "ready",
            "checks": {"store": "ok", "migrations": "ok", "scheduler": "ok", "worker": "ok"},
        }
        (head,) = query(served.database, "SELECT version_num FROM alembic_version")[0]
        _execute(served.database, "UPDATE alembic_version SET version_num = '0001'")
        try:
            behind = http.get("/readyz")
        finally:
            _execute(served.database, "UPDATE alembic_version SET version_num = ?", head)
        assert behind.status_code == 503
        assert behind.json()["checks"]["migrations"] == "behind"
        assert http.get("/healthz").status_code == 200  # liveness is not readiness


def _execute(database: Path, sql: str, *args: Any) -> None:
    import sqlite3

    with sqlite3.connect(database) as conn:
        conn.execute(sql, args)


def test_a_client_that_goes_away_is_one_line(served: ServedHub) -> None:
    import socket

    port = int(served.url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(
            b"POST /api/v1/events/customers-in HTTP/1.1\r\nHost: x\r\nX-API-Key: "
            + served.extra["key"].encode()
            + b"\r\nContent-Type: application/json\r\nContent-Length: 500\r\n\r\n[{"
        )
        time.sleep(0.5)
    wait_for(lambda: "went away" in served.output(), 10, "the disconnect line")
    assert "Traceback" not in served.output()
    lines = [e for e in _events(served) if "went away" in e["event"]]
    assert len(lines) == 1 and lines[0]["logger"] == "erpbridge.api.body"
