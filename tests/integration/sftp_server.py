"""The test SFTP server (``scripts/sshd.sh``) as the tests use it: its files, keys and password,
a private folder per test, files dropped the way a partner system leaves them."""

from __future__ import annotations

import os
import shutil
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import paramiko

from integration.servers import require_server

__all__ = ["Sftp", "sftp_server"]


@dataclass(frozen=True)
class Sftp:
    """The running sshd, as ``scripts/sshd.sh start`` describes it."""

    host: str
    port: int
    user: str
    data: Path

    @property
    def files(self) -> Path:
        """Where every SFTP session starts, on the server's file system."""
        return self.data / "files"

    @property
    def known_hosts(self) -> Path:
        return self.data / "known_hosts"

    @property
    def key(self) -> Path:
        return self.data / "id_ed25519"

    @property
    def encrypted_key(self) -> Path:
        return self.data / "id_ed25519_enc"

    @property
    def password(self) -> str:
        return (self.data / "password").read_text(encoding="utf-8").strip()

    def host_key(self) -> paramiko.PKey:
        return paramiko.PKey.from_path(self.data / "ssh_host_ed25519_key")

    @property
    def passphrase(self) -> str:
        return (self.data / "passphrase").read_text(encoding="utf-8").strip()

    @contextmanager
    def box(self, *folders: str) -> Iterator[str]:
        """A fresh folder of the SFTP user with ``folders`` in it; yields its relative path."""
        name = f"t-{uuid.uuid4().hex[:10]}"
        for folder in (name, *(f"{name}/{f}" for f in folders)):
            (self.files / folder).mkdir(parents=True)
            shutil.chown(self.files / folder, self.user)
        try:
            yield name
        finally:
            shutil.rmtree(self.files / name)

    def drop(self, path: str, content: str | bytes) -> None:
        """Leave a file at ``path`` (below the session folder), written an hour ago."""
        target = self.files / path
        target.write_bytes(content.encode("utf-8") if isinstance(content, str) else content)
        shutil.chown(target, self.user)
        then = time.time() - 3600
        os.utime(target, (then, then))


def sftp_server() -> Sftp:
    """The server ``ERPBRIDGE_TEST_SFTP`` names (skips locally, fails in CI without it)."""
    line = require_server("ERPBRIDGE_TEST_SFTP", "an SFTP server (scripts/sshd.sh)")
    url = urlsplit(line)
    assert url.hostname and url.port and url.username, line
    return Sftp(url.hostname, url.port, url.username, Path(parse_qs(url.query)["dir"][0]))
