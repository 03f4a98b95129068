"""Log a failure that repeats on every pass of a loop once, then count it, then say it ended.

A worker or scheduler whose hub store is down fails on each pass; a traceback per pass buried
the one line that mattered (1 023 lines in 10 s). :class:`FailureLog` logs the first failure in
one line (a traceback only for what is not a store outage, and only once), a reminder with the
count at most every ``remind_s``, and one line with the count when the loop works again.
"""

from __future__ import annotations

import logging
import time

from erpbridge.store.outage import describe, is_outage

__all__ = ["FailureLog"]


class FailureLog:
    """The failures of one loop (``what`` names it in each line)."""

    def __init__(
        self,
        log: logging.Logger,
        what: str,
        *,
        remind_s: float = 60.0,
        outage_level: int = logging.WARNING,
    ) -> None:
        """``outage_level``: the level of store outages (lower it where another part of the
        process already reports them)."""
        self.log, self.what, self.remind_s = log, what, remind_s
        self.outage_level = outage_level
        self._outage = False
        self.count = 0
        self._signature = ""
        self._since = self._reminded = 0.0

    def failed(self, exc: BaseException, store: str = "") -> None:
        """One pass failed with ``exc``; ``store`` names the hub store (URL without password)."""
        outage = is_outage(exc)
        cause = describe(exc) if outage else f"{type(exc).__name__}: {exc}"
        # An outage is one streak whatever its words (a restart says "shutting down", then
        # "connection refused", then "starting up"); anything else is one streak per message.
        signature = "outage" if outage else cause
        at = time.monotonic()
        if self.count and signature == self._signature:
            self.count += 1
            if at - self._reminded >= self.remind_s:
                self._reminded = at
                self.log.log(
                    self._level(),
                    "%s: still failing, %d time(s) in %.0f s: %s",
                    self.what,
                    self.count,
                    at - self._since,
                    cause,
                )
            return
        self.recovered(quiet=True)
        self.count, self._signature, self._since, self._reminded = 1, signature, at, at
        self._outage = outage
        if outage:
            self.log.log(
                self.outage_level,
                "%s: the hub store %s is unavailable: %s; retrying (repeats are counted)",
                self.what,
                store or "(hub store)",
                cause,
            )
        else:
            self.log.error("%s failed: %s (repeats are counted)", self.what, cause, exc_info=exc)

    def recovered(self, *, quiet: bool = False) -> None:
        """A pass went through: end the current streak with its count."""
        if self.count and not quiet:
            self.log.log(
                self._level(),
                "%s: working again after %d failed pass(es) over %.0f s",
                self.what,
                self.count,
                time.monotonic() - self._since,
            )
        elif self.count > 1:
            self.log.log(
                self._level(), "%s: the failure above repeated %d time(s)", self.what, self.count
            )
        self.count = 0

    def _level(self) -> int:
        return self.outage_level if self._outage else logging.WARNING
