"""A drop folder's file operations on an SFTP server (paramiko), for the ``sftp`` transport.

One SSH connection per channel, made on first use and made again when it drops: an operation
that loses its connection is run once more on a new one, and a download in progress resumes at
the byte it had reached. Downloads stream: the next bytes are requested ahead of the reader
(paramiko's prefetch, a bounded window at a time), so round trips overlap and memory stays
small whatever the file's size. Uploads go to a hidden temporary name and are renamed into
place (``posix-rename@openssh.com`` when the server has it, so an existing file is replaced in
one step).
"""

from __future__ import annotations

import contextlib
import errno
import io
import logging
import stat
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from functools import partial
from pathlib import PurePath, PurePosixPath
from typing import IO, Any, TypeVar

import paramiko

from erpbridge.errors import ErpbridgeError
from erpbridge.transports.files.filesystems import FileEntry
from erpbridge.transports.files.sftp.connect import CONNECTION_ERRORS, connect
from erpbridge.transports.files.sftp.errors import SftpEndpoint, SftpUnavailable, file_failure
from erpbridge.transports.files.writers import part_name, probe_name

__all__ = ["SftpFileSystem"]

logger = logging.getLogger(__name__)

T = TypeVar("T")

#: Bytes requested ahead of the reader: the first window is small, for files read only in part
#: (an XML prolog check), and doubles up to the last. It stays above the SSH channel's 2 MB
#: window, so requests are always out ahead of what the reader consumes.
_FIRST_LEAD = 128 * 1024
_MAX_LEAD = 16 * 1024 * 1024
_BUFFER = 64 * 1024
#: A download resumes after at most this many lost connections.
_RESUMES = 3


class SftpFileSystem:
    """The :class:`~erpbridge.transports.files.filesystems.FileSystem` of one SFTP channel.

    Not thread-safe: the engine builds one transport per thread."""

    def __init__(self, endpoint: SftpEndpoint) -> None:
        self.endpoint = endpoint
        self._client: paramiko.SSHClient | None = None
        self._sftp: paramiko.SFTPClient | None = None
        self._posix_rename = True

    # -- the connection --------------------------------------------------------------------

    def session(self) -> paramiko.SFTPClient:
        """A live SFTP session: the current one, or a new connection."""
        if self._sftp is not None and self.alive():
            return self._sftp
        self._drop()
        self._client, self._sftp = connect(self.endpoint)
        return self._sftp

    def close(self) -> None:
        """Close the connection (a later operation opens a new one)."""
        self._drop()

    def alive(self) -> bool:
        """Whether the current connection still stands (``False`` when there is none)."""
        transport = self._client.get_transport() if self._client is not None else None
        if transport is None or not transport.is_active() or self._sftp is None:
            return False
        channel = self._sftp.get_channel()
        return channel is not None and not (channel.closed or channel.eof_received)

    def _drop(self) -> None:
        client, self._client, self._sftp = self._client, None, None
        if client is not None:
            client.close()

    def call(self, op: Callable[[paramiko.SFTPClient], T], doing: str) -> T:
        """``op`` on a live session. A connection lost under it is made again and ``op`` run
        once more, so ``op`` must be safe to repeat; the server's answers about files come out
        as :class:`OSError`, everything else as an erpbridge error."""
        where = f"channel {self.endpoint.channel!r}: sftp://{self.endpoint.address}"
        retried = False
        while True:
            sftp = self.session()
            try:
                return op(sftp)
            except TimeoutError as exc:
                # A wedged session stays wedged: drop it, but do not wait a second time.
                self._drop()
                raise SftpUnavailable(
                    f"{where}: no answer within {self.endpoint.timeout:g} s (timeout) while "
                    f"{doing}",
                    "timeout",
                ) from exc
            except CONNECTION_ERRORS as exc:
                if self.alive():
                    if isinstance(exc, OSError):
                        raise  # the server's answer about a file: the caller knows what it means
                    raise SftpUnavailable(f"{where}: {doing}: {_text(exc)}", "protocol") from exc
                self._drop()
                if retried:
                    raise SftpUnavailable(
                        f"{where}: connection lost again while {doing}: {_text(exc)}", "error"
                    ) from exc
                retried = True
                logger.warning("%s: connection lost while %s; reconnecting", where, doing)

    # -- FileSystem ------------------------------------------------------------------------

    def where(self, path: PurePath) -> str:
        """``sftp://user@host:port/path``; a relative path shows as ``/~/path`` (it starts in
        the folder the server opens the session in, usually the user's home)."""
        text = path.as_posix()
        return f"sftp://{self.endpoint.address}" + (text if text.startswith("/") else f"/~/{text}")

    def failure(self, message: str, exc: OSError) -> ErpbridgeError:
        """Permission denied is ``forbidden``, a missing folder ``schema``; both permanent."""
        return file_failure(message, exc, self.endpoint)

    def list_folder(self, folder: PurePath) -> list[FileEntry]:
        """``readdir`` with attributes: sizes and times come with the listing."""
        found = self.call(lambda s: s.listdir_attr(_remote(folder)), f"listing {folder}")
        return [
            FileEntry(
                a.filename,
                a.st_size or 0,
                float(a.st_mtime or 0),
                a.st_mode is not None and stat.S_ISREG(a.st_mode),
            )
            for a in found
        ]

    def open_read(self, path: PurePath) -> AbstractContextManager[IO[bytes]]:
        """A buffered stream over a :class:`_Download`."""
        return io.BufferedReader(_Download(self, PurePosixPath(path)), _BUFFER)

    def exists(self, path: PurePath) -> bool:
        """``stat`` succeeds."""
        return self._stat(path) is not None

    def is_dir(self, path: PurePath) -> bool:
        """``stat`` says folder."""
        attrs = self._stat(path)
        return attrs is not None and attrs.st_mode is not None and stat.S_ISDIR(attrs.st_mode)

    def make_folder(self, path: PurePath) -> None:
        """Create ``path`` and its missing parents."""
        missing: list[PurePath] = []
        at = path
        while at != at.parent:
            attrs = self._stat(at)
            if attrs is not None:
                if attrs.st_mode is None or not stat.S_ISDIR(attrs.st_mode):
                    raise NotADirectoryError(errno.ENOTDIR, "not a folder", self.where(at))
                break
            missing.append(at)
            at = at.parent
        for folder in reversed(missing):
            try:
                self.call(partial(_mkdir, folder), f"creating {folder}")
            except OSError:
                if not self.is_dir(folder):  # made meanwhile by another process: fine
                    raise

    def rename(self, source: PurePath, target: PurePath) -> None:
        """Plain SFTP rename, which never overwrites an existing ``target``."""
        self.call(lambda s: s.rename(_remote(source), _remote(target)), f"moving {source}")

    def write_file(self, path: PurePath, content: bytes) -> None:
        """Upload ``content`` under ``path`` directly."""

        def upload(sftp: paramiko.SFTPClient) -> None:
            with sftp.open(_remote(path), "wb") as fh:
                fh.write(content)

        self.call(upload, f"writing {path}")

    def write_atomically(self, folder: PurePath, name: str, content: bytes) -> None:
        """Upload to ``.<name>.<random>.part`` in ``folder``, then rename it to ``name``."""
        target = folder / name

        def upload(sftp: paramiko.SFTPClient) -> None:
            temp = folder / part_name(name)
            try:
                with sftp.open(_remote(temp), "wb") as fh:
                    fh.set_pipelined(True)  # no round trip per 32 KiB; errors show at close
                    fh.write(content)
                self._replace(sftp, temp, target)
            except BaseException:
                # The original error is the one worth reporting; over a lost connection the
                # temporary file stays behind, hidden, and the retry writes a new one.
                with contextlib.suppress(*CONNECTION_ERRORS):
                    sftp.remove(_remote(temp))
                raise

        self.call(upload, f"writing {target}")

    def write_all_atomically(self, folder: PurePath, files: Mapping[str, bytes]) -> None:
        """:meth:`write_atomically` for each of ``files``, one after the other."""
        for name, content in files.items():
            self.write_atomically(folder, name, content)

    def remove(self, path: PurePath) -> None:
        """Delete the file at ``path``."""
        self.call(lambda s: s.remove(_remote(path)), f"removing {path}")

    def sync_folder(self, folder: PurePath) -> None:
        """SFTP has no way to sync a folder: the server's own file system decides."""

    def probe_writable(self, folder: PurePath) -> None:
        """Create and remove a hidden empty file in ``folder``: SFTP cannot tell whether we may
        write there in any other way. :class:`OSError` if not."""
        probe = _remote(folder / probe_name())

        def touch(sftp: paramiko.SFTPClient) -> None:
            with sftp.open(probe, "wb"):
                pass
            sftp.remove(probe)

        self.call(touch, f"checking that {folder} is writable")

    def _stat(self, path: PurePath) -> paramiko.SFTPAttributes | None:
        try:
            return self.call(lambda s: s.stat(_remote(path)), f"looking at {path}")
        except FileNotFoundError:
            return None

    def _replace(self, sftp: paramiko.SFTPClient, temp: PurePath, target: PurePath) -> None:
        if self._posix_rename:
            try:
                sftp.posix_rename(_remote(temp), _remote(target))
                return
            except OSError as exc:
                if exc.errno is not None or "unsupported" not in str(exc).lower():
                    raise
                self._posix_rename = False
                logger.info(
                    "%s has no posix-rename: files are replaced by remove and rename",
                    self.endpoint.address,
                )
        # Not atomic: for a moment no file has the name (never a partial one, though).
        with contextlib.suppress(FileNotFoundError):
            sftp.remove(_remote(target))
        sftp.rename(_remote(temp), _remote(target))


class _Download(io.RawIOBase):
    """One remote file read from start to end, its bytes requested ahead of the reader.

    paramiko's ``prefetch`` is given one bounded window at a time rather than the whole file:
    a whole-file prefetch keeps requesting after an early close, and its request cap polls in
    a thread that, when it falls behind the reader, leaves paramiko buffering the rest of the
    file in memory.
    """

    def __init__(self, fs: SftpFileSystem, path: PurePosixPath) -> None:
        super().__init__()
        self._fs = fs
        self._path = path
        self._pos = 0  # bytes handed to the reader
        self._file: paramiko.SFTPFile | None = None
        self._size = 0
        self._requested = 0  # end of the bytes asked for so far
        self._lead = _FIRST_LEAD
        self._resumes = 0
        self._open()

    def readable(self) -> bool:
        """Always."""
        return True

    def readinto(self, buffer: Any) -> int:
        """Fill ``buffer`` from the current position; resume on a new connection if need be."""
        while True:
            try:
                return self._read_into(buffer)
            except TimeoutError as exc:
                self._fs.close()
                raise SftpUnavailable(
                    f"channel {self._fs.endpoint.channel!r}: no answer within "
                    f"{self._fs.endpoint.timeout:g} s (timeout) while reading "
                    f"{self._fs.where(self._path)}",
                    "timeout",
                ) from exc
            except CONNECTION_ERRORS as exc:
                if self._fs.alive():
                    if isinstance(exc, OSError):
                        raise  # the server's answer about this file
                    raise SftpUnavailable(
                        f"channel {self._fs.endpoint.channel!r}: reading "
                        f"{self._fs.where(self._path)}: {_text(exc)}",
                        "protocol",
                    ) from exc
                if self._resumes >= _RESUMES:
                    raise SftpUnavailable(
                        f"channel {self._fs.endpoint.channel!r}: connection lost "
                        f"{self._resumes + 1} times while reading {self._fs.where(self._path)}",
                        "error",
                    ) from exc
                self._resumes += 1
                logger.warning(
                    "channel %r: connection lost while reading %s at byte %d; resuming",
                    self._fs.endpoint.channel,
                    self._fs.where(self._path),
                    self._pos,
                )
                self._release()
                self._open()

    def close(self) -> None:
        """Close the remote file."""
        self._release()
        super().close()

    def _open(self) -> None:
        def open_at(sftp: paramiko.SFTPClient) -> tuple[paramiko.SFTPFile, int]:
            remote = sftp.open(_remote(self._path), "rb")
            try:
                size = remote.stat().st_size or 0
                remote.seek(self._pos)
            except BaseException:
                remote.close()
                raise
            return remote, size

        self._file, self._size = self._fs.call(open_at, f"opening {self._path}")
        self._requested, self._lead = self._pos, _FIRST_LEAD

    def _read_into(self, buffer: Any) -> int:
        remote = self._file
        if remote is None:
            raise ValueError("read from a closed download")
        if self._requested < self._size and self._requested - self._pos < self._lead // 2:
            if not self._fs.alive():
                # paramiko's prefetch thread would fail on it: resume on a new connection first.
                raise EOFError("connection lost")
            end = min(self._pos + self._lead, self._size)
            # prefetch() asks from the file's position on: move there and back.
            remote.seek(self._requested)
            remote.prefetch(end)
            remote.seek(self._pos)
            self._requested, self._lead = end, min(2 * self._lead, _MAX_LEAD)
        data = remote.read(len(buffer))
        count = len(data)
        buffer[:count] = data
        self._pos += count
        return count

    def _release(self) -> None:
        remote, self._file = self._file, None
        if remote is not None:
            # Over a lost connection there is nothing left to release.
            with contextlib.suppress(*CONNECTION_ERRORS):
                remote.close()


def _mkdir(folder: PurePath, sftp: paramiko.SFTPClient) -> None:
    sftp.mkdir(_remote(folder))


def _remote(path: PurePath) -> str:
    return path.as_posix()


def _text(exc: BaseException) -> str:
    return str(exc) or type(exc).__name__
