"""Connecting to an SFTP server with paramiko: host key check, login, the SFTP subsystem.

The host key is checked against the channel's ``known_hosts`` only (never the system's or the
user's own files), and the login uses only what the channel configures: its private key and/or
password, no SSH agent and no keys found in ``~/.ssh`` of whoever runs erpbridge.
"""

from __future__ import annotations

import logging
import time

import paramiko

from erpbridge.transports.files.sftp.errors import (
    SftpEndpoint,
    SftpRefused,
    UnknownHostKey,
    connect_failure,
)

__all__ = ["CONNECTION_ERRORS", "connect"]

logger = logging.getLogger(__name__)

#: What paramiko raises when a connection fails or an answer makes no sense (a timeout is an
#: OSError too; so are the server's answers about files, told apart by the caller).
CONNECTION_ERRORS = (OSError, EOFError, paramiko.SSHException, paramiko.SFTPError)


class _RejectUnknown(paramiko.MissingHostKeyPolicy):
    """OpenSSH's ``StrictHostKeyChecking yes``: an unknown server is refused."""

    def missing_host_key(
        self, client: paramiko.SSHClient, hostname: str, key: paramiko.PKey
    ) -> None:
        raise UnknownHostKey(hostname, key)


class _AcceptNew(paramiko.MissingHostKeyPolicy):
    """OpenSSH's ``accept-new``: an unknown server is trusted and remembered; a known one whose
    key changed is still refused (paramiko checks that before asking the policy)."""

    def __init__(self, known_hosts: str) -> None:
        self._known_hosts = known_hosts

    def missing_host_key(
        self, client: paramiko.SSHClient, hostname: str, key: paramiko.PKey
    ) -> None:
        logger.warning(
            "trusting the unknown host key %s %s of %s on first use and adding it to %s",
            key.get_name(),
            key.fingerprint,
            hostname,
            self._known_hosts,
        )
        client.get_host_keys().add(hostname, key.get_name(), key)
        client.save_host_keys(self._known_hosts)


def connect(endpoint: SftpEndpoint) -> tuple[paramiko.SSHClient, paramiko.SFTPClient]:
    """Connect, check the host key, log in, open the SFTP subsystem."""
    pkey = _private_key(endpoint)
    client = paramiko.SSHClient()
    done = False
    started = time.monotonic()
    try:
        _load_host_keys(client, endpoint)
        password = endpoint.password
        client.connect(
            endpoint.host,
            endpoint.port,
            endpoint.username,
            password=password.get_secret_value() if password is not None else None,
            pkey=pkey,
            timeout=endpoint.connect_timeout,
            banner_timeout=endpoint.connect_timeout,
            auth_timeout=endpoint.connect_timeout,
            channel_timeout=endpoint.connect_timeout,
            # Only what the channel configures: no agent, no ~/.ssh keys of whoever runs us.
            allow_agent=False,
            look_for_keys=False,
        )
        transport = client.get_transport()
        if transport is not None and endpoint.keepalive_seconds:
            transport.set_keepalive(max(1, round(endpoint.keepalive_seconds)))
        sftp = client.open_sftp()
        channel = sftp.get_channel()
        if channel is not None:
            channel.settimeout(endpoint.timeout)
        done = True
        return client, sftp
    except CONNECTION_ERRORS as exc:
        if type(exc) is paramiko.SSHException and (
            time.monotonic() - started >= endpoint.connect_timeout
        ):
            # paramiko ends a handshake that ran out of time with whatever step noticed first
            # ("No existing session", a banner error): it is the timeout either way.
            raise connect_failure(TimeoutError(str(exc)), endpoint) from exc
        raise connect_failure(exc, endpoint) from exc
    finally:
        if not done:
            client.close()


def _load_host_keys(client: paramiko.SSHClient, endpoint: SftpEndpoint) -> None:
    """The known servers from ``known_hosts`` and the policy for an unknown one."""
    known = endpoint.known_hosts
    try:
        if endpoint.accept_new_host_keys:
            known.parent.mkdir(parents=True, exist_ok=True)
            known.touch(exist_ok=True)
            client.set_missing_host_key_policy(_AcceptNew(str(known)))
        else:
            client.set_missing_host_key_policy(_RejectUnknown())
        if known.exists():
            client.load_host_keys(str(known))
    except OSError as exc:
        raise SftpRefused(
            f"channel {endpoint.channel!r}: known_hosts {known}: {exc.strerror or exc}", "tls"
        ) from exc


def _private_key(endpoint: SftpEndpoint) -> paramiko.PKey | None:
    """The configured key, decrypted; :class:`SftpRefused` (``auth``) when it cannot be."""
    path = endpoint.private_key
    if path is None:
        return None
    passphrase = endpoint.passphrase
    secret = passphrase.get_secret_value().encode() if passphrase is not None else None
    where = f"channel {endpoint.channel!r}: private_key {path}"
    try:
        return paramiko.PKey.from_path(path, secret)  # type: ignore[arg-type]  # bytes work
    except OSError as exc:
        raise SftpRefused(f"{where}: cannot read it: {exc.strerror or exc}", "auth") from exc
    except TypeError as exc:  # a passphrase missing, or given for a key that has none
        fix = (
            "is not encrypted: leave out credentials.private_key_passphrase"
            if secret is not None
            else "is encrypted: give its passphrase as credentials.private_key_passphrase"
        )
        raise SftpRefused(f"{where} {fix}", "auth") from exc
    except (ValueError, paramiko.SSHException) as exc:
        hint = "wrong passphrase, or not" if secret is not None else "not"
        raise SftpRefused(
            f"{where}: cannot load it ({hint} a private key in OpenSSH or PEM format)", "auth"
        ) from exc
