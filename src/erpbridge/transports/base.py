"""The transport contract: how records move between one channel and the hub.

A transport is instantiated once per channel from the channel's options and handed to the
engine. IN flows call :meth:`Transport.read`, which yields :class:`Batch` objects; the engine
commits each batch (records, bindings, cursor) in one transaction and only then calls
:meth:`Batch.acknowledge`, so a transport can do its side effects (moving a file to
``archive/``) strictly after the hub has the data.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Literal, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict

__all__ = [
    "Batch",
    "CursorValue",
    "Deleter",
    "Health",
    "HealthCategory",
    "OperationOptions",
    "Operator",
    "OutgoingDocument",
    "OutgoingRecord",
    "SourceProblem",
    "SourceRecord",
    "StreamOptions",
    "TargetOptions",
    "Transport",
    "TransportClass",
    "Writer",
]

#: A cursor as the transport understands it; must survive a JSON round trip (orjson).
CursorValue = Any


class StreamOptions(BaseModel):
    """Base of each transport's per-flow ``source:`` options; unknown keys are errors."""

    model_config = ConfigDict(extra="forbid", frozen=True)


@dataclass(frozen=True, slots=True)
class SourceRecord:
    """One record as the channel delivered it, before mapping.

    ``position`` says where it came from (``customers.csv:17``, ``orders#id=42``) so that a
    rejection can name the place. ``deleted``: the channel itself says the record is gone (an
    OData delta answer's ``@removed`` entry); ``data`` then holds at least its key, and the
    engine makes it a tombstone as it does a record the flow's ``delete_marker`` marks.
    """

    data: Mapping[str, Any]
    position: str
    deleted: bool = False


@dataclass(frozen=True, slots=True)
class SourceProblem:
    """Something the transport could not turn into records (a broken file, an unmatched END
    booking). It is stored as a rejection and shown in the run, never dropped silently."""

    position: str
    reason: str
    payload: Mapping[str, Any] | None = None
    field_path: str = ""


@dataclass(slots=True)
class Batch:
    """A slice of a source, committed by the engine in one transaction.

    ``cursor`` is the position to resume after once this batch is committed (``None`` when the
    transport needs no cursor, as with a folder whose files move away). ``on_commit`` runs after
    the commit; ``warnings`` are facts for the run summary that are not rejections.
    """

    records: list[SourceRecord]
    cursor: CursorValue = None
    problems: list[SourceProblem] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    on_commit: list[Callable[[], None]] = field(default_factory=list)

    def acknowledge(self) -> None:
        """Run the transport's post-commit steps (archive files, …)."""
        for step in self.on_commit:
            step()


class TargetOptions(BaseModel):
    """Base of a transport's per-flow ``target:`` options (OUT flows); unknown keys: errors."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class OperationOptions(BaseModel):
    """Base of a transport's real-time operation options (``channels.X.operations.NAME``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)


@dataclass(frozen=True, slots=True)
class OutgoingDocument:
    """A document issued by the hub for a record version (``erpbridge.documents``): the stored
    bytes, the same on every retry. File channels write ``content`` as ``file_name``."""

    template: str
    number: str | None
    file_name: str
    media_type: str
    sha256: str
    content: bytes
    issued_at: datetime


@dataclass(frozen=True, slots=True)
class OutgoingRecord:
    """One record version to write to a channel (already mapped to the channel's shape)."""

    delivery_id: int
    entity: str
    #: The hub's business key.
    key: str
    version: int
    #: Stable per (flow, record, version): a target may see the same one twice and must not
    #: create a second effect.
    idempotency_key: str
    data: Mapping[str, Any]
    #: The flow's document (its ``document:`` setting), when it delivers one.
    document: OutgoingDocument | None = None
    #: The hub holds the record as deleted and the flow's ``on_delete`` is ``delete``:
    #: ``data`` is its last version, mapped, to name the item that :meth:`Deleter.delete` removes.
    deleted: bool = False


@runtime_checkable
class Writer(Protocol):
    """What a transport that OUT flows can write to offers, besides :class:`Transport`."""

    #: The pydantic model validating a flow's ``target:`` block for this transport.
    target_options: type[TargetOptions]

    def write(self, target: TargetOptions, records: list[OutgoingRecord]) -> list[str | None]:
        """Write ``records`` as one unit; return each one's id in the channel (or ``None``).

        Raise :class:`~erpbridge.errors.RetriableError` for passing failures and
        :class:`~erpbridge.errors.FatalError` for permanent ones.
        """
        ...


@runtime_checkable
class Deleter(Protocol):
    """What a transport that can remove records from its channel offers besides :class:`Writer`
    (OUT flows with ``on_delete: delete``)."""

    def delete(self, target: TargetOptions, records: list[OutgoingRecord]) -> list[str | None]:
        """Remove each record's item from the channel; return each one's id there (or ``None``).

        An item that is not there (never created, deleted already) counts as deleted: a retried
        delivery must not fail on its own first attempt. Errors as for :meth:`Writer.write`.
        """
        ...


#: What went wrong in a failed connection check, in the words ``erpbridge channels test`` prints.
HealthCategory = Literal[
    "ok", "dns", "refused", "tls", "timeout", "auth", "forbidden", "schema", "protocol", "error"
]


@runtime_checkable
class Operator(Protocol):
    """What a transport that serves real-time operations offers (PO check, price, lookup)."""

    #: The pydantic model validating one ``operations:`` entry of a channel.
    operation_options: type[OperationOptions]

    def call(self, operation: OperationOptions, params: Mapping[str, Any]) -> Any:
        """Call the channel synchronously with the caller's ``params``; return plain JSON data.

        Raise :class:`~erpbridge.errors.RetriableError` for passing failures,
        :class:`~erpbridge.errors.FatalError` for refusals, and
        :class:`~erpbridge.errors.DataError` when ``params`` do not fit.
        """
        ...


@dataclass(frozen=True, slots=True)
class Health:
    """The result of a connection check.

    ``category`` names the kind of failure (``dns``, ``refused``, ``tls``, ``timeout``, ``auth``
    for HTTP 401 or a refused login, ``forbidden`` for 403, ``schema`` for a missing table, field
    or entity set, ``protocol`` for an answer in the wrong shape); ``detail`` says it in a
    sentence that names the place.
    """

    ok: bool
    detail: str
    category: HealthCategory = "ok"


@runtime_checkable
class Transport(Protocol):
    """What every transport offers. One instance per channel."""

    #: The pydantic model validating a flow's ``source:`` block for this transport.
    stream_options: type[StreamOptions]

    def read(
        self,
        stream: StreamOptions,
        cursor: CursorValue,
        batch_size: int,
        required_fields: frozenset[str],
    ) -> Iterator[Batch]:
        """Yield batches from ``cursor`` on (``None``: from the beginning).

        ``required_fields`` are the top-level source fields the flow's mapping needs; a file
        whose header lacks one is broken as a whole.
        """
        ...

    def health(self) -> Health:
        """Check reachability and a sample read without changing anything."""
        ...

    def close(self) -> None:
        """Release connections and handles."""
        ...


class TransportClass(Protocol):
    """A transport class as the registry hands it out.

    ``channel_options`` validates a channel's ``options:`` block, ``stream_options`` a flow's
    ``source:`` block. The class is built as ``cls(channel_name, options, base_dir)``, where
    ``base_dir`` (the configuration file's folder) resolves relative paths in the options.
    """

    channel_options: type[BaseModel]
    stream_options: type[StreamOptions]

    def __call__(self, channel: str, options: Any, base_dir: Path) -> Transport: ...
