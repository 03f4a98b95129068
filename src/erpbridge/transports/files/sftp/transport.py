"""The sftp transport: a drop folder on an SFTP server, read and written like a local folder.

The same formats, source and target options as the ``folder`` transport (the logic is one
:class:`~erpbridge.transports.files.drop.DropFolder`, here on an
:class:`~.filesystem.SftpFileSystem`): CSV, JSON, JSONL and XML files are streamed from the inbox in
batches and moved to ``archive/`` once the hub has committed them, or to ``error/`` with a
``.reason.txt``; OUT flows upload files atomically.

The server's host key is checked against ``known_hosts`` and an unknown one is refused unless
``host_key_policy: accept_new`` says to trust it on first use. Login by private key
(``private_key``, its passphrase in ``credentials.private_key_passphrase``) and/or password
(``credentials.password``); never through an agent or the keys of whoever runs erpbridge.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path, PurePath, PurePosixPath
from typing import Literal, Self

from pydantic import ConfigDict, Field, SecretStr, model_validator

from erpbridge.connectors import Sink, Source
from erpbridge.errors import ErpbridgeError
from erpbridge.transports.base import (
    Batch,
    CursorValue,
    Health,
    HealthCategory,
    OutgoingRecord,
    StreamOptions,
    TargetOptions,
)
from erpbridge.transports.files.drop import DropFolder
from erpbridge.transports.files.options import DropOptions, FolderStreamOptions, FolderTargetOptions
from erpbridge.transports.files.sftp.errors import SftpEndpoint
from erpbridge.transports.files.sftp.filesystem import SftpFileSystem

__all__ = ["SftpChannelOptions", "SftpTransport"]

#: Credential names and what each is for.
CREDENTIALS = {
    "password": "the SFTP user's password (password login)",
    "private_key_passphrase": "the passphrase of an encrypted private_key",
}


class SftpChannelOptions(DropOptions):
    """An sftp channel's ``options:`` block (its ``credentials:`` arrive as ``credentials``)."""

    model_config = ConfigDict(use_attribute_docstrings=True, hide_input_in_errors=True)

    host: str = Field(min_length=1)
    """The server's host name or address."""
    port: int = Field(default=22, ge=1, le=65535)
    """The server's SSH port."""
    username: str = Field(min_length=1)
    """The user to log in as."""
    path: str = Field(min_length=1)
    """The inbox folder on the server; a relative path starts in the folder the server opens
    the session in (usually the user's home)."""
    min_age_seconds: float = Field(default=10, ge=0)
    """Files modified more recently (by the server's clock, compared with ours) are left for
    the next run, as they may still be being uploaded."""
    stable_seconds: float = Field(default=0, ge=0)
    """When above 0, the inbox is listed twice this many seconds apart and only files whose
    size and modification time did not change are read (independent of clocks)."""
    known_hosts: str = "~/.ssh/known_hosts"
    """OpenSSH ``known_hosts`` file with the server's host key (relative: to the configuration
    file's folder)."""
    host_key_policy: Literal["reject", "accept_new"] = "reject"
    """``reject``: a server whose key is not in ``known_hosts`` is refused. ``accept_new``:
    trusted on first use and added to ``known_hosts`` (weaker: the first connection is not
    verified). A changed key is refused either way."""
    private_key: str | None = None
    """Private key file for key login (OpenSSH or PEM format; relative: to the configuration
    file's folder); encrypted keys take ``credentials.private_key_passphrase``."""
    connect_timeout: float = Field(default=15, gt=0)
    """Seconds to wait for the connection, the SSH greeting and the login."""
    timeout: float = Field(default=60, gt=0)
    """Seconds to wait for any answer of the server once connected."""
    keepalive_seconds: float = Field(default=30, ge=0)
    """SSH keepalive interval, so a silently dropped connection is noticed (0: off)."""
    credentials: dict[str, SecretStr] = Field(default_factory=dict)
    """``password`` and/or ``private_key_passphrase``, from the channel's ``credentials:``."""

    @model_validator(mode="after")
    def _login_is_configured(self) -> Self:
        unknown = sorted(set(self.credentials) - set(CREDENTIALS))
        if unknown:
            known = ", ".join(CREDENTIALS)
            raise ValueError(f"unknown credential(s) {', '.join(unknown)}; known: {known}")
        if self.private_key is None and "private_key_passphrase" in self.credentials:
            raise ValueError("credentials.private_key_passphrase needs private_key")
        if self.private_key is None and "password" not in self.credentials:
            raise ValueError(
                "no way to log in: set private_key (key login) and/or credentials.password"
            )
        return self


class SftpTransport(Source[FolderStreamOptions], Sink[FolderTargetOptions]):
    """Reads files from an inbox folder on an SFTP server and archives them there after the hub
    committed them; writes records of OUT flows as files into it (or a subfolder)."""

    channel_options = SftpChannelOptions
    stream_options: type[StreamOptions] = FolderStreamOptions
    target_options: type[TargetOptions] = FolderTargetOptions

    def __init__(self, channel: str, options: SftpChannelOptions, base_dir: Path) -> None:
        self._options = options
        self._fs = SftpFileSystem(
            SftpEndpoint(
                channel=channel,
                host=options.host,
                port=options.port,
                username=options.username,
                known_hosts=_local_path(options.known_hosts, base_dir),
                accept_new_host_keys=options.host_key_policy == "accept_new",
                private_key=(
                    None
                    if options.private_key is None
                    else _local_path(options.private_key, base_dir)
                ),
                passphrase=options.credentials.get("private_key_passphrase"),
                password=options.credentials.get("password"),
                connect_timeout=options.connect_timeout,
                timeout=options.timeout,
                keepalive_seconds=options.keepalive_seconds,
            )
        )
        self._root = PurePosixPath(options.path)
        self._drop = DropFolder(
            self._fs, channel, self._root, options, stable_seconds=options.stable_seconds
        )

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

    def write(self, target: TargetOptions, records: list[OutgoingRecord]) -> list[str | None]:
        """Upload the records as files; return each one's path relative to the channel's folder.

        Everything is rendered before the first upload, so a record that cannot be written
        (:class:`~erpbridge.errors.FatalError`) leaves no file. A server that cannot be reached
        is :class:`~erpbridge.errors.SourceUnavailable`; files uploaded by then are uploaded
        again, identically, on the retry.
        """
        if not isinstance(target, FolderTargetOptions):
            raise TypeError(f"expected FolderTargetOptions, got {type(target).__name__}")
        return self._drop.write(target, records)

    def health(self) -> Health:
        """Connect and log in, list the inbox, and check that the inbox (where OUT flows write)
        and the archive and error folders can be written: by creating and removing a hidden
        empty file in each, as SFTP cannot tell permissions otherwise."""
        fs = self._fs
        try:
            fs.session()
            waiting = len(self._drop.inbox("*", settled=False))
            for folder in (
                self._root,
                self._root / self._options.archive,
                self._root / self._options.error,
            ):
                self._probe(folder)
        except ErpbridgeError as exc:
            category: HealthCategory = getattr(exc, "category", "error")
            return Health(False, str(exc), category)
        return Health(True, f"{fs.where(self._root)}: {waiting} file(s) waiting")

    def close(self) -> None:
        """Close the SSH connection."""
        self._fs.close()

    def _probe(self, folder: PurePath) -> None:
        """Check that ``folder`` can be written, or, while it does not exist yet (it is made on
        first use), the nearest folder above it that does."""
        fs = self._fs
        existing = next(p for p in (folder, *folder.parents) if p == self._root or fs.exists(p))
        try:
            if not fs.is_dir(existing):
                raise NotADirectoryError(f"{fs.where(existing)} is not a folder")
            fs.probe_writable(existing)
        except OSError as exc:
            raise fs.failure(
                f"channel {fs.endpoint.channel!r}: {fs.where(folder)} cannot be created or "
                f"written: {exc}",
                exc,
            ) from exc


def _local_path(value: str, base_dir: Path) -> Path:
    path = Path(value).expanduser()
    return path if path.is_absolute() else base_dir / path
