"""Late commits on a real PostgreSQL and MariaDB source, on the default settings.

A source transaction takes its timestamp (PostgreSQL ``now()`` is the transaction's start,
MariaDB ``NOW(6)`` the statement's) and stays open while other rows with later timestamps
commit and the hub syncs several times. When it finally commits, its row is older than the
stored cursor. With no ``safety_window`` in the flow, the default window for a date/time cursor
must still read it; with ``safety_window: 0`` (what was the default) it is never read.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from erpbridge import FlowRunner, load_config, open_store
from erpbridge.store.tables import records
from integration.sql_sites import Site, open_site

CONFIG = """
hub: {{database_url: "sqlite:///hub.db"}}
entities:
  plant_order:
    key: [order_code]
    fields:
      order_code: {{type: string, required: true}}
      updated_at: datetime
channels:
  mes:
    system: sql
    options: {{url: "{reader}", {schema} connect_timeout: 5}}
flows:
  - name: orders-in
    channel: mes
    entity: plant_order
    direction: in
    source: {{table: production_orders}}
    key: id
    cursor: {{column: updated_at, tiebreaker: id{window}}}
    mapping: {{order_code: order_code, updated_at: updated_at}}
"""


@pytest.fixture(params=["postgresql", "mariadb"])
def site(request: pytest.FixtureRequest) -> Iterator[Site]:
    """An MES database on the real server, with owner and read-only logins."""
    yield from open_site(request.param)


def configure(site: Site, folder: Path, monkeypatch: pytest.MonkeyPatch, window: str) -> Path:
    monkeypatch.setenv("MES_DB_PASSWORD", site.passwords["reader"])
    path = folder / "erpbridge.yaml"
    schema = f"schema: {site.schema}," if site.schema else ""
    reader = site.config_url("reader", "MES_DB_PASSWORD")
    path.write_text(CONFIG.format(reader=reader, schema=schema, window=window), encoding="utf-8")
    return path


def insert(conn: sa.Connection, site: Site, row_id: int) -> None:
    """One order stamped by the server's own clock, as the MES application stamps it."""
    clock = "now()" if site.dialect == "postgresql" else "NOW(6)"
    conn.exec_driver_sql(
        f"INSERT INTO {site.qualified('production_orders')} (id, order_code, updated_at) "
        f"VALUES ({row_id}, 'PO-{row_id}', {clock})"
    )


def sync(path: Path) -> tuple[int, int]:
    """Run the flow once; (read, created)."""
    engine = open_store(f"sqlite:///{path.parent / 'hub.db'}")
    try:
        result = FlowRunner(load_config(path), engine).run("orders-in")
    finally:
        engine.dispose()
    assert result.status == "succeeded", result.error
    return result.read, result.created


def keys_in_hub(path: Path) -> list[str]:
    engine = open_store(f"sqlite:///{path.parent / 'hub.db'}")
    try:
        with engine.connect() as conn:
            return sorted(conn.execute(sa.select(records.c.key)).scalars())
    finally:
        engine.dispose()


def hold_a_transaction_open_across_syncs(site: Site, path: Path) -> None:
    """Row 1 is stamped first and committed last, after three syncs read rows 2-4."""
    late = site.owner.connect()
    try:
        held = late.begin()
        insert(late, site, 1)
        time.sleep(1.1)  # the held row's stamp is a clear second before the others
        with site.owner.begin() as conn:
            insert(conn, site, 2)
            insert(conn, site, 3)
        assert sync(path)[1] == 2
        with site.owner.begin() as conn:
            insert(conn, site, 4)
        assert sync(path)[1] == 1
        assert sync(path)[1] == 0  # nothing new; row 1 still uncommitted, invisible
        held.commit()
    finally:
        late.close()


def test_a_row_committed_late_is_read_on_the_default_settings(
    site: Site, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = configure(site, tmp_path, monkeypatch, window="")

    hold_a_transaction_open_across_syncs(site, path)
    read, created = sync(path)

    # The default window (300 s for a date/time cursor) re-reads rows 2-4 as unchanged.
    assert (read, created) == (4, 1)
    assert keys_in_hub(path) == ["PO-1", "PO-2", "PO-3", "PO-4"]
    assert site.query(f"SELECT count(*) FROM {site.qualified('production_orders')}") == [(4,)]


def test_without_a_window_the_late_row_is_lost_as_documented(
    site: Site, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = configure(site, tmp_path, monkeypatch, window=", safety_window: 0")

    hold_a_transaction_open_across_syncs(site, path)
    read, created = sync(path)

    assert (read, created) == (1, 0)  # only the boundary row 4, read again
    assert keys_in_hub(path) == ["PO-2", "PO-3", "PO-4"]


CHECKED = """
channels:
  mes:
    system: sql
    options: {url: "sqlite:///mes.db"}
flows:
  - name: orders-in
    channel: mes
    entity: production_order
    direction: in
    source: {table: production_orders}
    cursor: {column: updated_at, tiebreaker: id, safety_window: 0}
  - name: orders-again
    channel: mes
    entity: production_order
    direction: in
    source: {table: production_orders}
    cursor: {column: updated_at, tiebreaker: id}
"""


def test_check_warns_where_a_cursor_has_no_window_and_still_passes(tmp_path: Path) -> None:
    path = tmp_path / "erpbridge.yaml"
    path.write_text(CHECKED, encoding="utf-8")

    done = subprocess.run(
        [sys.executable, "-m", "erpbridge", "check", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "COLUMNS": "400"},
        check=False,
    )

    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == (
        "warning erpbridge.yaml:12 flows[0].cursor.safety_window: 0 re-reads nothing: if "
        "updated_at is a date/time column, a row committed after the hub read rows with a later "
        "updated_at is never read (late commits are lost); leave safety_window out (300 s for "
        "date/time columns) or size it to the longest transaction of the source"
    )
    assert lines[1].startswith(f"ok {path}: 1 channel(s), 2 flow(s)")
    assert lines[1].endswith(", 1 warning(s)")
    assert len(lines) == 2  # the flow with the default window is not warned about
