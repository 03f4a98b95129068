"""Benchmark: the initial migration of Tryton customers into the hub (preset
``customers-from-tryton``).

1. Starts a throwaway Tryton with ``scripts/tryton.sh`` on port ``--port`` (58300, its own data
   folder) unless ``--url`` names a running one (``http://admin:<password>@host:port/<db>``).
2. Loads ``--customers`` parties (10 000), each with an address, an e-mail and a phone contact
   mechanism and every fifth in category ``E-mail: newsletter``, through batched JSON-RPC
   ``create`` calls of ``--batch`` parties (500): Tryton's fast path, one transaction per call.
3. Writes an ``erpbridge.yaml`` with the Tryton channel and the preset ``customers-from-tryton``
   and runs it into a fresh SQLite hub through ``FlowRunner``: its first run reads every party,
   page by page (the preset's 500), each page one committed batch — the migration. Then runs it
   again (incremental: only what changed since, here nothing) to show the ongoing cost.
4. Checks that the hub holds one customer per party loaded.

The last line printed is one JSON object with the figures (``rows``, ``load_s``,
``migration_s``, ``rows_per_s``, ``incremental_s``, ``tryton_read_s``: the same reads sent
straight to Tryton, for what the hub adds).
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import orjson
import yaml
from sqlalchemy import func, select

from erpbridge import FlowRunner, load_config, open_store
from erpbridge.store.tables import records
from erpbridge.systems import system_types

ROOT = Path(__file__).resolve().parent.parent


class Tryton:
    """A bare JSON-RPC client, logged in as the URL's user."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        self.url = url
        self.base_url = f"{parts.scheme}://{parts.hostname}:{parts.port}/"
        self.database = parts.path.strip("/")
        self.username, self.password = str(parts.username), str(parts.password)
        self.http = httpx.Client(timeout=600)
        uid, session, *_ = self._post(
            "common.db.login", [self.username, {"password": self.password}, "en"], ""
        )
        token = base64.b64encode(f"{self.username}:{uid}:{session}".encode()).decode()
        self.auth = f"Session {token}"
        self.context = self._post("model.res.user.get_preferences", [True, {}], self.auth)

    def call(self, model: str, method: str, *params: Any) -> Any:
        return self._post(f"model.{model}.{method}", [*params, self.context], self.auth)

    def id_of(self, model: str, field: str, value: str) -> int:
        (found,) = self.call(model, "search", [[field, "=", value]], 0, 1, None)
        return int(found)

    def _post(self, method: str, params: list[Any], auth: str) -> Any:
        body = orjson.dumps({"id": 1, "method": method, "params": params})
        answer = self.http.post(
            f"{self.base_url}{self.database}/rpc/",
            content=body,
            headers={"Content-Type": "application/json", "Authorization": auth},
        )
        answer.raise_for_status()
        data = orjson.loads(answer.content)
        if data.get("error"):
            raise RuntimeError(f"{method}: {data['error']}")
        return data["result"]


@contextlib.contextmanager
def tryton_server(url: str | None, port: int) -> Iterator[str]:
    """The URL of a running Tryton: the given one, or a throwaway one stopped afterwards."""
    if url:
        yield url
        return
    env = {**os.environ, "ERPBRIDGE_TRYTON_PORT": str(port)}
    script = str(ROOT / "scripts" / "tryton.sh")
    started = subprocess.run(
        ["bash", script, "start"], env=env, check=True, capture_output=True, text=True
    )
    try:
        yield started.stdout.strip().splitlines()[-1]
    finally:
        subprocess.run(["bash", script, "stop"], env=env, check=False, capture_output=True)


def load_customers(tryton: Tryton, count: int, batch: int, tag: str) -> float:
    """``count`` parties with address, e-mail and phone; returns the seconds it took."""
    country = tryton.id_of("country.country", "code", "DE")
    newsletter = tryton.id_of("party.category", "name", "E-mail: newsletter")
    started = time.perf_counter()
    for start in range(0, count, batch):
        end = min(start + batch, count)
        rows = [_party(f"{tag}{i:06d}", i, country, newsletter) for i in range(start, end)]
        tryton.call("party.party", "create", rows)
        print(f"  loaded {end} / {count} parties", file=sys.stderr)
    return time.perf_counter() - started


def _party(code: str, i: int, country: int, newsletter: int) -> dict[str, Any]:
    address = {
        "street": f"Musterstr. {i % 200 + 1}",
        "postal_code": f"{10000 + i % 89999}",
        "city": "Berlin",
        "country": country,
    }
    contacts = [
        {"type": "email", "value": f"{code.lower()}@example.com"},
        {"type": "phone", "value": f"+49 30 {1000000 + i}"},
    ]
    return {
        "code": code,
        "name": f"Bench customer {i}",
        "addresses": [["create", [address]]],
        "contact_mechanisms": [["create", contacts]],
        "categories": [["add", [newsletter]]] if i % 5 == 0 else [],
    }


def migrate(tryton: Tryton, folder: Path) -> tuple[float, float, int, int]:
    """Run the preset twice into a fresh hub: (first run s, second run s, read, customers)."""
    os.environ["BENCH_TRYTON_PASSWORD"] = tryton.password
    document = {
        "hub": {"database_url": f"sqlite:///{folder / 'hub.db'}"},
        "channels": {
            "tryton": {
                "system": "tryton",
                "options": {
                    "base_url": tryton.base_url,
                    "database": tryton.database,
                    "username": tryton.username,
                    "timeout_s": 600,
                },
                "credentials": {"password": "${BENCH_TRYTON_PASSWORD}"},
            }
        },
        "flows": [{"preset": "customers-from-tryton", "channel": "tryton"}],
    }
    path = folder / "erpbridge.yaml"
    path.write_text(yaml.safe_dump(document), encoding="utf-8")
    config = load_config(path)
    engine = open_store(config.database_url())
    try:
        runner = FlowRunner(config, engine)
        started = time.perf_counter()
        first = runner.run("customers-from-tryton")
        first_s = time.perf_counter() - started
        if first.status != "succeeded":
            raise RuntimeError(f"the migration failed: {first.error}")
        started = time.perf_counter()
        second = runner.run("customers-from-tryton")
        second_s = time.perf_counter() - started
        if second.status != "succeeded":
            raise RuntimeError(f"the incremental run failed: {second.error}")
        with engine.connect() as conn:
            customers = conn.execute(
                select(func.count()).select_from(records).where(records.c.entity == "customer")
            ).scalar_one()
    finally:
        engine.dispose()
    return first_s, second_s, first.read, int(customers)


def raw_read(tryton: Tryton, page: int = 500) -> float:
    """Seconds Tryton alone takes to answer the preset's reads (same fields, same pages)."""
    presets = system_types()["tryton"].presets()
    fields = presets["customers-from-tryton"]["source"]["fields"]
    started, after = time.perf_counter(), 0
    while True:
        domain = [["id", ">", after]]
        rows = tryton.call("party.party", "search_read", domain, 0, page, [["id", "ASC"]], fields)
        if len(rows) < page:
            return time.perf_counter() - started
        after = rows[-1]["id"]


def main() -> None:
    """Parse the arguments, load, migrate, print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--customers", type=int, default=10_000)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--url", help="a running Tryton (default: start a throwaway one)")
    parser.add_argument("--port", type=int, default=58300)
    args = parser.parse_args()
    tag = f"B{uuid.uuid4().hex[:6]}-"
    with tryton_server(args.url, args.port) as url, tempfile.TemporaryDirectory() as tmp:
        tryton = Tryton(url)
        before = len(tryton.call("party.party", "search", [], 0, None, None))
        load_s = load_customers(tryton, args.customers, args.batch, tag)
        migration_s, incremental_s, read, customers = migrate(tryton, Path(tmp))
        tryton_s = raw_read(tryton)
    if customers < args.customers or read != before + args.customers:
        raise SystemExit(
            f"the hub holds {customers} customers after reading {read}; expected "
            f"{before + args.customers}"
        )
    figures = {
        "rows": read,
        "load_s": round(load_s, 1),
        "load_rows_per_s": round(args.customers / load_s),
        "migration_s": round(migration_s, 1),
        "rows_per_s": round(read / migration_s),
        "incremental_s": round(incremental_s, 2),
        "tryton_read_s": round(tryton_s, 1),
    }
    print(
        f"loaded {args.customers} parties into Tryton in {load_s:.1f} s; migrated {read} "
        f"customers into the hub in {migration_s:.1f} s ({read / migration_s:.0f} rows/s); "
        f"the next (incremental) run took {incremental_s:.2f} s; Tryton alone answers the "
        f"same reads in {tryton_s:.1f} s"
    )
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
