"""Benchmark: the store's write path alone (``upsert_records``), without source read or mapping.

Writes N mapped order records (the payload ``bench/compare.py``'s mapping makes) in batches of
``--batch-size``, one transaction each, into a fresh hub: a full pass into the empty entity, then
10 % of them changed. Prints one JSON line: rows/s and CPU seconds of both phases, the hub's size
(SQLite) and the process's peak RSS. ``--url`` picks the hub (default: a SQLite file in a
temporary folder); a PostgreSQL URL must name an empty database.

    .venv/bin/python bench/store_write.py --rows 100000
    .venv/bin/python bench/store_write.py --rows 100000 --url postgresql+psycopg://…/empty_db
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from erpbridge.store import open_store
from erpbridge.store.records import Incoming, Lineage, content_hash, dump_payload, upsert_records

STATUSES = ("new", "confirmed", "shipped", "invoiced", "cancelled")


def _payload(i: int, changed: bool) -> dict[str, Any]:
    return {
        "source_id": i,
        "number": f"SO-{i:08}",
        "customer_code": f"C-{i * 7 % 10000:05}",
        "order_date": f"20{19 + i % 6}-{1 + i % 12:02}-{1 + i % 28:02}",
        "currency": ("EUR", "CHF", "USD")[i % 3],
        "total_cents": i * 37 % 5_000_000 + (1 if changed else 0),
        "status": STATUSES[(i + changed) % 5],
        "po_number": f"PO-{i * 13 % 10_000_000:07}",
        "sales_channel": ("web", "edi", "phone", "shop")[i % 4],
        "weight_kg": f"{i % 1000}.{i % 997:03}",
        "updated_at": "2020-01-01T00:00:00Z",
    }


def _item(i: int, changed: bool = False) -> Incoming:
    payload = _payload(i, changed)
    blob = dump_payload(payload)
    return Incoming(payload["number"], payload, blob, content_hash(blob), str(i), f"orders#id={i}")


def _phase(engine: Any, numbers: range | list[int], batch: int, changed: bool) -> dict[str, float]:
    lineage = Lineage("bench_order", "source", "orders_initial", None, datetime.now(UTC))
    wall = cpu = 0.0
    todo = list(numbers)
    for start in range(0, len(todo), batch):
        items = [_item(i, changed) for i in todo[start : start + batch]]  # not timed: mapping's
        began, cpu_began = time.perf_counter(), time.process_time()
        with engine.begin() as conn:
            upsert_records(conn, lineage, items)
        wall += time.perf_counter() - began
        cpu += time.process_time() - cpu_began
    return {
        "rows_per_s": round(len(todo) / wall),
        "seconds": round(wall, 2),
        "cpu_s": round(cpu, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--batch-size", type=int, default=5000)
    parser.add_argument("--url", help="The hub store (default: a fresh SQLite file).")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="store-write-"))
    url = args.url or f"sqlite:///{folder / 'hub.db'}"
    engine = open_store(url)
    full = _phase(engine, range(1, args.rows + 1), args.batch_size, changed=False)
    incremental = _phase(engine, list(range(1, args.rows + 1, 10)), args.batch_size, changed=True)
    engine.dispose()
    result: dict[str, Any] = {"rows": args.rows, "full": full, "incremental_10pct": incremental}
    if args.url is None:
        db = folder / "hub.db"
        result["hub_mb"] = round(sum(p.stat().st_size for p in folder.iterdir()) / 1048576, 1)
        result["bytes_per_record"] = round(db.stat().st_size / args.rows)
        for path in folder.iterdir():
            path.unlink()
        folder.rmdir()
    result["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    result["load_average"] = [round(x, 2) for x in os.getloadavg()]
    print(json.dumps(result))


if __name__ == "__main__":
    main()
