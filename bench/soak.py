"""Soak: a steady stream of changes through a hub with retention, and the hub's size over time.

K products (default 10 000) in a SQLite source are all changed once per round; each round the IN
flow reads the changes, a worker delivers them to a SQL target (``sqlwrite``), and the prune of
``hub.retention`` runs with short ages (every rule ``1s``, the audit included): the hub's file
(with its WAL) must stop growing once the first rounds have filled the pages that pruning then
frees. Rounds go on until ``--changes`` (default 1 000 000) changes have gone in and out.

Printed: per tenth of the run, changes so far, hub size, changes/s; a comparison of the size at
10 % and at the end; the last line is one JSON object with the figures. The same run without
pruning is ``--no-prune`` (the size then grows with every round).
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

CONFIG = """\
hub:
  database_url: "sqlite:///hub.db"
  retention: {deliveries: 1s, attempts: 1s, runs: 1s, rejections: 1s, audit: 1s,
              schedule_fires: 1s, batch_size: 5000}
channels:
  plm: {system: sql, options: {url: "sqlite:///plm.db"}}
  erp: {system: sql, transport: sqlwrite, options: {url: "sqlite:///erp.db"}}
flows:
  - name: products-in
    channel: plm
    entity: product
    direction: in
    source: {table: products}
    key: sku
    cursor: {column: updated_at, tiebreaker: id, safety_window: 0}
    batch_size: 5000
    mapping: {sku: sku, name: name, description: price}
  - name: products-out
    channel: erp
    entity: product
    direction: out
    target: {table: staging, key: [sku]}
    mapping: {sku: sku, name: name, description: price}
"""


def hub_bytes(root: Path) -> int:
    return sum(p.stat().st_size for p in root.glob("hub.db*"))


def change_all(root: Path, keys: int, round_no: int) -> None:
    with sqlite3.connect(root / "plm.db") as db:
        if round_no == 0:
            db.execute(
                "CREATE TABLE products (id INTEGER PRIMARY KEY, sku TEXT, name TEXT, price TEXT,"
                " updated_at INTEGER)"
            )
            db.executemany(
                "INSERT INTO products VALUES (?, ?, ?, ?, ?)",
                ((n, f"P-{n:06d}", f"product {n} r0", "1.00", 0) for n in range(keys)),
            )
        else:
            db.execute(
                "UPDATE products SET name = printf('product %d r%d', id, ?),"
                " price = printf('%d.00', ? + id % 7), updated_at = ?",
                (round_no, round_no, round_no),
            )
    db.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--changes", type=int, default=1_000_000)
    parser.add_argument("--keys", type=int, default=10_000)
    parser.add_argument("--no-prune", action="store_true")
    args = parser.parse_args()

    from erpbridge import FlowRunner, load_config
    from erpbridge.engine.worker import Worker
    from erpbridge.store import open_store
    from erpbridge.store.retention import prune

    rounds = max(1, args.changes // args.keys)
    with tempfile.TemporaryDirectory(prefix="erpbridge-soak-") as folder:
        root = Path(folder)
        (root / "erpbridge.yaml").write_text(CONFIG)
        with sqlite3.connect(root / "erp.db") as db:
            db.execute("CREATE TABLE staging (sku TEXT PRIMARY KEY, name TEXT, price TEXT)")
        db.close()
        config = load_config(root / "erpbridge.yaml")
        policy = config.model.hub.retention
        engine = open_store(config.database_url())
        runner = FlowRunner(config, engine)
        worker = Worker(config, engine, batch_size=500)
        sizes: list[tuple[int, int]] = []
        prune_s = 0.0
        started = time.perf_counter()
        print(f"{rounds} rounds of {args.keys} changes, prune {'off' if args.no_prune else 'on'}")
        print(f"{'changes':>10} {'hub MB':>8} {'changes/s':>10}")
        for round_no in range(rounds):
            change_all(root, args.keys, round_no)
            result = runner.run("products-in")
            if result.status != "succeeded":
                sys.exit(f"round {round_no}: the run {result.status}: {result.error}")
            while worker.run_once().claimed:
                pass
            if not args.no_prune:
                time.sleep(1.0)  # every age is 1 s: what this round finished is old enough
                began = time.perf_counter()
                prune(engine, policy.ages(), batch_size=policy.batch_size)
                prune_s += time.perf_counter() - began
            done = (round_no + 1) * args.keys
            sizes.append((done, hub_bytes(root)))
            if (round_no + 1) % max(1, rounds // 10) == 0 or round_no + 1 == rounds:
                rate = done / (time.perf_counter() - started)
                print(f"{done:>10} {sizes[-1][1] / 1e6:>8.1f} {rate:>10.0f}")
        elapsed = time.perf_counter() - started
        with sqlite3.connect(root / "erp.db") as db:
            delivered = db.execute(
                "SELECT count(*) FROM staging WHERE name LIKE ?", (f"% r{rounds - 1}",)
            ).fetchone()[0]
        db.close()
        engine.dispose()
    early = sizes[max(0, len(sizes) // 10 - 1)][1]
    final = sizes[-1][1]
    print(
        f"hub at 10 %: {early / 1e6:.1f} MB, at the end: {final / 1e6:.1f} MB "
        f"(x{final / early:.2f}); the target holds the last round for {delivered}/{args.keys}"
    )
    print(
        json.dumps(
            {
                "changes": rounds * args.keys,
                "keys": args.keys,
                "prune": not args.no_prune,
                "hub_mb_at_10pct": round(early / 1e6, 2),
                "hub_mb_final": round(final / 1e6, 2),
                "growth_after_10pct": round(final / early, 3),
                "changes_per_s": round(rounds * args.keys / elapsed),
                "prune_s_total": round(prune_s, 1),
                "target_current": delivered == args.keys,
            }
        )
    )


if __name__ == "__main__":
    main()
