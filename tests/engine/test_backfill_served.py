"""Issue 21's proof: a new folder target and a new ``sqlwrite`` target are connected to a hub
that already holds 100 000 records and backfilled, through a served ``erpbridge run`` and the
``erpbridge backfill`` command, while live changes keep coming in through the events API; the
backfill command and the hub are each killed with SIGKILL in the middle and started again.

At the end every record is on both targets at its current version, no delivery is dead, and
each record's versions reached each target in version order (a backfilled v1 never landed after
a live v2). Before: a new OUT flow only ever saw versions written after it existed.
"""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import orjson
from sqlalchemy import Engine, func, select

from erpbridge import FlowRunner, load_config, open_store
from erpbridge.store.apiclients import create_client
from erpbridge.store.states import OPEN_DELIVERY_STATES
from erpbridge.store.tables import audit, deliveries, records, runs
from hubprocess import ServedHub, serve_hub

#: Records in the hub before the targets are connected; the issue asks 100 000
#: (`ERPBRIDGE_BACKFILL_RECORDS=100000`: about 20 minutes on a busy 2-core machine, where the
#: worker delivers ~200/s), `make test` runs 20 000.
RECORDS = int(os.environ.get("ERPBRIDGE_BACKFILL_RECORDS", "20000"))
#: A backfill waits while this many of its deliveries are to go out (the default is 20 000).
PENDING = ("--max-pending", str(max(500, RECORDS // 5)))

IN_FLOWS = """
hub: {{database_url: "{url}"}}
channels:
  shop: {{system: platform}}
  files: {{system: folder, options: {{path: inbox}}}}
  archive: {{system: folder, options: {{path: archive}}}}
  erp: {{system: sql, transport: sqlwrite, options: {{url: "sqlite:///erp.db"}}}}
flows:
  - name: customers-in
    channel: shop
    entity: customer
    direction: in
    trigger: immediate
    mapping: {{code: {{from: id, required: true}}, name: name}}
  - name: files-in
    channel: files
    entity: customer
    direction: in
    source: {{pattern: "*.csv"}}
    key: id
    mapping: {{code: id, name: name}}
"""

OUT_FLOWS = """
  - name: to-archive
    channel: archive
    entity: customer
    direction: out
    trigger: immediate
    # one file per batch: a file per record would be fsync-bound (7 ms each here)
    target: {format: json, file_per: batch}
    mapping: {code: code, name: name}
  - name: to-erp
    channel: erp
    entity: customer
    direction: out
    trigger: immediate
    target: {table: customers, key: [code]}
    mapping: {code: code, name: name}
"""


def wait_for(check: Callable[[], bool], what: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.25)


def erpbridge(root: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "erpbridge", *args, "-c", str(root / "erpbridge.yaml")]


#: The commands' environment: the store is the configuration's, the output wide enough to grep.
ENV = {**os.environ, "ERPBRIDGE_DATABASE_URL": "", "COLUMNS": "300"}


class LiveChanges:
    """Changes records through the events API until stopped; keeps what was acknowledged."""

    def __init__(self, url: str, key: str, keys: int) -> None:
        self.url, self.key, self.keys = url, key, keys
        self.acked: list[tuple[str, str]] = []
        self.refused = 0
        self.stop = threading.Event()
        self.latencies: list[float] = []
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        rng = random.Random(21)
        serial = 0
        with httpx.Client(headers={"X-API-Key": self.key}, timeout=10) as http:
            while not self.stop.is_set():
                serial += 1
                key, name = f"C{rng.randrange(self.keys):06d}", f"live {serial}"
                try:
                    answer = http.post(
                        f"{self.url}/api/v1/events/customers-in", json={"id": key, "name": name}
                    )
                except httpx.HTTPError:
                    self.refused += 1  # the hub is down (killed): not acknowledged
                    time.sleep(0.2)
                    continue
                if answer.status_code == 202:
                    self.acked.append((key, name))
                else:
                    self.refused += 1
                time.sleep(0.02)


def open_deliveries(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(
            conn.execute(
                select(func.count())
                .select_from(deliveries)
                .where(deliveries.c.state.in_(OPEN_DELIVERY_STATES))
            ).scalar_one()
        )


def backfill_run(engine: Engine, flow: str) -> Any:
    with engine.connect() as conn:
        return conn.execute(
            select(runs)
            .where(runs.c.flow == flow, runs.c.mode == "backfill")
            .order_by(runs.c.id.desc())
            .limit(1)
        ).first()


def test_two_new_targets_get_every_record_at_its_current_version_through_kills(
    tmp_path: Path, hub_url: str
) -> None:
    root = tmp_path / "hub"
    (root / "inbox").mkdir(parents=True)
    (root / "archive").mkdir()
    with sqlite3.connect(root / "erp.db") as erp:
        erp.execute("CREATE TABLE customers (code TEXT PRIMARY KEY, name TEXT)")
    config = IN_FLOWS.format(url=hub_url)
    (root / "erpbridge.yaml").write_text(config, encoding="utf-8")

    # the hub holds RECORDS customers before either target exists
    rows = "".join(f"C{i:06d},Customer {i}\n" for i in range(RECORDS))
    (root / "inbox" / "customers.csv").write_text("id,name\n" + rows, encoding="utf-8")
    engine = open_store(hub_url)
    loaded = FlowRunner(load_config(root / "erpbridge.yaml"), engine).run("files-in")
    assert (loaded.status, loaded.created) == ("succeeded", RECORDS)
    _, api_key = create_client(engine, "ops", {"admin", "events"})

    # both targets connected: the served hub (worker + API) knows them, nothing is queued yet
    config += OUT_FLOWS
    args = ("--interval", "0.2", "--lease", "5")
    hub: ServedHub
    with serve_hub(root, config, command="run", args=args) as hub:
        assert open_deliveries(engine) == 0
        live = LiveChanges(hub.url, api_key, RECORDS)
        live.thread.start()

        # the archive's backfill is killed (SIGKILL) a third of the way in
        with (root / "backfill-1.log").open("wb") as log:
            first = subprocess.Popen(
                erpbridge(root, "backfill", "to-archive", *PENDING),
                stdout=log,
                stderr=subprocess.STDOUT,
                env=ENV,
            )
        wait_for(
            lambda: (backfill_run(engine, "to-archive") or _Zero).read >= RECORDS // 3,
            "a third of the archive's backfill",
            timeout=300,
        )
        first.send_signal(signal.SIGKILL)
        first.wait(10)
        killed = backfill_run(engine, "to-archive")
        # cut short, not closed (shown interrupted once a process sees its pid is gone)
        assert killed.status in ("running", "interrupted") and killed.read < RECORDS

        # the ERP's backfill runs to its end while the hub delivers; then the hub is killed
        erp_fill = subprocess.run(
            erpbridge(root, "backfill", "to-erp", *PENDING),
            capture_output=True,
            text=True,
            timeout=600,
            env=ENV,
        )
        assert erp_fill.returncode == 0, erp_fill.stdout + erp_fill.stderr
        assert f"{RECORDS} record(s) looked at" in erp_fill.stdout
        hub.stop(signal.SIGKILL)

    with serve_hub(root, config, command="run", args=args) as hub:
        live.url = hub.url
        # the archive's backfill again: it resumes after its last committed batch
        again = subprocess.run(
            erpbridge(root, "backfill", "to-archive"),
            capture_output=True,
            text=True,
            timeout=600,
            env=ENV,
        )
        assert again.returncode == 0, again.stdout + again.stderr
        assert f"(resumed run {killed.id})" in again.stdout, again.stdout
        resumed = backfill_run(engine, "to-archive")
        assert resumed.status == "succeeded"
        assert killed.read + resumed.read == RECORDS  # no batch looked at twice
        time.sleep(2)
        live.stop.set()
        live.thread.join(15)
        wait_for(lambda: open_deliveries(engine) == 0, "every delivery out", timeout=600)

    assert len(live.acked) > 50, "the live stream kept going during the backfill"
    with engine.connect() as conn:
        hub_names = {
            r.key: orjson.loads(r.payload)["name"]
            for r in conn.execute(select(records.c.key, records.c.payload))
        }
        versions = defaultdict(set)
        for key, payload in conn.execute(select(audit.c.key, audit.c.payload)):
            versions[key].add(orjson.loads(payload)["name"])
        dead = conn.execute(
            select(func.count()).select_from(deliveries).where(deliveries.c.state == "dead")
        ).scalar_one()
        order = conn.execute(
            select(deliveries.c.flow, deliveries.c.key, deliveries.c.version)
            .where(deliveries.c.state == "delivered")
            .order_by(deliveries.c.delivered_at, deliveries.c.id)
        ).all()
    assert len(hub_names) == RECORDS
    assert all(name in versions[key] for key, name in live.acked)  # no acknowledged change lost
    assert dead == 0

    archived: dict[str, str] = {}
    for path in sorted((root / "archive").glob("*.json")):  # named by time: in writing order
        for record in orjson.loads(path.read_bytes()):
            archived[record["code"]] = record["name"]  # the last one written stands
    assert archived == hub_names  # every record, at its current version
    with sqlite3.connect(root / "erp.db") as erp:
        in_erp = dict(erp.execute("SELECT code, name FROM customers").fetchall())
    assert in_erp == hub_names

    last: dict[tuple[str, str], int] = {}
    for flow, key, version in order:  # per record and target, versions went out in order
        assert version >= last.get((flow, key), 0), (flow, key, version, last[(flow, key)])
        last[(flow, key)] = version
    engine.dispose()


class _Zero:
    read = 0
