"""The SQL transport's stored cursor: ``(column value, tiebreaker)`` to and from JSON, and the
safety-window arithmetic that decides where the next read starts.

Problems raise a ``FatalError`` that does not name the channel; the transport adds it.
"""

from __future__ import annotations

import math
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID

from erpbridge.errors import FatalError
from erpbridge.transports.base import CursorValue

__all__ = ["DEFAULT_TIME_WINDOW", "decode_cursor", "earlier", "encode_cursor", "minus_window"]

#: Seconds a date/time cursor re-reads when the flow sets no ``safety_window``. A row whose
#: transaction took its timestamp before other rows but committed after the hub read them is
#: found on the next run only if it committed within this window; five minutes covers ordinary
#: ERP/MES transactions and replication lag, at the price of re-reading (and hashing, as
#: unchanged) the rows changed in the last five minutes on every run.
DEFAULT_TIME_WINDOW = 300.0

_DECODERS: dict[str, Any] = {
    "datetime": datetime.fromisoformat,
    "date": date.fromisoformat,
    "int": int,
    "decimal": Decimal,
    "float": float,
    "str": str,
    "uuid": UUID,
    "bytes": bytes.fromhex,
}


def encode_cursor(last: tuple[Any, Any], column: str, tiebreaker: str) -> dict[str, Any]:
    """The cursor to store after a page ending in ``(value of column, value of tiebreaker)``."""
    value, key = _encode(last[0], column), _encode(last[1], tiebreaker)
    return {**value, "key": key, "column": column}


def decode_cursor(stored: CursorValue, column: str) -> tuple[Any, Any] | None:
    """``(value, tiebreaker)`` of a stored cursor read by ``column``; ``None`` if none is stored."""
    if stored is None:
        return None
    try:
        decoded = (_decode(stored), _decode(stored["key"]))
    except (KeyError, TypeError, ValueError, ArithmeticError) as exc:
        raise FatalError(f"stored cursor {stored!r} is not an sql cursor") from exc
    if stored.get("column", column) != column:
        raise FatalError(
            f"stored cursor is for column {stored['column']}, the flow now reads by {column}; "
            "reset the flow's cursor to read everything"
        )
    return decoded


def _encode(value: Any, column: str) -> dict[str, Any]:
    """One value as ``{"value", "type"}``, exact through JSON (Decimal as text, big ints too)."""
    if isinstance(value, datetime):
        return {"value": value.isoformat(), "type": "datetime"}
    if isinstance(value, date):
        return {"value": value.isoformat(), "type": "date"}
    if isinstance(value, int) and not isinstance(value, bool):
        return {"value": value if abs(value) < 2**53 else str(value), "type": "int"}
    for kind, types in (("decimal", Decimal), ("float", float), ("str", str), ("uuid", UUID)):
        if isinstance(value, types):
            return {"value": value if kind in ("float", "str") else str(value), "type": kind}
    if isinstance(value, bytes | bytearray | memoryview):
        return {"value": bytes(value).hex(), "type": "bytes"}
    raise FatalError(f"column {column} holds {type(value).__name__}, which cannot be a cursor")


def _decode(encoded: Any) -> Any:
    return _DECODERS[encoded["type"]](encoded["value"])


def minus_window(value: Any, window: float | None, column: str) -> Any:
    """The lowest cursor value a read starts from; only ever earlier than ``value``.

    ``window`` ``None`` (not set) is :data:`DEFAULT_TIME_WINDOW` for date/time values and 0 for
    numbers: a number is a sequence or version whose units say nothing about time.
    """
    if window is None:
        window = DEFAULT_TIME_WINDOW if _is_time(value) else 0
    if not window:
        return value
    if isinstance(value, date):  # also datetime; a date drops the part below a day
        return value - timedelta(seconds=window)
    if isinstance(value, int):
        return value - math.ceil(window)
    if isinstance(value, Decimal):
        return value - Decimal(str(window))
    if isinstance(value, float):
        return value - window
    if isinstance(value, str) and value[4:5] == "-":
        # SQLite and text exports keep timestamps as ISO text, compared as text: go back by the
        # window and cut to whole seconds, which sorts before every text of that second.
        try:
            moment = datetime.fromisoformat(value) - timedelta(seconds=window)
        except ValueError:
            pass
        else:
            if len(value) == 10:
                return moment.date().isoformat()
            return moment.replace(microsecond=0, tzinfo=None).isoformat(sep=value[10])
    raise FatalError(f"safety_window needs a date/time or numeric cursor; {column} holds {value!r}")


def _is_time(value: Any) -> bool:
    """A date, a date-time, or an ISO date/time kept as text (SQLite, text exports)."""
    if isinstance(value, date):
        return True
    if not (isinstance(value, str) and value[4:5] == "-"):
        return False
    try:
        datetime.fromisoformat(value)
    except ValueError:
        return False
    return True


def earlier(last: tuple[Any, Any], start: tuple[Any, Any] | None) -> bool:
    """Whether a page ended before the stored cursor (re-read window): keep the stored one."""
    try:
        return start is not None and last < start
    except TypeError:  # the column changed type (naive vs aware, text vs number): move on
        return False
