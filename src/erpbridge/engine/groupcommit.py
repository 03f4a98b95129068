"""Group commit: concurrent submissions for one key (an IN flow) share one transaction.

Callers in different threads hand in their work with :meth:`GroupCommit.submit`. The first to
arrive for a key leads a group: it waits for the key's previous group to finish its commit, and
meanwhile every caller arriving for the same key joins its group. Then the leader closes the
group and runs it (one call of ``execute`` with every item, in arrival order), and each caller
gets its own result, or its own exception, after that commit.

There is no fixed wait: a lone caller commits at once; under load a group collects what arrives
while the previous commit is under way (a few milliseconds), so the number of transactions per
second stays near what the store can commit while the events per transaction grow with the load.
A group holds at most ``max_items`` callers; a full group is closed for newcomers.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

__all__ = ["GroupCommit"]

T = TypeVar("T")
R = TypeVar("R")


class _Group(Generic[T, R]):
    __slots__ = ("done", "items", "results")

    def __init__(self) -> None:
        self.items: list[T] = []
        self.results: Sequence[R | BaseException] = ()
        self.done = threading.Event()


class GroupCommit(Generic[T, R]):
    """Runs concurrent submissions per key in groups through ``execute(key, items)``, which
    returns one result (or exception) per item, in order."""

    def __init__(
        self,
        execute: Callable[[str, list[T]], Sequence[R | BaseException]],
        max_items: int = 200,
    ) -> None:
        self.execute = execute
        self.max_items = max_items
        self._lock = threading.Lock()
        self._open: dict[str, _Group[T, R]] = {}
        self._committing: dict[str, threading.Lock] = {}

    def submit(self, key: str, item: T) -> R:
        """Run ``item`` in the key's next group; return its result or raise its exception."""
        with self._lock:
            group = self._open.get(key)
            leader = group is None or len(group.items) >= self.max_items
            if leader:
                group = self._open[key] = _Group()
                committing = self._committing.setdefault(key, threading.Lock())
            assert group is not None
            index = len(group.items)
            group.items.append(item)
        if leader:
            with committing:
                with self._lock:
                    if self._open.get(key) is group:
                        del self._open[key]  # closed: later callers lead the next group
                try:
                    group.results = self.execute(key, group.items)
                except BaseException as exc:  # a bug in execute: every caller hears of it
                    group.results = [exc] * len(group.items)
                    raise
                finally:
                    group.done.set()
        else:
            group.done.wait()
        result = group.results[index]
        if isinstance(result, BaseException):
            raise result
        return result
