"""A dead version retried by hand never goes out after a newer one (issue 11, item 2).

v1 of a product cannot be mapped for the targets (its description is required there) and goes
``dead``; v2 fixes it and is delivered: a dead head does not block its key. The operator then
relaxes the mapping and runs ``erpbridge retry --dead``. Sending v1 now would put the older
version into the target and bind the record to it; instead v1 is cancelled as superseded, on
a folder target and on a ``sqlwrite`` target without a ``version_column`` alike, while a dead
version with nothing newer delivered is sent as before. Everything runs as a user runs it:
``erpbridge sync``, ``erpbridge worker --once`` and ``erpbridge retry`` as processes.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import orjson
from sqlalchemy import select

from erpbridge.store import open_store
from erpbridge.store.tables import deliveries
from hubprocess import serve_hub

CONFIG = """
hub: {{database_url: "{url}"}}
channels:
  plm: {{system: sql, options: {{url: "sqlite:///plm.db"}}}}
  erp: {{system: sql, transport: sqlwrite, options: {{url: "sqlite:///erp.db"}}}}
  drop: {{system: folder, options: {{path: drop}}}}
flows:
  - {{name: products-in, channel: plm, entity: product, direction: in, key: sku,
     source: {{table: products}}, mapping: {{sku: sku, name: name, description: description}}}}
  - name: products-erp
    channel: erp
    entity: product
    direction: out
    target: {{table: staging, key: [sku]}}
    mapping: {{sku: sku, name: name, description: {{from: description, required: {required}}}}}
  - name: products-drop
    channel: drop
    entity: product
    direction: out
    target: {{format: json, name: "{{entity}}-{{key}}.json"}}
    mapping: {{sku: sku, name: name, description: {{from: description, required: {required}}}}}
"""


def cli(folder: Path, *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "erpbridge", *args, "-c", str(folder / "erpbridge.yaml")],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "ERPBRIDGE_DATABASE_URL": "", "COLUMNS": "300"},
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def configure(folder: Path, hub_url: str, *, required: bool) -> None:
    text = CONFIG.format(url=hub_url, required=str(required).lower())
    (folder / "erpbridge.yaml").write_text(text, encoding="utf-8")


def source(folder: Path, rows: list[tuple[str, str, str | None]]) -> None:
    with sqlite3.connect(folder / "plm.db") as db:
        db.execute("DELETE FROM products")
        db.executemany("INSERT INTO products VALUES (?, ?, ?)", rows)
    db.close()


def ledger(hub_url: str) -> list[tuple[str, str, int, str, str | None]]:
    engine = open_store(hub_url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                select(
                    deliveries.c.flow,
                    deliveries.c.key,
                    deliveries.c.version,
                    deliveries.c.state,
                    deliveries.c.last_error,
                ).order_by(deliveries.c.flow, deliveries.c.key, deliveries.c.version)
            )
            return [tuple(r) for r in rows]  # type: ignore[misc]
    finally:
        engine.dispose()


def staged(folder: Path) -> list[tuple[str, str, str | None]]:
    with sqlite3.connect(folder / "erp.db") as db:
        rows = db.execute("SELECT sku, name, description FROM staging ORDER BY sku").fetchall()
    db.close()
    return rows


def dropped(folder: Path, key: str) -> dict[str, str]:
    data: dict[str, str] = orjson.loads((folder / "drop" / f"product-{key}.json").read_bytes())
    return data


def test_retry_of_a_dead_version_never_overwrites_a_newer_delivered_one(
    tmp_path: Path, hub_url: str
) -> None:
    (tmp_path / "drop").mkdir()
    with sqlite3.connect(tmp_path / "plm.db") as db:
        db.execute("CREATE TABLE products (sku TEXT PRIMARY KEY, name TEXT, description TEXT)")
    db.close()
    with sqlite3.connect(tmp_path / "erp.db") as db:
        db.execute("CREATE TABLE staging (sku TEXT PRIMARY KEY, name TEXT, description TEXT)")
    db.close()
    configure(tmp_path, hub_url, required=True)

    # v1 of both products lacks the description the targets need: dead on both flows
    source(tmp_path, [("P-1", "bolt v1", None), ("P-2", "nut v1", None)])
    cli(tmp_path, "sync", "products-in")
    cli(tmp_path, "worker", "--once")
    # P-1 gets a fixed v2 meanwhile, delivered although v1 is dead; P-2 does not change
    source(tmp_path, [("P-1", "bolt v2", "M8 bolt"), ("P-2", "nut v1", None)])
    cli(tmp_path, "sync", "products-in")
    cli(tmp_path, "worker", "--once")
    before = ledger(hub_url)
    assert [(f, k, v, s) for f, k, v, s, _ in before] == [
        ("products-drop", "P-1", 1, "dead"),
        ("products-drop", "P-1", 2, "delivered"),
        ("products-drop", "P-2", 1, "dead"),
        ("products-erp", "P-1", 1, "dead"),
        ("products-erp", "P-1", 2, "delivered"),
        ("products-erp", "P-2", 1, "dead"),
    ]

    # the operator relaxes the mapping and retries everything dead
    configure(tmp_path, hub_url, required=False)
    out = cli(tmp_path, "retry", "--dead")
    assert "2 deliver(y/ies) due again" in out
    assert "2 cancelled as superseded" in out
    cli(tmp_path, "worker", "--once")

    after = ledger(hub_url)
    assert [(f, k, v, s) for f, k, v, s, _ in after] == [
        ("products-drop", "P-1", 1, "cancelled"),
        ("products-drop", "P-1", 2, "delivered"),
        ("products-drop", "P-2", 1, "delivered"),
        ("products-erp", "P-1", 1, "cancelled"),
        ("products-erp", "P-1", 2, "delivered"),
        ("products-erp", "P-2", 1, "delivered"),
    ]
    reasons = {e for f, k, v, s, e in after if s == "cancelled"}
    assert reasons == {
        "superseded: version 2 of this record was already delivered (or is being delivered) "
        "by this flow; retrying the older version would put it back"
    }
    # both targets hold P-1's newest version and P-2's only one
    assert staged(tmp_path) == [("P-1", "bolt v2", "M8 bolt"), ("P-2", "nut v1", None)]
    assert dropped(tmp_path, "P-1") == {"sku": "P-1", "name": "bolt v2", "description": "M8 bolt"}
    assert dropped(tmp_path, "P-2")["name"] == "nut v1"

    # retrying the cancelled one by id is refused the same way: nothing goes back
    (cancelled_id,) = ids_of(hub_url, "products-erp", "P-1", 1)
    out = cli(tmp_path, "retry", str(cancelled_id))
    assert "0 deliver(y/ies) due again" in out and "1 cancelled as superseded" in out
    cli(tmp_path, "worker", "--once")
    assert staged(tmp_path)[0] == ("P-1", "bolt v2", "M8 bolt")


def test_the_api_retries_honour_the_same_rule(tmp_path: Path, hub_url: str) -> None:
    """``POST /deliveries/{id}/retry`` and ``/deliveries/retry-dead`` of a served ``erpbridge
    api``: the older dead version is cancelled as superseded and said so in the answer."""
    (tmp_path / "drop").mkdir()
    with sqlite3.connect(tmp_path / "plm.db") as db:
        db.execute("CREATE TABLE products (sku TEXT PRIMARY KEY, name TEXT, description TEXT)")
    db.close()
    with sqlite3.connect(tmp_path / "erp.db") as db:
        db.execute("CREATE TABLE staging (sku TEXT PRIMARY KEY, name TEXT, description TEXT)")
    db.close()
    configure(tmp_path, hub_url, required=True)
    source(tmp_path, [("P-1", "bolt v1", None), ("P-2", "nut v1", None)])
    cli(tmp_path, "sync", "products-in")
    cli(tmp_path, "worker", "--once")
    source(tmp_path, [("P-1", "bolt v2", "M8 bolt"), ("P-2", "nut v1", None)])
    cli(tmp_path, "sync", "products-in")
    cli(tmp_path, "worker", "--once")
    key = cli(tmp_path, "clients", "add", "ops", "--scope", "admin").splitlines()[-1]
    configure(tmp_path, hub_url, required=False)
    text = (tmp_path / "erpbridge.yaml").read_text(encoding="utf-8")
    (erp_v1,) = ids_of(hub_url, "products-erp", "P-1", 1)

    with serve_hub(tmp_path, text) as hub, hub.client(headers={"X-API-Key": key}) as http:
        single = http.post(f"/api/v1/deliveries/{erp_v1}/retry")
        bulk = http.post("/api/v1/deliveries/retry-dead")

    assert (single.status_code, single.json()) == (200, {"changed": 0, "superseded": 1})
    # left: P-1 v1 of the drop flow (superseded) and P-2 v1 of both flows (nothing newer)
    assert (bulk.status_code, bulk.json()) == (200, {"changed": 2, "superseded": 1})
    cli(tmp_path, "worker", "--once")
    assert staged(tmp_path) == [("P-1", "bolt v2", "M8 bolt"), ("P-2", "nut v1", None)]
    assert dropped(tmp_path, "P-1")["name"] == "bolt v2"
    states = {(f, k, v): s for f, k, v, s, _ in ledger(hub_url)}
    assert states[("products-erp", "P-1", 1)] == states[("products-drop", "P-1", 1)] == "cancelled"


def ids_of(hub_url: str, flow: str, key: str, version: int) -> list[int]:
    engine = open_store(hub_url)
    try:
        with engine.connect() as conn:
            return list(
                conn.execute(
                    select(deliveries.c.id).where(
                        deliveries.c.flow == flow,
                        deliveries.c.key == key,
                        deliveries.c.version == version,
                    )
                ).scalars()
            )
    finally:
        engine.dispose()
