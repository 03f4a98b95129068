"""The hub store going away: tell an outage from a bug, retry with backoff for a bounded time.

An outage is what a restart, a network cut, a full or read-only disk or a held lock looks like
through SQLAlchemy: ``OperationalError`` or ``InterfaceError`` (or a connection SQLAlchemy saw
invalidated). Key clashes (``IntegrityError``) and programming errors are not outages.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError

from erpbridge.errors import StoreUnavailable

__all__ = [
    "StoreRetry",
    "describe",
    "is_outage",
    "masked_url",
]

log = logging.getLogger(__name__)

T = TypeVar("T")


def is_outage(exc: BaseException) -> bool:
    """The store could not be reached or written, as opposed to a bug or a key clash."""
    if isinstance(exc, OperationalError | InterfaceError):
        return True
    return isinstance(exc, DBAPIError) and exc.connection_invalidated


def describe(exc: BaseException) -> str:
    """The driver's own words for an outage, on one line, without SQLAlchemy's SQL echo."""
    cause = getattr(exc, "orig", None) or exc
    text = " ".join(str(cause).split())
    return text or type(cause).__name__


def masked_url(engine: Engine) -> str:
    """The store's URL as users may see it: without its password."""
    return engine.url.render_as_string(hide_password=True)


@dataclass
class StoreRetry:
    """Retry a store operation through an outage: backoff from ``first_s`` doubling up to
    ``max_s`` (with jitter), for at most ``budget_s`` in all, then :class:`StoreUnavailable`."""

    engine: Engine
    budget_s: float = 60.0
    first_s: float = 0.5
    max_s: float = 5.0

    def call(self, operation: Callable[[], T], what: str) -> T:
        """Run ``operation`` (one whole transaction), again after each outage until it works
        or the budget is spent. ``what`` names the operation in the log."""
        started = time.monotonic()
        attempts = 0
        while True:
            attempts += 1
            try:
                return operation()
            except (OperationalError, InterfaceError, DBAPIError) as exc:
                if not is_outage(exc):
                    raise
                waited = time.monotonic() - started
                if waited >= self.budget_s:
                    raise StoreUnavailable(
                        masked_url(self.engine), describe(exc), waited, attempts
                    ) from exc
                delay = min(self.max_s, self.first_s * 2 ** (attempts - 1))
                delay = random.uniform(delay / 2, delay)  # noqa: S311 - jitter, not crypto
                if attempts == 1:
                    log.warning(
                        "%s: the hub store %s is unavailable (%s); retrying for up to %.0f s",
                        what,
                        masked_url(self.engine),
                        describe(exc),
                        self.budget_s,
                    )
                time.sleep(min(delay, self.budget_s - waited))
