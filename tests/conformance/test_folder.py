"""The folder connector through the conformance suite: CSV files in a temporary inbox."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from conformance.drops import CsvDrop
from erpbridge.connectors import Source
from erpbridge.testing import SourceSuite
from erpbridge.transports.files.folder import FolderChannelOptions, FolderTransport


class FolderSource(CsvDrop):
    def __init__(self, root: Path) -> None:
        self.root = root
        (root / "inbox").mkdir()

    def inbox(self) -> Path:
        return self.root / "inbox"

    def connect(self) -> FolderTransport:
        return FolderTransport(self.channel, FolderChannelOptions(path="inbox"), self.root)

    def unreachable(self) -> Source[Any]:
        options = FolderChannelOptions(path="nowhere")
        return FolderTransport(self.channel, options, self.root)


class TestFolderSource(SourceSuite):
    @pytest.fixture
    def harness(self, tmp_path: Path) -> FolderSource:
        return FolderSource(tmp_path)
