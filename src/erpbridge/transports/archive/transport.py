"""The ``archive`` transport: every document an OUT flow delivers is kept, with its metadata
and the date until which it must be kept.

Layout: ``<path>/<template>/<year>/<file name>`` and beside it ``<file name>.json`` (template,
number, entity, key, version, SHA-256, size, media type, issued, archived, retain until). Both
are written through a temporary name, synced and made read-only. Archiving the same document
again (a retry after a crash) finds the same bytes and changes nothing; different bytes under
an archived name are refused, never overwritten.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
from pydantic import BaseModel, ConfigDict, Field, field_validator

from erpbridge.connectors import Sink, Source
from erpbridge.errors import FatalError, SourceUnavailable
from erpbridge.transports.base import (
    Batch,
    CursorValue,
    Health,
    OutgoingRecord,
    StreamOptions,
    TargetOptions,
)

__all__ = ["ArchiveChannelOptions", "ArchiveTargetOptions", "ArchiveTransport", "retention_of"]

_RETENTION = re.compile(r"^(\d+)([dy])$")


def retention_of(text: str) -> timedelta:
    """``'10y'`` (years of 365.25 days, rounded up to a whole day) or ``'90d'``."""
    match = _RETENTION.fullmatch(text)
    if match is None or int(match.group(1)) == 0:
        raise ValueError(f"not a retention period: {text!r} (e.g. 90d, 10y)")
    count, unit = int(match.group(1)), match.group(2)
    return timedelta(days=count if unit == "d" else -(-count * 36525 // 100))


class ArchiveChannelOptions(BaseModel):
    """An archive channel's ``options:`` block."""

    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)

    path: str
    """The archive's folder; relative to the configuration file's folder. Must exist."""
    retention: str = "10y"
    """How long a document is kept: ``<n>y`` or ``<n>d`` (German commercial law: 10y for
    invoices and credit notes)."""

    @field_validator("retention")
    @classmethod
    def _period(cls, value: str) -> str:
        retention_of(value)
        return value


class ArchiveTargetOptions(TargetOptions):
    """An OUT flow's ``target:`` block for an archive channel."""

    model_config = ConfigDict(use_attribute_docstrings=True)

    retention: str | None = Field(default=None)
    """This flow's retention period, instead of the channel's."""

    @field_validator("retention")
    @classmethod
    def _period(cls, value: str | None) -> str | None:
        if value is not None:
            retention_of(value)
        return value


class ArchiveTransport(Source[StreamOptions], Sink[ArchiveTargetOptions]):
    """Keeps the documents OUT flows deliver in a local folder, read-only, with metadata."""

    channel_options = ArchiveChannelOptions
    stream_options: type[StreamOptions] = StreamOptions
    target_options: type[TargetOptions] = ArchiveTargetOptions

    def __init__(self, channel: str, options: ArchiveChannelOptions, base_dir: Path) -> None:
        self._channel = channel
        path = Path(options.path).expanduser()
        self.root = path if path.is_absolute() else base_dir / path
        self._retention = options.retention

    def read(
        self,
        stream: StreamOptions,
        cursor: CursorValue,
        batch_size: int,
        required_fields: frozenset[str],
    ) -> Iterator[Batch]:
        """The archive takes documents; nothing is read from it."""
        raise FatalError(f"channel {self._channel!r}: an archive is written to, not read from")

    def health(self) -> Health:
        """The archive folder exists and takes files."""
        if not self.root.is_dir():
            return Health(False, f"archive folder {self.root} does not exist", "schema")
        if not os.access(self.root, os.W_OK):
            return Health(False, f"archive folder {self.root} is not writable", "forbidden")
        return Health(True, f"archive folder {self.root}")

    def close(self) -> None:
        """Nothing to release: every file is opened and closed within :meth:`write`."""

    def write(self, target: TargetOptions, records: list[OutgoingRecord]) -> list[str | None]:
        """Archive each record's document; return its path relative to the archive."""
        if not isinstance(target, ArchiveTargetOptions):
            raise TypeError(f"expected ArchiveTargetOptions, got {type(target).__name__}")
        if not self.root.is_dir():
            raise SourceUnavailable(
                f"channel {self._channel!r}: archive folder {self.root} does not exist"
            )
        keep_for = retention_of(target.retention or self._retention)
        return [self._archive(record, keep_for) for record in records]

    def _archive(self, record: OutgoingRecord, keep_for: timedelta) -> str:
        document = record.document
        if document is None:
            raise FatalError(
                f"channel {self._channel!r}: {record.entity} {record.key!r} version "
                f"{record.version} has no document; an archive flow needs `document:`"
            )
        relative = Path(document.template) / str(document.issued_at.year) / document.file_name
        target = self.root / relative
        archived_at = datetime.now(UTC)
        meta = {
            "template": document.template,
            "number": document.number,
            "entity": record.entity,
            "key": record.key,
            "version": record.version,
            "sha256": document.sha256,
            "size": len(document.content),
            "media_type": document.media_type,
            "file_name": document.file_name,
            "issued_at": document.issued_at.isoformat(),
            "archived_at": archived_at.isoformat(),
            "retain_until": _day(document.issued_at + keep_for),
        }
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            if target.exists():
                kept = hashlib.sha256(target.read_bytes()).hexdigest()
                if kept != document.sha256:
                    raise FatalError(
                        f"channel {self._channel!r}: {relative} is archived with other content "
                        f"(SHA-256 {kept[:12]}…, this document {document.sha256[:12]}…); an "
                        "archived document is never overwritten"
                    )
            else:
                _write_read_only(target, document.content)
            sidecar = target.with_name(target.name + ".json")
            if not sidecar.exists():
                _write_read_only(sidecar, orjson.dumps(meta, option=orjson.OPT_INDENT_2))
        except OSError as exc:
            raise SourceUnavailable(
                f"channel {self._channel!r}: cannot archive {relative} in {self.root}: {exc}"
            ) from exc
        return relative.as_posix()


def _day(moment: datetime) -> str:
    return moment.date().isoformat()


def _write_read_only(path: Path, content: bytes) -> None:
    """Write ``content`` to ``path`` through a temporary name, synced, then read-only (0444)."""
    temp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(temp, "wb") as fh:
            fh.write(content)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(temp, 0o444)
        os.replace(temp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp)
    folder = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(folder)
    finally:
        os.close(folder)
