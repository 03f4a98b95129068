"""Benchmark: backfill of two new OUT flows (a ``sqlwrite`` table and a folder) on a hub holding
N records, and the latency of live changes with and without a backfill running.

A fresh SQLite hub in a temporary folder is loaded with N customers (a folder IN flow, one run),
then ``erpbridge run`` serves it (worker + API; live changes come in through
``POST /api/v1/events``, which wakes the worker in-process):

1. Baseline: ``--live`` changes (default 100, 100 ms apart) to records, each timed from the
   event's 202 to its row in the ``sqlwrite`` target holding the new value (polled every 2 ms).
2. Backfill: ``erpbridge backfill to-erp`` and ``erpbridge backfill to-archive`` (folder,
   ``file_per: batch``) run one after the other while the same live stream runs, timed, until
   every delivery is out; the clock runs from the first backfill's start to then. Checked
   afterwards: N rows in the table, every record's current name on both targets, none dead.

The figures go to stderr as they come; the last line on stdout is one JSON object
(``records``, ``deliveries_per_s``, ``live_p50_ms``/``live_p99_ms`` without and
``backfill_live_p50_ms``/``backfill_live_p99_ms`` with the backfill, ``p99_ratio``,
``load_avg``). ``.venv/bin/python bench/backfill.py --records 20000`` takes a few minutes;
the issue's 1 000 000 takes hours on a 2-core machine, where the worker is the limit.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import orjson
from cryptography.fernet import Fernet
from sqlalchemy import func, select

from erpbridge import FlowRunner, load_config, open_store
from erpbridge.store.apiclients import create_client
from erpbridge.store.states import OPEN_DELIVERY_STATES
from erpbridge.store.tables import deliveries, records

CONFIG = """
hub: {{database_url: "sqlite:///{root}/hub.db"}}
channels:
  shop: {{system: platform}}
  files: {{system: folder, options: {{path: inbox}}}}
  archive: {{system: folder, options: {{path: archive}}}}
  erp: {{system: sql, transport: sqlwrite, options: {{url: "sqlite:///{root}/erp.db"}}}}
flows:
  - {{name: customers-in, channel: shop, entity: customer, direction: in, trigger: immediate,
     mapping: {{code: {{from: id, required: true}}, name: name}}}}
  - {{name: files-in, channel: files, entity: customer, direction: in,
     source: {{pattern: "*.csv"}}, key: id, mapping: {{code: id, name: name}}}}
  - {{name: to-archive, channel: archive, entity: customer, direction: out, trigger: immediate,
     target: {{format: json, file_per: batch}}, mapping: {{code: code, name: name}}}}
  - {{name: to-erp, channel: erp, entity: customer, direction: out, trigger: immediate,
     target: {{table: customers, key: [code]}}, mapping: {{code: code, name: name}}}}
"""


def say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


class Live:
    """Changes records one at a time and times each from the 202 to its row in the table."""

    def __init__(self, url: str, key: str, erp: Path, keys: int) -> None:
        self.url, self.key, self.erp, self.keys = url, key, erp, keys
        self.serial = 0

    def run(self, count: int, every_s: float, until: threading.Event | None = None) -> list[float]:
        """Time ``count`` changes, or (``until`` given) changes until it is set."""
        latencies: list[float] = []
        erp = sqlite3.connect(self.erp, timeout=30)
        with httpx.Client(headers={"X-API-Key": self.key}, timeout=30) as http:
            while (len(latencies) < count) if until is None else not until.is_set():
                self.serial += 1
                key, name = f"C{(self.serial * 7919) % self.keys:07d}", f"live {self.serial}"
                answer = http.post(
                    f"{self.url}/api/v1/events/customers-in", json={"id": key, "name": name}
                )
                assert answer.status_code == 202, answer.text
                accepted = time.monotonic()
                while True:
                    row = erp.execute(
                        "SELECT name FROM customers WHERE code = ?", (key,)
                    ).fetchone()
                    if row is not None and row[0] == name:
                        break
                    if time.monotonic() - accepted > 120:
                        raise RuntimeError(f"live change {key} not delivered within 120 s")
                    time.sleep(0.002)
                latencies.append((time.monotonic() - accepted) * 1000)
                time.sleep(every_s)
        erp.close()
        return latencies


def cli(root: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-m", "erpbridge", *args, "-c", str(root / "erpbridge.yaml")]
    return subprocess.run(argv, env=env, capture_output=True, text=True, check=True)


def open_count(engine: Any) -> int:
    with engine.connect() as conn:
        query = select(func.count()).where(deliveries.c.state.in_(OPEN_DELIVERY_STATES))
        return int(conn.execute(query.select_from(deliveries)).scalar_one())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=20_000)
    parser.add_argument("--live", type=int, default=100, help="live changes timed without backfill")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="bench_backfill_"))
    (root / "inbox").mkdir()
    (root / "archive").mkdir()
    with sqlite3.connect(root / "erp.db") as erp:
        erp.execute("CREATE TABLE customers (code TEXT PRIMARY KEY, name TEXT)")
    (root / "erpbridge.yaml").write_text(CONFIG.format(root=root), encoding="utf-8")
    lines = "".join(f"C{i:07d},Customer {i}\n" for i in range(args.records))
    (root / "inbox" / "customers.csv").write_text("id,name\n" + lines, encoding="utf-8")
    env = {**os.environ, "ERPBRIDGE_SECRET_KEY": Fernet.generate_key().decode(),
           "ERPBRIDGE_DATABASE_URL": ""}  # fmt: skip
    config = load_config(root / "erpbridge.yaml")
    engine = open_store(config.database_url())
    started = time.monotonic()
    loaded = FlowRunner(config, engine).run("files-in")
    say(f"loaded {loaded.created} records in {time.monotonic() - started:.1f} s")
    with engine.begin() as conn:  # the targets are new: what the load queued is not theirs
        conn.execute(deliveries.delete())
    _, key = create_client(engine, "bench", {"events"})
    port = free_port()
    log = (root / "run.log").open("wb")
    server = subprocess.Popen(
        [sys.executable, "-m", "erpbridge", "run", "-c", str(root / "erpbridge.yaml"),
         "--port", str(port), "--interval", "0.2"],
        env=env, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        while True:
            try:
                httpx.get(f"{url}/healthz", timeout=2)
                break
            except httpx.HTTPError:
                time.sleep(0.2)
        live = Live(url, key, root / "erp.db", args.records)
        baseline = live.run(args.live, 0.1)
        say(f"live without backfill: p50 {statistics.median(baseline):.0f} ms, "
            f"p99 {percentile(baseline, 0.99):.0f} ms")  # fmt: skip

        timed: list[float] = []
        finished = threading.Event()
        stream = threading.Thread(target=lambda: timed.extend(live.run(0, 0.1, finished)))
        begun = time.monotonic()
        stream.start()
        for flow in ("to-erp", "to-archive"):
            done = cli(root, env, "backfill", flow)
            say(done.stdout.strip().splitlines()[-1])
        while open_count(engine):
            time.sleep(0.2)
        took = time.monotonic() - begun
        finished.set()
        stream.join()
        say(f"backfill of {2 * args.records} deliveries: {took:.1f} s, "
            f"{2 * args.records / took:.0f}/s; live during it: p50 {statistics.median(timed):.0f}"
            f" ms, p99 {percentile(timed, 0.99):.0f} ms")  # fmt: skip
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(60)
        log.close()
    with engine.connect() as conn:
        hub = {r.key: orjson.loads(r.payload)["name"] for r in conn.execute(select(records))}
        dead = conn.execute(
            select(func.count()).select_from(deliveries).where(deliveries.c.state == "dead")
        ).scalar_one()
    with sqlite3.connect(root / "erp.db") as erp:
        in_erp = dict(erp.execute("SELECT code, name FROM customers").fetchall())
    archived: dict[str, str] = {}
    for path in sorted((root / "archive").glob("*.json")):
        for item in orjson.loads(path.read_bytes()):
            archived[item["code"]] = item["name"]
    assert dead == 0 and in_erp == hub and archived == hub, "a target is incomplete"
    result = {
        "records": args.records,
        "deliveries": 2 * args.records,
        "deliveries_per_s": round(2 * args.records / took),
        "live_p50_ms": round(statistics.median(baseline)),
        "live_p99_ms": round(percentile(baseline, 0.99)),
        "backfill_live_p50_ms": round(statistics.median(timed)),
        "backfill_live_p99_ms": round(percentile(timed, 0.99)),
        "p99_ratio": round(percentile(timed, 0.99) / percentile(baseline, 0.99), 2),
        "load_avg": round(os.getloadavg()[0], 1),
    }
    engine.dispose()
    print(json.dumps(result))


if __name__ == "__main__":
    main()
