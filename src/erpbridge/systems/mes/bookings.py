"""Fold a booking table's START/END events into production orders (pure functions, no database).

A booking table has one row per event; the order is the fold of all events sharing an
``order_code``. Anomalies never drop an order: they become ``issues`` on the folded record, so the
record still lands and the run can show what looked wrong.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, date, datetime, timedelta
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["ORDER_FIELDS", "BookingColumns", "OrderStatus", "fold_bookings"]

OrderStatus = Literal["running", "finished", "incomplete"]

#: The fields of every folded order record.
ORDER_FIELDS = frozenset(
    {"order_code", "product_code", "machine_code", "start", "end", "status", "issues", "bookings"}
)


class BookingColumns(BaseModel):
    """Where a booking table keeps each fact; the defaults follow the common MES layout."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    timestamp: str = "timestamp"
    """Column with the moment of the booking."""
    order_code: str = "order_code"
    """Column grouping the bookings of one production order."""
    event: str = "event"
    """Column holding the event, compared with ``start_value`` / ``end_value``."""
    machine_code: str = "machine_code"
    product_code: str = "product_code"
    start_value: str = "START"
    """Event value opening an order (compared trimmed and case-insensitively)."""
    end_value: str = "END"
    """Event value closing an order (compared trimmed and case-insensitively)."""
    id: str | None = None
    """A unique row id, used as the cursor's tiebreaker and to order equal timestamps."""
    open_warning_hours: float = Field(24, gt=0)
    """A START still open after this many hours is reported as an issue."""


def fold_bookings(
    rows: Iterable[Mapping[str, Any]], columns: BookingColumns, now: datetime
) -> list[dict[str, Any]]:
    """Fold booking rows into one order record per ``order_code``, in first-seen order.

    Rows without an order code cannot belong to an order and are left to the caller to report.
    """
    groups: dict[Any, list[Mapping[str, Any]]] = {}
    for row in rows:
        code = row.get(columns.order_code)
        if code is not None:
            groups.setdefault(code, []).append(row)
    return [_fold_order(code, group, columns, now) for code, group in groups.items()]


def _fold_order(
    code: Any, rows: list[Mapping[str, Any]], columns: BookingColumns, now: datetime
) -> dict[str, Any]:
    issues: list[str] = []
    timed: list[tuple[datetime, int, Mapping[str, Any]]] = []
    for index, row in enumerate(rows):
        moment = _as_datetime(row.get(columns.timestamp))
        if moment is None:
            issues.append(
                f"{_event_text(row.get(columns.event))} without a valid timestamp "
                f"({row.get(columns.timestamp)!r})"
            )
        else:
            timed.append((moment, index, row))
    # A stable sort keeps the caller's (id) order for bookings with equal timestamps.
    timed.sort(key=lambda item: (_naive_utc(item[0]), item[1]))

    start: Any = None
    end: Any = None
    open_start: datetime | None = None
    seen_start = False
    orphan_end = False
    for moment, _, row in timed:
        raw = row.get(columns.timestamp)
        event = _normalise(row.get(columns.event))
        if event == _normalise(columns.start_value):
            if open_start is not None:
                issues.append(
                    f"repeated START at {_show(moment)}, START at {_show(open_start)} open"
                )
            else:
                open_start = moment
            if not seen_start:
                start, seen_start = raw, True
        elif event == _normalise(columns.end_value):
            if open_start is not None:
                open_start, end = None, raw
            elif seen_start:
                issues.append(f"END at {_show(moment)} without an open START (repeated END)")
            else:
                issues.append(f"END at {_show(moment)} without START")
                orphan_end, end = True, raw
        else:
            issues.append(f"unknown event {row.get(columns.event)!r} at {_show(moment)}")

    if open_start is not None:
        end = None  # an earlier END closed an earlier START, not this one
        if _elapsed(open_start, now) > timedelta(hours=columns.open_warning_hours):
            hours = f"{columns.open_warning_hours:g}"
            issues.append(f"START at {_show(open_start)} not closed after {hours} h")
    status: OrderStatus = "finished"
    if orphan_end:
        status = "incomplete"
    elif open_start is not None:
        status = "running"
    elif end is None:
        status = "incomplete"
        issues.append("no START or END booking")

    untimed = [row for row in rows if _as_datetime(row.get(columns.timestamp)) is None]
    ordered = [row for _, _, row in timed] + untimed
    return {
        "order_code": code,
        "product_code": _latest(ordered, columns.product_code, issues),
        "machine_code": _latest(ordered, columns.machine_code, issues),
        "start": start,
        "end": end,
        "status": status,
        "issues": issues,
        "bookings": len(rows),
    }


def _latest(rows: list[Mapping[str, Any]], column: str, issues: list[str]) -> Any:
    """The last non-empty value of ``column``; a change along the way is reported, not hidden."""
    values = [row[column] for row in rows if row.get(column) is not None]
    changes = [value for at, value in enumerate(values) if at == 0 or value != values[at - 1]]
    if len(changes) > 1:
        issues.append(f"{column} changes: {' → '.join(str(v) for v in changes)}")
    return values[-1] if values else None


def _as_datetime(value: Any) -> datetime | None:
    """A booking timestamp as datetime; SQLite and text exports deliver ISO strings."""
    if isinstance(value, datetime):
        return value
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day)
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value.strip())
        except ValueError:
            return None
    return None


def _naive_utc(moment: datetime) -> datetime:
    """A sort key that lets aware and naive timestamps share one list without a TypeError."""
    return moment if moment.tzinfo is None else moment.astimezone(UTC).replace(tzinfo=None)


def _elapsed(since: datetime, now: datetime) -> timedelta:
    # Naive booking times are taken as the hub's local wall clock: MES tables rarely say more.
    if since.tzinfo is None and now.tzinfo is not None:
        now = now.astimezone().replace(tzinfo=None)
    elif since.tzinfo is not None and now.tzinfo is None:
        now = now.astimezone()
    return now - since


def _normalise(value: Any) -> str | None:
    # CHAR columns pad with blanks and MES vendors disagree on case.
    return None if value is None else str(value).strip().casefold()


def _event_text(value: Any) -> str:
    return "booking" if value is None else f"{str(value).strip()} booking"


def _show(moment: datetime) -> str:
    return moment.isoformat(sep=" ")
