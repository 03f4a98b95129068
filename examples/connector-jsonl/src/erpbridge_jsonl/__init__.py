"""An erpbridge connector for a JSON Lines file: one record per line, read by its ``seq``."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

from pydantic import BaseModel

from erpbridge.connectors import (
    Batch,
    CursorValue,
    Health,
    Incremental,
    OutgoingRecord,
    Sink,
    Source,
    SourceProblem,
    SourceRecord,
    StreamOptions,
    TargetOptions,
)
from erpbridge.errors import SourceUnavailable
from erpbridge.systems import SystemType

SYSTEM = SystemType("jsonl", "jsonl", "Records in a JSON Lines file.")


class JsonlChannel(BaseModel):
    path: str  # the file, relative to the configuration's folder


class JsonlStream(StreamOptions, Incremental):
    cursor_field: str = "seq"  # a number that grows with every change


class JsonlTarget(TargetOptions):
    key_field: str = "id"


class JsonlConnector(Source[JsonlStream], Sink[JsonlTarget]):
    channel_options = JsonlChannel
    stream_options = JsonlStream
    target_options = JsonlTarget

    def __init__(self, channel: str, options: JsonlChannel, base_dir: Path) -> None:
        self.channel, self.path = channel, base_dir / options.path

    def _lines(self, missing_ok: bool = False) -> list[str]:
        try:
            return self.path.read_text(encoding="utf-8").splitlines()
        except FileNotFoundError:
            if missing_ok:
                return []
            raise SourceUnavailable(f"channel {self.channel!r}: no file {self.path}") from None

    def read(
        self, stream: JsonlStream, cursor: CursorValue, batch_size: int, required: frozenset[str]
    ) -> Iterator[Batch]:
        since = None if cursor is None else cursor - stream.window()
        rows, problems = [], []
        for number, line in enumerate(self._lines(), start=1):
            try:
                data = json.loads(line)
                rows.append((float(data[stream.cursor_field]), number, data))
            except (ValueError, KeyError, TypeError) as exc:
                problems.append(SourceProblem(f"{self.path.name}:{number}", f"bad line: {exc!r}"))
        batch = Batch([], cursor, problems)
        for seq, number, data in sorted(rows, key=lambda row: row[:2]):
            if since is None or seq > since:
                batch.records.append(SourceRecord(data, f"{self.path.name}:{number}"))
                batch.cursor = seq  # in seq order: each batch resumes where it ends
            if len(batch.records) == batch_size:
                yield batch
                batch = Batch([], batch.cursor)
        yield batch

    def write(self, target: JsonlTarget, records: list[OutgoingRecord]) -> list[str | None]:
        lines = map(json.loads, self._lines(missing_ok=True))
        rows = {str(row[target.key_field]): row for row in lines}
        last = max((row.get("seq", 0) for row in rows.values()), default=0)
        for seq, record in enumerate(records, start=last + 1):  # a key again replaces its line
            rows[record.key] = {**record.data, target.key_field: record.key, "seq": seq}
        text = "".join(json.dumps(row) + "\n" for row in rows.values())
        try:
            Path(f"{self.path}.tmp").write_text(text, encoding="utf-8")
            os.replace(f"{self.path}.tmp", self.path)
        except OSError as exc:
            raise SourceUnavailable(f"channel {self.channel!r}: {exc}") from exc
        return [record.key for record in records]

    def health(self) -> Health:
        if not self.path.is_file():
            return Health(False, f"channel {self.channel!r}: no file {self.path}", "error")
        return Health(True, f"channel {self.channel!r}: {self.path} is readable")

    def close(self) -> None:
        """Nothing stays open between calls."""
