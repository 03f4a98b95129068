"""The folder transport: CSV, JSON, JSONL and XML files in a local folder, read and written.

IN flows: files are read in name order and streamed in batches; a file moves to ``archive/``
once the engine has committed its last batch, or to ``error/`` (with a ``.reason.txt``) when it
cannot be read. A crash before that leaves the file in the inbox, so it is read again
(at-least-once; the hub de-duplicates by content hash). Parsing each format into records is
:mod:`erpbridge.transports.fileformats`.

OUT flows: records are written one file per record version (named after it, so writing it twice
makes the same file) or one file per call, each atomically (:mod:`~.filewriters`).
"""

from __future__ import annotations

import codecs
import logging
import os
import time
from collections.abc import Generator, Iterator
from datetime import UTC, datetime
from fnmatch import fnmatchcase
from functools import partial
from pathlib import Path, PurePath
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from erpbridge.errors import FatalError, SourceUnavailable
from erpbridge.transports.base import (
    Batch,
    CursorValue,
    Health,
    OutgoingRecord,
    SourceProblem,
    SourceRecord,
    StreamOptions,
    TargetOptions,
)
from erpbridge.transports.fileformats import BrokenFile, Format, Item, read_items
from erpbridge.transports.filewriters import (
    Unwritable,
    fill_name,
    render_batch,
    render_record,
    sync_folder,
    template_placeholders,
    write_atomically,
)

__all__ = [
    "FolderChannelOptions",
    "FolderStreamOptions",
    "FolderTargetOptions",
    "FolderTransport",
]

logger = logging.getLogger(__name__)

_IGNORED_SUFFIXES = (".tmp", ".part")


class FolderChannelOptions(BaseModel):
    """A folder channel's ``options:`` block."""

    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)

    path: str
    """The inbox folder; a relative path is resolved against the configuration file's folder."""
    archive: str = "archive"
    """Subfolder of ``path`` that receives files read successfully."""
    error: str = "error"
    """Subfolder of ``path`` that receives broken files, each with a ``<name>.reason.txt``."""
    encoding: str = "utf-8"
    """Text encoding of CSV, JSON and JSONL files (XML declares its own); a UTF-8 BOM is skipped."""
    max_file_mb: float = Field(default=100, gt=0)
    """Larger files are not read but moved to ``error/`` as oversized."""
    min_age_seconds: float = Field(default=0, ge=0)
    """Files modified more recently are skipped, as they may still be being written."""

    @field_validator("archive", "error")
    @classmethod
    def _plain_subfolder(cls, value: str) -> str:
        return _subfolder(value)

    @field_validator("encoding")
    @classmethod
    def _known_encoding(cls, value: str) -> str:
        return _encoding(value)


class FolderStreamOptions(StreamOptions):
    """A flow's ``source:`` block for a folder channel."""

    model_config = ConfigDict(use_attribute_docstrings=True)

    pattern: str = "*"
    """Glob matched (case-sensitively) against file names directly in the inbox."""
    format: Format | None = None
    """File format; ``None`` guesses from the extension (.csv, .json, .jsonl/.ndjson, .xml)."""
    delimiter: str = Field(default=",", min_length=1, max_length=1)
    """CSV field delimiter."""
    record_tag: str | None = None
    """XML: element name (without namespace) of one record; default: the root's children."""
    records_path: str | None = None
    """JSON: dot path to the records array (``data.items``); default: the top-level value."""

    @field_validator("pattern")
    @classmethod
    def _no_separator(cls, value: str) -> str:
        if "/" in value or "\\" in value:
            raise ValueError("pattern matches file names in the folder; subfolders are not read")
        return value


_DEFAULT_NAMES = {
    "record": "{entity}-{key}-v{version}.{ext}",
    "batch": "{entity}-{timestamp}-{delivery_id}.{ext}",
}


class FolderTargetOptions(TargetOptions):
    """A flow's ``target:`` block for a folder channel."""

    model_config = ConfigDict(use_attribute_docstrings=True)

    format: Format = "json"
    """File format written."""
    file_per: Literal["record", "batch"] = "record"
    """One file per record version (idempotent), or one file per write call (a batch)."""
    name: str = _DEFAULT_NAMES["record"]
    """File name template: ``{entity}``, ``{key}``, ``{version}``, ``{delivery_id}``,
    ``{timestamp}`` (UTC, ``%Y%m%dT%H%M%S%fZ``) and ``{ext}`` (the format). Default:
    ``{entity}-{key}-v{version}.{ext}`` per record, ``{entity}-{timestamp}-{delivery_id}.{ext}``
    per batch, whose ``{entity}`` and ``{delivery_id}`` are its first record's. A per-record name
    with ``{timestamp}`` makes a new file each time the same version is written."""
    delimiter: str = Field(default=",", min_length=1, max_length=1)
    """CSV field delimiter."""
    root_tag: str = Field(default="records", pattern=r"^[^\W\d][\w.-]*$")
    """XML: the document element."""
    record_tag: str = Field(default="record", pattern=r"^[^\W\d][\w.-]*$")
    """XML: the element of one record."""
    encoding: str = "utf-8"
    """Text encoding of the files written."""
    subfolder: str | None = None
    """Subfolder of the channel's ``path`` to write into (created when missing)."""

    @model_validator(mode="before")
    @classmethod
    def _default_name(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("name") is None:
            file_per = data.get("file_per", "record")
            return {**data, "name": _DEFAULT_NAMES.get(file_per, _DEFAULT_NAMES["record"])}
        return data

    @field_validator("encoding")
    @classmethod
    def _known_encoding(cls, value: str) -> str:
        return _encoding(value)

    @field_validator("subfolder")
    @classmethod
    def _plain_subfolder(cls, value: str | None) -> str | None:
        return None if value is None else _subfolder(value)

    @model_validator(mode="after")
    def _name_fits_file_per(self) -> FolderTargetOptions:
        try:
            used = template_placeholders(self.name)
        except ValueError as exc:
            raise ValueError(f"name {self.name!r}: {exc}") from None
        if self.file_per == "batch" and used & {"key", "version"}:
            raise ValueError(
                f"name {self.name!r}: a batch file holds many records, so it cannot be named "
                "after one {key} or {version}"
            )
        if self.file_per == "record" and not used & {"key", "delivery_id"}:
            # Otherwise every record of a call would overwrite the one before.
            raise ValueError(
                f"name {self.name!r}: a file per record needs {{key}} or {{delivery_id}}"
            )
        return self


class FolderTransport:
    """Reads files from a local inbox folder and archives them after the hub committed them;
    writes records of OUT flows as files into it (or a subfolder)."""

    channel_options = FolderChannelOptions
    stream_options: type[StreamOptions] = FolderStreamOptions
    target_options: type[TargetOptions] = FolderTargetOptions

    def __init__(self, channel: str, options: FolderChannelOptions, base_dir: Path) -> None:
        self._channel = channel
        self._options = options
        path = Path(options.path).expanduser()
        self._root = path if path.is_absolute() else base_dir / path

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
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        for file in self._inbox(stream.pattern):
            yield from self._read_file(file, stream, batch_size, required_fields)

    def health(self) -> Health:
        """Check that the inbox is readable and writable and count the files waiting in it."""
        root = self._root
        if not root.is_dir():
            return Health(False, f"inbox folder {root} does not exist or is not a folder")
        if not os.access(root, os.R_OK | os.W_OK | os.X_OK):
            return Health(False, f"inbox folder {root} is not readable and writable")
        for name in (self._options.archive, self._options.error):
            target = root / name
            # Created lazily, so what must be writable is the nearest folder that exists.
            existing = next(p for p in (target, *target.parents) if p.exists())
            if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
                return Health(False, f"{target} cannot be created or written")
        try:
            waiting = len(self._inbox("*", min_age=0))
        except SourceUnavailable as exc:
            return Health(False, str(exc))
        return Health(True, f"{root}: {waiting} file(s) waiting")

    def write(self, target: TargetOptions, records: list[OutgoingRecord]) -> list[str | None]:
        """Write the records as files; return each one's path relative to the channel's folder.

        Everything is rendered before the first file is written, so a record that cannot be
        written (:class:`FatalError`) leaves no file. A disk problem is :class:`SourceUnavailable`;
        files already written by then are written again, identically, on the retry.
        """
        if not isinstance(target, FolderTargetOptions):
            raise TypeError(f"expected FolderTargetOptions, got {type(target).__name__}")
        if not records:
            return []
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
        if target.file_per == "batch":
            files = {self._batch_name(target, records, stamp): self._render(target, records)}
            names = [next(iter(files))] * len(records)
        else:
            files, names = {}, []
            owners: dict[str, tuple[str, str]] = {}
            for record in records:
                name = fill_name(target.name, record, stamp, target.format)
                owner = owners.setdefault(name, (record.entity, record.key))
                if owner != (record.entity, record.key):
                    raise FatalError(
                        f"channel {self._channel!r}: {record.entity} {record.key!r} and "
                        f"{owner[0]} {owner[1]!r} would both be written as {name!r} "
                        "(keys that differ only in characters unsafe in file names, or a name "
                        "template without {entity})"
                    )
                # Later versions of one record under one name: the last one written wins.
                files[name] = self._render(target, [record])
                names.append(name)
        folder = self._target_folder(target)
        try:
            for name, content in files.items():
                write_atomically(folder, name, content)
            sync_folder(folder)
        except OSError as exc:
            raise SourceUnavailable(
                f"channel {self._channel!r}: cannot write into {folder}: {exc}"
            ) from exc
        prefix = f"{PurePath(target.subfolder).as_posix()}/" if target.subfolder else ""
        return [prefix + name for name in names]

    def close(self) -> None:
        """Nothing to release: every file is opened and closed within :meth:`read` or
        :meth:`write`."""

    # -- listing and moving ------------------------------------------------------------------

    def _inbox(self, pattern: str, min_age: float | None = None) -> list[Path]:
        """Regular files in the inbox matching ``pattern``, in name order, old enough to read."""
        min_age = self._options.min_age_seconds if min_age is None else min_age
        now = time.time()
        files = []
        try:
            with os.scandir(self._root) as entries:
                for entry in entries:
                    name = entry.name
                    if (
                        name.startswith(".")
                        or name.lower().endswith(_IGNORED_SUFFIXES)
                        or not fnmatchcase(name, pattern)
                        or not entry.is_file()
                    ):
                        continue
                    try:
                        fresh = bool(min_age) and now - entry.stat().st_mtime < min_age
                    except FileNotFoundError:
                        continue  # taken away between listing and stat: nothing to read
                    if fresh:
                        logger.debug(
                            "channel %r: %s is too fresh, left for later", self._channel, name
                        )
                        continue
                    files.append(Path(entry.path))
        except OSError as exc:
            raise SourceUnavailable(
                f"channel {self._channel!r}: cannot read inbox folder {self._root}: {exc}"
            ) from exc
        return sorted(files, key=lambda p: p.name)

    def _move(self, file: Path, subfolder: str, reason: str | None) -> None:
        """Move ``file`` into ``subfolder`` without overwriting; write the reason next to it."""
        target_dir = self._root / subfolder
        try:
            target_dir.mkdir(parents=True, exist_ok=True)
            target = _free_name(target_dir, file.name)
            # Checked-then-replaced: a clash needs two processes archiving one name at once,
            # which one inbox per channel rules out.
            os.replace(file, target)
            if reason is not None:
                stamp = datetime.now(UTC).isoformat(timespec="seconds")
                note = f"{stamp} channel {self._channel!r}: {file.name}: {reason}\n"
                (target_dir / f"{target.name}.reason.txt").write_text(note, encoding="utf-8")
        except FileNotFoundError:
            # Acknowledged twice, or removed by hand meanwhile: the hub has the data either way.
            logger.warning("channel %r: %s vanished before it could be moved", self._channel, file)
        except OSError as exc:
            raise SourceUnavailable(
                f"channel {self._channel!r}: cannot move {file} to {target_dir}: {exc}"
            ) from exc

    # -- writing -----------------------------------------------------------------------------

    def _target_folder(self, target: FolderTargetOptions) -> Path:
        """The folder to write into, created below the channel's folder if need be."""
        # The channel's folder itself is never created: missing, it is a mount that is gone.
        if not self._root.is_dir():
            raise SourceUnavailable(
                f"channel {self._channel!r}: folder {self._root} does not exist or is not a folder"
            )
        if target.subfolder is None:
            return self._root
        folder = self._root / target.subfolder
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise SourceUnavailable(
                f"channel {self._channel!r}: cannot create folder {folder}: {exc}"
            ) from exc
        return folder

    def _batch_name(
        self, target: FolderTargetOptions, records: list[OutgoingRecord], stamp: str
    ) -> str:
        first = records[0]
        others = sorted({r.entity for r in records} - {first.entity})
        if others:
            raise FatalError(
                f"channel {self._channel!r}: a batch file holds one entity, got "
                f"{', '.join([first.entity, *others])}"
            )
        return fill_name(target.name, first, stamp, target.format)

    def _render(self, target: FolderTargetOptions, records: list[OutgoingRecord]) -> bytes:
        """One file's bytes; :class:`FatalError` naming the record and field it cannot hold."""
        options = {
            "encoding": target.encoding,
            "delimiter": target.delimiter,
            "root_tag": target.root_tag,
            "record_tag": target.record_tag,
        }
        try:
            if target.file_per == "record":
                return render_record(target.format, records[0].data, **options)
            return render_batch(target.format, [r.data for r in records], **options)
        except Unwritable as exc:
            where = f"channel {self._channel!r}"
            if exc.index is not None:
                r = records[exc.index]
                where += f": {r.entity} {r.key!r} version {r.version} (delivery {r.delivery_id})"
            raise FatalError(f"{where}: cannot write as {target.format}: {exc}") from exc

    # -- reading -----------------------------------------------------------------------------

    def _read_file(
        self,
        file: Path,
        stream: FolderStreamOptions,
        batch_size: int,
        required: frozenset[str],
    ) -> Iterator[Batch]:
        """Batches of one file; the last one carries the move to archive/ or error/."""
        items = self._items(file, stream, required)
        # A full batch is held back until the next item shows the file goes on, so that the
        # file's last records and its move travel together (no trailing empty batch).
        held: Batch | None = None
        current = Batch(records=[])
        reason: str | None = None
        try:
            while True:
                try:
                    item = next(items)
                except StopIteration:
                    break
                except BrokenFile as exc:
                    reason = str(exc)
                    break
                except FileNotFoundError:
                    logger.warning(
                        "channel %r: %s vanished before it was read", self._channel, file
                    )
                    return
                except OSError as exc:
                    raise SourceUnavailable(
                        f"channel {self._channel!r}: cannot read {file}: {exc}"
                    ) from exc
                if held is not None:
                    yield held
                    held = None
                if isinstance(item, SourceRecord):
                    current.records.append(item)
                else:
                    current.problems.append(item)
                # Row problems count too, so a file of bad rows cannot pile up in memory.
                if len(current.records) + len(current.problems) >= batch_size:
                    held, current = current, Batch(records=[])
        finally:
            items.close()
        last = held if held is not None else current
        if reason is None:
            last.on_commit.append(partial(self._move, file, self._options.archive, None))
        else:
            last.problems.append(SourceProblem(position=file.name, reason=reason))
            last.on_commit.append(partial(self._move, file, self._options.error, reason))
        yield last

    def _items(
        self, file: Path, stream: FolderStreamOptions, required: frozenset[str]
    ) -> Generator[Item, None, None]:
        """Records and row problems of one file; raises :class:`BrokenFile` for the whole."""
        size = file.stat().st_size
        limit = self._options.max_file_mb * 1024 * 1024
        if size > limit:
            raise BrokenFile(
                f"file is oversized: {size / 1048576:.2f} MB, "
                f"max_file_mb is {self._options.max_file_mb:g}"
            )
        yield from read_items(
            file,
            stream.format,
            encoding=self._options.encoding,
            delimiter=stream.delimiter,
            record_tag=stream.record_tag,
            records_path=stream.records_path,
            required=required,
        )


def _subfolder(value: str) -> str:
    parts = PurePath(value).parts
    if not parts or PurePath(value).is_absolute() or ".." in parts:
        raise ValueError("must be a subfolder of path (relative, without '..')")
    return value


def _encoding(value: str) -> str:
    try:
        codecs.lookup(value)
    except LookupError:
        raise ValueError(f"unknown encoding {value!r}") from None
    return value


def _free_name(folder: Path, name: str) -> Path:
    """``folder/name``, or with a timestamp (and counter) suffix when that name is taken."""
    target = folder / name
    if not target.exists():
        return target
    stem, suffix = PurePath(name).stem, PurePath(name).suffix
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    target, counter = folder / f"{stem}.{stamp}{suffix}", 2
    while target.exists():
        target, counter = folder / f"{stem}.{stamp}-{counter}{suffix}", counter + 1
    return target
