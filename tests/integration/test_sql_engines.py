"""The sql and sqlwrite transports against real PostgreSQL and MariaDB servers.

An MES owner hands erpbridge a SELECT-only login (see :mod:`integration.sql_sites`); IN flows
read the order and booking tables through the real engine into the hub (field by field,
incremental, late commits and ties at the cursor boundary, the booking fold); an OUT flow writes
hub records into the ERP's staging table with a read-write login, checked with the server's own
SQL. Then the bad paths: wrong password, closed port, unknown host, missing table, and writes
through the read-only channel, refused by erpbridge and, when forced past it, by the database.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, time
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
import pytest
import sqlalchemy as sa

from erpbridge import FlowRunner, load_config, open_store
from erpbridge.engine.worker import Worker
from erpbridge.errors import ConfigError, FatalError, ReadOnlyViolation
from erpbridge.store.tables import deliveries, records, rejected
from erpbridge.transports.base import OutgoingRecord
from erpbridge.transports.sql.read import SqlChannelOptions, SqlStreamOptions, SqlTransport
from erpbridge.transports.sql.write import (
    SqlWriteChannelOptions,
    SqlWriteTargetOptions,
    SqlWriteTransport,
)
from integration.sql_sites import Site, open_site

NOON = datetime(2024, 3, 1, 12, 0, tzinfo=UTC)

CONFIG = """
hub: {{database_url: "sqlite:///hub.db"}}
entities:
  plant_order:
    key: [order_code]
    fields:
      order_code: {{type: string, required: true}}
      product_code: string
      machine_code: string
      quantity: decimal
      released: boolean
      start: datetime
      end: datetime
      updated_at: datetime
channels:
  mes:
    system: sql
    options: {{url: "{reader}", {schema} connect_timeout: 5}}
  erp:
    system: sql
    transport: sqlwrite
    options: {{url: "{writer}", {schema} connect_timeout: 5}}
flows:
  - name: orders-in
    channel: mes
    entity: plant_order
    direction: in
    source: {{table: {orders_table}}}
    key: id
    cursor: {{column: updated_at, tiebreaker: id, safety_window: 60}}
    batch_size: 3
    mapping:
      order_code: order_code
      product_code: product_code
      machine_code: machine_code
      quantity: quantity
      released: released
      start: {{from: start, transforms: [{{local_time: Europe/Berlin}}]}}
      end: {{from: end, transforms: [{{local_time: Europe/Berlin}}]}}
      updated_at: updated_at
  - name: bookings-in
    channel: mes
    entity: production_order
    direction: in
    source: {{table: bookings, structure: bookings, bookings: {{id: id}}}}
    cursor: {{column: timestamp, tiebreaker: id}}
    batch_size: 2
    mapping:
      order_code: order_code
      product_code: product_code
      machine_code: machine_code
      start: {{from: start, transforms: [{{local_time: Europe/Berlin}}]}}
      end: {{from: end, transforms: [{{local_time: Europe/Berlin}}]}}
      status: status
      issues: issues
      bookings: bookings
  - name: orders-to-erp
    channel: erp
    entity: plant_order
    direction: out
    target: {{table: erp_orders, key: [order_no], version_column: version,
              delivery_id_column: delivery}}
    retry: {{max_attempts: 5, backoff_s: 60}}
    mapping:
      order_no: order_code
      article: product_code
      qty: quantity
      released: released
      started_at: start
      finished_at: end
"""


@pytest.fixture(params=["postgresql", "mariadb"])
def site(request: pytest.FixtureRequest) -> Iterator[Site]:
    """An MES/ERP database on the real server, with owner, reader and writer logins."""
    yield from open_site(request.param)


@pytest.fixture
def config_path(site: Site, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The erpbridge configuration; the passwords reach it only through the environment."""
    monkeypatch.setenv("MES_DB_PASSWORD", site.passwords["reader"])
    monkeypatch.setenv("ERP_DB_PASSWORD", site.passwords["writer"])
    path = tmp_path / "erpbridge.yaml"
    path.write_text(configuration(site), encoding="utf-8")
    return path


def configuration(site: Site, *, reader: str = "", orders_table: str = "") -> str:
    """The configuration text, optionally with another reader URL or order table."""
    return CONFIG.format(
        reader=reader or site.config_url("reader", "MES_DB_PASSWORD"),
        writer=site.config_url("writer", "ERP_DB_PASSWORD"),
        schema=f"schema: {site.schema}," if site.schema else "",
        orders_table=orders_table or "production_orders",
    )


def at(hour: int, minute: int, second: int = 0, micro: int = 0) -> datetime:
    """A moment on 1 March 2024, UTC."""
    return datetime(2024, 3, 1, hour, minute, second, micro, tzinfo=UTC)


def wall(hour: int, minute: int, second: int = 0) -> datetime:
    """A wall-clock time on 1 March 2024, as a DATETIME column holds it."""
    return datetime(2024, 3, 1, hour, minute, second)


def seconds(moment: datetime) -> int:
    return int(moment.timestamp())


def order(row_id: int, updated_at: datetime, **values: Any) -> dict[str, Any]:
    """An order-table row: plant wall-clock start/end (DATETIME), updated_at a TIMESTAMP."""
    row: dict[str, Any] = {
        "id": row_id,
        "order_code": f"PO-{row_id}",
        "product_code": f"P-{row_id % 3}",
        "machine_code": "M1",
        "quantity": Decimal(f"{row_id}.125"),
        "released": row_id % 2 == 0,
        "shift_start": time(6, 30),
        "start": wall(7, row_id),
        "end": wall(9, row_id, 15),
        "updated_at": updated_at,
    }
    return {**row, **values}


def run(config_path: Path, flow: str) -> Any:
    engine = open_store(f"sqlite:///{config_path.parent / 'hub.db'}")
    try:
        return FlowRunner(load_config(config_path), engine).run(flow)
    finally:
        engine.dispose()


def hub(config_path: Path, query: Any) -> list[Any]:
    engine = open_store(f"sqlite:///{config_path.parent / 'hub.db'}")
    try:
        with engine.connect() as conn:
            return list(conn.execute(query))
    finally:
        engine.dispose()


def payload(config_path: Path, key: str) -> dict[str, Any]:
    (row,) = hub(config_path, sa.select(records.c.payload).where(records.c.key == key))
    found: dict[str, Any] = orjson.loads(row.payload)
    return found


def counts(result: Any) -> tuple[str, int, int, int, int, int]:
    return (
        result.status,
        result.read,
        result.created,
        result.updated,
        result.unchanged,
        result.rejected,
    )


def test_orders_flow_in_incrementally_through_a_read_only_login(
    site: Site, config_path: Path
) -> None:
    second = at(12, 0, 1)
    site.add(
        "production_orders",
        # Five rows share updated_at, their ids out of order; batches of three split the tie.
        [order(i, NOON) for i in (13, 10, 14, 12, 11)]
        + [
            order(15, at(11, 59, 59, 999999)),
            order(16, NOON, order_code=None),  # refused by the mapping, kept as a rejection
            order(20, second),
        ],
    )

    first = run(config_path, "orders-in")

    assert counts(first) == ("succeeded", 8, 7, 0, 0, 1)
    assert payload(config_path, "PO-10") == {
        "order_code": "PO-10",
        "product_code": "P-1",
        "machine_code": "M1",
        "quantity": "10.125",  # DECIMAL(12, 3), exact
        "released": True,  # MariaDB BOOLEAN is TINYINT(1): 1
        "start": "2024-03-01T06:10:00Z",  # DATETIME: the plant's wall clock, 07:10 in Berlin
        "end": "2024-03-01T08:10:15Z",
        "updated_at": "2024-03-01T12:00:00Z",  # TIMESTAMP: the moment, whatever the zones
    }
    assert payload(config_path, "PO-11")["released"] is False
    assert payload(config_path, "PO-15")["updated_at"] == "2024-03-01T11:59:59.999999Z"
    columns = (rejected.c.position, rejected.c.reason, rejected.c.field_path, rejected.c.payload)
    ((position, reason, field_path, kept),) = hub(config_path, sa.select(*columns))
    assert (position, field_path) == ("production_orders#id=16", "order_code")
    assert "required" in reason
    assert orjson.loads(kept)["shift_start"] == "06:30:00"  # a TIME column, as JSON

    # Late commits: id 17 carries the boundary value with a lower id than the stored cursor's
    # row (20); id 18 is older than the boundary, inside the safety window. One row changes,
    # the rejected one is fixed, one is new.
    site.add(
        "production_orders",
        [
            order(17, second),
            order(18, at(11, 59, 30)),
            order(21, at(12, 6)),
        ],
    )
    site.change("production_orders", 11, quantity=Decimal("99.5"), updated_at=at(12, 5))
    site.change("production_orders", 16, order_code="PO-16", updated_at=at(12, 5, 30))

    second_run = run(config_path, "orders-in")

    # From 12:00:01 - 60 s: 10-18, 20, 21 are read; 16, 17, 18, 21 new, 11 changed.
    assert counts(second_run) == ("succeeded", 11, 4, 1, 6, 0)
    assert payload(config_path, "PO-11")["quantity"] == "99.5"
    assert payload(config_path, "PO-17")["updated_at"] == "2024-03-01T12:00:01Z"
    assert counts(run(config_path, "orders-in")) == ("succeeded", 3, 0, 0, 3, 0)


def test_bookings_fold_into_production_orders_on_the_real_engine(
    site: Site, config_path: Path
) -> None:
    def booking(row_id: int, at: str, code: str, event: str) -> dict[str, Any]:
        moment = datetime.fromisoformat(f"2024-03-01 {at}")
        columns = {"order_code": code, "product_code": "P-1", "machine_code": "M2"}
        return {"id": row_id, "timestamp": moment, **columns, "event": event}

    site.add(
        "bookings",
        [
            booking(1, "06:27:00", "AB-1", "START"),
            booking(2, "08:23:55.250000", "AB-1", "END"),
            booking(3, "12:10:00", "AB-2", "START"),
            booking(4, "13:00:00", "AB-3", "END"),  # no START: kept, with the issue
            booking(5, "13:00:00", "AB-4", " start "),  # same moment as 4; padded, lower case
        ],
    )

    first = run(config_path, "bookings-in")

    assert counts(first) == ("succeeded", 4, 4, 0, 0, 0)
    assert payload(config_path, "AB-1") == {
        "order_code": "AB-1",
        "product_code": "P-1",
        "machine_code": "M2",
        "start": "2024-03-01T05:27:00Z",
        "end": "2024-03-01T07:23:55.250000Z",
        "status": "finished",
        "issues": [],
        "bookings": 2,
    }
    assert payload(config_path, "AB-2")["status"] == "running"
    assert payload(config_path, "AB-4")["status"] == "running"
    orphan = payload(config_path, "AB-3")
    assert orphan["status"] == "incomplete"
    assert orphan["issues"] == ["END at 2024-03-01 13:00:00 without START"]
    assert any("AB-3" in warning for warning in first.warnings)

    site.add("bookings", [booking(6, "17:37:56", "AB-2", "END")])
    second = run(config_path, "bookings-in")

    assert (second.created, second.updated) == (0, 1)
    closed = payload(config_path, "AB-2")
    assert (closed["status"], closed["end"]) == ("finished", "2024-03-01T16:37:56Z")


def test_hub_records_flow_out_into_the_erp_staging_table(site: Site, config_path: Path) -> None:
    site.add(
        "production_orders",
        [order(1, NOON), order(2, NOON), order(3, NOON, quantity=Decimal("-1"))],
    )
    assert run(config_path, "orders-in").created == 3
    store = open_store(f"sqlite:///{config_path.parent / 'hub.db'}")
    worker = Worker(load_config(config_path), store)
    try:
        first = worker.run_once()
        site.change("production_orders", 2, quantity=Decimal("7.5"), updated_at=at(12, 1))
        assert run(config_path, "orders-in").updated == 1
        second = worker.run_once()
    finally:
        worker.close()
        store.dispose()

    assert (first.delivered, first.dead) == (2, 1)
    assert (second.delivered, second.dead) == (1, 0)
    # The server's own clock for the TIMESTAMP column: seconds since the epoch, zone-free.
    epoch = {"postgresql": "extract(epoch FROM started_at)", "mysql": "UNIX_TIMESTAMP(started_at)"}
    rows = site.query(
        f"SELECT order_no, article, qty, released, {epoch[site.dialect]}, finished_at, version"
        f" FROM {site.qualified('erp_orders')} ORDER BY order_no"
    )
    assert [(r[0], r[1], r[2], bool(r[3]), int(r[4]), r[5], r[6]) for r in rows] == [
        ("PO-1", "P-1", Decimal("1.125"), False, seconds(at(6, 1)), wall(8, 1, 15), 1),
        ("PO-2", "P-2", Decimal("7.500"), True, seconds(at(6, 2)), wall(8, 2, 15), 2),
    ]
    ((state, error),) = hub(
        config_path,
        sa.select(deliveries.c.state, deliveries.c.last_error).where(deliveries.c.key == "PO-3"),
    )
    # The CHECK refuses the row: dead at once (MariaDB raises it as an OperationalError, 4025).
    assert state == "dead"
    assert "'PO-3'" in error and "qty" in error

    # A stale retry of version 1 never replaces version 2 (ON DUPLICATE KEY / ON CONFLICT).
    options = SqlWriteChannelOptions.model_validate(site.options("writer"))
    writer = SqlWriteTransport("erp", options, config_path.parent)
    target = SqlWriteTargetOptions(table="erp_orders", key=["order_no"], version_column="version")
    stale = OutgoingRecord(9, "plant_order", "PO-2", 1, "x", {"order_no": "PO-2", "qty": "1"})
    try:
        assert writer.write(target, [stale]) == ["PO-2"]
    finally:
        writer.close()
    found = site.query(f"SELECT qty, version FROM {site.qualified('erp_orders')} ORDER BY 1")
    assert found == [(Decimal("1.125"), 1), (Decimal("7.500"), 2)]


def test_a_text_tiebreaker_pages_in_the_database_collation(site: Site, tmp_path: Path) -> None:
    # MariaDB's default utf8mb4_general_ci orders "b-1" < "B-2" < "PO-1", Python "B-2" < "PO-1"
    # < "b-1": the keyset conditions run in the database, so every row comes exactly once.
    codes = ["po-3", "PO-1", "Po-2", "po-10", "PO-20", "pO-4", "b-1", "B-2"]
    site.add("production_orders", [order(i, NOON, order_code=c) for i, c in enumerate(codes, 1)])
    stream = SqlStreamOptions.model_validate(
        {
            "table": "production_orders",
            "cursor": {"column": "updated_at", "tiebreaker": "order_code"},
        }
    )
    transport = reader(site, tmp_path)
    try:
        batches = list(transport.read(stream, None, 3, frozenset()))
        cursor = orjson.loads(orjson.dumps(batches[0].cursor))
        resumed = list(transport.read(stream, cursor, 3, frozenset()))
    finally:
        transport.close()
    seen = [r.data["order_code"] for b in batches for r in b.records]
    assert sorted(seen) == sorted(codes)
    assert sorted(r.data["order_code"] for b in resumed for r in b.records) == sorted(codes)


# -- bad input ----------------------------------------------------------------------------------


def reader(site: Site, tmp_path: Path, **url: Any) -> SqlTransport:
    """A transport of the reader's login, with parts of its URL changed."""
    options = {**site.options("reader", **url), "connect_timeout": 3}
    return SqlTransport("mes", SqlChannelOptions.model_validate(options), tmp_path)


@pytest.mark.parametrize(
    ("url", "category"),
    [
        ({"password": "wrong-password"}, "auth"),
        ({"port": 1}, "refused"),
        ({"host": "mes-db.nonexistent.invalid"}, "dns"),
        # MariaDB does not tell a missing database from one the login may not use.
        ({"database": "no_such_db"}, {"postgresql": "schema", "mysql": "forbidden"}),
    ],
)
def test_health_names_what_failed(
    site: Site, tmp_path: Path, url: dict[str, Any], category: str | dict[str, str]
) -> None:
    if isinstance(category, dict):
        category = category[site.dialect]
    good, bad = reader(site, tmp_path), reader(site, tmp_path, **url)
    try:
        assert good.health().ok
        health = bad.health()
    finally:
        good.close()
        bad.close()
    assert (health.ok, health.category) == (False, category)
    assert f"{site.users['reader']}:***@" in health.detail  # the place, its password masked
    assert site.passwords["reader"] not in health.detail
    assert "wrong-password" not in health.detail


def test_a_wrong_password_or_a_missing_table_fails_the_run_with_the_cause(
    site: Site, config_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MES_DB_PASSWORD", "not-the-password")
    denied = run(config_path, "orders-in")
    monkeypatch.setenv("MES_DB_PASSWORD", site.passwords["reader"])
    config_path.write_text(configuration(site, orders_table="work_orders"), encoding="utf-8")
    missing = run(config_path, "orders-in")

    assert denied.status == "failed"
    assert "channel mes: auth at " in denied.error
    assert "not-the-password" not in denied.error
    assert missing.status == "failed"
    assert "channel mes: schema mismatch" in missing.error and "work_orders" in missing.error


def test_writes_through_the_read_only_channel_are_refused_twice(
    site: Site, config_path: Path, tmp_path: Path
) -> None:
    site.add("production_orders", [order(1, NOON)])
    if site.dialect == "mysql":
        # The reader may call this one function, which writes with its owner's (definer) rights.
        with site.admin.connect() as conn:
            conn.exec_driver_sql(
                f"GRANT EXECUTE ON FUNCTION {site.database}.touch_order TO {site.users['reader']}"
            )
        log = ServerLog(site)
    marker = f"marker_{site.database}"

    # 1. erpbridge: a writing query, or an OUT flow to the sql channel, stop the configuration.
    writing = (
        f"WITH gone AS (DELETE FROM production_orders WHERE order_code = '{marker}'"
        " RETURNING *) SELECT * FROM gone"
    )
    text = configuration(site).replace(
        "source: {table: bookings,", f'source: {{query: "{writing}",'
    )
    text += "  - {name: back, channel: mes, entity: plant_order, direction: out, target: {}}\n"
    config_path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as refused:
        load_config(config_path)  # builds no transport: nothing connects
    problems = [p.message for p in refused.value.problems]
    assert any("DELETE is not allowed" in p and "read-only" in p for p in problems)
    assert "channel 'mes' cannot be written to" in problems

    # 2. The database: a SELECT the guard lets through, whose function writes, fails in the
    # read-only transaction, though the function runs with the owner's rights.
    function = site.qualified("touch_order")
    stream = SqlStreamOptions(query=f"SELECT {function}(1) AS {marker}")
    transport = reader(site, tmp_path)
    try:
        with pytest.raises(ReadOnlyViolation, match="channel mes: write refused, the channel"):
            list(transport.read(stream, None, 10, frozenset()))
        # DML on the channel's own connection: refused by the read-only transaction
        # (PostgreSQL checks it first) or by the login's rights (MariaDB checks them first).
        refused_dml = pytest.raises(FatalError, match=r"write refused|permission denied")
        with refused_dml, transport._read_only() as conn:
            conn.exec_driver_sql(f"DELETE FROM {site.qualified('production_orders')}")
    finally:
        transport.close()
    # ... and without any read-only transaction, by the login's rights alone.
    plain = sa.create_engine(site.login_url("reader"))
    try:
        with pytest.raises(sa.exc.DBAPIError, match="denied"), plain.begin() as conn:
            conn.exec_driver_sql(f"DELETE FROM {site.qualified('production_orders')}")
    finally:
        plain.dispose()
    assert site.query(f"SELECT id, quantity FROM {site.qualified('production_orders')}") == [
        (1, Decimal("1.125"))
    ]
    if site.dialect == "mysql":
        seen = log.statements(marker)
        assert not any("DELETE" in s for s in seen)  # the guarded one never arrived
        assert any("touch_order" in s for s in seen)  # the forced one did, and was refused


def test_even_the_owner_login_cannot_write_through_the_channel_not_even_ddl(
    site: Site, tmp_path: Path
) -> None:
    # MariaDB ends a START TRANSACTION READ ONLY with an implicit commit on DDL and runs it; the
    # channel's read-only session refuses it, and the DELETE that could follow.
    options = SqlChannelOptions.model_validate(site.options("owner"))
    site.add("production_orders", [order(1, NOON)])
    transport = SqlTransport("mes", options, tmp_path)
    try:
        for statement in (
            f"CREATE TABLE {site.qualified('intruder')} (a integer)",
            f"DELETE FROM {site.qualified('production_orders')}",
        ):
            with pytest.raises(ReadOnlyViolation), transport._read_only() as conn:
                conn.exec_driver_sql(statement)
    finally:
        transport.close()
    assert site.query(f"SELECT id FROM {site.qualified('production_orders')}") == [(1,)]
    with site.owner.connect() as conn:
        assert not sa.inspect(conn).has_table("intruder", site.schema)


class ServerLog:
    """MariaDB's general query log, as a table, for the duration of one test: every statement
    the server received, refused or not."""

    def __init__(self, site: Site) -> None:
        self._admin = site.admin
        with self._admin.connect() as conn:
            conn.exec_driver_sql("SET GLOBAL log_output = 'TABLE'")
            conn.exec_driver_sql("SET GLOBAL general_log = 1")

    def statements(self, marker: str) -> list[str]:
        """The statements that mention ``marker``; stops logging."""
        with self._admin.connect() as conn:
            conn.exec_driver_sql("SET GLOBAL general_log = 0")
            found = conn.exec_driver_sql(
                "SELECT CONVERT(argument USING utf8mb4) FROM mysql.general_log"
                " WHERE command_type = 'Query' AND CONVERT(argument USING utf8mb4) LIKE %s",
                (f"%{marker}%",),
            )
            statements = [str(row[0]) for row in found]
            conn.exec_driver_sql("TRUNCATE TABLE mysql.general_log")
        return statements
