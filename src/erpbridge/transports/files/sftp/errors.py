"""What goes wrong on the way to an SFTP server, in erpbridge's words.

paramiko and socket errors are translated here, at the border, into two classes the engine
acts on: :class:`SftpUnavailable` (passing: DNS, refused, timeout, a connection lost, also
during the login: retried) and :class:`SftpRefused` (permanent until someone acts: an unknown or
changed host key, a refused login, a missing folder, no permission). Each carries the
``category`` that ``erpbridge channels test`` prints. Host key problems are ``tls``: like a
certificate, the host key is what proves the server is the one we mean.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass
from pathlib import Path

import paramiko
from pydantic import SecretStr

from erpbridge.errors import ErpbridgeError, FatalError, SourceUnavailable
from erpbridge.transports.base import HealthCategory
from erpbridge.transports.files.filesystems import PERMANENT_ERRNOS

__all__ = [
    "SftpEndpoint",
    "SftpRefused",
    "SftpUnavailable",
    "UnknownHostKey",
    "connect_failure",
    "file_failure",
]


@dataclass(frozen=True)
class SftpEndpoint:
    """Where and how to log in; secrets stay :class:`SecretStr` until the login itself."""

    channel: str
    host: str
    port: int
    username: str
    known_hosts: Path
    accept_new_host_keys: bool
    private_key: Path | None
    passphrase: SecretStr | None
    password: SecretStr | None
    connect_timeout: float
    timeout: float
    keepalive_seconds: float

    @property
    def address(self) -> str:
        """``user@host:port``, for messages."""
        return f"{self.username}@{self.host}:{self.port}"

    @property
    def host_key_name(self) -> str:
        """The name of the server's line in ``known_hosts`` (``[host]:port`` off port 22)."""
        return self.host if self.port == 22 else f"[{self.host}]:{self.port}"


class SftpUnavailable(SourceUnavailable):
    """The server could not be reached or used for now; the same call may work later."""

    def __init__(self, message: str, category: HealthCategory) -> None:
        super().__init__(message)
        self.category: HealthCategory = category


class SftpRefused(FatalError):
    """The server is not the one we know, or refuses the folder for good; someone must act."""

    def __init__(self, message: str, category: HealthCategory) -> None:
        super().__init__(message)
        self.category: HealthCategory = category


class UnknownHostKey(paramiko.SSHException):
    """The server's host key is not in ``known_hosts`` (raised by our reject policy)."""

    def __init__(self, name: str, key: paramiko.PKey) -> None:
        super().__init__(f"host key of {name} is unknown")
        self.key = key


#: What paramiko says when the server closed the connection in the middle of the login.
_LOST_IN_LOGIN = "transport shut down or saw EOF"


def connect_failure(exc: BaseException, endpoint: SftpEndpoint) -> ErpbridgeError:
    """The erpbridge error for ``exc``, raised while connecting and logging in."""
    where = f"channel {endpoint.channel!r}: sftp://{endpoint.address}"
    known = endpoint.known_hosts
    if isinstance(exc, UnknownHostKey):
        missing = "" if known.exists() else " (the file does not exist)"
        return SftpRefused(
            f"{where}: host key {_describe(exc.key)} of {endpoint.host_key_name} is not in "
            f"{known}{missing}. Compare the fingerprint with the one the server's administrator "
            f"gives you, then add the server's line to {known} (ssh-keyscan -p {endpoint.port} "
            f"{endpoint.host}), or set host_key_policy: accept_new to trust it on first use",
            "tls",
        )
    if isinstance(exc, paramiko.BadHostKeyException):
        return SftpRefused(
            f"{where}: host key {_describe(exc.key)} does not match {known}, which expects "
            f"{_describe(exc.expected_key)}: the server was replaced, or someone is in between. "
            f"Nothing was read or written; replace the line in {known} only once you know why",
            "tls",
        )
    if isinstance(exc, paramiko.BadAuthenticationType):
        allowed = ", ".join(exc.allowed_types) or "nothing"
        return SftpRefused(
            f"{where}: login refused, the server accepts only {allowed} for "
            f"{endpoint.username!r}; configure that (private_key or credentials.password)",
            "auth",
        )
    if isinstance(exc, paramiko.AuthenticationException) and _LOST_IN_LOGIN in str(exc):
        # The server hung up during the login (MaxStartups, a restart): not a verdict.
        return SftpUnavailable(f"{where}: the connection was lost during the login", "auth")
    if isinstance(exc, paramiko.AuthenticationException):
        # A wrong password or key stays wrong: retrying only fills the server's auth log
        # (and may lock the account) until someone changes the credentials.
        return SftpRefused(
            f"{where}: login refused for {endpoint.username!r} with {_methods(endpoint)}",
            "auth",
        )
    if isinstance(exc, socket.gaierror):
        return SftpUnavailable(f"{where}: cannot resolve host {endpoint.host!r}: {exc}", "dns")
    if isinstance(exc, paramiko.ssh_exception.NoValidConnectionsError | ConnectionRefusedError):
        return SftpUnavailable(f"{where}: connection refused or host unreachable", "refused")
    if isinstance(exc, TimeoutError):
        return SftpUnavailable(
            f"{where}: no answer within {endpoint.connect_timeout:g} s (connect_timeout)",
            "timeout",
        )
    if isinstance(exc, paramiko.SSHException) and "banner" in str(exc).lower():
        if "timeout" in str(exc).lower() or "timed out" in str(exc).lower():
            return SftpUnavailable(
                f"{where}: no SSH greeting within {endpoint.connect_timeout:g} s", "timeout"
            )
        return SftpUnavailable(f"{where}: does not speak SSH: {_text(exc)}", "protocol")
    if isinstance(exc, paramiko.SSHException | paramiko.SFTPError | EOFError):
        return SftpUnavailable(f"{where}: SSH session failed: {_text(exc)}", "protocol")
    return SftpUnavailable(f"{where}: cannot connect: {_text(exc)}", "refused")


def file_failure(message: str, exc: OSError, endpoint: SftpEndpoint) -> ErpbridgeError:
    """The erpbridge error for the server's answer ``exc`` about a file or folder."""
    if isinstance(exc, PermissionError):
        return SftpRefused(f"{message} (logged in as {endpoint.username!r})", "forbidden")
    if exc.errno in PERMANENT_ERRNOS:
        return SftpRefused(f"{message} (permanent: not retried)", "schema")
    if isinstance(exc, FileNotFoundError | NotADirectoryError):
        return SftpRefused(
            f"{message} (relative paths start in the folder the server opens the session in)",
            "schema",
        )
    return SftpUnavailable(message, "error")


def _describe(key: paramiko.PKey) -> str:
    return f"{key.get_name()} {key.fingerprint}"


def _methods(endpoint: SftpEndpoint) -> str:
    methods = []
    if endpoint.private_key is not None:
        methods.append(f"the key {endpoint.private_key}")
    if endpoint.password is not None:
        methods.append("the password")
    return " and ".join(methods)


def _text(exc: BaseException) -> str:
    return str(exc) or type(exc).__name__
