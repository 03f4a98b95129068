"""The jsonl connector through erpbridge's conformance suite (``pytest tests``)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path

import pytest
from erpbridge_jsonl import JsonlChannel, JsonlConnector, JsonlStream, JsonlTarget

from erpbridge.connectors import SourceRecord
from erpbridge.testing import SinkHarness, SinkSuite, SourceHarness, SourceSuite


class JsonlSource(SourceHarness):
    def __init__(self, root: Path) -> None:
        self.root, self.seq = root, 0
        (root / "data.jsonl").write_text("")

    def connect(self) -> JsonlConnector:
        return JsonlConnector(self.channel, JsonlChannel(path="data.jsonl"), self.root)

    def stream(self) -> JsonlStream:
        return JsonlStream()

    def _append(self, line: str) -> None:
        with (self.root / "data.jsonl").open("a") as file:
            file.write(line + "\n")

    def add(self, keys: Sequence[str]) -> None:
        for key in keys:
            self.seq += 1
            self._append(json.dumps({"id": key, "name": f"Name {key}", "seq": self.seq}))

    def key(self, record: SourceRecord) -> str:
        return str(record.data["id"])

    def add_broken(self, key: str) -> bool:
        self._append('{"id": "' + key)
        return True

    def unreachable(self) -> JsonlConnector:
        return JsonlConnector(self.channel, JsonlChannel(path="gone/data.jsonl"), self.root)


class JsonlSink(SinkHarness):
    def __init__(self, root: Path) -> None:
        self.root = root

    def connect(self) -> JsonlConnector:
        return JsonlConnector(self.channel, JsonlChannel(path="out.jsonl"), self.root)

    def target(self) -> JsonlTarget:
        return JsonlTarget()

    def stored(self) -> Mapping[str, str]:
        lines = (self.root / "out.jsonl").read_text().splitlines()
        return {row["id"]: row["name"] for row in map(json.loads, lines)}

    def unreachable(self) -> JsonlConnector:
        return JsonlConnector(self.channel, JsonlChannel(path="gone/out.jsonl"), self.root)


class TestJsonlSource(SourceSuite):
    @pytest.fixture
    def harness(self, tmp_path: Path) -> JsonlSource:
        return JsonlSource(tmp_path)


class TestJsonlSink(SinkSuite):
    @pytest.fixture
    def harness(self, tmp_path: Path) -> JsonlSink:
        return JsonlSink(tmp_path)
