"""The heartbeat of a process's runs: one thread renews the leases of every run in progress.

A run lives as long as its lease (``hub.run_lease_s``); the heartbeat renews it every third of
the lease, so a process that stops beating (killed, frozen, cut off from the store) leaves its
runs to be shown and settled as ``interrupted`` once the lease has passed.
"""

from __future__ import annotations

import logging
import threading
from datetime import timedelta

from sqlalchemy import Engine

from erpbridge.engine.failures import FailureLog
from erpbridge.store.outage import masked_url
from erpbridge.store.runlease import renew_leases
from erpbridge.store.runs import now

__all__ = ["Heartbeat"]

log = logging.getLogger(__name__)


class Heartbeat:
    """Renews the leases of the runs :meth:`add` names until they are :meth:`discard`-ed."""

    def __init__(self, engine: Engine, lease: timedelta) -> None:
        self.engine = engine
        self.lease = lease
        self._runs: set[int] = set()
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        # The run itself reports an outage of the store; the heartbeat only what else fails.
        self._failures = FailureLog(log, "run heartbeat", outage_level=logging.DEBUG)

    def add(self, run_id: int) -> None:
        """Keep ``run_id`` alive (starts the thread on first use)."""
        with self._lock:
            self._runs.add(run_id)
            if self._thread is None:
                self._thread = threading.Thread(target=self._beat, name="heartbeat", daemon=True)
                self._thread.start()

    def discard(self, run_id: int) -> None:
        """Stop renewing ``run_id`` (it finished, or its process gives it up)."""
        with self._lock:
            self._runs.discard(run_id)

    def _beat(self) -> None:
        interval = max(0.1, self.lease.total_seconds() / 3)
        while True:
            self._wake.wait(interval)
            with self._lock:
                ids = sorted(self._runs)
                if not ids:  # nothing to keep alive: the next add starts a new thread
                    self._thread = None
                    return
            try:
                with self.engine.begin() as conn:
                    renew_leases(conn, ids, now(), self.lease)
            except Exception as exc:  # noqa: BLE001 - logged; the next beat tries again
                self._failures.failed(exc, masked_url(self.engine))
            else:
                self._failures.recovered()
