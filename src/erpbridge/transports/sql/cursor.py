"""The SQL transport's stored cursor: ``(column value, tiebreaker)`` to and from JSON (the
safety-window arithmetic is shared: :mod:`erpbridge.transports.window`).

Problems raise a ``FatalError`` that does not name the channel; the transport adds it.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

from erpbridge.errors import FatalError
from erpbridge.transports.base import CursorValue

__all__ = ["decode_cursor", "earlier", "encode_cursor"]

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


def earlier(last: tuple[Any, Any], start: tuple[Any, Any] | None) -> bool:
    """Whether a page ended before the stored cursor (re-read window): keep the stored one."""
    try:
        return start is not None and last < start
    except TypeError:  # the column changed type (naive vs aware, text vs number): move on
        return False
