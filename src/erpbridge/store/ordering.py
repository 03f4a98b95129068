"""Which of two versions of a record is older, by a field of the record itself.

A flow's ``version_field`` names a field of the mapped record that orders its versions (an
``updated_at`` timestamp, a version number). An incoming record whose value is older than the
stored record's is not applied: a late or replayed delivery never reverts newer content.
Values are compared as numbers when both are numbers (or numeric text), as instants when both
are ISO 8601 date-times or dates (a time without zone is taken as UTC), else not at all: values
that cannot be ordered, or a side without the field, never block a change.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

__all__ = ["is_older"]


def is_older(field: str, incoming: Mapping[str, Any], stored: Mapping[str, Any]) -> bool:
    """Whether ``incoming``'s ``field`` orders strictly before ``stored``'s."""
    ours, theirs = _orderable(_at(stored, field)), _orderable(_at(incoming, field))
    if isinstance(ours, Decimal) and isinstance(theirs, Decimal):
        return theirs < ours
    if isinstance(ours, datetime) and isinstance(theirs, datetime):
        return theirs < ours
    return False


def _at(data: Mapping[str, Any], path: str) -> Any:
    value: Any = data
    for part in path.split("."):
        if not isinstance(value, Mapping):
            return None
        value = value.get(part)
    return value


def _orderable(value: Any) -> Decimal | datetime | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float | Decimal):
        return Decimal(str(value))
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if not isinstance(value, str):
        return None
    text = value.strip()
    try:
        number = Decimal(text)
    except InvalidOperation:
        pass
    else:
        return number if number.is_finite() else None
    try:
        instant = datetime.fromisoformat(text)
    except ValueError:
        return None
    return instant if instant.tzinfo else instant.replace(tzinfo=UTC)
