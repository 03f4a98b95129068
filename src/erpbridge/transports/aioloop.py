"""An asyncio event loop on a thread of its own, for connectors whose client library is async
(aio-pika, nats-py) behind the hub's synchronous connector API.

The broker connection lives on this loop between the engine's calls, so that heartbeats are
answered and deliveries flow in while the engine commits a batch. Every call waits for its
coroutine with a deadline: a broker that stops answering cannot hang a run or a worker.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

__all__ = ["LoopThread"]

T = TypeVar("T")

#: How long closing waits for the loop's last tasks (closing a connection).
_CLOSE_WAIT_S = 5.0
#: How many rounds of cancelling closing goes through (tasks that start tasks).
_CLOSE_ROUNDS = 10


class LoopThread:
    """One event loop on one daemon thread; :meth:`run` hands it a coroutine and waits."""

    def __init__(self, name: str) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name=name, daemon=True)
        self._thread.start()

    def run(self, coroutine: Coroutine[Any, Any, T], timeout: float) -> T:
        """The coroutine's result; ``TimeoutError`` (the coroutine cancelled) after ``timeout``."""
        future = asyncio.run_coroutine_threadsafe(asyncio.wait_for(coroutine, timeout), self._loop)
        try:
            # A little longer than wait_for's own deadline, which cancels the coroutine first.
            return future.result(timeout + 1)
        except concurrent.futures.TimeoutError:
            if future.done():
                raise  # the coroutine's own TimeoutError (the same class since Python 3.11)
            future.cancel()
            raise TimeoutError(f"no answer within {timeout:g} s") from None

    def close(self) -> None:
        """Cancel what still runs, stop the loop and its thread."""
        if self._loop.is_closed():
            return
        if self._thread.is_alive():
            cancelled = asyncio.run_coroutine_threadsafe(_cancel_all(), self._loop)
            # The loop is torn down either way.
            with contextlib.suppress(concurrent.futures.TimeoutError, RuntimeError):
                cancelled.result(_CLOSE_WAIT_S)
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(_CLOSE_WAIT_S)
        if not self._thread.is_alive():
            self._loop.close()


async def _cancel_all() -> None:
    # In rounds: a client library cleaning up after a lost connection starts new tasks (a
    # close) from the ones cancelled; each must run or be cancelled before the loop stops, or
    # its coroutine is dropped never awaited.
    current = asyncio.current_task()
    for _ in range(_CLOSE_ROUNDS):
        await asyncio.sleep(0)
        tasks = [task for task in asyncio.all_tasks() if task is not current]
        if not tasks:
            return
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
