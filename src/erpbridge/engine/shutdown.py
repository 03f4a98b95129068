"""A graceful stop within a bound: what SIGTERM (a service manager's stop) does to a worker.

On the first SIGTERM or SIGINT the loops stop taking work: the delivery batch being written
finishes and is recorded, claims not yet written are released (due again at once for any
worker), a scheduled run stops after its current batch (``interrupted``, resumable), transports
close, and the process exits 0. If that takes longer than the bound (a write hanging on a slow
target), the claims not being written are released anyway and the process exits 1; a second
signal does the same at once. The bound is ``--stop-timeout`` (``ERPBRIDGE_STOP_TIMEOUT_S``).
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from collections.abc import Callable
from types import FrameType

__all__ = ["DEFAULT_STOP_TIMEOUT_S", "GracefulStop"]

log = logging.getLogger(__name__)

#: Seconds a stop may take: below ``docker stop``'s 10 s grace before it kills.
DEFAULT_STOP_TIMEOUT_S = 8.0


class GracefulStop:
    """Installs the SIGTERM/SIGINT handlers of a long-running command.

    ``begin`` asks the loops to stop (it must only set events); ``abandon`` runs when the
    bound is over (release what can be released) and returns the line to log before exit 1.
    """

    def __init__(
        self,
        what: str,
        timeout_s: float,
        begin: Callable[[], None],
        abandon: Callable[[], str],
    ) -> None:
        self.what, self.timeout_s = what, timeout_s
        self._begin, self._abandon = begin, abandon
        self.signal: str | None = None
        self.done = threading.Event()

    def install(self) -> GracefulStop:
        """Take over SIGTERM and SIGINT (call from the main thread)."""
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, self._on_signal)
        return self

    def request(self, name: str = "a stop request") -> None:
        """Begin the stop as a signal would (for callers that get the signal another way)."""
        if self.signal is not None:
            return
        self.signal = name
        log.warning(
            "%s: %s: finishing the current batch, then stopping (at most %.0f s)",
            self.what,
            name,
            self.timeout_s,
        )
        self._begin()
        threading.Thread(target=self._watch, name="stop-watchdog", daemon=True).start()

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        if self.signal is not None:  # a second signal: stop now
            self._force(f"{signal.Signals(signum).name} again")
        self.request(signal.Signals(signum).name)

    def _watch(self) -> None:
        if not self.done.wait(self.timeout_s):
            self._force(f"not stopped within {self.timeout_s:.0f} s")

    def _force(self, why: str) -> None:
        try:
            detail = self._abandon()
        except Exception as exc:  # noqa: BLE001 - exiting anyway; say what could not be done
            detail = f"could not release its claims: {exc}"
        log.error("%s: %s: exiting now; %s", self.what, why, detail)
        logging.shutdown()
        os._exit(1)
