"""Values of the SOAP transport: parameter templates, dotted paths, plain records, the cursor.

A template is data: any string in a ``params`` block may hold placeholders such as ``{cursor}``
or ``{record.code}``. A string that is exactly one placeholder becomes the value itself (a
datetime stays a datetime, a nested record stays a dict); a placeholder inside other text becomes
text. Braces around any other word are left as they are.

Problems raise a ``FatalError`` that does not name the channel; the transport adds it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import date, datetime, time
from decimal import Decimal
from typing import Any

from zeep.helpers import serialize_object
from zeep.wsdl.utils import etree_to_string

from erpbridge.errors import FatalError
from erpbridge.transports.base import CursorValue
from erpbridge.transports.templates import PLACEHOLDER, lookup, placeholders, render

__all__ = [
    "PLACEHOLDER",
    "RunCursor",
    "decode_cursor",
    "encode_cursor",
    "highest",
    "lookup",
    "placeholders",
    "plain",
    "render",
]

#: Values a record keeps as they are; the hub's mapping and JSON storage know them.
_KEPT = (str, int, float, bool, Decimal, date, time, bytes)
_CURSOR_TYPES: dict[str, Callable[[str], Any]] = {
    "datetime": datetime.fromisoformat,
    "date": date.fromisoformat,
    "decimal": Decimal,
    "str": str,
}


def plain(response: Any) -> Any:
    """A zeep response as plain dicts and lists; Decimal, datetime, date and time kept as they
    are (the hub stores them as the sql transport's values). Untyped XML (``xsd:any``) becomes
    its XML text and other values (durations) their text, so that every value fits in JSON."""
    return _plain(serialize_object(response, target_cls=dict))  # type: ignore[no-untyped-call]


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(key): _plain(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_plain(item) for item in value]
    if value is None or isinstance(value, _KEPT):
        return value
    if hasattr(value, "tag"):  # an lxml element: content of xsd:any
        xml: bytes = etree_to_string(value)  # type: ignore[no-untyped-call]
        return xml.decode("utf-8")
    return str(value)


def encode_cursor(value: Any, field: str) -> dict[str, Any]:
    """The stored form of cursor ``value`` read from ``field``: exact through JSON."""
    if isinstance(value, datetime):
        return {"field": field, "value": value.isoformat(), "type": "datetime"}
    if isinstance(value, date):
        return {"field": field, "value": value.isoformat(), "type": "date"}
    if isinstance(value, int | float) and not isinstance(value, bool):
        return {"field": field, "value": value, "type": "number"}
    if isinstance(value, Decimal):
        return {"field": field, "value": str(value), "type": "decimal"}
    if isinstance(value, str):
        return {"field": field, "value": value, "type": "str"}
    raise FatalError(f"cursor_field {field} holds {type(value).__name__}, which cannot be a cursor")


def decode_cursor(stored: CursorValue, field: str) -> Any:
    """The cursor value of a stored cursor; ``None`` when none is stored."""
    if stored is None:
        return None
    try:
        kind, value = stored["type"], stored["value"]
        decoded = value if kind == "number" else _CURSOR_TYPES[kind](value)
    except (KeyError, TypeError, ValueError, ArithmeticError) as exc:
        raise FatalError(f"stored cursor {stored!r} is not a SOAP cursor") from exc
    if stored.get("field") != field:
        raise FatalError(
            f"stored cursor is for field {stored.get('field')}, the flow now reads by {field}; "
            "reset the flow's cursor to read everything"
        )
    return decoded


def highest(values: Iterable[Any], field: str) -> Any:
    """The largest of ``values`` (``None`` ignored); mixed kinds are a clear error."""
    present = [v for v in values if v is not None]
    if not present:
        return None
    try:
        return max(present)
    except TypeError as exc:  # naive with aware times, text with numbers
        raise FatalError(
            f"cursor_field {field} holds values that cannot be compared: {exc}"
        ) from exc


class RunCursor:
    """The cursor of one run: the highest ``field`` value read, held back when records moved.

    A key read twice in one run means the result changed while it was paged (the record was
    changed and moved to the end); records it shifted into pages already read come after its
    first place, so the cursor stays at its first value and the next run reads them again.
    """

    def __init__(
        self, operation: str, field: str | None, key_field: str | None, start: Any
    ) -> None:
        self.field = field
        self.key_field = key_field
        self.operation = operation
        self.start = start
        self.best = start
        #: key → cursor value where the key was first read in this run.
        self.first: dict[str, Any] = {}
        self.moved: list[Any] = []

    def position(self, record: dict[str, Any], index: int) -> str:
        """Where a record came from, for rejections: by its key, else by its place."""
        key = lookup(record, self.key_field) if self.key_field else None
        if key is None:
            return f"{self.operation}[{index}]"
        return f"{self.operation}#{self.key_field}={key}"

    def see(self, records: list[dict[str, Any]]) -> None:
        """Take note of a page's cursor values and of keys read before in this run."""
        if self.field is None:
            return
        for record in records:
            value = lookup(record, self.field)
            self.best = highest((self.best, value), self.field)
            key = lookup(record, self.key_field) if self.key_field else None
            if key is None:
                continue
            if str(key) in self.first:
                self.moved.append(self.first[str(key)])
            else:
                self.first[str(key)] = value

    def final(self) -> tuple[CursorValue, str | None]:
        """The cursor to store after the last page, and a warning when it was held back."""
        if self.field is None:
            return None, None
        best, warning = self.best, None
        if self.moved:
            # The records a moved one shifted come after its first place: hold the cursor
            # there. It is one of the values read, so it is never past the highest.
            present = [value for value in self.moved if value is not None]
            best = min(present) if present else self.start
            warning = (
                f"{len(self.moved)} record(s) appeared twice: the result changed while it was "
                f"paged; the cursor stays at {best} so the next run reads them again"
            )
        return (None if best is None else encode_cursor(best, self.field)), warning
