"""What the streaming transports (``amqp``, ``nats``) share on their broker's side: the two
error kinds with the health word they carry, and :class:`BrokerCalls`, which runs a transport's
coroutines on its own event loop and translates what fails.

A failure drops the transport's connection (the next call opens a new one), except a refusal
for good, which leaves a working connection alone.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import TypeVar

from erpbridge.errors import ErpbridgeError, FatalError, SourceUnavailable
from erpbridge.transports.aioloop import LoopThread
from erpbridge.transports.base import Health, HealthCategory

__all__ = ["BrokerCalls", "BrokerRefused", "BrokerUnavailable", "category_of"]

T = TypeVar("T")


class BrokerRefused(FatalError):
    """The broker refused for good: a login, a missing queue, stream or consumer, a message
    nothing takes. ``category`` is the health word (``erpbridge channels test``)."""

    def __init__(self, message: str, category: HealthCategory) -> None:
        super().__init__(message)
        self.category: HealthCategory = category


class BrokerUnavailable(SourceUnavailable):
    """The broker could not be reached, went away, did not answer in time or refused a message
    for now (a full queue or stream)."""

    def __init__(self, message: str, category: HealthCategory) -> None:
        super().__init__(message)
        self.category: HealthCategory = category


def category_of(exc: ErpbridgeError) -> HealthCategory:
    """The health word of a translated error (``error`` when it carries none)."""
    if isinstance(exc, BrokerRefused | BrokerUnavailable):
        return exc.category
    return "error"


class BrokerCalls:
    """One transport's event loop (started on first use) and the translation of its failures.

    ``classify`` turns a client library's exception into the engine's kind, given the place;
    ``reset`` (a coroutine) drops the connection after a failure.
    """

    def __init__(
        self,
        name: str,
        where: str,
        classify: Callable[[BaseException, str], ErpbridgeError],
        reset: Callable[[], Awaitable[None]],
    ) -> None:
        self._name = name
        self.where = where
        self._classify = classify
        self._reset = reset
        self._loop: LoopThread | None = None

    def run(self, work: Callable[[], Awaitable[T]], timeout: float, doing: str) -> T:
        """``work()`` on the loop; any failure as the engine's kind, naming ``doing``."""
        if self._loop is None:
            self._loop = LoopThread(self._name)

        async def guarded() -> T:
            try:
                return await work()
            except BaseException as exc:
                if not isinstance(exc, asyncio.CancelledError) and not isinstance(
                    self._classify(exc, ""), BrokerRefused
                ):
                    await self._reset()
                raise

        try:
            return self._loop.run(guarded(), timeout)
        except ErpbridgeError:
            raise
        except Exception as exc:
            raise self._classify(exc, f"{self.where}, {doing}") from exc

    @property
    def running(self) -> bool:
        """Whether the loop is up (a read's clean-up after :meth:`close` has nothing to do)."""
        return self._loop is not None

    def health(self, check: Callable[[], Awaitable[str]], timeout: float, place: str) -> Health:
        """Run ``check`` (it returns what answered); a failure as a failed :class:`Health`."""
        try:
            server = self.run(check, timeout, "connection check")
        except ErpbridgeError as exc:
            return Health(ok=False, detail=str(exc), category=category_of(exc))
        return Health(ok=True, detail=f"{server} at {place}")

    def close(self, timeout: float) -> None:
        """Drop the connection and stop the loop."""
        if self._loop is None:
            return
        try:
            with contextlib.suppress(ErpbridgeError):  # a connection that already failed
                self.run(self._reset, timeout, "closing")
        finally:
            self._loop.close()
            self._loop = None
