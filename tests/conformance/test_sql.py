"""The SQL connectors through the conformance suite: a real SQLite file (the read side with a
``(column, tiebreaker)`` cursor; the write side upserting by key)."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from erpbridge.connectors import Source, SourceRecord
from erpbridge.testing import SourceHarness, SourceSuite
from erpbridge.transports.sql import SqlChannelOptions, SqlStreamOptions, SqlTransport


class SqlSource(SourceHarness):
    """An ``orders`` table whose rows get one later ``updated_at`` each."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.rows = 0
        with sqlite3.connect(root / "mes.db") as db:
            db.execute("CREATE TABLE orders (id TEXT PRIMARY KEY, updated_at TEXT, name TEXT)")

    def connect(self) -> SqlTransport:
        return SqlTransport(self.channel, SqlChannelOptions(url="sqlite:///mes.db"), self.root)

    def stream(self) -> SqlStreamOptions:
        return SqlStreamOptions.model_validate(
            {"table": "orders", "cursor": {"column": "updated_at", "tiebreaker": "id"}}
        )

    def add(self, keys: Sequence[str]) -> None:
        with sqlite3.connect(self.root / "mes.db") as db:
            for key in keys:
                self.rows += 1
                # An hour apart: past the 300 s default window, so a resume re-reads none.
                stamp = f"2026-03-01 {self.rows:02d}:00:00"
                db.execute("INSERT INTO orders VALUES (?, ?, ?)", (key, stamp, f"Order {key}"))

    def key(self, record: SourceRecord) -> str:
        return str(record.data["id"])

    def unreachable(self) -> Source[Any]:
        options = SqlChannelOptions(url="sqlite:///missing/mes.db")
        return SqlTransport(self.channel, options, self.root)

    def refused(self) -> Source[Any]:
        with sqlite3.connect(self.root / "other.db") as db:
            db.execute("CREATE TABLE invoices (id TEXT PRIMARY KEY)")
        return SqlTransport(self.channel, SqlChannelOptions(url="sqlite:///other.db"), self.root)


class TestSqlSource(SourceSuite):
    @pytest.fixture
    def harness(self, tmp_path: Path) -> SqlSource:
        return SqlSource(tmp_path)
