"""Deletes from a real SQL source (PostgreSQL and MariaDB, read through a SELECT-only login):
a soft-delete column (``delete_marker``) and hard deletes found by a key sweep (``key_sweep``)
become tombstone versions in the hub; an undeleted row recreates its record with its history; a
sweep of a source that answers empty deletes nothing (issue 19, item 2)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from erpbridge import FlowRunner, load_config, open_store
from erpbridge.engine.worker import Worker
from erpbridge.store.tables import runs
from integration.sql_sites import Site, open_site
from integration.versions import actions

T0 = datetime(2024, 3, 1, 12, 0, tzinfo=UTC)

CONFIG = """
hub: {{database_url: "sqlite:///hub.db"}}
entities:
  plant_order:
    key: [order_code]
    fields:
      order_code: {{type: string, required: true}}
      quantity: decimal
channels:
  mes:
    system: sql
    options: {{url: "{reader}", {schema} connect_timeout: 5}}
  erp:
    system: sql
    transport: sqlwrite
    options: {{url: "{writer}", {schema} connect_timeout: 5}}
flows:
  - name: orders-out
    channel: erp
    entity: plant_order
    direction: out
    target: {{table: erp_orders, key: [order_no], version_column: version}}
    on_delete: delete
    mapping: {{order_no: order_code, qty: quantity}}
  - name: orders-in
    channel: mes
    entity: plant_order
    direction: in
    source: {{table: production_orders}}
    key: id
    cursor: {{column: updated_at, tiebreaker: id, safety_window: 0}}
    delete_marker: {{field: deleted_at}}
    mapping: {{order_code: order_code, quantity: quantity}}
  - name: orders-sweep
    channel: mes
    entity: plant_order
    direction: in
    source: {{table: production_orders}}
    key: id
    cursor: {{column: updated_at, tiebreaker: id, safety_window: 0}}
    key_sweep: 1d
    batch_size: 2
    mapping: {{order_code: order_code, quantity: quantity}}
"""


@pytest.fixture(params=["postgresql", "mariadb"])
def site(request: pytest.FixtureRequest) -> Iterator[Site]:
    for site in open_site(request.param):
        column = "timestamptz" if site.dialect == "postgresql" else "TIMESTAMP NULL"
        with site.owner.begin() as conn:  # the MES's soft-delete column
            conn.exec_driver_sql(
                f"ALTER TABLE {site.qualified('production_orders')} ADD deleted_at {column}"
            )
        site.add("production_orders", [order(i, minutes=i) for i in (1, 2, 3)])
        writer = site.users["writer"]
        if site.dialect == "postgresql":  # the ERP lets erpbridge delete its staging rows
            with site.owner.begin() as conn:
                conn.exec_driver_sql(f"GRANT DELETE ON mes.erp_orders TO {writer}")
        else:
            with site.admin.connect() as conn:
                conn.exec_driver_sql(f"GRANT DELETE ON {site.database}.erp_orders TO {writer}")
        yield site


@pytest.fixture
def runner(site: Site, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FlowRunner]:
    monkeypatch.setenv("MES_DB_PASSWORD", site.passwords["reader"])
    monkeypatch.setenv("ERP_DB_PASSWORD", site.passwords["writer"])
    path = tmp_path / "erpbridge.yaml"
    schema = f"schema: {site.schema}," if site.schema else ""
    reader = site.config_url("reader", "MES_DB_PASSWORD")
    writer = site.config_url("writer", "ERP_DB_PASSWORD")
    path.write_text(CONFIG.format(reader=reader, writer=writer, schema=schema), encoding="utf-8")
    engine = open_store(f"sqlite:///{tmp_path / 'hub.db'}")
    yield FlowRunner(load_config(path), engine)
    engine.dispose()


def order(row_id: int, minutes: int = 0, **values: Any) -> dict[str, Any]:
    row = {"id": row_id, "order_code": f"PO-{row_id}", "quantity": row_id,
           "updated_at": T0 + timedelta(minutes=minutes)}  # fmt: skip
    return {**row, **values}


def test_a_soft_deleted_row_becomes_a_tombstone_and_comes_back(
    site: Site, runner: FlowRunner
) -> None:
    assert runner.run("orders-in").created == 3
    site.change("production_orders", 2, deleted_at=T0 + timedelta(minutes=5),
                updated_at=T0 + timedelta(minutes=5))  # fmt: skip
    result = runner.run("orders-in")
    assert (result.status, result.deleted, result.created, result.updated) == ("succeeded", 1, 0, 0)
    assert actions(runner.engine, "plant_order", "PO-2") == ["created", "deleted", "(deleted)"]
    with runner.engine.connect() as conn:
        stored = conn.execute(sa.select(runs.c.deleted).where(runs.c.id == result.run_id))
        assert stored.scalar_one() == 1
    # The MES undeletes it: the same record comes back, its history kept.
    site.change("production_orders", 2, deleted_at=None, updated_at=T0 + timedelta(minutes=9))
    back = runner.run("orders-in")
    assert (back.created, back.deleted) == (1, 0)
    assert actions(runner.engine, "plant_order", "PO-2") == ["created", "deleted", "recreated"]
    assert actions(runner.engine, "plant_order", "PO-1") == ["created"]


def test_on_delete_delete_removes_the_erps_row(site: Site, runner: FlowRunner) -> None:
    runner.run("orders-in")
    worker = Worker(runner.config, runner.engine)
    try:
        assert worker.run_once().delivered == 3
        staged = f"SELECT order_no, version FROM {site.qualified('erp_orders')} ORDER BY order_no"
        assert site.query(staged) == [("PO-1", 1), ("PO-2", 1), ("PO-3", 1)]
        site.change("production_orders", 2, deleted_at=T0 + timedelta(minutes=5),
                    updated_at=T0 + timedelta(minutes=5))  # fmt: skip
        assert runner.run("orders-in").deleted == 1
        stats = worker.run_once()
        assert (stats.delivered, stats.dead) == (1, 0)
        assert site.query(staged) == [("PO-1", 1), ("PO-3", 1)]
    finally:
        worker.close()


def test_a_key_sweep_tombstones_hard_deleted_rows_and_never_an_empty_answer(
    site: Site, runner: FlowRunner
) -> None:
    first = runner.run("orders-sweep")  # never swept: this run is the sweep
    assert (first.mode, first.created, first.deleted) == ("sweep", 3, 0)
    with site.owner.begin() as conn:
        conn.exec_driver_sql(f"DELETE FROM {site.qualified('production_orders')} WHERE id = 3")
    # Not due again for a day: an ordinary incremental run infers nothing.
    assert runner.run("orders-sweep").mode == "incremental"
    assert actions(runner.engine, "plant_order", "PO-3") == ["created"]
    swept = runner.run("orders-sweep", full=True)  # `erpbridge sync --full`: sweep now
    assert (swept.mode, swept.status, swept.read, swept.deleted) == ("sweep", "succeeded", 2, 1)
    assert actions(runner.engine, "plant_order", "PO-3") == ["created", "deleted", "(deleted)"]
    assert actions(runner.engine, "plant_order", "PO-1") == ["created"]
    # A table that answers empty (truncated by mistake, a wrong view): nothing is deleted.
    with site.owner.begin() as conn:
        conn.exec_driver_sql(f"DELETE FROM {site.qualified('production_orders')}")
    empty = runner.run("orders-sweep", full=True)
    assert (empty.status, empty.deleted) == ("succeeded", 0)
    assert any("the source returned no records" in w for w in empty.warnings)
    assert actions(runner.engine, "plant_order", "PO-1") == ["created"]


class Interrupted(Exception):
    """Stands for a process dying between two batches of the sweep's pass."""


def test_a_sweep_cut_short_deletes_nothing(site: Site, runner: FlowRunner) -> None:
    assert runner.run("orders-sweep").created == 3
    with site.owner.begin() as conn:
        conn.exec_driver_sql(f"DELETE FROM {site.qualified('production_orders')} WHERE id = 3")

    def die(counts: Any) -> None:
        raise Interrupted

    with pytest.raises(Interrupted):  # the first batch (PO-1, PO-2) committed, then it stops
        runner.run("orders-sweep", full=True, progress=die)
    # Not every id was seen: none is taken for deleted; the next completed sweep decides.
    assert actions(runner.engine, "plant_order", "PO-3") == ["created"]
    assert runner.run("orders-sweep", full=True).deleted == 1
