"""What a connector's tests hand the conformance suite: a system to seed, connectors on it."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar

import orjson

from erpbridge.connectors import (
    Batch,
    Connection,
    CursorValue,
    OutgoingRecord,
    Sink,
    Source,
    SourceRecord,
    StreamOptions,
    TargetOptions,
)

__all__ = ["SinkHarness", "SourceHarness", "last_cursor", "opened", "read_all"]


class SourceHarness(ABC):
    """A source system for the suite, empty at first, and connectors reading it.

    Implement :meth:`connect`, :meth:`stream`, :meth:`add` and :meth:`key`; the other members
    stage optional cases and default to "cannot" (the test is then skipped with its reason).
    A pytest fixture returns a fresh harness (an empty system) for each test.
    """

    #: The channel name the connectors are built with; failures must name it.
    channel = "conformance"
    #: The source reads by a cursor (``False``: acknowledged input goes away, as files do).
    resumes = True
    #: Records of one run arrive in more than one batch when the batch size is 2.
    pages = True

    @abstractmethod
    def connect(self) -> Source[Any]:
        """A connector on the seeded system."""

    @abstractmethod
    def stream(self) -> StreamOptions:
        """The flow's ``source:`` options the suite reads with (a cursor of its own kind)."""

    @abstractmethod
    def add(self, keys: Sequence[str]) -> None:
        """Add a record for each key, in this order and each after every earlier one by the
        cursor (a later change time, a higher sequence)."""

    @abstractmethod
    def key(self, record: SourceRecord) -> str:
        """The key a record read back carries (one of those given to :meth:`add`)."""

    def add_broken(self, key: str) -> bool:
        """Add one record the connector cannot turn into a record (it must show as a
        :class:`~erpbridge.connectors.SourceProblem`); ``False``: this source cannot have one."""
        return False

    def unreachable(self) -> Source[Any] | None:
        """A connector for a system that cannot be reached (refused port, missing folder)."""
        return None

    def refused(self) -> Source[Any] | None:
        """A connector the system refuses for good (a wrong password, a missing table)."""
        return None


class SinkHarness(ABC):
    """A target system for the suite, empty at first, and connectors writing to it.

    Every record the suite writes is :meth:`data` of a key and a version; :meth:`stored` reads
    back the ``name`` each key holds in the channel now (``"<key> v<version>"``).
    """

    #: The channel name the connectors are built with; failures must name it.
    channel = "conformance"
    #: The hub entity of the records written.
    entity = "customer"

    @abstractmethod
    def connect(self) -> Sink[Any]:
        """A connector on the (empty) target system."""

    @abstractmethod
    def target(self) -> TargetOptions:
        """The flow's ``target:`` options the suite writes with."""

    def data(self, key: str, version: int) -> dict[str, Any]:
        """Record ``key`` at ``version`` in the channel's shape, its name ``<key> v<version>``."""
        return {"id": key, "name": f"{key} v{version}"}

    @abstractmethod
    def stored(self) -> Mapping[str, str]:
        """Key → the name the channel now holds for it, for each record written."""

    def refused_data(self) -> dict[str, Any] | None:
        """A record the channel refuses for what it holds (``None``: it takes anything)."""
        return None

    def unreachable(self) -> Sink[Any] | None:
        """A connector for a target that cannot be reached."""
        return None

    def record(
        self, key: str, version: int, data: Mapping[str, Any] | None = None, delivery: int = 0
    ) -> OutgoingRecord:
        """The outgoing record of ``key`` at ``version``, as the worker hands it over."""
        return OutgoingRecord(
            delivery_id=delivery or version,
            entity=self.entity,
            key=key,
            version=version,
            idempotency_key=f"conformance:{self.entity}:{key}:{version}",
            data=self.data(key, version) if data is None else data,
        )


ConnectionT = TypeVar("ConnectionT", bound=Connection)


@contextmanager
def opened(connection: ConnectionT) -> Iterator[ConnectionT]:
    """``connection``, closed when the block ends (however it ends)."""
    try:
        yield connection
    finally:
        connection.close()


def read_all(
    source: Source[Any],
    stream: StreamOptions,
    cursor: CursorValue = None,
    batch_size: int = 2,
    *,
    acknowledge: bool = True,
) -> list[Batch]:
    """Every batch of one run from ``cursor``, acknowledged as the engine does after each
    commit (or not at all: a run that crashed before its commits)."""
    batches = []
    for batch in source.read(stream, cursor, batch_size, frozenset()):
        # The store keeps cursors as JSON: one that does not survive that cannot resume.
        assert orjson.loads(orjson.dumps(batch.cursor)) == batch.cursor, (
            f"cursor {batch.cursor!r} does not survive a JSON round trip"
        )
        batches.append(batch)
        if acknowledge:
            batch.acknowledge()
    return batches


def last_cursor(batches: Sequence[Batch], start: CursorValue = None) -> CursorValue:
    """The cursor the store holds after these batches (the last one a batch carried)."""
    cursor = start
    for batch in batches:
        if batch.cursor is not None:
            cursor = batch.cursor
    return cursor
