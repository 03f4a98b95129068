"""Compare two sides keyed by business key without holding either in memory.

The channel's rows (key, compared values as JSON text) are spilled into a temporary SQLite
file with the key as a ``WITHOUT ROWID`` primary key, which sorts them; the hub's rows come
from the hub store already in key order (its unique index on entity and key). The comparison
walks both in key order side by side (a sort-merge). Memory stays flat however many keys there
are (measured: ``bench/reconcile.py``): only the first ``limit`` differences are kept as
details, every one is counted, and the keys a repair needs are written to a second table.

Key order is code point order on both sides: SQLite's ``BINARY`` collation of UTF-8 text,
PostgreSQL's ``COLLATE "C"``, and Python's ``str`` comparison all agree on it.
"""

from __future__ import annotations

import sqlite3
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, Literal

import orjson

__all__ = [
    "AmountSums",
    "Difference",
    "DifferenceKind",
    "KeyOrderError",
    "Spill",
    "Tally",
    "amount_of",
]

DifferenceKind = Literal["missing_in_channel", "missing_in_hub", "differs"]

#: Rows written to the spill file per executemany.
_CHUNK = 5000


@dataclass(frozen=True, slots=True)
class Difference:
    """One difference: a key one side lacks, or one field whose values differ."""

    key: str
    kind: DifferenceKind
    field: str | None = None
    hub: Any = None
    channel: Any = None

    def as_json(self) -> dict[str, Any]:
        """Plain JSON data."""
        return {
            "key": self.key,
            "kind": self.kind,
            "field": self.field,
            "hub": self.hub,
            "channel": self.channel,
        }


@dataclass(slots=True)
class AmountSums:
    """A summed amount field: each side's total, and how many values were not numbers."""

    hub: Decimal = Decimal(0)
    channel: Decimal = Decimal(0)
    unreadable: int = 0

    def as_json(self) -> dict[str, Any]:
        """Totals as decimal text (exact), and their difference (hub - channel)."""
        return {
            "hub": str(self.hub),
            "channel": str(self.channel),
            "difference": str(self.hub - self.channel),
            "unreadable": self.unreadable,
        }


def amount_of(value: Any) -> Decimal | None:
    """``value`` as a Decimal (numbers and numeric text), ``None`` when absent, or raise
    :class:`ValueError` when it is not a number."""
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise ValueError("a boolean is not an amount")
    try:
        return value if isinstance(value, Decimal) else Decimal(str(value))
    except InvalidOperation:
        raise ValueError(f"{value!r} is not a number") from None


@dataclass(slots=True)
class Tally:
    """What a comparison counted; ``details`` holds the first ``limit`` differences."""

    hub: int = 0
    channel: int = 0
    matched: int = 0
    missing_in_channel: int = 0
    missing_in_hub: int = 0
    #: Keys present on both sides with at least one compared field different.
    differing: int = 0
    #: Channel rows whose key another row of the channel already had (the first one counts).
    duplicates: int = 0
    details: list[Difference] = field(default_factory=list)

    @property
    def differences(self) -> int:
        """Keys that do not agree, however they disagree."""
        return self.missing_in_channel + self.missing_in_hub + self.differing


class Spill:
    """A temporary SQLite file holding both sides' rows, removed on :meth:`close`."""

    def __init__(self, fields: tuple[str, ...]) -> None:
        self.fields = fields
        self._dir = tempfile.TemporaryDirectory(prefix="erpbridge-reconcile-")
        self.db = sqlite3.connect(Path(self._dir.name) / "sides.db", isolation_level=None)
        for pragma in ("journal_mode = OFF", "synchronous = OFF", "cache_size = -16000",
                       "temp_store = FILE"):  # fmt: skip
            self.db.execute(f"PRAGMA {pragma}")
        self.db.execute(
            "CREATE TABLE channel (key TEXT PRIMARY KEY, vals BLOB NOT NULL) WITHOUT ROWID"
        )
        self.db.execute(
            "CREATE TABLE repair (key TEXT PRIMARY KEY, kind TEXT NOT NULL) WITHOUT ROWID"
        )

    def add(self, rows: Iterable[tuple[str, bytes]]) -> int:
        """Store the channel's (key, values) rows; return how many keys were already there."""
        duplicates = 0
        chunk: list[tuple[str, bytes]] = []
        statement = "INSERT OR IGNORE INTO channel (key, vals) VALUES (?, ?)"

        def flush() -> int:
            before = self.db.total_changes
            self.db.execute("BEGIN")
            self.db.executemany(statement, chunk)
            self.db.execute("COMMIT")
            return len(chunk) - (self.db.total_changes - before)

        for row in rows:
            chunk.append(row)
            if len(chunk) >= _CHUNK:
                duplicates += flush()
                chunk = []
        if chunk:
            duplicates += flush()
        return duplicates

    def values(self, payload: dict[str, Any]) -> bytes:
        """The compared fields of a canonical payload as JSON text (absent: ``null``)."""
        return orjson.dumps([payload.get(name) for name in self.fields])

    def compare(self, hub: Iterable[tuple[str, bytes]], tally: Tally, limit: int) -> Tally:
        """Walk the hub's rows (in key order) and the channel's together; count into
        ``tally``, keep ``limit`` details and note every key a repair would touch."""
        channel = self.db.execute("SELECT key, vals FROM channel ORDER BY key")
        repairs: list[tuple[str, str]] = []
        self.db.execute("BEGIN")
        for key, ours, theirs in _merged(_ascending(iter(hub)), channel):
            if theirs is None:
                tally.missing_in_channel += 1
                _note(tally, limit, Difference(key, "missing_in_channel"))
                repairs.append((key, "missing_in_channel"))
            elif ours is None:
                tally.missing_in_hub += 1
                _note(tally, limit, Difference(key, "missing_in_hub"))
                repairs.append((key, "missing_in_hub"))
            elif ours == theirs:
                tally.matched += 1
            else:
                tally.differing += 1
                repairs.append((key, "differs"))
                mine, other = orjson.loads(ours), orjson.loads(theirs)
                for name, a, b in zip(self.fields, mine, other, strict=True):
                    if a != b:
                        _note(tally, limit, Difference(key, "differs", name, a, b))
            if len(repairs) >= _CHUNK:
                self.db.executemany("INSERT INTO repair VALUES (?, ?)", repairs)
                repairs = []
        if repairs:
            self.db.executemany("INSERT INTO repair VALUES (?, ?)", repairs)
        self.db.execute("COMMIT")
        return tally

    def repair_keys(self, kinds: tuple[DifferenceKind, ...]) -> Iterator[list[str]]:
        """The keys of these kinds of difference, in chunks."""
        marks = ", ".join("?" for _ in kinds)
        rows = self.db.execute(
            f"SELECT key FROM repair WHERE kind IN ({marks}) ORDER BY key", kinds
        )
        while chunk := rows.fetchmany(_CHUNK):
            yield [row[0] for row in chunk]

    def needs_repair(self, key: str, kinds: tuple[DifferenceKind, ...]) -> bool:
        """Whether ``key`` is a difference of one of these kinds."""
        row = self.db.execute("SELECT kind FROM repair WHERE key = ?", (key,)).fetchone()
        return row is not None and row[0] in kinds

    def close(self) -> None:
        """Remove the file."""
        self.db.close()
        self._dir.cleanup()


def _note(tally: Tally, limit: int, difference: Difference) -> None:
    if len(tally.details) < limit:
        tally.details.append(difference)


class KeyOrderError(RuntimeError):
    """The hub's rows did not come in code point order: a comparison would be wrong."""


def _ascending(rows: Iterator[tuple[str, bytes]]) -> Iterator[tuple[str, bytes]]:
    """``rows`` checked to come in strictly ascending key order."""
    last: str | None = None
    for row in rows:
        if last is not None and row[0] <= last:
            raise KeyOrderError(f"hub keys out of order: {row[0]!r} after {last!r}")
        last = row[0]
        yield row


def _merged(
    hub: Iterator[tuple[str, bytes]], channel: Iterator[tuple[str, bytes]]
) -> Iterator[tuple[str, bytes | None, bytes | None]]:
    """Both key-ordered sides walked together: (key, hub values, channel values)."""
    a, b = next(hub, None), next(channel, None)
    while a is not None or b is not None:
        if b is None or (a is not None and a[0] < b[0]):
            assert a is not None
            yield a[0], a[1], None
            a = next(hub, None)
        elif a is None or b[0] < a[0]:
            yield b[0], None, b[1]
            b = next(channel, None)
        else:
            yield a[0], a[1], b[1]
            a, b = next(hub, None), next(channel, None)
