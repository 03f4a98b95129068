"""The SQL connectors through the conformance suite: a real SQLite file (the read side with a
``(column, tiebreaker)`` cursor; the write side upserting by key)."""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from erpbridge.connectors import Source, SourceRecord
from erpbridge.testing import SinkHarness, SinkSuite, SourceHarness, SourceSuite
from erpbridge.transports.sql.read import SqlChannelOptions, SqlStreamOptions, SqlTransport
from erpbridge.transports.sql.write import (
    SqlWriteChannelOptions,
    SqlWriteTargetOptions,
    SqlWriteTransport,
)


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


class SqlWriteSink(SinkHarness):
    """A ``customers`` staging table upserted by ``id``, its version in a column."""

    def __init__(self, root: Path) -> None:
        self.root = root
        with sqlite3.connect(root / "erp.db") as db:
            db.execute(
                "CREATE TABLE customers (id TEXT PRIMARY KEY, name TEXT NOT NULL, version INTEGER)"
            )

    def connect(self) -> SqlWriteTransport:
        options = SqlWriteChannelOptions(url="sqlite:///erp.db")
        return SqlWriteTransport(self.channel, options, self.root)

    def target(self) -> SqlWriteTargetOptions:
        return SqlWriteTargetOptions(table="customers", key=["id"], version_column="version")

    def stored(self) -> Mapping[str, str]:
        with sqlite3.connect(self.root / "erp.db") as db:
            return dict(db.execute("SELECT id, name FROM customers").fetchall())

    def refused_data(self) -> dict[str, Any]:
        return {"id": "x1", "name": None}  # NOT NULL

    def unreachable(self) -> SqlWriteTransport:
        options = SqlWriteChannelOptions(url="sqlite:///missing/erp.db")
        return SqlWriteTransport(self.channel, options, self.root)


class TestSqlWriteSink(SinkSuite):
    @pytest.fixture
    def harness(self, tmp_path: Path) -> SqlWriteSink:
        return SqlWriteSink(tmp_path)
