"""Incremental reading for the REST transport: a changed-since query parameter and its cursor.

A run asks the API for the records changed at or after ``stored − overlap_s`` (``≥``: records
sharing the boundary value are read again, and so are records committed late within the
overlap); the hub drops those re-reads as unchanged by content hash. The cursor a batch carries
is the highest ``cursor_field`` value seen so far in the run, never lower than the stored one.
Only when the API lists records in ascending cursor order (``sorted: true``) does every batch
carry it; otherwise only the run's last batch does, so a crash mid-run reads the run again from
its start instead of skipping what a later page still held.

Problems raise a ``FatalError`` that does not name the channel; the transport adds it.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Any, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from erpbridge.errors import FatalError
from erpbridge.transports.base import CursorValue

__all__ = ["CursorTracker", "IncrementalOptions", "dig"]

_NAMED_FORMATS = ("iso", "epoch_s", "epoch_ms", "date", "raw")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class IncrementalOptions(BaseModel):
    """A flow's ``incremental:`` block: which field orders changes, which parameter filters."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    cursor_field: str = Field(
        min_length=1, description="Dot path of the change time (or sequence) in each record."
    )
    changed_since_param: str = Field(
        min_length=1,
        description="Query parameter asking for records changed at or after a value "
        "(e.g. json-server's `updatedAt_gte`).",
    )
    format: str = Field(
        default="iso",
        description="How the parameter's value is written: `iso` (2026-01-31T12:00:00.000Z), "
        "`epoch_s`, `epoch_ms`, `date` (2026-01-31), a strftime pattern (UTC), or `raw` "
        "(the highest value as the records carry it: a sequence or version number).",
    )
    overlap_s: float = Field(
        default=0,
        ge=0,
        description="Ask from this many seconds before the stored cursor (units for `raw` "
        "numbers), so changes committed late are read too.",
    )
    sorted: bool = Field(
        default=False,
        description="The API lists records in ascending `cursor_field` order (ask for it in "
        "`params`): every batch then commits the cursor, so a crash resumes mid-run.",
    )

    @model_validator(mode="after")
    def _known_format(self) -> Self:
        if self.format not in _NAMED_FORMATS and "%" not in self.format:
            named = ", ".join(_NAMED_FORMATS)
            raise ValueError(f"format must be one of {named} or a strftime pattern with '%'")
        return self


def dig(data: Any, path: str) -> Any:
    """The value at dot ``path`` of ``data`` (dict keys, list indexes), ``None`` if absent."""
    current = data
    for part in path.split("."):
        if isinstance(current, dict):
            current = current.get(part)
        elif isinstance(current, list) and part.lstrip("-").isdigit():
            index = int(part)
            current = current[index] if -len(current) <= index < len(current) else None
        else:
            return None
        if current is None:
            return None
    return current


class CursorTracker:
    """The highest cursor value of one run, and the query parameter a run starts with."""

    def __init__(self, options: IncrementalOptions, stored: CursorValue) -> None:
        self.options = options
        self.start = self._decode(stored)
        self.highest: Any = self.start
        self.unreadable = 0
        self.out_of_order = False

    def params(self) -> dict[str, str]:
        """``{changed_since_param: value}`` for the run's first request; empty for a full read."""
        if self.start is None:
            return {}
        options = self.options
        value = self.start
        if options.overlap_s:
            if isinstance(value, datetime):
                value = value - timedelta(seconds=options.overlap_s)
            elif isinstance(value, int | float) and not isinstance(value, bool):
                value = value - math.ceil(options.overlap_s)
            else:
                raise FatalError(
                    f"overlap_s needs a time or numeric cursor; {options.cursor_field} is {value!r}"
                )
        return {options.changed_since_param: self._format(value)}

    def see(self, record: Any) -> None:
        """Take one record's cursor value into account."""
        raw = dig(record, self.options.cursor_field)
        if raw is None:
            self.unreadable += 1
            return
        value = self._parse(raw)
        if value is None:
            self.unreadable += 1
            return
        if self.highest is None:
            self.highest = value
            return
        try:
            if value > self.highest:
                self.highest = value
            elif value < self.highest:
                self.out_of_order = True
        except TypeError:  # a number among texts: it cannot be ordered, so it cannot count
            self.unreadable += 1

    def cursor(self) -> CursorValue:
        """The cursor to store: the highest value seen, as JSON; ``None`` before any."""
        value = self.highest
        if value is None:
            return None
        if isinstance(value, datetime):
            value = value.isoformat()
        # The value first: it is what `erpbridge runs` shows of a cursor.
        return {"value": value, "field": self.options.cursor_field, "format": self._kind()}

    # -- values ------------------------------------------------------------------------------

    def _kind(self) -> str:
        return "raw" if self.options.format == "raw" else "time"

    def _decode(self, stored: CursorValue) -> Any:
        if stored is None:
            return None
        field = self.options.cursor_field
        if not isinstance(stored, dict) or "value" not in stored:
            raise FatalError(f"stored cursor {stored!r} is not a rest cursor")
        if stored.get("field") != field or stored.get("format") != self._kind():
            raise FatalError(
                f"stored cursor is for {stored.get('field')} ({stored.get('format')}), the flow "
                f"now reads by {field} ({self._kind()}); reset the flow's cursor to read "
                "everything"
            )
        if self._kind() == "raw":
            return stored["value"]
        try:
            return _aware(datetime.fromisoformat(stored["value"]))
        except (TypeError, ValueError) as exc:
            raise FatalError(f"stored cursor {stored!r} holds no time") from exc

    def _parse(self, raw: Any) -> Any:
        """``raw`` made comparable (a UTC datetime for time formats); ``None``: unreadable."""
        fmt = self.options.format
        if fmt == "raw":
            return raw if isinstance(raw, int | float | str) and not isinstance(raw, bool) else None
        if isinstance(raw, bool):
            return None
        if isinstance(raw, int | float):
            seconds = raw / 1000 if fmt == "epoch_ms" else raw
            try:
                return datetime.fromtimestamp(seconds, UTC)
            except (OverflowError, OSError, ValueError):
                return None
        if not isinstance(raw, str):
            return None
        text = raw.strip()
        if "%" in fmt:
            try:
                return _aware(datetime.strptime(text, fmt))
            except ValueError:
                pass  # the records may carry ISO text though the parameter wants a pattern
        try:
            return _aware(datetime.fromisoformat(text))
        except ValueError:
            return None

    def _format(self, value: Any) -> str:
        fmt = self.options.format
        if fmt == "raw":
            return str(value)
        moment: datetime = value.astimezone(UTC)
        # Every format rounds down: asking from a little earlier re-reads, never skips.
        if fmt == "iso":
            millis = moment.microsecond // 1000
            return moment.strftime("%Y-%m-%dT%H:%M:%S") + f".{millis:03d}Z"
        if fmt == "epoch_s":
            return str((moment - _EPOCH) // timedelta(seconds=1))
        if fmt == "epoch_ms":
            return str((moment - _EPOCH) // timedelta(milliseconds=1))
        if fmt == "date":
            return moment.date().isoformat()
        return moment.strftime(fmt)


def _aware(value: datetime) -> datetime:
    # Times without a zone are taken as UTC, as the hub's datetime fields are.
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value
