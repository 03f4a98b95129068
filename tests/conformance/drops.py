"""The file connectors' source half: CSV files dropped in an inbox, read in name order."""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Sequence
from pathlib import Path

from erpbridge.connectors import SourceRecord
from erpbridge.testing import SourceHarness
from erpbridge.transports.files.options import FolderStreamOptions

__all__ = ["CsvDrop"]


class CsvDrop(SourceHarness):
    """One CSV file per call of :meth:`add`, named in order, so files are read in order."""

    resumes = False  # acknowledged files move to archive/: there is no cursor

    files = 0

    @abstractmethod
    def inbox(self) -> Path:
        """The folder the connector reads, on this machine's file system."""

    def dropped(self, path: Path) -> None:
        """Called with each file written (to hand it to the server's user, say)."""

    def stream(self) -> FolderStreamOptions:
        return FolderStreamOptions(pattern="*.csv")

    def _drop(self, lines: Sequence[str]) -> None:
        self.files += 1
        path = self.inbox() / f"{self.files:04d}.csv"
        path.write_text("id,name\n" + "".join(f"{line}\n" for line in lines), encoding="utf-8")
        self.dropped(path)

    def add(self, keys: Sequence[str]) -> None:
        self._drop([f"{key},Name {key}" for key in keys])

    def key(self, record: SourceRecord) -> str:
        return str(record.data["id"])

    def add_broken(self, key: str) -> bool:
        self._drop([f"{key},Name,one cell too many"])
        return True
