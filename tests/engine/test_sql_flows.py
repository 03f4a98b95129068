"""IN flows from a real SQL source (an MES/ERP database file) into the hub, on both hub dialects:
cursor safety, crash resume, resumable initial migration, booking fold, a source that is down."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from sqlalchemy import Engine, func, select

from erpbridge import FlowRunner, load_config, open_store
from erpbridge.store.tables import bindings, cursors, records, runs

T0 = datetime(2024, 5, 1, 6, 0, 0)

CONFIG = """
hub: {{database_url: "{url}"}}
channels:
  mes:
    system: sql
    options: {{url: "sqlite:///mes.db"}}
flows:
  - name: orders-in
    channel: mes
    entity: production_order
    direction: in
    source: {{table: production_orders}}
    key: id
    # No window: these runs count exactly what a resume at the (value, id) boundary re-reads;
    # the default window's re-reads are tests/integration/test_sql_late_commits.py's part.
    cursor: {{column: updated_at, tiebreaker: id, safety_window: 0}}
    batch_size: 4
    mapping:
      order_code: order_code
      product_code: {{from: product_code, transforms: [trim]}}
      machine_code: machine_code
      start: start
      end: end
      quantity: quantity
  - name: orders-migration
    channel: mes
    entity: production_order
    direction: in
    trigger: initial
    source: {{table: production_orders}}
    cursor: {{column: updated_at, tiebreaker: id, safety_window: 0}}
    batch_size: 4
    mapping: {{order_code: order_code, machine_code: machine_code, start: start, end: end}}
  - name: bookings-in
    channel: mes
    entity: production_order
    direction: in
    source:
      structure: bookings
      table: bookings
      bookings: {{id: id}}
    cursor: {{column: timestamp, tiebreaker: id}}
    batch_size: 50
"""


def make_source(path: Path, orders: int) -> None:
    with sqlite3.connect(path) as db:
        db.execute(
            "CREATE TABLE production_orders (id INTEGER PRIMARY KEY, order_code TEXT, "
            "product_code TEXT, machine_code TEXT, start TEXT, end TEXT, quantity NUMERIC, "
            "updated_at TEXT)"
        )
        db.execute(
            "CREATE TABLE bookings (id INTEGER PRIMARY KEY, timestamp TEXT, order_code TEXT, "
            "product_code TEXT, machine_code TEXT, event TEXT)"
        )
        add_orders(db, range(1, orders + 1))


def add_orders(db: sqlite3.Connection, ids: Any, stamp: datetime | None = None) -> None:
    """Orders whose updated_at is ``stamp``, or T0 + id minutes when not given."""
    db.executemany(
        "INSERT INTO production_orders VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        [
            (
                i,
                f"AB-{i:05d}",
                " 25-1002 ",
                "M1",
                (T0 + timedelta(hours=i)).isoformat(),
                (T0 + timedelta(hours=i, minutes=40)).isoformat(),
                100 + i,
                (stamp or T0 + timedelta(minutes=i)).isoformat(),
            )
            for i in ids
        ],
    )


@pytest.fixture
def setup(tmp_path: Path, hub_url: str) -> Iterator[tuple[Path, Engine]]:
    make_source(tmp_path / "mes.db", 10)
    config_path = tmp_path / "erpbridge.yaml"
    config_path.write_text(CONFIG.format(url=hub_url), encoding="utf-8")
    engine = open_store(hub_url)
    yield config_path, engine
    engine.dispose()


def count(engine: Engine, table: Any, *where: Any) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table).where(*where)).scalar_one())


def record(engine: Engine, key: str) -> dict[str, Any]:
    with engine.connect() as conn:
        text = conn.execute(select(records.c.payload).where(records.c.key == key)).scalar_one()
    result: dict[str, Any] = orjson.loads(text)
    return result


class Interrupted(Exception):
    """Stands for a process dying between two batches."""


def stop_after(batches: int) -> Any:
    seen = []

    def hook(counts: Any) -> None:
        seen.append(counts)
        if len(seen) == batches:
            raise Interrupted

    return hook


def test_rows_land_mapped_and_bound(setup: tuple[Path, Engine]) -> None:
    config_path, engine = setup
    result = FlowRunner(load_config(config_path), engine).run("orders-in")

    assert (result.status, result.read, result.created) == ("succeeded", 10, 10)
    assert record(engine, "AB-00003") == {
        "order_code": "AB-00003",
        "product_code": "25-1002",
        "machine_code": "M1",
        "start": "2024-05-01T09:00:00Z",
        "end": "2024-05-01T09:40:00Z",
        "quantity": "103",
    }
    with engine.connect() as conn:
        external = conn.execute(
            select(bindings.c.external_id)
            .join(records, records.c.id == bindings.c.record_id)
            .where(records.c.key == "AB-00003")
        ).scalar_one()
    assert external == "3"


def test_late_rows_at_the_boundary_are_not_skipped(setup: tuple[Path, Engine]) -> None:
    config_path, engine = setup
    runner = FlowRunner(load_config(config_path), engine)
    runner.run("orders-in")
    with sqlite3.connect(config_path.parent / "mes.db") as db:
        # committed late, with the boundary value of the cursor (row 10's): '>' would skip it
        add_orders(db, [11], T0 + timedelta(minutes=10))
        db.execute(
            "UPDATE production_orders SET machine_code = 'M2', updated_at = ? WHERE id = 4",
            ((T0 + timedelta(minutes=30)).isoformat(),),
        )

    second = runner.run("orders-in")

    assert (second.created, second.updated) == (1, 1)
    assert second.unchanged >= 1  # the boundary rows were read again and found unchanged
    assert record(engine, "AB-00004")["machine_code"] == "M2"
    assert count(engine, records) == 11
    third = runner.run("orders-in")
    assert (third.created, third.updated) == (0, 0)


def test_crash_resumes_at_the_last_committed_batch(setup: tuple[Path, Engine]) -> None:
    config_path, engine = setup
    runner = FlowRunner(load_config(config_path), engine)

    with pytest.raises(Interrupted):
        runner.run("orders-in", progress=stop_after(2))

    assert count(engine, records) == 8  # two committed batches of four
    with engine.connect() as conn:
        crashed = conn.execute(select(runs).order_by(runs.c.id)).all()[-1]
    assert crashed.status == "failed" and crashed.read == 8
    resumed = runner.run("orders-in")
    assert resumed.cursor_before is not None
    # only the rest, from the committed cursor; the boundary row (8) is read again, unchanged
    assert (resumed.read, resumed.created, resumed.unchanged) == (3, 2, 1)
    assert count(engine, records) == 10
    assert count(engine, bindings) == 10


def test_initial_migration_is_resumable_and_hands_over_to_incremental(
    setup: tuple[Path, Engine],
) -> None:
    config_path, engine = setup
    runner = FlowRunner(load_config(config_path), engine)
    with pytest.raises(Interrupted):
        runner.run("orders-migration", progress=stop_after(1))
    with engine.connect() as conn:
        state = conn.execute(select(cursors).where(cursors.c.flow == "orders-migration")).one()
    assert state.full_pass is not None and state.value is None

    finished = runner.run("orders-migration")

    assert finished.mode == "full" and finished.cursor_before is not None
    assert (finished.created, count(engine, records)) == (6, 10)
    with engine.connect() as conn:
        state = conn.execute(select(cursors).where(cursors.c.flow == "orders-migration")).one()
    assert state.full_pass is None and state.value is not None
    with sqlite3.connect(config_path.parent / "mes.db") as db:
        add_orders(db, [11])
    incremental = runner.run("orders-migration")  # the migration is done: now incremental
    assert incremental.mode == "incremental"
    assert (incremental.read, incremental.created, incremental.unchanged) == (2, 1, 1)


def test_bookings_fold_into_production_orders(setup: tuple[Path, Engine]) -> None:
    config_path, engine = setup
    with sqlite3.connect(config_path.parent / "mes.db") as db:
        db.executemany(
            "INSERT INTO bookings (timestamp, order_code, product_code, machine_code, event) "
            "VALUES (?, ?, ?, ?, ?)",
            [
                ("2022-01-11 06:27:00", "AB-12345", "25-1002", "M1", "START"),
                ("2022-01-11 08:23:55", "AB-12345", "25-1002", "M1", "END"),
                ("2022-01-11 12:10:00", "AB-67890", "25-1002", "M1", "START"),
                ("2022-01-11 13:00:00", "AB-99999", "25-1003", "M2", "END"),
            ],
        )
    runner = FlowRunner(load_config(config_path), engine)

    first = runner.run("bookings-in")

    assert (first.status, first.created) == ("succeeded", 3)
    done = record(engine, "AB-12345")
    assert (done["status"], done["start"], done["end"]) == (
        "finished",
        "2022-01-11T06:27:00Z",
        "2022-01-11T08:23:55Z",
    )
    assert record(engine, "AB-67890")["status"] == "running"
    orphan = record(engine, "AB-99999")
    assert orphan["status"] == "incomplete" and "without START" in orphan["issues"][0]
    assert any("AB-99999" in w for w in first.warnings)
    with sqlite3.connect(config_path.parent / "mes.db") as db:
        db.execute(
            "INSERT INTO bookings (timestamp, order_code, product_code, machine_code, event)"
            " VALUES ('2022-01-11 17:37:56', 'AB-67890', '25-1002', 'M1', 'END')"
        )

    second = runner.run("bookings-in")

    assert second.updated == 1
    closed = record(engine, "AB-67890")
    assert (closed["status"], closed["end"]) == ("finished", "2022-01-11T17:37:56Z")


def test_a_source_that_is_down_fails_the_run_with_the_cause(setup: tuple[Path, Engine]) -> None:
    config_path, engine = setup
    (config_path.parent / "mes.db").unlink()

    result = FlowRunner(load_config(config_path), engine).run("orders-in")

    assert result.status == "failed"
    assert result.error is not None and "mes" in result.error and "mes.db" in result.error
    assert count(engine, records) == 0
