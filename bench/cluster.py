"""Deliveries per second with 1, 2 and 4 worker hosts (network namespaces, scripts/cluster.sh).

One host runs PostgreSQL (hub, source and target databases); an IN flow reads ``--records``
products into the hub once; then for each number of worker hosts the same ledger is made due
again (every delivery back to ``pending``, the target emptied) and that many hosts, one
``erpbridge worker`` each, drain it into an append-only table of the target. Printed: hosts,
seconds, deliveries/s; the last line is one JSON object. Needs root (ip netns).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))

from cluster.hosts import DB, cluster, query  # noqa: E402 - the cluster helpers of the tests

BIN = Path(sys.executable).parent
CONFIG = f"""
hub: {{database_url: "postgresql+psycopg://postgres@{DB}:5432/hub"}}
channels:
  plm: {{system: sql, options: {{url: "postgresql+psycopg://postgres@{DB}:5432/source"}}}}
  erp: {{system: sql, transport: sqlwrite,
        options: {{url: "postgresql+psycopg://postgres@{DB}:5432/target"}}}}
flows:
  - {{name: products-in, channel: plm, entity: product, direction: in, key: sku,
     source: {{table: products}}, cursor: {{column: id, tiebreaker: id}}, batch_size: 5000,
     mapping: {{sku: sku, name: name}}}}
  - {{name: products-log, channel: erp, entity: product, direction: out,
     target: {{table: import_log, mode: append, delivery_id_column: delivery}},
     mapping: {{sku: sku, name: name}}}}
"""


def erpbridge(name: str, host: str, config: Path, *args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        ["ip", "netns", "exec", f"{name}-{host}", str(BIN / "erpbridge"), *args, "-c", str(config)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "ERPBRIDGE_DATABASE_URL": ""},
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--records", type=int, default=20_000)
    parser.add_argument("--hosts", default="1,2,4")
    args = parser.parse_args()
    counts = [int(n) for n in args.hosts.split(",")]
    name = f"eb{uuid.uuid4().hex[:6]}"
    workers = [f"w{n}" for n in range(1, max(counts) + 1)]
    figures: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="erpbridge-cluster-") as folder:
        config = Path(folder) / "erpbridge.yaml"
        config.write_text(CONFIG)
        try:
            cluster("up", name, "db", "api", *workers)
            cluster("pg-start", name, "db")
            for database in ("hub", "source", "target"):
                query(name, "postgres", f"CREATE DATABASE {database}")
            query(name, "source", "CREATE TABLE products (id int PRIMARY KEY, sku text, name text);"
                  " INSERT INTO products SELECT n, 'P-' || n, 'product ' || n"
                  f" FROM generate_series(1, {args.records}) n")  # fmt: skip
            query(name, "target", "CREATE TABLE import_log (seq bigserial PRIMARY KEY, sku text,"
                  " name text, delivery bigint)")  # fmt: skip
            for step in (("db", "upgrade"), ("sync", "products-in")):
                assert erpbridge(name, "api", config, *step).wait(timeout=600) == 0, step
            print(f"{args.records} deliveries per pass; PostgreSQL on its own host")
            print(f"{'hosts':>5} {'seconds':>8} {'deliveries/s':>13}")
            for count in counts:
                query(name, "hub", "UPDATE deliveries SET state = 'pending', attempts = 0,"
                      " lease_owner = NULL, lease_expires_at = NULL,"
                      " next_attempt_at = now()")  # fmt: skip
                query(name, "hub", "DELETE FROM delivery_attempts")
                query(name, "target", "TRUNCATE import_log")
                began = time.perf_counter()
                running = [erpbridge(name, host, config, "worker", "--interval", "0.2")
                           for host in workers[:count]]  # fmt: skip
                while query(name, "hub", "SELECT count(*) FROM deliveries"
                            " WHERE state <> 'delivered'")[0][0]:  # fmt: skip
                    time.sleep(0.5)
                seconds = time.perf_counter() - began
                for process in running:
                    process.terminate()
                    process.wait(timeout=30)
                (written,) = query(name, "target", "SELECT count(*) FROM import_log")[0]
                assert int(str(written)) >= args.records, written
                rate = args.records / seconds
                figures[f"deliveries_per_s_{count}_hosts"] = round(rate, 1)
                print(f"{count:>5} {seconds:>8.1f} {rate:>13.0f}")
        finally:
            cluster("down", name)
    print(json.dumps({"records": args.records, **figures}))


if __name__ == "__main__":
    main()
