"""The safety window: how far back an incremental read starts from its stored cursor value.

Shared by the connectors that read by a date/time or numeric cursor (``sql``, ``soap``).
Problems raise a ``FatalError`` that does not name the channel; the transport adds it.
"""

from __future__ import annotations

import math
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from erpbridge.errors import FatalError
from erpbridge.incremental import DEFAULT_TIME_WINDOW

__all__ = ["DEFAULT_TIME_WINDOW", "minus_window"]


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
