"""The API host's load: a steady stream of product changes into the source database, and the
scheduler role (the IN flow run every half second) that turns them into hub versions.

    python loadgen.py CONFIG SOURCE_URL RATE SECONDS STATUS_FILE

Writes RATE changes per second for SECONDS (each a new revision of a random product, its ``seq``
from a sequence: commit order, the flow's cursor), keeps running the flow until one last run
after the load has read everything, and writes {"changes": n, "runs": n, "failed_runs": n} to
STATUS_FILE. A run that fails (the store restarting, say) is retried at the next tick, as the
scheduler of ``erpbridge run`` does.
"""

from __future__ import annotations

import json
import random
import sys
import threading
import time
from pathlib import Path

import psycopg

from erpbridge import FlowRunner, load_config
from erpbridge.store import open_store


def produce(url: str, rate: int, seconds: float, done: threading.Event, count: list[int]) -> None:
    rng = random.Random(7)
    tick = 0.1
    per_tick = max(1, round(rate * tick))
    started = time.monotonic()
    conn: psycopg.Connection[tuple[object, ...]] | None = None
    while time.monotonic() - started < seconds:
        due = started + tick * (count[1] + 1)
        try:
            if conn is None or conn.closed:
                conn = psycopg.connect(url, autocommit=True, connect_timeout=3)
            ids = rng.sample(range(1, 2001), per_tick)
            conn.execute(
                "UPDATE products SET rev = rev + 1, seq = nextval('product_seq'),"
                " name = 'product ' || id || ' rev ' || (rev + 1) WHERE id = ANY(%s)",
                (ids,),
            )
            count[0] += per_tick
        except psycopg.Error:
            conn = None  # the database restarting: the changes of this tick are not made
        count[1] += 1
        time.sleep(max(0.0, due - time.monotonic()))
    done.set()


def main() -> None:
    config_path, url, rate, seconds, status = sys.argv[1:6]
    config = load_config(Path(config_path))
    engine = open_store(config.database_url())
    done = threading.Event()
    count = [0, 0]
    producer = threading.Thread(
        target=produce, args=(url, int(rate), float(seconds), done, count), daemon=True
    )
    producer.start()
    runs = failed = 0
    last = False
    while not last:
        last = done.is_set()  # one more run after the load has stopped
        try:
            result = FlowRunner(config, engine).run("products-in")
            runs += 1
            failed += result.status != "succeeded"
            last = last and result.status == "succeeded"
        except Exception as exc:  # noqa: BLE001 - a store outage: the next tick tries again
            print(f"run failed: {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
            failed += 1
            last = False
        time.sleep(0.5)
    Path(status).write_text(json.dumps({"changes": count[0], "runs": runs, "failed_runs": failed}))


if __name__ == "__main__":
    main()
