"""Which dispatcher hands new deliveries out, chosen by ``ERPBRIDGE_DISPATCHER``.

Unset: workers find them with the claim loop, and the store needs no hook. ``procrastinate``
(PostgreSQL only): the engine hands the store :func:`erpbridge.engine.dispatch.defer_deliveries`
as its :data:`~erpbridge.store.deliveries.Dispatcher` hook, so that the jobs are written in the
transaction of the ledger rows. The store never imports the engine: it calls what it is given.
"""

from __future__ import annotations

import os

from erpbridge.store.deliveries import Dispatcher

__all__ = ["DISPATCHER_ENV", "PROCRASTINATE", "chosen_dispatcher", "ledger_dispatcher"]

#: ``procrastinate`` hands deliveries to procrastinate jobs (PostgreSQL); unset: the claim loop.
DISPATCHER_ENV = "ERPBRIDGE_DISPATCHER"
PROCRASTINATE = "procrastinate"


def chosen_dispatcher() -> str:
    """The value of ``ERPBRIDGE_DISPATCHER`` ('' when unset)."""
    return os.environ.get(DISPATCHER_ENV, "")


def ledger_dispatcher(dialect: str) -> Dispatcher | None:
    """The hook the store calls with every batch of new deliveries, or None (the claim loop).

    Read at each call, as the variable was before the hook: a process may switch it.
    """
    if dialect != "postgresql" or chosen_dispatcher() != PROCRASTINATE:
        return None
    # Imported here: only this shape needs procrastinate (an optional dependency).
    from erpbridge.engine.dispatch import defer_deliveries

    return defer_deliveries
