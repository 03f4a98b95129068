"""Fire times of scheduled flows: cron expressions (croniter, UTC) and fixed intervals.

Interval fire times are aligned to the Unix epoch (every 15 min fires at :00, :15, …), so
every scheduler process, on any machine, computes the same fire times and the store's unique
(flow, fire time) key lets exactly one of them run each fire.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

__all__ = ["Schedule", "parse_interval"]

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_interval(text: str) -> timedelta:
    """``'90s'``, ``'15m'``, ``'12h'``, ``'1d'`` → a timedelta (validated by the config model)."""
    match = re.fullmatch(r"(\d+)([smhd])", text)
    if match is None or int(match.group(1)) == 0:
        raise ValueError(f"not an interval: {text!r} (e.g. 90s, 15m, 12h, 1d)")
    return timedelta(seconds=int(match.group(1)) * _UNITS[match.group(2)])


@dataclass(frozen=True)
class Schedule:
    """A cron expression or an interval; answers "the last fire at or before" and "the next"."""

    cron: str | None = None
    interval: timedelta | None = None

    def next_after(self, moment: datetime) -> datetime:
        """The first fire time strictly after ``moment`` (aware UTC)."""
        moment = moment.astimezone(UTC)
        if self.interval is not None:
            step = self.interval.total_seconds()
            return datetime.fromtimestamp((moment.timestamp() // step + 1) * step, UTC)
        assert self.cron is not None
        from croniter import croniter  # imported on use: its import runs `file` (see config)

        result: datetime = croniter(self.cron, moment).get_next(datetime)
        return result

    def last_at_or_before(self, moment: datetime) -> datetime:
        """The latest fire time at or before ``moment``: missed fires collapse into it."""
        moment = moment.astimezone(UTC)
        if self.interval is not None:
            step = self.interval.total_seconds()
            return datetime.fromtimestamp((moment.timestamp() // step) * step, UTC)
        assert self.cron is not None
        probe = moment + timedelta(microseconds=1)
        from croniter import croniter

        result: datetime = croniter(self.cron, probe).get_prev(datetime)
        return result
