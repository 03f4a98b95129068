"""The folder connector through the conformance suite: CSV files in a temporary inbox."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from erpbridge.connectors import Source, SourceRecord
from erpbridge.testing import SourceHarness, SourceSuite
from erpbridge.transports.files.folder import FolderChannelOptions, FolderTransport
from erpbridge.transports.files.options import FolderStreamOptions


class FolderSource(SourceHarness):
    """One CSV file per call of :meth:`add`, named in order, so files are read in order."""

    resumes = False  # acknowledged files move to archive/: there is no cursor

    def __init__(self, root: Path) -> None:
        self.root = root
        (root / "inbox").mkdir()
        self.files = 0

    def connect(self) -> FolderTransport:
        return FolderTransport(self.channel, FolderChannelOptions(path="inbox"), self.root)

    def stream(self) -> FolderStreamOptions:
        return FolderStreamOptions(pattern="*.csv")

    def _drop(self, lines: Sequence[str]) -> None:
        self.files += 1
        body = "id,name\n" + "".join(f"{line}\n" for line in lines)
        (self.root / "inbox" / f"{self.files:04d}.csv").write_text(body, encoding="utf-8")

    def add(self, keys: Sequence[str]) -> None:
        self._drop([f"{key},Name {key}" for key in keys])

    def key(self, record: SourceRecord) -> str:
        return str(record.data["id"])

    def add_broken(self, key: str) -> bool:
        self._drop([f"{key},Name,one cell too many"])
        return True

    def unreachable(self) -> Source[Any]:
        options = FolderChannelOptions(path="nowhere")
        return FolderTransport(self.channel, options, self.root)


class TestFolderSource(SourceSuite):
    @pytest.fixture
    def harness(self, tmp_path: Path) -> FolderSource:
        return FolderSource(tmp_path)
