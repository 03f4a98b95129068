"""Benchmark: ``erpbridge reconcile`` of N keys (default 1 000 000) — time and peak memory.

A fresh SQLite hub in a temporary folder holds N ``account`` records (written straight into
the store's tables: loading is not what is measured), and an ERP database (SQLite, read by the
``sql`` transport like any channel) holds the same N accounts with differences sown in: every
1000th row changed (name and balance), 100 rows missing, 100 rows the hub lacks. Then one
reconciliation of the IN flow runs in this process, timed, with the process's peak resident
memory taken before and after (``ru_maxrss``; the set-up's own peak is reported apart, and
``--measure-only`` starts a fresh process that only reconciles, so the figure is the
reconciliation's alone).

The figures go to stderr; the last line on stdout is one JSON object (``keys``, ``seconds``,
``keys_per_s``, ``peak_rss_mb``, the counts found, ``ok``: the counts are exactly the sown
ones and the limits, 60 s and 150 MB, hold).
``.venv/bin/python bench/reconcile.py`` takes about a minute and a half with its set-up.
"""

from __future__ import annotations

import argparse
import json
import resource
import sqlite3
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

CONFIG = """
hub: {{database_url: "sqlite:///{root}/hub.db"}}
entities:
  account:
    key: [code]
    fields: {{code: {{type: string, required: true}}, name: string, balance: decimal}}
channels:
  erp: {{system: sql, options: {{url: "sqlite:///{root}/erp.db"}}}}
flows:
  - name: accounts-in
    channel: erp
    entity: account
    direction: in
    source: {{table: accounts}}
    key: code
    mapping: {{code: code, name: name, balance: balance}}
    reconcile: {{amounts: [balance], page_size: 5000}}
"""

CHANGED_EVERY = 1000
MISSING = 100
EXTRA = 100


def _log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def set_up(root: Path, keys: int) -> None:
    """Write the configuration, the hub's records and the ERP table."""
    from erpbridge.store import open_store
    from erpbridge.store.records import content_hash, dump_payload

    (root / "erpbridge.yaml").write_text(CONFIG.format(root=root), encoding="utf-8")
    open_store(f"sqlite:///{root}/hub.db").dispose()  # the schema
    hub = sqlite3.connect(root / "hub.db")
    erp = sqlite3.connect(root / "erp.db")
    erp.execute("CREATE TABLE accounts (code TEXT PRIMARY KEY, name TEXT, balance NUMERIC)")
    stamp = datetime.now(UTC).isoformat(sep=" ")
    chunk = 50_000
    for start in range(0, keys, chunk):
        hub_rows: list[tuple[Any, ...]] = []
        erp_rows: list[tuple[Any, ...]] = []
        for i in range(start, min(start + chunk, keys)):
            code, name, balance = f"A{i:08d}", f"Account {i}", f"{i % 997}.25"
            blob = dump_payload({"code": code, "name": name, "balance": balance})
            hub_rows.append(("account", code, 1, content_hash(blob), blob.decode(), stamp, stamp))
            if i < MISSING:
                continue  # the ERP lacks it
            if i % CHANGED_EVERY == 1:
                name, balance = f"{name} (edited)", f"{i % 997}.75"
            erp_rows.append((code, name, balance))
        hub.executemany(
            "INSERT INTO records (entity, key, version, content_hash, payload, created_at,"
            " updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
            hub_rows,
        )
        erp.executemany("INSERT INTO accounts VALUES (?, ?, ?)", erp_rows)
    erp.executemany(
        "INSERT INTO accounts VALUES (?, ?, ?)",
        [(f"B{i:08d}", f"Extra {i}", "1.00") for i in range(EXTRA)],
    )
    hub.commit()
    erp.commit()
    hub.close()
    erp.close()


def measure(root: Path) -> dict[str, Any]:
    """Reconcile once; the figures."""
    from erpbridge import load_config
    from erpbridge.engine.reconcile.run import Reconciler
    from erpbridge.store import open_store

    config = load_config(root / "erpbridge.yaml")
    engine = open_store(f"sqlite:///{root}/hub.db")
    before = _rss_mb()
    started = time.perf_counter()
    comparison = Reconciler(config, engine).reconcile(config.reconcile["accounts-in"], limit=100)
    seconds = time.perf_counter() - started
    comparison.close()
    report = comparison.report.as_json()
    return {
        "seconds": round(seconds, 2),
        "phases": {k: round(v, 2) for k, v in comparison.report.phases.items()},
        "rss_before_mb": round(before, 1),
        "peak_rss_mb": round(_rss_mb(), 1),
        "counts": report["counts"],
        "sums": report["sums"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keys", type=int, default=1_000_000)
    parser.add_argument("--measure-only", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure_only:
        print(orjson.dumps(measure(args.measure_only)).decode())
        return
    with tempfile.TemporaryDirectory(prefix="erpbridge-bench-reconcile-") as folder:
        root = Path(folder)
        started = time.perf_counter()
        set_up(root, args.keys)
        _log(f"set-up: {args.keys} keys on each side in {time.perf_counter() - started:.1f} s")
        done = subprocess.run(
            [sys.executable, __file__, "--measure-only", str(root)],
            capture_output=True,
            text=True,
            check=True,
        )
        figures = orjson.loads(done.stdout.splitlines()[-1])
    counts = figures["counts"]
    changed = len([i for i in range(MISSING, args.keys) if i % CHANGED_EVERY == 1])
    expected = {
        "hub": args.keys,
        "channel": args.keys - MISSING + EXTRA,
        "matched": args.keys - MISSING - changed,
        "missing_in_channel": MISSING,
        "missing_in_hub": EXTRA,
        "differing": changed,
        "duplicates": 0,
        "rejected": 0,
    }
    _log(
        f"reconciled {args.keys} keys in {figures['seconds']} s "
        f"({args.keys / figures['seconds']:.0f} keys/s), peak RSS {figures['peak_rss_mb']} MB "
        f"(after loading: {figures['rss_before_mb']} MB); phases {figures['phases']}; "
        f"counts {counts}"
    )
    ok = counts == expected and figures["seconds"] <= 60 and figures["peak_rss_mb"] <= 150
    if counts != expected:
        _log(f"counts differ from the sown differences: expected {expected}")
    print(
        json.dumps(
            {
                "keys": args.keys,
                "seconds": figures["seconds"],
                "keys_per_s": round(args.keys / figures["seconds"]),
                "peak_rss_mb": figures["peak_rss_mb"],
                "rss_before_mb": figures["rss_before_mb"],
                "phases": figures["phases"],
                "counts": counts,
                "sums": figures["sums"],
                "ok": ok,
            }
        )
    )


if __name__ == "__main__":
    main()
