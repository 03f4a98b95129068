"""Folding START/END bookings into production orders, alone and through the SQL transport."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest

from erpbridge.errors import FatalError
from erpbridge.systems.mes.bookings import ORDER_FIELDS, BookingColumns, fold_bookings
from erpbridge.transports.base import Batch
from erpbridge.transports.sql.read import SqlChannelOptions, SqlStreamOptions, SqlTransport

COLUMNS = BookingColumns(id="id")
NOW = datetime(2022, 1, 12, 8, 0, tzinfo=UTC)


def booking(at: str, event: str, order: str = "AB-12345", **more: Any) -> dict[str, Any]:
    row = {"timestamp": datetime.fromisoformat(at), "order_code": order, "event": event}
    return {"product_code": "25-1002", "machine_code": "M1", **row, **more}


def fold_one(*rows: dict[str, Any], now: datetime = NOW) -> dict[str, Any]:
    (order,) = fold_bookings(rows, COLUMNS, now)
    return order


# -- the fold -----------------------------------------------------------------------------------


def test_a_started_and_ended_order_is_finished() -> None:
    order = fold_one(
        booking("2022-01-11 06:27:00+00:00", "START"),
        booking("2022-01-11 08:23:55+00:00", "END"),
    )
    assert order == {
        "order_code": "AB-12345",
        "product_code": "25-1002",
        "machine_code": "M1",
        "start": datetime(2022, 1, 11, 6, 27, tzinfo=UTC),
        "end": datetime(2022, 1, 11, 8, 23, 55, tzinfo=UTC),
        "status": "finished",
        "issues": [],
        "bookings": 2,
    }
    assert set(order) == ORDER_FIELDS


def test_bookings_are_folded_in_time_order_and_per_order() -> None:
    orders = fold_bookings(
        [
            booking("2022-01-11 17:37:56+00:00", "END", "AB-67890"),
            booking("2022-01-11 12:10:00+00:00", " start ", "AB-67890"),  # CHAR padding, case
            booking("2022-01-11 06:27:00+00:00", "START"),
        ],
        COLUMNS,
        datetime(2022, 1, 11, 18, 0, tzinfo=UTC),
    )
    assert [(o["order_code"], o["status"], o["issues"]) for o in orders] == [
        ("AB-67890", "finished", []),
        ("AB-12345", "running", []),
    ]


def test_an_end_without_start_is_incomplete_and_says_so() -> None:
    order = fold_one(booking("2022-01-11 08:23:55+00:00", "END"))
    assert order["status"] == "incomplete"
    assert order["start"] is None
    assert order["end"] == datetime(2022, 1, 11, 8, 23, 55, tzinfo=UTC)
    assert order["issues"] == ["END at 2022-01-11 08:23:55+00:00 without START"]


def test_a_start_open_beyond_the_threshold_is_reported() -> None:
    start = booking("2022-01-10 06:00:00+00:00", "START")
    order = fold_one(start)
    assert order["status"] == "running"
    assert order["end"] is None
    assert order["issues"] == ["START at 2022-01-10 06:00:00+00:00 not closed after 24 h"]
    assert fold_one(start, now=datetime(2022, 1, 11, 5, 0, tzinfo=UTC))["issues"] == []
    # Naive MES times are compared with the hub's local clock, never raise a TypeError.
    naive = {**start, "timestamp": datetime(2022, 1, 10, 6, 0)}
    assert fold_one(naive, now=datetime(2030, 1, 1, tzinfo=UTC))["status"] == "running"


def test_a_repeated_start_unknown_events_and_changes_are_issues_not_losses() -> None:
    order = fold_one(
        booking("2022-01-11 06:00:00+00:00", "START"),
        booking("2022-01-11 07:00:00+00:00", "START", machine_code="M2"),
        booking("2022-01-11 07:30:00+00:00", "PAUSE"),
        booking("2022-01-11 09:00:00+00:00", "END"),
        booking("2022-01-11 09:05:00+00:00", "END"),
    )
    assert order["status"] == "finished"
    assert order["start"] == datetime(2022, 1, 11, 6, 0, tzinfo=UTC)
    assert order["end"] == datetime(2022, 1, 11, 9, 0, tzinfo=UTC)
    assert order["machine_code"] == "M1"  # the latest booking that names one
    assert order["bookings"] == 5
    assert order["issues"] == [
        "repeated START at 2022-01-11 07:00:00+00:00, START at 2022-01-11 06:00:00+00:00 open",
        "unknown event 'PAUSE' at 2022-01-11 07:30:00+00:00",
        "END at 2022-01-11 09:05:00+00:00 without an open START (repeated END)",
        "machine_code changes: M1 → M2 → M1",
    ]


def test_text_timestamps_and_missing_ones() -> None:
    order = fold_one(
        {**booking("2022-01-11 06:00:00", "START"), "timestamp": "2022-01-11 06:00:00"},
        {**booking("2022-01-11 06:00:00", "END"), "timestamp": None},
    )
    assert order["start"] == "2022-01-11 06:00:00"  # the value as the table holds it
    assert order["issues"][0] == "END booking without a valid timestamp (None)"


# -- through the SQL transport ------------------------------------------------------------------

BOOKINGS = """
CREATE TABLE IF NOT EXISTS bookings (
    id INTEGER PRIMARY KEY, timestamp TEXT, order_code TEXT, product_code TEXT,
    machine_code TEXT, event TEXT
);
"""


def book(db: Path, *rows: tuple[Any, ...]) -> None:
    conn = sqlite3.connect(db)
    try:
        conn.executescript(BOOKINGS)
        conn.executemany(
            "INSERT INTO bookings (id, timestamp, order_code, product_code, machine_code, event)"
            " VALUES (?, ?, ?, '25-1002', 'M1', ?)",
            rows,
        )
        conn.commit()
    finally:
        conn.close()


@pytest.fixture
def mes(tmp_path: Path) -> Iterator[SqlTransport]:
    transport = SqlTransport("mes", SqlChannelOptions(url="sqlite:///mes.db"), tmp_path)
    yield transport
    transport.close()


STREAM = SqlStreamOptions.model_validate(
    {"table": "bookings", "structure": "bookings", "bookings": {"id": "id"}}
)


def read(mes: SqlTransport, after: Any = None, batch_size: int = 100) -> list[Batch]:
    return list(mes.read(STREAM, after, batch_size, frozenset({"order_code", "status"})))


def orders(batches: list[Batch]) -> dict[str, tuple[str, str | None]]:
    """order_code → (status, end) of the last fold in the run."""
    return {
        r.data["order_code"]: (r.data["status"], r.data["end"]) for b in batches for r in b.records
    }


def test_an_order_started_in_one_read_is_refolded_as_finished_by_the_next(
    tmp_path: Path, mes: SqlTransport
) -> None:
    db = tmp_path / "mes.db"
    book(
        db,
        (1, "2022-01-11 06:27:00+00:00", "AB-12345", "START"),
        (2, "2022-01-11 08:23:55+00:00", "AB-12345", "END"),
        (3, "2022-01-11 12:10:00+00:00", "AB-67890", "START"),
    )
    first = read(mes, batch_size=2)
    assert orders(first) == {
        "AB-12345": ("finished", "2022-01-11 08:23:55+00:00"),
        "AB-67890": ("running", None),
    }
    assert first[-1].records[0].position == "bookings#order_code=AB-67890"
    cursor = orjson.loads(orjson.dumps(first[-1].cursor))

    book(db, (4, "2022-01-11 17:37:56+00:00", "AB-67890", "END"))
    second = read(mes, cursor)

    # The START lies before the cursor, yet the whole order is folded again from all bookings.
    assert orders(second) == {"AB-67890": ("finished", "2022-01-11 17:37:56+00:00")}
    assert second[0].records[0].data["bookings"] == 2
    assert second[0].records[0].data["start"] == "2022-01-11 12:10:00+00:00"


def test_anomalies_are_warnings_and_an_order_less_booking_a_problem(
    tmp_path: Path, mes: SqlTransport
) -> None:
    book(
        tmp_path / "mes.db",
        (1, "2022-01-11 06:00:00+00:00", "AB-1", "END"),
        (2, "2022-01-11 07:00:00+00:00", None, "START"),
        (3, "2022-01-11 08:00:00+00:00", "AB-1", "START"),
    )
    batches = read(mes, batch_size=1)

    assert orders(batches) == {"AB-1": ("incomplete", None)}
    warnings = [w for b in batches for w in b.warnings]
    assert warnings == [  # AB-1 is folded twice in this run, its warnings come once
        "order AB-1: END at 2022-01-11 06:00:00+00:00 without START",
        "order AB-1: START at 2022-01-11 08:00:00+00:00 not closed after 24 h",
    ]
    problems = [(p.position, p.reason) for b in batches for p in b.problems]
    assert problems == [("bookings#id=2", "booking without order_code: it belongs to no order")]


def test_required_fields_are_checked_against_the_folded_order(
    tmp_path: Path, mes: SqlTransport
) -> None:
    book(tmp_path / "mes.db", (1, "2022-01-11 06:00:00+00:00", "AB-1", "START"))
    with pytest.raises(FatalError, match="folded bookings have no field"):
        list(mes.read(STREAM, None, 10, frozenset({"quantity"})))
    renamed = SqlStreamOptions.model_validate(
        {"table": "bookings", "structure": "bookings", "bookings": {"id": "id", "event": "kind"}}
    )
    with pytest.raises(FatalError, match="schema mismatch: bookings lacks column"):
        list(mes.read(renamed, None, 10, frozenset()))
