"""Real-time operations: a caller's question answered by a channel within the caller's request.

The seeds' *Validate PO number*, price calculation and customer look-up are not queued: the API
calls the channel's transport (:class:`~erpbridge.transports.base.Operator`) synchronously, with
the operation's ``timeout_s``, and may keep the answer ``cache_s`` seconds for the same
parameters. Transports stay open between calls (one per channel), so a call pays no login.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from typing import Any

import orjson

from erpbridge.config.loader import LoadedConfig
from erpbridge.errors import ErpbridgeError, RetriableError
from erpbridge.transports.base import Operator, Transport

__all__ = ["OperationResult", "OperationTimeout", "Operations", "UnknownOperation"]

_CACHE_ENTRIES = 10_000


class UnknownOperation(ErpbridgeError):
    """No such channel, or the channel has no operation of that name."""


class OperationTimeout(RetriableError):
    """The channel did not answer within the operation's ``timeout_s``."""


@dataclass(frozen=True, slots=True)
class OperationResult:
    """The channel's answer, whether it came from the cache, and how long it took."""

    value: Any
    cached: bool
    took_ms: float


class Operations:
    """Calls the operations of one configuration; safe to share between request threads."""

    def __init__(self, config: LoadedConfig, workers: int = 8) -> None:
        self.config = config
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="operation")
        self._lock = threading.Lock()
        self._transports: dict[str, Transport] = {}
        self._cache: OrderedDict[tuple[str, str, bytes], tuple[float, Any]] = OrderedDict()

    def names(self, channel: str) -> list[str]:
        """The operations ``channel`` offers."""
        return sorted(self.config.operations.get(channel, {}))

    def call(self, channel: str, name: str, params: Mapping[str, Any]) -> OperationResult:
        """Answer operation ``name`` of ``channel`` for ``params``, from the cache or the channel.

        Raises :class:`UnknownOperation`, :class:`OperationTimeout`, or the transport's own
        errors (retriable, fatal, data), each naming the channel and operation.
        """
        try:
            settings, options = self.config.operations[channel][name]
        except KeyError:
            known = ", ".join(self.names(channel)) or "none"
            raise UnknownOperation(
                f"channel {channel!r} has no operation {name!r} (operations: {known})"
            ) from None
        started = time.monotonic()
        key = (channel, name, orjson.dumps(dict(params), option=orjson.OPT_SORT_KEYS, default=str))
        if settings.cache_s > 0:
            hit = self._cached(key)
            if hit is not None:
                return OperationResult(hit, True, _ms(started))
        transport = self._transport(channel)
        future = self._pool.submit(transport.call, options, params)  # type: ignore[attr-defined]
        try:
            value = future.result(timeout=settings.timeout_s)
        except FutureTimeout:
            future.cancel()
            raise OperationTimeout(
                f"channel {channel!r}, operation {name!r}: no answer within "
                f"{settings.timeout_s:g} s",
                retry_after=settings.timeout_s,
            ) from None
        if settings.cache_s > 0:
            self._store(key, value, settings.cache_s)
        return OperationResult(value, False, _ms(started))

    def close(self) -> None:
        """Release the channels' connections and the threads."""
        self._pool.shutdown(wait=False, cancel_futures=True)
        with self._lock:
            for transport in self._transports.values():
                transport.close()
            self._transports.clear()

    def forget(self, channel: str) -> None:
        """Close ``channel``'s open transport and drop its cached answers (new credentials)."""
        with self._lock:
            transport = self._transports.pop(channel, None)
            for key in [k for k in self._cache if k[0] == channel]:
                del self._cache[key]
        if transport is not None:
            transport.close()

    def _transport(self, channel: str) -> Transport:
        with self._lock:
            transport = self._transports.get(channel)
            if transport is None:
                transport = self.config.open_transport(channel)
                if not isinstance(transport, Operator):
                    raise UnknownOperation(f"channel {channel!r} serves no operations")
                self._transports[channel] = transport
            return transport

    def _cached(self, key: tuple[str, str, bytes]) -> Any:
        with self._lock:
            entry = self._cache.get(key)
            if entry is None or entry[0] < time.monotonic():
                return None
            self._cache.move_to_end(key)
            return entry[1]

    def _store(self, key: tuple[str, str, bytes], value: Any, ttl: float) -> None:
        with self._lock:
            self._cache[key] = (time.monotonic() + ttl, value)
            self._cache.move_to_end(key)
            while len(self._cache) > _CACHE_ENTRIES:
                self._cache.popitem(last=False)


def _ms(started: float) -> float:
    return round((time.monotonic() - started) * 1000, 2)
