"""The connector API: what a connector (a transport) offers the hub, in one public module.

A connector is a class registered in the ``erpbridge.transports`` entry-point group; the
built-ins come through the same door. The registry builds it once per channel as
``cls(channel, options, base_dir)`` with the channel's ``options:`` already validated into
``cls.channel_options``, and it validates every flow's ``source:``, ``target:`` and operation
block into the connector's own options classes *before* anything runs. So a connector's
methods take its own typed options (``def read(self, stream: MyStream, ...)``) and never check
their type again: declare the class as ``Source[MyStream]``, ``Sink[MyTarget]`` or
``Operator[MyCall]`` (subclass the protocols: they carry the optional members' defaults).

- :class:`Source` — IN flows: ``read`` yields :class:`Batch` objects from a cursor on; the
  engine commits each batch (records, bindings, cursor) in one transaction and only then calls
  :meth:`Batch.acknowledge`, so side effects (archiving a file) happen after the hub has the
  data.
- :class:`Sink` — OUT flows: ``write`` takes a batch of :class:`OutgoingRecord` and returns
  each one's id in the channel; ``check_target`` (optional, a class method) refuses a target
  that cannot work with a channel's options when the configuration is loaded.
- :class:`Operator` — real-time operations: ``call`` answers synchronously with plain JSON.
- :class:`Paginator` — how a REST list is walked page by page.
- :class:`Incremental` — the one cursor model of every source: where the cursor sits in a
  record and how far each run re-reads before it (``safety_window``).

Errors are named after what the engine must do (:mod:`erpbridge.errors`):
:class:`~erpbridge.errors.RetriableError` (``SourceUnavailable``) for passing failures,
:class:`~erpbridge.errors.FatalError` for permanent ones, a :class:`SourceProblem` in the batch
(or :class:`~erpbridge.errors.DataError` from a write) for one bad record. ``erpbridge.testing``
checks a connector against all of this; ``docs/connectors.md`` walks through writing one.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, Protocol, TypeVar, runtime_checkable

from pydantic import BaseModel

from erpbridge.incremental import DEFAULT_TIME_WINDOW, Incremental
from erpbridge.transports.base import (
    Batch,
    CursorValue,
    Deleter,
    Health,
    HealthCategory,
    OperationOptions,
    OutgoingRecord,
    SourceProblem,
    SourceRecord,
    StreamOptions,
    TargetOptions,
)

__all__ = [
    "DEFAULT_TIME_WINDOW",
    "Batch",
    "Connection",
    "ConnectorClass",
    "CursorValue",
    "Deleter",
    "Health",
    "HealthCategory",
    "Incremental",
    "OperationOptions",
    "Operator",
    "OperatorClass",
    "OutgoingRecord",
    "Page",
    "PageReader",
    "Paginator",
    "Sink",
    "SinkClass",
    "Source",
    "SourceProblem",
    "SourceRecord",
    "StreamOptions",
    "TargetOptions",
    "operator_class",
    "sink_class",
]

StreamT = TypeVar("StreamT", bound=StreamOptions, contravariant=True)
TargetT = TypeVar("TargetT", bound=TargetOptions, contravariant=True)
OperationT = TypeVar("OperationT", bound=OperationOptions, contravariant=True)


@runtime_checkable
class Connection(Protocol):
    """What every connector offers besides its capabilities: a check, and a close."""

    def health(self) -> Health:
        """Check reachability, login and a sample read without changing anything
        (``erpbridge channels test``); a failure is a :class:`Health` with a category, not an
        exception."""
        ...

    def close(self) -> None:
        """Release connections and handles."""
        ...


@runtime_checkable
class Source(Connection, Protocol[StreamT]):
    """What every connector offers: read a flow's source (and check, and close)."""

    def read(
        self,
        stream: StreamT,
        cursor: CursorValue,
        batch_size: int,
        required_fields: frozenset[str],
    ) -> Iterator[Batch]:
        """Yield batches from ``cursor`` on (``None``: from the beginning).

        ``stream`` is the flow's ``source:`` block, already validated into the connector's
        ``stream_options``. Each batch's ``cursor`` must survive a JSON round trip: it is what
        the next run gets back. ``required_fields`` are the top-level fields the flow's mapping
        needs (a file whose header lacks one is broken as a whole).
        """
        ...


@runtime_checkable
class Sink(Connection, Protocol[TargetT]):
    """A connector that OUT flows write to."""

    def write(self, target: TargetT, records: list[OutgoingRecord]) -> list[str | None]:
        """Write ``records`` as one unit; return each one's id in the channel (or ``None``).

        The same :attr:`OutgoingRecord.idempotency_key` may arrive twice (a retry after a lost
        answer) and must not create a second effect. Raise
        :class:`~erpbridge.errors.RetriableError` for passing failures,
        :class:`~erpbridge.errors.FatalError` for permanent ones and
        :class:`~erpbridge.errors.DataError` when the channel refuses this one record.
        """
        ...

    @classmethod
    def check_target(cls, channel: str, options: Any, target: TargetT) -> str | None:
        """Why ``target`` cannot be written through ``channel`` with these channel
        ``options`` (``None``: it can). Called when the configuration is loaded, so that a
        target that can never work refuses the file, not each delivery. Default: every target
        the options class accepts can be written."""
        return None


@runtime_checkable
class Operator(Connection, Protocol[OperationT]):
    """A connector that serves real-time operations (a PO check, a price, a lookup)."""

    def call(self, operation: OperationT, params: Mapping[str, Any]) -> Any:
        """Call the channel synchronously with the caller's ``params``; return plain JSON.

        Raise :class:`~erpbridge.errors.RetriableError` for passing failures,
        :class:`~erpbridge.errors.FatalError` for refusals, and
        :class:`~erpbridge.errors.DataError` when ``params`` do not fit.
        """
        ...


class ConnectorClass(Protocol):
    """A connector class as the registry hands it out (every connector is a source).

    ``channel_options`` validates a channel's ``options:`` block and ``stream_options`` a
    flow's ``source:`` block. ``base_dir`` (the configuration file's folder) resolves relative
    paths in the options.
    """

    channel_options: type[BaseModel]
    stream_options: type[StreamOptions]

    def __call__(self, channel: str, options: Any, base_dir: Path) -> Source[Any]: ...


@runtime_checkable
class SinkClass(Protocol):
    """A connector class whose channels OUT flows can write to."""

    channel_options: type[BaseModel]
    stream_options: type[StreamOptions]
    #: Validates a flow's ``target:`` block.
    target_options: type[TargetOptions]

    def check_target(self, channel: str, options: Any, target: Any) -> str | None:
        """See :meth:`Sink.check_target`."""
        ...

    def __call__(self, channel: str, options: Any, base_dir: Path) -> Source[Any]: ...


@runtime_checkable
class OperatorClass(Protocol):
    """A connector class whose channels serve real-time operations."""

    channel_options: type[BaseModel]
    stream_options: type[StreamOptions]
    #: Validates one ``operations:`` entry of a channel.
    operation_options: type[OperationOptions]

    def __call__(self, channel: str, options: Any, base_dir: Path) -> Source[Any]: ...


def sink_class(cls: object) -> SinkClass | None:
    """``cls`` as a sink class, or ``None`` when OUT flows cannot write through it."""
    return cls if isinstance(cls, SinkClass) and _offers(cls, "write") else None


def operator_class(cls: object) -> OperatorClass | None:
    """``cls`` as an operator class, or ``None`` when it serves no real-time operations."""
    return cls if isinstance(cls, OperatorClass) and _offers(cls, "call") else None


def _offers(cls: object, method: str) -> bool:
    # The protocols declare the options classes; the method itself must be there as well (a
    # class may carry a leftover options attribute without implementing the capability).
    return callable(getattr(cls, method, None))


# -- REST pagination ---------------------------------------------------------------------------


class Page(Protocol):
    """One page of a list: its items as the API sent them, its number, its URL (no query)."""

    @property
    def items(self) -> list[Any]: ...

    @property
    def number(self) -> int: ...

    @property
    def url(self) -> str: ...


class PageReader(Protocol):
    """What a paginator is handed to fetch pages with: the connector's HTTP side."""

    def get(self, url: str, params: dict[str, Any] | None, number: int) -> Page:
        """GET ``url`` (relative to the channel, or absolute) and return its records."""
        ...

    def header(self, name: str) -> str | None:
        """A header of the last page's response."""
        ...

    def body_at(self, path: str) -> Any:
        """The value at dot ``path`` of the last page's JSON body (``None``: absent)."""
        ...

    def follow(self, link: str) -> str:
        """``link`` made absolute against the last page's URL; refused off the channel's
        origin, so that credentials stay with the channel."""
        ...

    def loop(self, problem: str) -> Exception:
        """The error that stops a walk going round in circles (a parameter the API ignores)."""
        ...


@runtime_checkable
class Paginator(Protocol):
    """How one REST list is walked: the style's request parameters and its stop rule."""

    def pages(self, reader: PageReader, path: str, params: dict[str, Any]) -> Iterator[Page]:
        """Yield the pages of ``path`` (``params`` on the first request) until the end."""
        ...
