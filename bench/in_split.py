"""Benchmark: where the CPU of one IN sync goes, on bench/compare.py's order source.

Generates (or reuses) ``bench/compare.py``'s source of N order rows (``--rows``, default
100 000) in ``bench/.data/in_split``, then runs ``erpbridge sync`` of its initial-migration
flow into a fresh SQLite hub in this process, ``--repeat`` times (default 1), and splits each
run's CPU seconds (``time.process_time``) into:

- ``read``: the SQL source's pages (query, driver, row dicts, source records);
- ``map_validate``: the rest of preparing a batch (mapping, validation, card numbers, keys);
- ``json_hash``: the canonical JSON of the payloads and their content hashes;
- ``store``: the batch's transaction (records, bindings, audit, rejections, cursor, commit);
- ``other``: the rest of the command (configuration, opening the store, the run's rows);
- ``gc``: the cyclic collector's share of all of the above (``gc.callbacks``).

The split wraps the engine's functions, so it costs a little itself (about 0.2 µs per record
and wrapped call). Prints one JSON object per run; the last line is the median of each figure.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import os
import statistics
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from compare import CONFIG, STATUS_CODES, make_source  # noqa: E402  (bench/ is not a package)

DATA = HERE / ".data" / "in_split"


class Split:
    """CPU seconds per part, gathered by wrapping the engine's functions."""

    def __init__(self) -> None:
        self.spent: dict[str, float] = defaultdict(float)
        self._gc_began = 0.0

    def timed(self, name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            began = time.process_time()
            try:
                return fn(*args, **kwargs)
            finally:
                self.spent[name] += time.process_time() - began

        return wrapper

    def pages(self, read: Callable[..., Iterator[Any]]) -> Callable[..., Iterator[Any]]:
        def wrapper(*args: Any, **kwargs: Any) -> Iterator[Any]:
            pages = read(*args, **kwargs)
            while True:
                began = time.process_time()
                try:
                    page = next(pages)
                except StopIteration:
                    return
                finally:
                    self.spent["read"] += time.process_time() - began
                yield page

        return wrapper

    def collector(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._gc_began = time.process_time()
        else:
            self.spent["gc"] += time.process_time() - self._gc_began


def one_run(config: Path, hub: Path) -> dict[str, float]:
    """One ``erpbridge sync`` into a fresh hub, its CPU split into parts."""
    from erpbridge.cli import main
    from erpbridge.engine import runner
    from erpbridge.transports.sql.read import SqlTransport

    for old in hub.parent.glob(hub.name + "*"):
        old.unlink()
    split = Split()
    # The JSON and hash functions the runner calls (dump_payloads since issue 18's columnar
    # step, dump_payload before it: the bench also splits older trees).
    hashing = [n for n in ("dump_payload", "dump_payloads", "content_hash") if hasattr(runner, n)]
    saved = {name: getattr(runner, name) for name in hashing}
    saved_job = (runner._Job.prepare, runner._Job._write)
    saved_read = SqlTransport.read
    for name in hashing:
        setattr(runner, name, split.timed("json_hash", saved[name]))
    runner._Job.prepare = split.timed("prepare", runner._Job.prepare)  # type: ignore[method-assign]
    runner._Job._write = split.timed("store", runner._Job._write)  # type: ignore[method-assign]
    SqlTransport.read = split.pages(SqlTransport.read)  # type: ignore[method-assign]
    gc.callbacks.append(split.collector)
    sys.argv = ["erpbridge", "sync", "orders_initial", "-c", str(config)]
    began = time.process_time()
    try:
        with open(os.devnull, "w") as sink, contextlib.redirect_stdout(sink):
            try:
                main()
            except SystemExit as exc:
                if exc.code:
                    raise
    finally:
        total = time.process_time() - began
        gc.callbacks.remove(split.collector)
        for name, fn in saved.items():
            setattr(runner, name, fn)
        runner._Job.prepare, runner._Job._write = saved_job  # type: ignore[method-assign]
        SqlTransport.read = saved_read  # type: ignore[method-assign]
    spent = split.spent
    parts = {
        "read": spent["read"],
        "map_validate": spent["prepare"] - spent["json_hash"],
        "json_hash": spent["json_hash"],
        "store": spent["store"],
    }
    parts["other"] = total - sum(parts.values())
    return {"total": total, **parts, "gc": spent["gc"]}


def main() -> None:
    """Parse the command line, make the source, run and print the split."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000, help="Order rows to migrate.")
    parser.add_argument("--batch-size", type=int, default=5000, help="Rows per batch.")
    parser.add_argument("--repeat", type=int, default=1, help="Runs (each into a fresh hub).")
    parser.add_argument("--data", type=Path, default=DATA, help="Working folder.")
    args = parser.parse_args()
    data: Path = args.data.resolve()
    data.mkdir(parents=True, exist_ok=True)
    source, hub = data / "source.db", data / "hub.db"
    made = make_source(source, args.rows)
    print(f"source: {args.rows:,} rows ({'generated' if made else 'reused'})", file=sys.stderr)
    status_map = "{" + ", ".join(f"{k}: {v}" for k, v in STATUS_CODES.items()) + "}"
    config = data / "hub.yaml"
    config.write_text(
        CONFIG.format(
            hub_url=f"sqlite:///{hub}",
            source=source,
            batch_size=args.batch_size,
            status_map=status_map,
        ),
        encoding="utf-8",
    )
    runs = []
    for _ in range(args.repeat):
        figures = {k: round(v, 3) for k, v in one_run(config, hub).items()}
        figures["load_average"] = round(os.getloadavg()[0], 2)
        print(json.dumps(figures))
        runs.append(figures)
    median = {k: round(statistics.median(r[k] for r in runs), 3) for k in runs[0]}
    print(json.dumps({"rows": args.rows, "median_of": len(runs), **median}))


if __name__ == "__main__":
    main()
