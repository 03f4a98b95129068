"""A drop folder on any :class:`~.filesystems.FileSystem`: the inbox read in batches, files moved
to ``archive/`` or ``error/`` after the commit, records written as files atomically.

Shared by the ``folder`` and ``sftp`` transports, so both read and write exactly alike.

IN: files are read in name order and streamed in batches; a file moves to ``archive/`` once the
engine has committed its last batch, or to ``error/`` (with a ``.reason.txt``) when it cannot be
read. A crash before that leaves the file in the inbox, so it is read again (at-least-once; the
hub de-duplicates by content hash). Parsing each format is :mod:`~.formats`.

OUT: records are written one file per record version (named after it, so writing it twice makes
the same file) or one file per call, each atomically (:mod:`~.writers`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Generator, Iterator
from datetime import UTC, datetime
from fnmatch import fnmatchcase
from functools import partial
from pathlib import PurePath

from erpbridge.errors import FatalError
from erpbridge.pci import redact_card_numbers
from erpbridge.systems.sap.idoc import read_idocs, render_idocs
from erpbridge.transports.base import Batch, OutgoingRecord, SourceProblem, SourceRecord
from erpbridge.transports.files.filesystems import NAME_MAX, FileEntry, FileSystem
from erpbridge.transports.files.formats import BrokenFile, Item, read_items
from erpbridge.transports.files.options import DropOptions, FolderStreamOptions, FolderTargetOptions
from erpbridge.transports.files.writers import (
    TEMP_NAME,
    Unwritable,
    fill_name,
    render_batch,
    render_record,
)

__all__ = ["IGNORED_SUFFIXES", "STALE_TEMP_SECONDS", "SWEEP_INTERVAL_SECONDS", "DropFolder"]

logger = logging.getLogger(__name__)

#: Names a writer uses while a file is still on its way (WinSCP writes ``*.filepart``).
IGNORED_SUFFIXES = (".tmp", ".part", ".filepart")

#: A temporary file of the hub's own naming older than this was left by a write that was
#: killed (a write renames its file within seconds; an hour leaves room for a slow upload and
#: clock skew between the hub and an SFTP server).
STALE_TEMP_SECONDS = 3600.0
#: Seconds between two sweeps of one target folder by one transport (the first write sweeps).
SWEEP_INTERVAL_SECONDS = 600.0


class DropFolder:
    """The inbox of one channel at ``root`` on ``fs``, and the folder OUT flows write into.

    ``stable_seconds`` > 0 lists the inbox twice, that many seconds apart, and reads only the
    files whose size and modification time did not change in between.
    """

    def __init__(
        self,
        fs: FileSystem,
        channel: str,
        root: PurePath,
        options: DropOptions,
        *,
        stable_seconds: float = 0.0,
    ) -> None:
        self.fs = fs
        self.root = root
        self._channel = channel
        self._options = options
        self._stable_seconds = stable_seconds
        self._swept: dict[PurePath, float] = {}  # target folder → monotonic time of its sweep

    # -- reading ---------------------------------------------------------------------------

    def read(
        self, stream: FolderStreamOptions, batch_size: int, required: frozenset[str]
    ) -> Iterator[Batch]:
        """The records of every waiting file matching the stream's pattern, in batches."""
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        for entry in self.inbox(stream.pattern):
            yield from self._read_file(entry, stream, batch_size, required)

    def inbox(self, pattern: str, *, settled: bool = True) -> list[FileEntry]:
        """Regular files in the inbox matching ``pattern``, in name order; ``settled`` leaves
        out those that may still be being written (``min_age_seconds``, ``stable_seconds``)."""
        entries = self._listing(pattern)
        if not settled:
            return entries
        min_age = self._options.min_age_seconds
        if min_age:
            now = time.time()
            fresh = [e.name for e in entries if now - e.mtime < min_age]
            if fresh:
                logger.debug("channel %r: left for later, too fresh: %s", self._channel, fresh)
            entries = [e for e in entries if now - e.mtime >= min_age]
        if self._stable_seconds and entries:
            time.sleep(self._stable_seconds)
            again = {(e.name, e.size, e.mtime) for e in self._listing(pattern)}
            changing = [e.name for e in entries if (e.name, e.size, e.mtime) not in again]
            if changing:
                logger.debug("channel %r: left for later, changing: %s", self._channel, changing)
            entries = [e for e in entries if (e.name, e.size, e.mtime) in again]
        return entries

    def _listing(self, pattern: str) -> list[FileEntry]:
        try:
            entries = self.fs.list_folder(self.root)
        except OSError as exc:
            raise self.fs.failure(
                f"channel {self._channel!r}: cannot read inbox folder "
                f"{self.fs.where(self.root)}: {exc}",
                exc,
            ) from exc
        return sorted(
            (
                e
                for e in entries
                if e.is_file
                and not e.name.startswith(".")
                and not e.name.lower().endswith(IGNORED_SUFFIXES)
                and fnmatchcase(e.name, pattern)
            ),
            key=lambda e: e.name,
        )

    def _read_file(
        self,
        entry: FileEntry,
        stream: FolderStreamOptions,
        batch_size: int,
        required: frozenset[str],
    ) -> Iterator[Batch]:
        """Batches of one file; the last one carries the move to archive/ or error/."""
        path = self.root / entry.name
        items = self._items(entry, stream, required)
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
                        "channel %r: %s vanished before it was read",
                        self._channel,
                        self.fs.where(path),
                    )
                    return
                except OSError as exc:
                    raise self.fs.failure(
                        f"channel {self._channel!r}: cannot read {self.fs.where(path)}: {exc}", exc
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
            last.on_commit.append(partial(self._move, path, self._options.archive, None))
        else:
            last.problems.append(SourceProblem(position=entry.name, reason=reason))
            last.on_commit.append(partial(self._move, path, self._options.error, reason))
        yield last

    def _items(
        self, entry: FileEntry, stream: FolderStreamOptions, required: frozenset[str]
    ) -> Generator[Item, None, None]:
        """Records and row problems of one file; raises :class:`BrokenFile` for the whole."""
        # The size comes from the listing: an oversized file is refused without opening it.
        limit = self._options.max_file_mb * 1024 * 1024
        if entry.size > limit:
            raise BrokenFile(
                f"file is oversized: {entry.size / 1048576:.2f} MB, "
                f"max_file_mb is {self._options.max_file_mb:g}"
            )
        open_file = partial(self.fs.open_read, self.root / entry.name)
        if stream.format == "idoc":
            yield from read_idocs(
                entry.name, open_file, idoc_type=stream.idoc_type, message_type=stream.message_type
            )
            return
        yield from read_items(
            entry.name,
            open_file,
            stream.format,
            encoding=self._options.encoding,
            delimiter=stream.delimiter,
            record_tag=stream.record_tag,
            records_path=stream.records_path,
            required=required,
        )

    def _move(self, file: PurePath, subfolder: str, reason: str | None) -> None:
        """Move ``file`` into ``subfolder`` without overwriting; write the reason next to it."""
        fs = self.fs
        target_dir = self.root / subfolder
        try:
            fs.make_folder(target_dir)
            target = self._free_name(target_dir, file.name)
            # Checked-then-renamed: a clash needs two processes archiving one name at once,
            # which one inbox per channel rules out.
            fs.rename(file, target)
            if reason is not None:
                stamp = datetime.now(UTC).isoformat(timespec="seconds")
                note = f"{stamp} channel {self._channel!r}: {file.name}: {reason}\n"
                note = redact_card_numbers(note)  # a file name or a parser may quote one
                fs.write_file(target_dir / f"{target.name}.reason.txt", note.encode("utf-8"))
        except FileNotFoundError:
            # Acknowledged twice, or removed by hand meanwhile: the hub has the data either way.
            logger.warning(
                "channel %r: %s vanished before it could be moved", self._channel, fs.where(file)
            )
        except OSError as exc:
            raise fs.failure(
                f"channel {self._channel!r}: cannot move {fs.where(file)} to "
                f"{fs.where(target_dir)}: {exc}",
                exc,
            ) from exc

    def _free_name(self, folder: PurePath, name: str) -> PurePath:
        """``folder/name``, or with a timestamp (and counter) suffix when that name is taken."""
        target = folder / name
        if not self.fs.exists(target):
            return target
        stem, suffix = PurePath(name).stem, PurePath(name).suffix
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        target, counter = folder / f"{stem}.{stamp}{suffix}", 2
        while self.fs.exists(target):
            target, counter = folder / f"{stem}.{stamp}-{counter}{suffix}", counter + 1
        return target

    # -- writing ---------------------------------------------------------------------------

    def write(self, target: FolderTargetOptions, records: list[OutgoingRecord]) -> list[str | None]:
        """Write the records as files; return each one's path relative to the channel's folder.

        Everything is rendered before the first file is written, so a record that cannot be
        written (:class:`FatalError`) leaves no file. A file system problem is the file system's
        :meth:`~.FileSystem.failure`; files already written by then are written again,
        identically, on the retry.
        """
        if not records:
            return []
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
        if any(r.document is not None for r in records):
            # A flow's document (``document:``) is its own file: the stored bytes, by its name.
            files = {r.document.file_name: r.document.content for r in records if r.document}
            names = [r.document.file_name if r.document else "" for r in records]
        elif target.file_per == "batch":
            files = {self._batch_name(target, records, stamp): self._render(target, records)}
            names = [next(iter(files))] * len(records)
        else:
            files, names = {}, []
            owners: dict[str, tuple[str, str]] = {}
            for record in records:
                name = fill_name(target.name, record, stamp, _extension(target))
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
        for name in files:
            if len(name.encode()) > NAME_MAX:
                # An SFTP server answers this with a bare "Failure": decide before asking it.
                raise FatalError(
                    f"channel {self._channel!r}: cannot write into {self.fs.where(folder)}: the "
                    f"file name {name[:40]!r}… is {len(name.encode())} bytes long, file systems "
                    f"take at most {NAME_MAX} (shorten the name template or the key; permanent: "
                    "not retried)"
                )
        self._sweep(folder)
        try:
            self.fs.write_all_atomically(folder, files)
            self.fs.sync_folder(folder)
        except OSError as exc:
            raise self.fs.failure(
                f"channel {self._channel!r}: cannot write into {self.fs.where(folder)}: {exc}", exc
            ) from exc
        prefix = f"{PurePath(target.subfolder).as_posix()}/" if target.subfolder else ""
        return [prefix + name for name in names]

    def _sweep(self, folder: PurePath) -> None:
        """Remove what killed writes left in ``folder``: files of the hub's own temporary
        naming (:data:`~.writers.TEMP_NAME`) older than :data:`STALE_TEMP_SECONDS`, and
        nothing else. At the first write and then every :data:`SWEEP_INTERVAL_SECONDS`; a
        problem here is logged and never fails the write."""
        at = time.monotonic()
        last = self._swept.get(folder)
        if last is not None and at - last < SWEEP_INTERVAL_SECONDS:
            return
        self._swept[folder] = at
        where = self.fs.where(folder)
        try:
            entries = self.fs.list_folder(folder)
        except OSError as exc:
            logger.warning("channel %r: cannot look for stale temporary files in %s: %s",
                           self._channel, where, exc)  # fmt: skip
            return
        cutoff = time.time() - STALE_TEMP_SECONDS
        for entry in entries:
            if not (entry.is_file and entry.mtime < cutoff and TEMP_NAME.fullmatch(entry.name)):
                continue
            try:
                self.fs.remove(folder / entry.name)
            except FileNotFoundError:
                continue  # another worker swept it first
            except OSError as exc:
                logger.warning("channel %r: cannot remove stale temporary file %s in %s: %s",
                               self._channel, entry.name, where, exc)  # fmt: skip
                continue
            logger.info("channel %r: removed %s in %s, left by a write that was interrupted "
                        "%.0f min ago", self._channel, entry.name, where,
                        (time.time() - entry.mtime) / 60)  # fmt: skip

    def _target_folder(self, target: FolderTargetOptions) -> PurePath:
        """The folder to write into, created below the channel's folder if need be."""
        fs = self.fs
        # The channel's folder itself is never created: missing, it is a mount that is gone
        # or a wrong path, not something to paper over.
        try:
            present = fs.is_dir(self.root)
        except OSError as exc:
            raise fs.failure(
                f"channel {self._channel!r}: cannot look at folder {fs.where(self.root)}: {exc}",
                exc,
            ) from exc
        if not present:
            missing = FileNotFoundError(f"folder {fs.where(self.root)} does not exist")
            raise fs.failure(
                f"channel {self._channel!r}: folder {fs.where(self.root)} does not exist or is "
                "not a folder",
                missing,
            )
        if target.subfolder is None:
            return self.root
        folder = self.root / target.subfolder
        try:
            fs.make_folder(folder)
        except OSError as exc:
            raise fs.failure(
                f"channel {self._channel!r}: cannot create folder {fs.where(folder)}: {exc}", exc
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
        return fill_name(target.name, first, stamp, _extension(target))

    def _render(self, target: FolderTargetOptions, records: list[OutgoingRecord]) -> bytes:
        """One file's bytes; :class:`FatalError` naming the record and field it cannot hold."""
        options = {
            "encoding": target.encoding,
            "delimiter": target.delimiter,
            "root_tag": target.root_tag,
            "record_tag": target.record_tag,
        }
        try:
            if target.idoc is not None:
                # DOCNUM: the delivery id, so a retried delivery writes the same IDoc again.
                data = [r.data for r in records]
                docnums = [r.delivery_id for r in records]
                return render_idocs(data, target.idoc, docnums=docnums, encoding=target.encoding)
            if target.file_per == "record":
                return render_record(target.format, records[0].data, **options)
            return render_batch(target.format, [r.data for r in records], **options)
        except Unwritable as exc:
            where = f"channel {self._channel!r}"
            if exc.index is not None:
                r = records[exc.index]
                where += f": {r.entity} {r.key!r} version {r.version} (delivery {r.delivery_id})"
            raise FatalError(f"{where}: cannot write as {target.format}: {exc}") from exc


def _extension(target: FolderTargetOptions) -> str:
    """``{ext}`` of a file name: the format, but ``xml`` for IDoc XML files."""
    return "xml" if target.format == "idoc" else target.format
