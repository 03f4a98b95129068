"""The folder transport: CSV, JSON, JSONL and XML files in a local folder, read and written.

IN flows: files are read in name order and streamed in batches; a file moves to ``archive/``
once the engine has committed its last batch, or to ``error/`` (with a ``.reason.txt``) when it
cannot be read. OUT flows: records are written one file per record version or one file per
call, each atomically. All of it is :class:`~.drop.DropFolder` on the local disk
(:class:`~.filesystems.LocalFileSystem`), shared with the ``sftp`` transport.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

from pydantic import ConfigDict

from erpbridge.connectors import Sink, Source
from erpbridge.errors import SourceUnavailable
from erpbridge.transports.base import (
    Batch,
    CursorValue,
    Health,
    OutgoingRecord,
    StreamOptions,
    TargetOptions,
)
from erpbridge.transports.files.drop import DropFolder
from erpbridge.transports.files.filesystems import LocalFileSystem
from erpbridge.transports.files.options import DropOptions, FolderStreamOptions, FolderTargetOptions

__all__ = [
    "FolderChannelOptions",
    "FolderStreamOptions",
    "FolderTargetOptions",
    "FolderTransport",
]


class FolderChannelOptions(DropOptions):
    """A folder channel's ``options:`` block."""

    model_config = ConfigDict(use_attribute_docstrings=True)

    path: str
    """The inbox folder; a relative path is resolved against the configuration file's folder."""


class FolderTransport(Source[FolderStreamOptions], Sink[FolderTargetOptions]):
    """Reads files from a local inbox folder and archives them after the hub committed them;
    writes records of OUT flows as files into it (or a subfolder)."""

    channel_options = FolderChannelOptions
    stream_options: type[StreamOptions] = FolderStreamOptions
    target_options: type[TargetOptions] = FolderTargetOptions

    def __init__(self, channel: str, options: FolderChannelOptions, base_dir: Path) -> None:
        self._options = options
        path = Path(options.path).expanduser()
        self._root = path if path.is_absolute() else base_dir / path
        self._drop = DropFolder(LocalFileSystem(), channel, self._root, options)

    def read(
        self,
        stream: StreamOptions,
        cursor: CursorValue,
        batch_size: int,
        required_fields: frozenset[str],
    ) -> Iterator[Batch]:
        """Yield the inbox files' records in batches; the cursor is unused and stays ``None``."""
        if not isinstance(stream, FolderStreamOptions):
            raise TypeError(f"expected FolderStreamOptions, got {type(stream).__name__}")
        return self._drop.read(stream, batch_size, required_fields)

    def health(self) -> Health:
        """Check that the inbox is readable and writable and count the files waiting in it."""
        root = self._root
        if not root.is_dir():
            return Health(False, f"inbox folder {root} does not exist or is not a folder", "schema")
        if not os.access(root, os.R_OK | os.W_OK | os.X_OK):
            return Health(False, f"inbox folder {root} is not readable and writable", "forbidden")
        for name in (self._options.archive, self._options.error):
            target = root / name
            # Created lazily, so what must be writable is the nearest folder that exists.
            existing = next(p for p in (target, *target.parents) if p.exists())
            if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
                return Health(False, f"{target} cannot be created or written", "forbidden")
        try:
            waiting = len(self._drop.inbox("*", settled=False))
        except SourceUnavailable as exc:
            return Health(False, str(exc), "error")
        return Health(True, f"{root}: {waiting} file(s) waiting")

    def write(self, target: TargetOptions, records: list[OutgoingRecord]) -> list[str | None]:
        """Write the records as files; return each one's path relative to the channel's folder.

        Everything is rendered before the first file is written, so a record that cannot be
        written (:class:`~erpbridge.errors.FatalError`) leaves no file. A disk problem is
        :class:`SourceUnavailable`; files already written by then are written again,
        identically, on the retry.
        """
        if not isinstance(target, FolderTargetOptions):
            raise TypeError(f"expected FolderTargetOptions, got {type(target).__name__}")
        return self._drop.write(target, records)

    def close(self) -> None:
        """Nothing to release: every file is opened and closed within :meth:`read` or
        :meth:`write`."""
