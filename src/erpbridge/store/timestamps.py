"""Timestamps as the store hands them back: SQLite returns naive ones (stored as UTC)."""

from __future__ import annotations

from datetime import UTC, datetime

__all__ = ["aware"]


def aware(value: datetime | None) -> datetime | None:
    """``value`` with its UTC timezone (a naive SQLite timestamp is UTC); ``None`` stays."""
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value
