"""The few file operations a drop folder needs, behind one small Protocol: local or remote.

:class:`~.drop.DropFolder` holds the inbox, archive, error and write logic once; a
:class:`FileSystem` carries it out on the local disk (:class:`LocalFileSystem`) or on an SFTP server
(:class:`~.sftp.filesystem.SftpFileSystem`). File-level problems come out as :class:`OSError`
(``FileNotFoundError``, ``PermissionError`` …); a file system whose connection fails raises an
:class:`~erpbridge.errors.ErpbridgeError` itself.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path, PurePath
from typing import IO, Protocol

from erpbridge.errors import ErpbridgeError, FatalError, SourceUnavailable
from erpbridge.transports.files.writers import (
    sync_folder,
    write_all_atomically,
    write_atomically,
)

__all__ = ["NAME_MAX", "PERMANENT_ERRNOS", "FileEntry", "FileSystem", "LocalFileSystem"]

#: The longest file name (one path component, in bytes) nearly every file system takes.
NAME_MAX = 255

#: OS errors that no retry cures: the name or the file itself is what the file system refuses
#: (a name too long or with characters it cannot hold, a file too big). A folder squatting on
#: the file's name is not among them: someone may remove it.
PERMANENT_ERRNOS = frozenset({errno.ENAMETOOLONG, errno.EILSEQ, errno.EFBIG})


@dataclass(frozen=True, slots=True)
class FileEntry:
    """One name in a folder listing, with what the listing says about it."""

    name: str
    size: int
    #: Seconds since the epoch, by the clock of the machine that holds the file.
    mtime: float
    is_file: bool


class FileSystem(Protocol):
    """Where a drop folder lives. Paths are of the file system's own flavour."""

    def where(self, path: PurePath) -> str:
        """``path`` as messages show it (a local path, an ``sftp://`` address)."""
        ...

    def list_folder(self, folder: PurePath) -> list[FileEntry]:
        """Every entry directly in ``folder``."""
        ...

    def open_read(self, path: PurePath) -> AbstractContextManager[IO[bytes]]:
        """``path`` opened for streaming, sequential reading."""
        ...

    def exists(self, path: PurePath) -> bool:
        """Whether anything exists at ``path``."""
        ...

    def is_dir(self, path: PurePath) -> bool:
        """Whether ``path`` is a folder."""
        ...

    def make_folder(self, path: PurePath) -> None:
        """Create ``path`` and its missing parents; an existing folder is fine."""
        ...

    def rename(self, source: PurePath, target: PurePath) -> None:
        """Move ``source`` to ``target`` on the same file system."""
        ...

    def write_file(self, path: PurePath, content: bytes) -> None:
        """Write a small file in one go (a ``.reason.txt``)."""
        ...

    def write_atomically(self, folder: PurePath, name: str, content: bytes) -> None:
        """Put ``folder/name`` in place through a temporary name, never visible half-written."""
        ...

    def write_all_atomically(self, folder: PurePath, files: Mapping[str, bytes]) -> None:
        """:meth:`write_atomically` for each of ``files`` (name → content), in order."""
        ...

    def remove(self, path: PurePath) -> None:
        """Delete the file at ``path`` (a temporary file a killed write left behind)."""
        ...

    def sync_folder(self, folder: PurePath) -> None:
        """Make the renames in ``folder`` durable, as far as the file system can."""
        ...

    def failure(self, message: str, exc: OSError) -> ErpbridgeError:
        """The erpbridge error for ``exc``, an :class:`OSError` of this file system."""
        ...


class LocalFileSystem:
    """The local disk. A problem is :class:`SourceUnavailable` (a folder that is missing or
    unwritable is most often a mount that is gone for a while), except the permanent ones of
    :data:`PERMANENT_ERRNOS`, which are :class:`FatalError`."""

    def where(self, path: PurePath) -> str:
        """The path itself."""
        return str(path)

    def list_folder(self, folder: PurePath) -> list[FileEntry]:
        """Entries of ``folder``; an entry removed between listing and ``stat`` is left out."""
        entries = []
        with os.scandir(folder) as found:
            for entry in found:
                try:
                    stat = entry.stat()
                except FileNotFoundError:
                    continue  # taken away meanwhile: nothing to read
                entries.append(FileEntry(entry.name, stat.st_size, stat.st_mtime, entry.is_file()))
        return entries

    def open_read(self, path: PurePath) -> AbstractContextManager[IO[bytes]]:
        """A buffered binary file."""
        return Path(path).open("rb")

    def exists(self, path: PurePath) -> bool:
        """``os.path.exists``."""
        return Path(path).exists()

    def is_dir(self, path: PurePath) -> bool:
        """``os.path.isdir``."""
        return Path(path).is_dir()

    def make_folder(self, path: PurePath) -> None:
        """``mkdir -p``."""
        Path(path).mkdir(parents=True, exist_ok=True)

    def rename(self, source: PurePath, target: PurePath) -> None:
        """``os.replace``: atomic on one file system."""
        os.replace(source, target)

    def write_file(self, path: PurePath, content: bytes) -> None:
        """A plain write."""
        Path(path).write_bytes(content)

    def write_atomically(self, folder: PurePath, name: str, content: bytes) -> None:
        """Hidden temporary file, fsync, rename (:func:`~.writers.write_atomically`)."""
        write_atomically(Path(folder), name, content)

    def write_all_atomically(self, folder: PurePath, files: Mapping[str, bytes]) -> None:
        """Temporary files, their fsyncs side by side, renames in order
        (:func:`~.writers.write_all_atomically`)."""
        write_all_atomically(Path(folder), files)

    def remove(self, path: PurePath) -> None:
        """``unlink``."""
        Path(path).unlink()

    def sync_folder(self, folder: PurePath) -> None:
        """fsync the folder (POSIX)."""
        sync_folder(Path(folder))

    def failure(self, message: str, exc: OSError) -> ErpbridgeError:
        """:class:`FatalError` for :data:`PERMANENT_ERRNOS`, else :class:`SourceUnavailable`."""
        if exc.errno in PERMANENT_ERRNOS:
            return FatalError(f"{message} (permanent: not retried)")
        return SourceUnavailable(message)
