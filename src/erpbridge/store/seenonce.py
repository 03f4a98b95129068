"""Things the hub accepts once only (webhook signatures, SAML assertions): a row per use, kept
until it expires, so that every process sharing the hub store refuses a second use. The table's
primary key makes the check atomic: of two concurrent inserts, one fails.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Engine, Table, delete
from sqlalchemy.exc import IntegrityError

__all__ = ["record_once"]


def record_once(engine: Engine, table: Table, row: dict[str, Any], *, at: datetime) -> bool:
    """Insert ``row`` into ``table`` (which has an ``expires_at`` column) after deleting the rows
    expired at ``at``; ``False`` when the row's key is there already (a second use)."""
    try:
        with engine.begin() as conn:
            conn.execute(delete(table).where(table.c.expires_at < at))
            conn.execute(table.insert().values(**row))
    except IntegrityError:
        return False
    return True
