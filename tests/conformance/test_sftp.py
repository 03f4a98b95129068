"""The SFTP connector through the conformance suite, against the private OpenSSH server the test
suite starts (``scripts/sshd.sh``): CSV files dropped in a folder of the harness's own on the
server (read in name order, archived once committed), records written one JSON file per version
(key login, the server's host key checked against its known_hosts)."""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import orjson
import pytest

from conformance.drops import CsvDrop
from conformance.places import closed_port
from erpbridge.testing import SinkHarness, SinkSuite, SourceSuite
from erpbridge.transports.files.options import FolderTargetOptions
from erpbridge.transports.files.sftp.transport import SftpChannelOptions, SftpTransport
from integration.sftp_server import Sftp, sftp_server


@pytest.fixture(scope="module")
def server() -> Sftp:
    return sftp_server()


@pytest.fixture
def box(server: Sftp) -> Iterator[Path]:
    """A fresh folder of the SFTP user on the server; its path on the server's file system."""
    folder = server.files / f"c-{uuid.uuid4().hex[:10]}"
    folder.mkdir()
    shutil.chown(folder, server.user)
    yield folder
    shutil.rmtree(folder)


class Box:
    """A folder of the SFTP user, reached by key login."""

    channel = "conformance"

    def __init__(self, server: Sftp, folder: Path) -> None:
        self.server = server
        self.folder = folder

    def transport(self, port: int | None = None, **login: Any) -> SftpTransport:
        options = SftpChannelOptions.model_validate(
            {
                "host": self.server.host,
                "port": port or self.server.port,
                "username": self.server.user,
                "path": self.folder.name,
                "known_hosts": str(self.server.known_hosts),
                "min_age_seconds": 0,
                "connect_timeout": 5,
                **(login or {"private_key": str(self.server.key)}),
            }
        )
        return SftpTransport(self.channel, options, Path("."))

    def connect(self) -> SftpTransport:
        return self.transport()

    def unreachable(self) -> SftpTransport:
        return self.transport(port=closed_port())


class SftpSource(Box, CsvDrop):
    def inbox(self) -> Path:
        return self.folder

    def dropped(self, path: Path) -> None:
        shutil.chown(path, self.server.user)

    def refused(self) -> SftpTransport:
        return self.transport(credentials={"password": "wrong-" + uuid.uuid4().hex})


class TestSftpSource(SourceSuite):
    @pytest.fixture
    def harness(self, server: Sftp, box: Path) -> SftpSource:
        return SftpSource(server, box)


class SftpSink(Box, SinkHarness):
    def target(self) -> FolderTargetOptions:
        return FolderTargetOptions(format="json")

    def stored(self) -> Mapping[str, str]:
        """Each key's newest version as the receiving system would read the files."""
        newest: dict[str, tuple[int, str]] = {}
        for path in self.folder.glob("customer-*-v*.json"):
            key, _, version = path.stem.removeprefix("customer-").rpartition("-v")
            name = orjson.loads(path.read_bytes())["name"]
            if int(version) >= newest.get(key, (0, ""))[0]:
                newest[key] = (int(version), name)
        return {key: name for key, (_, name) in newest.items()}


class TestSftpSink(SinkSuite):
    @pytest.fixture
    def harness(self, server: Sftp, box: Path) -> SftpSink:
        return SftpSink(server, box)
