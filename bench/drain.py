"""Benchmark: how fast ``erpbridge worker`` drains a backlog of deliveries, per target and store.

For each combination asked for (``--stores``, ``--targets``, ``--workers``): a fresh hub (a
SQLite file, or a new PostgreSQL database on ``--pg-url``, dropped afterwards) is loaded with
``--records`` customers through a folder IN flow while no worker runs, so the ledger holds that
many pending deliveries of one immediate OUT flow; then K ``erpbridge worker`` processes start
and the clock runs until every delivery is delivered. Targets: ``folder`` (``format: json``,
``file_per: record``: one file per delivery, each fsynced before its rename) and ``sqlwrite``
(an upsert into a SQLite table). Checked afterwards: every record in the target, none dead.

Reported per combination: deliveries per second (wall, from the first delivery seen to the
last; the workers' start is left out), their CPU seconds over the same span (user + system, from
/proc) and CPU microseconds per delivery, and the load average. The machine is shared: read the
wall figures with the load and the CPU figures beside them. The last line on stdout is one JSON
object.

``.venv/bin/python bench/drain.py`` (SQLite, both targets, 1 worker, 5 000 records: about a
minute); ``--stores sqlite,postgresql --pg-url URL --workers 1,2`` for the scaled shape.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, func, select
from sqlalchemy.engine import make_url

from erpbridge import FlowRunner, load_config, open_store
from erpbridge.store.tables import deliveries

CONFIG = """
hub: {{database_url: "{url}"}}
channels:
  files: {{system: folder, options: {{path: inbox}}}}
  archive: {{system: folder, options: {{path: out}}}}
  erp: {{system: sql, transport: sqlwrite, options: {{url: "sqlite:///{root}/erp.db"}}}}
flows:
  - {{name: files-in, channel: files, entity: customer, direction: in,
     source: {{pattern: "*.csv"}}, key: id, batch_size: 5000, mapping: {{code: id, name: name}}}}
  - {out}
"""
OUT = {
    "folder": "{name: out, channel: archive, entity: customer, direction: out, trigger: "
    "immediate, target: {format: json, file_per: record}, mapping: {code: code, name: name}}",
    "sqlwrite": "{name: out, channel: erp, entity: customer, direction: out, trigger: immediate, "
    "target: {table: customers, key: [code]}, mapping: {code: code, name: name}}",
}


def say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def cpu_s(pid: int) -> float:
    """User + system CPU seconds of a live process."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextlib.contextmanager
def database(store: str, root: Path, pg_url: str | None) -> Iterator[str]:
    """The hub's URL: a SQLite file in ``root`` or a fresh PostgreSQL database."""
    if store == "sqlite":
        yield f"sqlite:///{root}/hub.db"
        return
    if pg_url is None:
        raise SystemExit("--pg-url is needed for the postgresql store")
    name = f"bench_drain_{uuid.uuid4().hex[:12]}"
    admin = create_engine(pg_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    try:
        yield make_url(pg_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


def drain(store: str, target: str, workers: int, count: int, pg_url: str | None) -> dict[str, Any]:
    root = Path(tempfile.mkdtemp(prefix="bench_drain_"))
    try:
        with database(store, root, pg_url) as url:
            return _drain(root, url, store, target, workers, count)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _drain(root: Path, url: str, store: str, target: str, k: int, count: int) -> dict[str, Any]:
    for folder in ("inbox", "out"):
        (root / folder).mkdir()
    with sqlite3.connect(root / "erp.db") as erp:
        erp.execute("CREATE TABLE customers (code TEXT PRIMARY KEY, name TEXT)")
    config_path = root / "erpbridge.yaml"
    config_path.write_text(CONFIG.format(url=url, root=root, out=OUT[target]), encoding="utf-8")
    rows = "".join(f"C{i:07d},Customer {i}\n" for i in range(count))
    (root / "inbox" / "customers.csv").write_text("id,name\n" + rows, encoding="utf-8")
    engine = open_store(url)
    FlowRunner(load_config(config_path), engine).run("files-in")

    def delivered() -> int:
        with engine.connect() as conn:
            query = select(func.count()).where(deliveries.c.state == "delivered")
            return int(conn.execute(query.select_from(deliveries)).scalar_one())

    env = {**os.environ, "ERPBRIDGE_LOG_LEVEL": "warning", "ERPBRIDGE_DATABASE_URL": ""}
    command = [sys.executable, "-m", "erpbridge", "worker", "-c", str(config_path),
               "--interval", "0.2"]  # fmt: skip
    logs = [(root / f"worker-{i}.log").open("wb") for i in range(k)]
    began = time.perf_counter()
    procs = [subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
             for log in logs]  # fmt: skip
    first: tuple[float, int, float] | None = None  # when the first was out, how many, CPU
    try:
        while (done := delivered()) < count:
            for i, proc in enumerate(procs):
                if proc.poll() is not None:
                    raise SystemExit(f"worker {i} exited with {proc.returncode}")
            if done and first is None:
                first = (time.perf_counter(), done, sum(cpu_s(p.pid) for p in procs))
            time.sleep(0.05)
        ended = time.perf_counter()
        used = sum(cpu_s(proc.pid) for proc in procs)
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGINT)
        for proc in procs:
            proc.wait(30)
        for log in logs:
            log.close()
    with engine.connect() as conn:
        dead = conn.execute(
            select(func.count()).select_from(deliveries).where(deliveries.c.state == "dead")
        ).scalar_one()
    engine.dispose()
    if target == "folder":
        landed = sum(1 for p in (root / "out").iterdir() if not p.name.startswith("."))
    else:
        with sqlite3.connect(root / "erp.db") as erp:
            landed = erp.execute("SELECT count(*) FROM customers").fetchone()[0]
    assert dead == 0 and landed == done == count, f"{landed} in the target, {dead} dead"
    # Timed from the first delivery seen: the workers' start (imports, configuration) is not
    # delivery work. Without a first sighting (all out within one poll) the whole run counts.
    at, before, startup_cpu = first or (began, 0, 0.0)
    seconds, cpu = ended - at, used - startup_cpu
    result = {
        "store": store,
        "target": target,
        "workers": k,
        "deliveries": count,
        "seconds": round(seconds, 2),
        "per_s": round((count - before) / seconds),
        "worker_cpu_s": round(cpu, 2),
        "cpu_us_per_delivery": round(cpu / (count - before) * 1e6),
        "startup_s": round(at - began, 2),
        "load_avg": round(os.getloadavg()[0], 1),
    }
    say(f"{store:10} {target:8} {k} worker(s): {count} in {seconds:.1f} s after the first = "
        f"{result['per_s']:,}/s, worker CPU {cpu:.1f} s ({result['cpu_us_per_delivery']} µs per "
        f"delivery), load {result['load_avg']}")  # fmt: skip
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=5000)
    parser.add_argument("--stores", default="sqlite", help="sqlite, postgresql or both")
    parser.add_argument("--targets", default="folder,sqlwrite")
    parser.add_argument("--workers", default="1", help="worker counts, e.g. 1,2")
    parser.add_argument("--pg-url", help="a PostgreSQL server for the postgresql store")
    args = parser.parse_args()
    results = [
        drain(store, target, int(k), args.records, args.pg_url)
        for store in args.stores.split(",")
        for target in args.targets.split(",")
        for k in args.workers.split(",")
    ]
    print(json.dumps({"results": results}))


if __name__ == "__main__":
    main()
