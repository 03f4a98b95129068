"""Benchmark: the back office's dashboard and deliveries pages on a big hub store.

1. Fills a fresh SQLite hub store (``bench/.data/ui/hub.db``) with N records (default
   1 000 000, each bound to its channel), F flows (default 100: half IN, half OUT, over ten
   channels) with 100 runs each, and D deliveries (default 100 000: mostly delivered, some
   pending, failed and dead, spread over the OUT flows). Rows go in with bulk inserts; the
   hub's own code writes none of them, so loading is not what is measured.
2. Serves the app in-process (FastAPI with the back office mounted, httpx ``ASGITransport``),
   signs in as an admin through the login form, warms up, then times each page R times
   (default 50): the dashboard (``/ui/``) and its live fragment, the flows page, the
   deliveries page (all, ``state=dead``, one flow) and the runs page. The time is the server's
   side: from the request to the last byte of the answer, no network.

Prints p50/p99/max per page; the last line is one JSON object with the figures. ``--keep``
keeps the store and a kept store of the same size is reused (loading is skipped).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

HERE = Path(__file__).resolve().parent
DATA = HERE / ".data" / "ui"
PASSWORD = "bench-password-123"
CHANNELS = 10
STATES = (("delivered", 0.90), ("pending", 0.04), ("failed", 0.02), ("dead", 0.03))


def _config(flows: int) -> str:
    lines = ["channels:"]
    for c in range(CHANNELS):
        lines += [f"  ch{c}:", "    system: folder", f"    options: {{path: ch{c}}}"]
    lines.append("flows:")
    for f in range(flows):
        direction = "in" if f % 2 == 0 else "out"
        lines += [
            f"  - name: flow-{f:03d}",
            f"    channel: ch{f % CHANNELS}",
            "    entity: customer",
            f"    direction: {direction}",
            "    trigger: {interval: 15m}" if direction == "in" else "    trigger: immediate",
        ]
        if direction == "in":
            lines += ['    source: {pattern: "*.csv", format: csv}', "    key: code"]
        else:
            lines += ['    target: {format: json, name: "{key}.json"}']
    return "\n".join(lines) + "\n"


def _load(url: str, records_n: int, flows_n: int, deliveries_n: int) -> float:
    from sqlalchemy import insert

    from erpbridge.store import open_store
    from erpbridge.store.tables import bindings, deliveries, records, runs
    from erpbridge.store.users import add_user

    started = time.perf_counter()
    engine = open_store(url)
    at = datetime.now(UTC)
    rng = random.Random(7)
    chunk = 20_000
    with engine.begin() as conn:
        for start in range(0, records_n, chunk):
            rows = []
            brows = []
            for i in range(start, min(records_n, start + chunk)):
                key = f"C{i:07d}"
                payload = json.dumps({"code": key, "name": f"Customer {i}", "city": "Bremen"})
                rows.append(
                    {
                        "id": i + 1,
                        "entity": "customer",
                        "key": key,
                        "version": 1,
                        "content_hash": f"{i:032x}",
                        "payload": payload,
                        "origin_channel": f"ch{i % CHANNELS}",
                        "created_at": at - timedelta(days=2),
                        "updated_at": at - timedelta(seconds=i % 86_400),
                    }
                )
                brows.append(
                    {
                        "channel": f"ch{i % CHANNELS}",
                        "entity": "customer",
                        "external_id": key,
                        "record_id": i + 1,
                        "created_at": at,
                        "updated_at": at,
                    }
                )
            conn.execute(insert(records), rows)
            conn.execute(insert(bindings), brows)
        run_rows = []
        for f in range(0, flows_n, 2):
            for r in range(100):
                begun = at - timedelta(minutes=15 * (100 - r))
                failed = f % 10 == 0 and r > 95
                run_rows.append(
                    {
                        "flow": f"flow-{f:03d}",
                        "channel": f"ch{f % CHANNELS}",
                        "entity": "customer",
                        "mode": "incremental",
                        "status": "failed" if failed else "succeeded",
                        "dry_run": False,
                        "started_at": begun,
                        "finished_at": begun + timedelta(seconds=2),
                        "duration_s": 2.0,
                        "read": 100,
                        "created": 10,
                        "updated": 20,
                        "unchanged": 70,
                        "rejected": 1 if r % 7 == 0 else 0,
                        "error": "connection refused" if failed else None,
                    }
                )
        conn.execute(insert(runs), run_rows)
        out_flows = [f for f in range(flows_n) if f % 2 == 1]
        for start in range(0, deliveries_n, chunk):
            rows = []
            for i in range(start, min(deliveries_n, start + chunk)):
                f = out_flows[i % len(out_flows)]
                record = rng.randrange(records_n) + 1
                state = rng.choices([s for s, _ in STATES], [w for _, w in STATES])[0]
                created = at - timedelta(seconds=rng.randrange(3 * 86_400))
                rows.append(
                    {
                        "flow": f"flow-{f:03d}",
                        "channel": f"ch{f % CHANNELS}",
                        "entity": "customer",
                        "record_id": record,
                        "key": f"C{record - 1:07d}",
                        "version": 1,
                        "ordering_key": f"flow-{f:03d}/customer/C{record - 1:07d}",
                        "idempotency_key": f"flow-{f:03d}/{i}",
                        "priority": 0,
                        "state": state,
                        "attempts": 10 if state == "dead" else 1,
                        "max_attempts": 10,
                        "next_attempt_at": created,
                        "fence": 1,
                        "last_error": "HTTP 503" if state in ("failed", "dead") else None,
                        "created_at": created,
                        "updated_at": created,
                        "delivered_at": created if state == "delivered" else None,
                    }
                )
            conn.execute(insert(deliveries), rows)
    add_user(engine, "admin", PASSWORD, "admin")
    engine.dispose()
    return time.perf_counter() - started


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def _measure(root: Path, url: str, repeat: int) -> dict[str, dict[str, float]]:
    import httpx

    from erpbridge.api import build_hub, create_app
    from erpbridge.config.loader import load_config
    from erpbridge.store import open_store
    from erpbridge.ui.mount import mount_ui

    config = load_config(root / "erpbridge.yaml")
    engine = open_store(url, upgrade=True)  # a kept store of an older schema is upgraded
    app = mount_ui(create_app(build_hub(config, engine)))
    transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 40000))
    pages = {
        "dashboard": "/ui/",
        "dashboard live": "/ui/dashboard/live",
        "flows": "/ui/flows",
        "deliveries": "/ui/deliveries",
        "deliveries dead": "/ui/deliveries?state=dead",
        "deliveries of a flow": "/ui/deliveries?flow=flow-051",
        "deliveries older than 1d": "/ui/deliveries?age=1d",
        "runs": "/ui/runs",
    }
    figures: dict[str, dict[str, float]] = {}
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as http:
        form = await http.get("/ui/login")
        token = re.search(r'name="csrf" value="([^"]+)"', form.text)
        assert token, form.text
        data = {"name": "admin", "password": PASSWORD, "csrf": token.group(1), "next": "/ui/"}
        signed = await http.post("/ui/login", data=data)
        assert signed.status_code == 303, signed.text
        for name, path in pages.items():
            for _ in range(3):  # warm-up
                assert (await http.get(path)).status_code == 200, path
            times = []
            for _ in range(repeat):
                begun = time.perf_counter()
                answer = await http.get(path)
                times.append((time.perf_counter() - begun) * 1000)
                assert answer.status_code == 200, path
            figures[name] = {
                "p50_ms": round(statistics.median(times), 1),
                "p99_ms": round(_percentile(times, 0.99), 1),
                "max_ms": round(max(times), 1),
            }
            row = figures[name]
            print(
                f"{name:28s} p50 {row['p50_ms']:7.1f} ms  p99 {row['p99_ms']:7.1f} ms  "
                f"max {row['max_ms']:7.1f} ms",
                flush=True,
            )
    engine.dispose()
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--flows", type=int, default=100)
    parser.add_argument("--deliveries", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=50)
    parser.add_argument("--keep", action="store_true", help="keep the store for the next run")
    parser.add_argument(
        "--fresh",
        action="store_true",
        help="read the flows' activity afresh at every request (no 2 s memory): the cost of "
        "each dashboard read itself",
    )
    args = parser.parse_args()
    os.environ.setdefault("ERPBRIDGE_SECRET_KEY", "5PhPpXTyJ7gHXc1ZKfNc8L1pyAd0fiNhcnb2WKgWcyU=")
    DATA.mkdir(parents=True, exist_ok=True)
    size = f"{args.records}-{args.flows}-{args.deliveries}"
    database = DATA / "hub.db"
    marker = DATA / "size"
    url = f"sqlite:///{database}"
    (DATA / "erpbridge.yaml").write_text(_config(args.flows), encoding="utf-8")
    load_s = 0.0
    if not (database.exists() and marker.exists() and marker.read_text() == size):
        for stale in DATA.glob("hub.db*"):
            stale.unlink()
        print(
            f"loading {args.records} records, {args.flows} flows, {args.deliveries} deliveries ...",
            flush=True,
        )
        load_s = _load(url, args.records, args.flows, args.deliveries)
        marker.write_text(size)
        print(f"loaded in {load_s:.1f} s", flush=True)
    if args.fresh:
        from erpbridge.ui.pages import activity

        activity.FRESH_S = 0.0
    figures = asyncio.run(_measure(DATA, url, args.repeat))
    if not args.keep:
        for stale in DATA.glob("hub.db*"):
            stale.unlink()
        marker.unlink(missing_ok=True)
    worst = max(row["p99_ms"] for row in figures.values())
    result = {
        "records": args.records,
        "flows": args.flows,
        "deliveries": args.deliveries,
        "fresh": args.fresh,
        "load_avg_1m": round(os.getloadavg()[0], 2),
        "load_s": round(load_s, 1),
        "pages": figures,
        "worst_p99_ms": worst,
        "under_300ms": worst < 300,
    }
    print(json.dumps(result))
    sys.exit(0)


if __name__ == "__main__":
    main()
