"""The sftp transport without an SFTP server: options, configuration, and the failures that
happen before a login (refused, silent or non-SSH servers on local sockets, unknown hosts, key
files). Everything against a real sshd is in ``tests/integration/test_sftp.py``."""

from __future__ import annotations

import re
import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from pydantic import SecretStr, ValidationError

from erpbridge import load_config
from erpbridge.errors import ConfigError, FatalError, SourceUnavailable
from erpbridge.transports import Transport, load_transport
from erpbridge.transports.base import OutgoingRecord, Writer
from erpbridge.transports.files.options import FolderStreamOptions, FolderTargetOptions
from erpbridge.transports.files.sftp.errors import SftpRefused, SftpUnavailable, file_failure
from erpbridge.transports.files.sftp.transport import SftpChannelOptions, SftpTransport


def options(port: int = 22, **extra: Any) -> SftpChannelOptions:
    values: dict[str, Any] = {
        "host": "127.0.0.1",
        "port": port,
        "username": "erp",
        "path": "inbox",
        "credentials": {"password": SecretStr("s3cret-pw")},
        **extra,
    }
    return SftpChannelOptions(**values)


def transport(tmp_path: Path, port: int = 22, **extra: Any) -> SftpTransport:
    return SftpTransport("partner", options(port, known_hosts="known_hosts", **extra), tmp_path)


@contextmanager
def local_server(handle: Callable[[socket.socket], None]) -> Iterator[int]:
    """A TCP server on 127.0.0.1 that serves one connection with ``handle``; its port."""
    with socket.create_server(("127.0.0.1", 0)) as server:
        server.settimeout(10)

        def serve() -> None:
            try:
                conn, _ = server.accept()
            except OSError:
                return  # nobody came
            with conn:
                handle(conn)

        thread = threading.Thread(target=serve)
        thread.start()
        try:
            yield server.getsockname()[1]
        finally:
            thread.join(timeout=10)


def closed_port() -> int:
    with socket.create_server(("127.0.0.1", 0)) as probe:
        port: int = probe.getsockname()[1]
    return port


# -- contract and options --------------------------------------------------------------------


def test_registered_and_fits_the_protocols(tmp_path: Path) -> None:
    assert load_transport("sftp") is SftpTransport
    sftp = transport(tmp_path)
    assert isinstance(sftp, Transport)
    assert isinstance(sftp, Writer)
    # The same source and target options as the folder transport.
    assert SftpTransport.stream_options is FolderStreamOptions
    assert SftpTransport.target_options is FolderTargetOptions


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"unknown": 1}, "Extra inputs are not permitted"),
        ({"credentials": {}}, "no way to log in"),
        ({"credentials": {"pasword": SecretStr("x")}}, "unknown credential(s) pasword"),
        ({"credentials": {"private_key_passphrase": SecretStr("x")}}, "needs private_key"),
        ({"host_key_policy": "accept_all"}, "'reject' or 'accept_new'"),
        ({"port": 0}, "greater than or equal to 1"),
        ({"archive": "../elsewhere"}, "must be a subfolder of path"),
        ({"timeout": 0}, "greater than 0"),
    ],
)
def test_invalid_options(extra: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=re.escape(message)):
        options(**extra)


def test_key_login_needs_no_password_and_secrets_stay_hidden() -> None:
    key_only = options(credentials={}, private_key="id_ed25519")
    assert key_only.private_key == "id_ed25519"
    with_pw = options()
    assert "s3cret-pw" not in repr(with_pw)
    assert "s3cret-pw" not in str(with_pw.model_dump())
    assert with_pw.min_age_seconds == 10  # uploads over SFTP take a while
    assert with_pw.host_key_policy == "reject"


def test_configuration_with_credentials_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PARTNER_SFTP_PASSWORD", "from-env")
    path = tmp_path / "erpbridge.yaml"
    path.write_text(
        """
channels:
  partner:
    system: sftp
    options: {host: sftp.example.com, username: erp, path: /in, known_hosts: keys/known}
    credentials: {password: "${PARTNER_SFTP_PASSWORD}"}
flows:
  - name: customers-in
    channel: partner
    entity: customer
    direction: in
    source: {pattern: "*.csv", delimiter: ";"}
""",
        encoding="utf-8",
    )
    config = load_config(path)
    loaded = config.channel_options["partner"]
    assert isinstance(loaded, SftpChannelOptions)
    assert loaded.credentials["password"].get_secret_value() == "from-env"
    assert config.transports["partner"] is SftpTransport
    assert config.streams["customers-in"] == FolderStreamOptions(pattern="*.csv", delimiter=";")

    path.write_text(
        path.read_text(encoding="utf-8").replace(
            'credentials: {password: "${PARTNER_SFTP_PASSWORD}"}', "credentials: {}"
        ),
        encoding="utf-8",
    )
    with pytest.raises(ConfigError, match="no way to log in"):
        load_config(path)


def test_where_names_the_server_and_the_folder(tmp_path: Path) -> None:
    fs = transport(tmp_path)._fs
    assert fs.where(PurePosixPath("inbox/a.csv")) == "sftp://erp@127.0.0.1:22/~/inbox/a.csv"
    assert fs.where(PurePosixPath("/srv/in")) == "sftp://erp@127.0.0.1:22/srv/in"


# -- failures before a login -------------------------------------------------------------------


def test_refused_connection_is_passing(tmp_path: Path) -> None:
    sftp = transport(tmp_path, closed_port())
    health = sftp.health()
    assert (health.ok, health.category) == (False, "refused")
    with pytest.raises(SourceUnavailable, match=r"'partner': sftp://erp@127\.0\.0\.1:\d+: conn"):
        list(sftp.read(FolderStreamOptions(), None, 10, frozenset()))
    record = OutgoingRecord(1, "customer", "C1", 1, "customers-out:1:1", {"code": "C1"})
    with pytest.raises(SourceUnavailable, match="connection refused or host unreachable"):
        sftp.write(FolderTargetOptions(), [record])
    assert sftp.write(FolderTargetOptions(), []) == []  # nothing to write: no connection needed


def test_unknown_host_is_dns(tmp_path: Path) -> None:
    health = transport(tmp_path, host="sftp.erpbridge.invalid").health()
    assert (health.ok, health.category) == (False, "dns")
    assert "cannot resolve host 'sftp.erpbridge.invalid'" in health.detail


def test_a_server_that_never_greets_is_a_timeout(tmp_path: Path) -> None:
    def silent(conn: socket.socket) -> None:
        while conn.recv(1024):  # until the client gives up and closes
            pass

    with local_server(silent) as port:
        health = transport(tmp_path, port, connect_timeout=0.5).health()
    assert (health.ok, health.category) == (False, "timeout")
    assert "within 0.5 s (connect_timeout)" in health.detail


def test_a_server_that_does_not_speak_ssh_is_a_protocol_error(tmp_path: Path) -> None:
    def http(conn: socket.socket) -> None:
        conn.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")

    with local_server(http) as port:
        health = transport(tmp_path, port).health()
    assert (health.ok, health.category) == (False, "protocol")
    assert "does not speak SSH" in health.detail


def write_key(path: Path, passphrase: bytes | None) -> Path:
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(passphrase)
        if passphrase
        else serialization.NoEncryption()
    )
    pem = Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, encryption
    )
    path.write_bytes(pem)
    return path


@pytest.mark.parametrize(
    ("encrypted", "passphrase", "message"),
    [
        (None, None, "cannot read it: No such file or directory"),
        (b"right", None, "is encrypted: give its passphrase as credentials"),
        (b"right", "wrong", "wrong passphrase, or not a private key"),
        (False, "needless", "is not encrypted: leave out credentials.private_key_passphrase"),
    ],
)
def test_private_key_problems_are_named_before_connecting(
    tmp_path: Path, encrypted: bytes | bool | None, passphrase: str | None, message: str
) -> None:
    key = tmp_path / "id_ed25519"
    if encrypted is not None:
        write_key(key, encrypted or None)
    credentials = {} if passphrase is None else {"private_key_passphrase": SecretStr(passphrase)}
    sftp = transport(tmp_path, closed_port(), private_key=str(key), credentials=credentials)
    health = sftp.health()
    assert (health.ok, health.category) == (False, "auth")
    assert f"channel 'partner': private_key {key}" in health.detail
    assert message in health.detail
    if passphrase is not None:
        assert passphrase not in health.detail.replace("wrong passphrase", "")
    with pytest.raises(FatalError, match="private_key"):
        list(sftp.read(FolderStreamOptions(), None, 10, frozenset()))


def test_a_readable_key_gets_as_far_as_the_server(tmp_path: Path) -> None:
    key = write_key(tmp_path / "id_ed25519", b"right")
    credentials = {"private_key_passphrase": SecretStr("right")}
    sftp = transport(tmp_path, closed_port(), private_key=str(key), credentials=credentials)
    assert sftp.health().category == "refused"


@pytest.mark.parametrize(
    ("exc", "kind", "category"),
    [
        (PermissionError(13, "Permission denied"), SftpRefused, "forbidden"),
        (FileNotFoundError(2, "No such file"), SftpRefused, "schema"),
        (NotADirectoryError(20, "Not a directory"), SftpRefused, "schema"),
        (OSError("Failure"), SftpUnavailable, "error"),
    ],
)
def test_file_answers_of_the_server(
    tmp_path: Path, exc: OSError, kind: type[Exception], category: str
) -> None:
    fs = transport(tmp_path)._fs
    error = file_failure("channel 'partner': cannot move x", exc, fs.endpoint)
    assert isinstance(error, kind)
    assert getattr(error, "category", None) == category
    assert str(error).startswith("channel 'partner': cannot move x")
