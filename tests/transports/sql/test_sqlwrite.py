"""The SQL write target against real SQLite files and a real PostgreSQL database."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from pydantic import ValidationError

from erpbridge.config.loader import parse_config
from erpbridge.errors import FatalError, SourceUnavailable
from erpbridge.transports import load_transport
from erpbridge.transports.base import OutgoingRecord, Transport, Writer
from erpbridge.transports.sql.write import (
    SqlWriteChannelOptions,
    SqlWriteStreamOptions,
    SqlWriteTargetOptions,
    SqlWriteTransport,
)

STAGING = """
CREATE TABLE staging (
    sku TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    price NUMERIC(10, 2),
    valid_from DATE,
    version INTEGER,
    imported INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE import_log (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    sku TEXT NOT NULL,
    version INTEGER NOT NULL,
    delivery INTEGER,
    written_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP
);
"""


def make_db(path: Path, script: str = STAGING) -> Path:
    db = sqlite3.connect(path)
    try:
        db.executescript(script)
    finally:
        db.close()
    return path


def rows(path: Path, query: str) -> list[tuple[Any, ...]]:
    db = sqlite3.connect(path)
    try:
        return db.execute(query).fetchall()
    finally:
        db.close()


def record(
    data: dict[str, Any], version: int = 1, delivery_id: int = 1, key: str = ""
) -> OutgoingRecord:
    key = key or str(data.get("sku", "?"))
    return OutgoingRecord(delivery_id, "product", key, version, f"f|{key}|{version}", data)


@pytest.fixture
def erp(tmp_path: Path) -> Iterator[SqlWriteTransport]:
    """A writer on ``erp.db`` in ``tmp_path``, given by a relative URL as a config would."""
    make_db(tmp_path / "erp.db")
    transport = SqlWriteTransport("erp", SqlWriteChannelOptions(url="sqlite:///erp.db"), tmp_path)
    yield transport
    transport.close()


def upsert(**options: Any) -> SqlWriteTargetOptions:
    return SqlWriteTargetOptions(table="staging", key=["sku"], **options)


def test_registered_write_only_and_fits_the_protocols(erp: SqlWriteTransport) -> None:
    assert load_transport("sqlwrite") is SqlWriteTransport
    assert isinstance(erp, Transport) and isinstance(erp, Writer)
    with pytest.raises(FatalError, match="write-only; use the sql transport to read"):
        erp.read(SqlWriteStreamOptions(), None, 10, frozenset())
    assert erp.health().ok


def test_a_channel_uses_it_as_system_sql_with_transport_sqlwrite(tmp_path: Path) -> None:
    text = """
channels:
  erp: {system: sql, transport: sqlwrite, options: {url: "sqlite:///erp.db"}}
flows:
  - {name: p-out, channel: erp, entity: product, direction: out,
     target: {table: staging, key: [sku], version_column: version}}
"""
    config = parse_config(text, tmp_path / "erpbridge.yaml", env={})
    assert config.targets["p-out"] == upsert(version_column="version")


def test_target_options_are_checked() -> None:
    with pytest.raises(ValidationError, match="mode upsert needs `key`"):
        SqlWriteTargetOptions(table="staging")
    with pytest.raises(ValidationError, match="`key` is for mode upsert"):
        SqlWriteTargetOptions(table="staging", mode="append", key=["sku"])
    with pytest.raises(ValidationError, match="must be distinct"):
        upsert(version_column="sku")
    with pytest.raises(ValidationError, match="two fields to one column"):
        upsert(columns={"a": "name", "b": "name"})
    with pytest.raises(ValidationError, match="extra"):
        upsert(truncate=True)


def test_upsert_inserts_then_updates_in_place(tmp_path: Path, erp: SqlWriteTransport) -> None:
    first = [
        record({"sku": "A", "name": "Apple", "price": "1.50", "valid_from": "2024-03-01"}),
        record({"sku": "B", "name": "Pear"}, delivery_id=2),
    ]
    assert erp.write(upsert(), first) == ["A", "B"]
    assert erp.write(upsert(), [record({"sku": "A", "name": "Apple II"}, 2, 3)]) == ["A"]

    found = rows(tmp_path / "erp.db", "SELECT sku, name, price, valid_from FROM staging ORDER BY 1")
    assert found == [("A", "Apple II", 1.5, "2024-03-01"), ("B", "Pear", None, None)]


def test_listed_columns_are_owned_renamed_and_cleared(
    tmp_path: Path, erp: SqlWriteTransport
) -> None:
    target = upsert(columns={"code": "sku", "title": "name", "amount": "price"})
    erp.write(target, [record({"code": "A", "title": "Apple", "amount": Decimal("2.5")})])
    erp.write(target, [record({"code": "A", "title": "Apple"}, 2)])  # amount cleared

    assert rows(tmp_path / "erp.db", "SELECT sku, name, price, imported FROM staging") == [
        ("A", "Apple", None, 0)  # imported has a database default: not the flow's column
    ]


def test_a_stale_version_never_replaces_a_newer_one(tmp_path: Path, erp: SqlWriteTransport) -> None:
    target = upsert(version_column="version")
    erp.write(target, [record({"sku": "A", "name": "v3"}, version=3)])
    assert erp.write(target, [record({"sku": "A", "name": "v2"}, version=2)]) == ["A"]
    assert rows(tmp_path / "erp.db", "SELECT name, version FROM staging") == [("v3", 3)]

    erp.write(target, [record({"sku": "A", "name": "v4"}, version=4)])
    assert rows(tmp_path / "erp.db", "SELECT name, version FROM staging") == [("v4", 4)]


def test_append_inserts_every_version(tmp_path: Path, erp: SqlWriteTransport) -> None:
    target = SqlWriteTargetOptions(
        table="import_log", mode="append", version_column="version", delivery_id_column="delivery"
    )
    written = erp.write(target, [record({"sku": "A"}, 1, 10), record({"sku": "B"}, 1, 11)])
    erp.write(target, [record({"sku": "A"}, 1, 10)])  # a redelivery appends again

    assert written == [None, None]
    assert rows(tmp_path / "erp.db", "SELECT sku, version, delivery FROM import_log") == [
        ("A", 1, 10),
        ("B", 1, 11),
        ("A", 1, 10),
    ]


def test_an_unknown_column_names_it_and_the_columns_found(erp: SqlWriteTransport) -> None:
    with pytest.raises(FatalError) as caught:
        erp.write(upsert(), [record({"sku": "A", "name": "x", "colour": "red"})])
    message = str(caught.value)
    assert "'A'" in message and "no column(s) colour" in message
    assert "columns found: sku, name, price, valid_from, version, imported" in message

    with pytest.raises(FatalError, match=r"no column.s. revision named in the target"):
        erp.write(upsert(version_column="revision"), [record({"sku": "A", "name": "x"})])


def test_a_missing_table_or_a_key_that_is_not_unique_is_fatal(erp: SqlWriteTransport) -> None:
    with pytest.raises(FatalError, match="table stock does not exist"):
        erp.write(SqlWriteTargetOptions(table="stock", key=["sku"]), [record({"sku": "A"})])
    with pytest.raises(FatalError, match=r"key \(name\) .* neither its primary key nor a unique"):
        erp.write(SqlWriteTargetOptions(table="staging", key=["name"]), [record({"name": "x"})])


def test_a_refused_record_is_fatal_by_name_and_nothing_of_the_call_lands(
    tmp_path: Path, erp: SqlWriteTransport
) -> None:
    good = record({"sku": "A", "name": "Apple"})
    bad = record({"sku": "B", "price": "1"}, delivery_id=2)  # name is NOT NULL

    with pytest.raises(FatalError) as caught:
        erp.write(upsert(), [good, bad])

    message = str(caught.value)
    assert "product 'B' v1 (delivery 2)" in message and "NOT NULL" in message
    assert rows(tmp_path / "erp.db", "SELECT * FROM staging") == []

    with pytest.raises(FatalError, match=r"'C'.*valid_from: Invalid isoformat"):
        erp.write(upsert(), [record({"sku": "C", "name": "x", "valid_from": "1.3.2024"})])
    with pytest.raises(FatalError, match=r"'D'.*key column sku has no value"):
        erp.write(upsert(columns={"code": "sku"}), [record({"name": "x"}, key="D")])


def test_a_foreign_key_is_enforced_on_sqlite_too(tmp_path: Path) -> None:
    make_db(
        tmp_path / "erp.db",
        "CREATE TABLE groups (code TEXT PRIMARY KEY);"
        "CREATE TABLE items (sku TEXT PRIMARY KEY, grp TEXT REFERENCES groups (code));"
        "INSERT INTO groups VALUES ('G1');",
    )
    erp = SqlWriteTransport("erp", SqlWriteChannelOptions(url="sqlite:///erp.db"), tmp_path)
    target = SqlWriteTargetOptions(table="items", key=["sku"])
    try:
        assert erp.write(target, [record({"sku": "A", "grp": "G1"})]) == ["A"]
        with pytest.raises(FatalError, match=r"'B'.*FOREIGN KEY constraint failed"):
            erp.write(target, [record({"sku": "B", "grp": "G2"})])
    finally:
        erp.close()


def test_a_locked_database_is_unavailable(tmp_path: Path) -> None:
    make_db(tmp_path / "erp.db")
    erp = SqlWriteTransport(
        "erp", SqlWriteChannelOptions(url="sqlite:///erp.db", connect_timeout=0.2), tmp_path
    )
    holder = sqlite3.connect(tmp_path / "erp.db", isolation_level=None)
    try:
        erp.write(upsert(), [record({"sku": "A", "name": "x"})])  # reflected while free
        holder.execute("BEGIN EXCLUSIVE")
        with pytest.raises(SourceUnavailable, match="locked"):
            erp.write(upsert(), [record({"sku": "B", "name": "y"})])
        holder.execute("ROLLBACK")
        assert erp.write(upsert(), [record({"sku": "B", "name": "y"})]) == ["B"]
    finally:
        holder.close()
        erp.close()


def test_a_missing_folder_is_unavailable_and_no_file_is_created(tmp_path: Path) -> None:
    erp = SqlWriteTransport("erp", SqlWriteChannelOptions(url="sqlite:///gone/erp.db"), tmp_path)
    try:
        with pytest.raises(SourceUnavailable, match="missing database"):
            erp.write(upsert(), [record({"sku": "A", "name": "x"})])
        health = erp.health()
        assert (health.ok, health.category) == (False, "schema")
    finally:
        erp.close()
    assert not (tmp_path / "gone").exists()


def test_an_unreachable_server_is_unavailable_without_the_password(tmp_path: Path) -> None:
    url = "postgresql+psycopg://writer:s3cret@127.0.0.1:1/erp"
    erp = SqlWriteTransport("erp", SqlWriteChannelOptions(url=url, connect_timeout=1), tmp_path)
    try:
        with pytest.raises(SourceUnavailable) as caught:
            erp.write(upsert(), [record({"sku": "A", "name": "x"})])
    finally:
        erp.close()
    assert "refused" in str(caught.value) and "s3cret" not in str(caught.value)


@pytest.mark.postgres
def test_postgresql_upsert_version_guard_append_and_refusals(pg_database: str) -> None:
    admin = sa.create_engine(pg_database)
    with admin.begin() as conn:
        conn.exec_driver_sql("CREATE SCHEMA erp")
        conn.exec_driver_sql(
            "CREATE TABLE erp.staging (id serial PRIMARY KEY, sku text NOT NULL UNIQUE, "
            "name text NOT NULL, price numeric(10, 2) CHECK (price >= 0), valid_from date, "
            "attrs jsonb, version integer)"
        )
        conn.exec_driver_sql(
            "CREATE TABLE erp.import_log (seq bigserial PRIMARY KEY, sku text NOT NULL, "
            "version integer NOT NULL, written_at timestamptz NOT NULL DEFAULT now())"
        )
    erp = SqlWriteTransport(
        "erp", SqlWriteChannelOptions(url=pg_database, schema="erp"), Path.cwd()
    )
    target = SqlWriteTargetOptions(table="staging", key=["sku"], version_column="version")
    log = SqlWriteTargetOptions(table="erp.import_log", mode="append", version_column="version")
    try:
        first = {"sku": "A", "name": "Apple", "price": "1.50", "valid_from": "2024-03-01"}
        assert erp.write(target, [record({**first, "attrs": {"colour": "red"}}, 2)]) == ["A"]
        erp.write(target, [record({"sku": "A", "name": "stale"}, 1)])
        erp.write(log, [record({"sku": "A"}, 1), record({"sku": "A"}, 2)])
        with pytest.raises(FatalError, match=r"'B'.*price_check"):
            erp.write(target, [record({"sku": "B", "name": "x", "price": "-1"})])
        with pytest.raises(FatalError, match=r"'C'.*invalid input syntax for type numeric"):
            erp.write(target, [record({"sku": "C", "name": "x", "price": "lots"})])
        with admin.connect() as conn:
            staged = conn.exec_driver_sql(
                "SELECT sku, name, price, valid_from, attrs, version FROM erp.staging"
            ).all()
            logged = conn.exec_driver_sql("SELECT sku, version FROM erp.import_log ORDER BY seq")
            assert [tuple(r) for r in logged] == [("A", 1), ("A", 2)]
        assert [tuple(r) for r in staged] == [
            ("A", "Apple", Decimal("1.50"), date(2024, 3, 1), {"colour": "red"}, 2)
        ]
    finally:
        erp.close()
        admin.dispose()


def test_one_refused_record_does_not_take_its_batch_down(tmp_path: Path) -> None:
    """Through the worker: a NOT NULL column refuses one customer; the others are written."""
    import sqlite3

    from erpbridge import FlowRunner, load_config, open_store
    from erpbridge.engine.worker import Worker

    with sqlite3.connect(tmp_path / "erp.db") as db:
        db.execute("CREATE TABLE kunden (kunnr TEXT PRIMARY KEY, stceg TEXT NOT NULL)")
    (tmp_path / "inbox").mkdir()
    (tmp_path / "inbox" / "c.csv").write_text("id,name,vat\nC1,A,DE1\nC2,B,\nC3,C,DE3\n")
    config = tmp_path / "erpbridge.yaml"
    config.write_text(
        "channels:\n"
        "  shop: {system: folder, options: {path: inbox}}\n"
        "  erp: {system: sql, transport: sqlwrite, options: {url: 'sqlite:///erp.db'}}\n"
        "flows:\n"
        "  - {name: in, channel: shop, entity: customer, direction: in,\n"
        "     mapping: {code: id, name: name, vat_id: vat}}\n"
        "  - {name: out, channel: erp, entity: customer, direction: out,\n"
        "     target: {table: kunden, key: [kunnr], columns: {KUNNR: kunnr, STCEG: stceg}},\n"
        "     mapping: {KUNNR: code, STCEG: vat_id}}\n"
    )
    engine = open_store(f"sqlite:///{tmp_path / 'hub.db'}")
    FlowRunner(load_config(config), engine).run("in")
    worker = Worker(load_config(config), engine)
    stats = worker.run_once()
    worker.close()
    engine.dispose()
    assert (stats.delivered, stats.dead) == (2, 1)
    with sqlite3.connect(tmp_path / "erp.db") as db:
        assert db.execute("SELECT kunnr FROM kunden ORDER BY kunnr").fetchall() == [
            ("C1",),
            ("C3",),
        ]
