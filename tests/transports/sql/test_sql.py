"""The SQL transport against real SQLite files (the PostgreSQL test lives next door)."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from pydantic import ValidationError

from erpbridge.errors import FatalError, ReadOnlyViolation, SourceUnavailable
from erpbridge.transports import Transport, load_transport
from erpbridge.transports.base import Batch
from erpbridge.transports.sql.read import (
    SqlChannelOptions,
    SqlStreamOptions,
    SqlTransport,
    check_select,
)

NOON = "2024-03-01 12:00:00"


def make_db(path: Path, script: str, rows: Iterable[tuple[Any, ...]] = ()) -> Path:
    """An `orders` table (id, updated_at, seq, name) with ``rows``, written through sqlite3."""
    db = sqlite3.connect(path)
    try:
        db.executescript(script)
        db.executemany("INSERT INTO orders VALUES (?, ?, ?, ?)", rows)
        db.commit()
    finally:
        db.close()
    return path


ORDERS = "CREATE TABLE orders (id INTEGER PRIMARY KEY, updated_at TEXT, seq INTEGER, name TEXT);"


def insert(path: Path, *rows: tuple[Any, ...]) -> None:
    db = sqlite3.connect(path)
    try:
        db.executemany("INSERT INTO orders VALUES (?, ?, ?, ?)", rows)
        db.commit()
    finally:
        db.close()


@pytest.fixture
def mes(tmp_path: Path) -> Iterator[SqlTransport]:
    """A transport on ``mes.db`` in ``tmp_path``, given by a relative URL as a config would."""
    transport = SqlTransport("mes", SqlChannelOptions(url="sqlite:///mes.db"), tmp_path)
    yield transport
    transport.close()


def read(
    transport: SqlTransport,
    after: Any = None,
    batch_size: int = 100,
    required: frozenset[str] = frozenset(),
    **stream: Any,
) -> list[Batch]:
    return list(transport.read(SqlStreamOptions(**stream), after, batch_size, required))


def ids(batches: list[Batch]) -> list[int]:
    return [r.data["id"] for b in batches for r in b.records]


def last_cursor(batches: list[Batch]) -> Any:
    """The cursor the engine would store, after a JSON round trip as in the hub's store."""
    return orjson.loads(orjson.dumps(batches[-1].cursor))


BY_TIME: dict[str, Any] = {
    "table": "orders",
    "cursor": {"column": "updated_at", "tiebreaker": "id"},
}


# -- contract and options -----------------------------------------------------------------------


def test_registered_and_fits_the_protocol(mes: SqlTransport) -> None:
    registered: object = load_transport("sql")
    assert registered is SqlTransport
    assert isinstance(mes, Transport)


def test_channel_options_are_strict_and_hide_the_password() -> None:
    url = "postgresql+psycopg://erp:s3cret@db.example/erp"
    options = SqlChannelOptions.model_validate({"url": url, "schema": "mes"})
    assert options.schema_ == "mes"
    assert "s3cret" not in repr(options)
    with pytest.raises(ValidationError, match="write access comes with the delivery engine"):
        SqlChannelOptions(url=url, read_only=False)
    with pytest.raises(ValidationError) as error:
        SqlChannelOptions.model_validate({"url": url, "unknown": 1})
    assert "s3cret" not in str(error.value)
    with pytest.raises(ValidationError, match="not a SQLAlchemy URL"):
        SqlChannelOptions(url="s3cret but no url")


def test_stream_options_need_exactly_one_source() -> None:
    with pytest.raises(ValidationError, match="exactly one of"):
        SqlStreamOptions()
    with pytest.raises(ValidationError, match="exactly one of"):
        SqlStreamOptions(table="orders", query="SELECT 1")
    with pytest.raises(ValidationError, match="tiebreaker"):
        SqlStreamOptions.model_validate({"table": "orders", "cursor": {"column": "updated_at"}})
    with pytest.raises(ValidationError, match="needs `structure: bookings`"):
        SqlStreamOptions.model_validate({"table": "b", "bookings": {"id": "id"}})
    with pytest.raises(ValidationError, match=r"bookings\.id"):
        SqlStreamOptions(table="bookings", structure="bookings")


@pytest.mark.parametrize(
    ("query", "reason"),
    [
        ("DELETE FROM x", "only SELECT"),
        ("SELECT 1; DROP TABLE x", "only one statement"),
        ("select 1 ;\n-- the end\n; drop table x", "only one statement"),
        ("WITH gone AS (DELETE FROM x RETURNING *) SELECT * FROM gone", "DELETE is not allowed"),
        ("SELECT * INTO backup FROM x", "INTO is not allowed"),
        ("SELECT * FROM x FOR UPDATE", "UPDATE is not allowed"),
        ("SELECT 1) AS a; SELECT (1", "only one statement"),
        ("SELECT 1 FROM x) AS src, (SELECT 2", "unbalanced parentheses"),
        ("SELECT 'open", "unterminated"),
        # What one dialect reads as a string or comment another runs as code:
        ("SELECT '\\'' ; DROP TABLE x -- '", "only one statement"),  # MySQL backslash escape
        ("SELECT 'a\\' ; DROP TABLE x; -- '", "only one statement"),  # standard SQL quotes
        ("SELECT 1 # '\n; DROP TABLE x -- '", "only one statement"),  # MySQL # comment
        ("SELECT $$ ' $$ ; DROP TABLE x -- '", "only one statement"),  # PostgreSQL $$
        ("SELECT [a'] ; DROP TABLE x -- '", "only one statement"),  # MSSQL [name]
        ("SELECT /* /* */ ' */ ; DROP TABLE x -- '", "nested or executable"),  # nested comment
        ("SELECT /*! 1; DROP TABLE x */ 1", "nested or executable"),  # MySQL runs /*! */
    ],
)
def test_queries_that_could_write_are_refused_before_any_database(query: str, reason: str) -> None:
    with pytest.raises(ValidationError, match=reason):
        SqlStreamOptions(query=query)


@pytest.mark.parametrize(
    "query",
    [
        "SELECT * FROM orders WHERE note <> 'a; DROP TABLE orders' -- deleted; or not",
        "with recent as (select * from orders) select id, updated_at, deleted_at from recent;",
        'SELECT "update", `insert` FROM orders /* drop? no */',
    ],
)
def test_plain_selects_pass(query: str) -> None:
    assert check_select(query) == query.rstrip(";")


# -- incremental reads --------------------------------------------------------------------------


def test_ties_across_batch_boundaries_are_read_exactly_once(
    tmp_path: Path, mes: SqlTransport
) -> None:
    # Ten rows share one updated_at; ids are not in time order, so the tiebreaker is what pages.
    rows = [(i, NOON, i, f"o{i}") for i in (21, 3, 14, 8, 30, 11, 5, 27, 17, 9)]
    rows += [(1, "2024-03-01 11:00:00", 0, "before"), (2, "2024-03-01 13:00:00", 99, "after")]
    make_db(tmp_path / "mes.db", ORDERS, rows)

    batches = read(mes, batch_size=3, **BY_TIME)

    assert ids(batches) == [1, 3, 5, 8, 9, 11, 14, 17, 21, 27, 30, 2]
    assert [len(b.records) for b in batches] == [3, 3, 3, 3]
    assert batches[1].cursor == {
        "value": NOON,
        "type": "str",
        "key": {"value": 11, "type": "int"},
        "column": "updated_at",
    }
    assert [r.position for r in batches[0].records] == ["orders#id=1", "orders#id=3", "orders#id=5"]


def test_resuming_after_a_crash_in_the_middle_of_a_tie_skips_nothing(
    tmp_path: Path, mes: SqlTransport
) -> None:
    make_db(tmp_path / "mes.db", ORDERS, [(i, NOON, i, "x") for i in range(1, 11)])
    first_two = read(mes, batch_size=3, **BY_TIME)[:2]  # committed, then the run died

    resumed = read(mes, last_cursor(first_two), batch_size=3, **BY_TIME)

    assert ids(first_two) == [1, 2, 3, 4, 5, 6]
    assert ids(resumed) == list(range(1, 11))  # >= the boundary value: re-read, not skipped


def test_a_late_commit_at_the_boundary_value_is_found_by_the_next_read(
    tmp_path: Path, mes: SqlTransport
) -> None:
    db = make_db(tmp_path / "mes.db", ORDERS, [(10, NOON, 1, "a"), (20, NOON, 2, "b")])
    cursor = last_cursor(read(mes, **BY_TIME))
    # A transaction that took id 5 earlier commits only now, with the same updated_at.
    insert(db, (5, NOON, 3, "late"))

    again = read(mes, cursor, **BY_TIME)

    assert 5 in ids(again)
    assert last_cursor(again)["key"] == {"value": 20, "type": "int"}  # the cursor never goes back


def test_the_safety_window_re_reads_recent_rows(tmp_path: Path, mes: SqlTransport) -> None:
    times = ["2024-03-01 11:50:00", "2024-03-01 11:56:00", "2024-03-01 11:59:30", NOON]
    make_db(tmp_path / "mes.db", ORDERS, [(i, t, i, "x") for i, t in enumerate(times, 1)])
    windowed: dict[str, Any] = {
        "table": "orders",
        "cursor": {**BY_TIME["cursor"], "safety_window": 300},
    }
    cursor = last_cursor(read(mes, **windowed))

    again = read(mes, cursor, **windowed)

    assert ids(again) == [2, 3, 4]  # the last five minutes, not the row from 11:50
    assert last_cursor(again) == cursor


def test_a_numeric_sequence_cursor(tmp_path: Path, mes: SqlTransport) -> None:
    db = make_db(tmp_path / "mes.db", ORDERS, [(i, None, 100 + i, "x") for i in range(1, 6)])
    by_seq: dict[str, Any] = {"table": "orders", "cursor": {"column": "seq", "tiebreaker": "id"}}
    cursor = last_cursor(read(mes, batch_size=2, **by_seq))
    assert cursor["value"] == 105
    assert cursor["type"] == "int"
    insert(db, (6, None, 106, "new"))

    assert ids(read(mes, cursor, **by_seq)) == [5, 6]
    windowed: dict[str, Any] = {
        "table": "orders",
        "cursor": {"column": "seq", "tiebreaker": "id", "safety_window": 2},
    }
    assert ids(read(mes, cursor, **windowed)) == [3, 4, 5, 6]


def test_rows_with_a_null_cursor_come_only_with_a_full_read(
    tmp_path: Path, mes: SqlTransport
) -> None:
    make_db(tmp_path / "mes.db", ORDERS, [(1, NOON, 1, "a"), (2, None, 2, "b"), (3, None, 3, "c")])

    full = read(mes, batch_size=1, **BY_TIME)

    assert ids(full) == [2, 3, 1]  # NULLs first, so a crash among them resumes with no cursor
    assert [b.cursor for b in full][:2] == [None, None]
    assert ids(read(mes, last_cursor(full), **BY_TIME)) == [1]


def test_a_query_source_with_a_cursor(tmp_path: Path, mes: SqlTransport) -> None:
    rows = [(1, NOON, 1, "keep"), (2, NOON, 2, ":skip"), (3, "2024-03-01 12:01:00", 3, "keep")]
    make_db(tmp_path / "mes.db", ORDERS, rows)
    query = (
        "SELECT id, updated_at, upper(name) AS name, ':literal' AS tag FROM orders\n"
        "WHERE name <> ':skip' -- a colon in text is not a bind parameter"
    )

    batches = read(mes, batch_size=1, query=query, cursor=BY_TIME["cursor"])

    assert [dict(r.data) for b in batches for r in b.records] == [
        {"id": 1, "updated_at": NOON, "name": "KEEP", "tag": ":literal"},
        {"id": 3, "updated_at": "2024-03-01 12:01:00", "name": "KEEP", "tag": ":literal"},
    ]
    assert batches[0].records[0].position == "query#id=1"


def test_without_a_cursor_the_whole_source_streams_in_batches(
    tmp_path: Path, mes: SqlTransport
) -> None:
    make_db(tmp_path / "mes.db", ORDERS, [(i, None, i, "x") for i in range(1, 8)])

    batches = read(mes, batch_size=3, table="orders")

    assert [len(b.records) for b in batches] == [3, 3, 1]
    assert {b.cursor for b in batches} == {None}
    assert batches[2].records[0].position == "orders#row=7"
    assert sorted(ids(batches)) == list(range(1, 8))


def test_a_stored_cursor_of_another_column_is_refused(tmp_path: Path, mes: SqlTransport) -> None:
    make_db(tmp_path / "mes.db", ORDERS, [(1, NOON, 1, "a")])
    cursor = last_cursor(read(mes, **BY_TIME))
    with pytest.raises(FatalError, match="reset the flow's cursor"):
        read(mes, cursor, table="orders", cursor={"column": "seq", "tiebreaker": "id"})


# -- read-only ----------------------------------------------------------------------------------


def test_a_write_through_the_read_only_transaction_is_a_read_only_violation(
    tmp_path: Path, mes: SqlTransport
) -> None:
    make_db(tmp_path / "mes.db", ORDERS, [(1, NOON, 1, "a")])
    refused = pytest.raises(ReadOnlyViolation, match="channel mes: write refused")
    with refused, mes._read_only() as conn:
        conn.exec_driver_sql("DELETE FROM orders")
    assert ids(read(mes, table="orders")) == [1]
    with mes._read_only() as conn:  # the second guard, should the file ever open writable
        assert conn.exec_driver_sql("PRAGMA query_only").scalar() == 1


# -- failures -----------------------------------------------------------------------------------


def test_a_missing_database_file_is_unavailable_and_not_created(
    tmp_path: Path, mes: SqlTransport
) -> None:
    with pytest.raises(SourceUnavailable, match=r"missing database at .*mes\.db") as error:
        read(mes, table="orders")
    assert str(tmp_path / "mes.db") in str(error.value)
    assert not (tmp_path / "mes.db").exists()
    health = mes.health()
    assert (health.ok, health.category) == (False, "schema")
    assert health.detail.startswith("missing database: ")


def test_a_missing_table_or_column_is_a_schema_mismatch(tmp_path: Path, mes: SqlTransport) -> None:
    make_db(tmp_path / "mes.db", ORDERS)
    with pytest.raises(FatalError, match="schema mismatch: no such table: invoices"):
        read(mes, table="invoices")
    with pytest.raises(FatalError, match="schema mismatch: no such column: changed_at"):
        read(mes, table="orders", cursor={"column": "changed_at", "tiebreaker": "id"})


def test_a_missing_required_column_names_what_was_found(tmp_path: Path, mes: SqlTransport) -> None:
    make_db(tmp_path / "mes.db", ORDERS)  # empty: the columns are still known
    with pytest.raises(FatalError, match=r"lacks column\(s\) customer, total; columns found: id"):
        read(mes, required=frozenset({"id", "customer", "total"}), **BY_TIME)
    with pytest.raises(FatalError, match="lacks column"):
        read(mes, required=frozenset({"customer"}), table="orders")


def test_health_reports_dialect_and_version(tmp_path: Path, mes: SqlTransport) -> None:
    make_db(tmp_path / "mes.db", ORDERS)
    health = mes.health()
    assert (health.ok, health.category) == (True, "ok")
    assert health.detail.startswith("sqlite 3.")
    assert health.detail.endswith(str(tmp_path / "mes.db"))


def test_an_unreachable_server_is_unavailable_without_showing_the_password(
    tmp_path: Path,
) -> None:
    # Port 1 on the loopback refuses at once: a real refusal, no mock.
    url = "postgresql+psycopg://erp:s3cret@127.0.0.1:1/erp"
    transport = SqlTransport("erp", SqlChannelOptions(url=url, connect_timeout=2), tmp_path)
    try:
        health = transport.health()
        with pytest.raises(SourceUnavailable, match=r"channel erp: refused at .*erp:\*\*\*@") as e:
            read(transport, table="orders")
    finally:
        transport.close()
    assert (health.ok, health.category) == (False, "refused")
    assert health.detail.startswith("refused: ")
    assert "s3cret" not in health.detail
    assert "s3cret" not in str(e.value)
