"""Things the hub accepts once only (webhook signatures, SAML assertions): a row per use, kept
until it expires, so that every process sharing the hub store refuses a second use. The table's
primary key makes the check atomic: of two concurrent inserts, one fails (or, inside a caller's
transaction, inserts nothing).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, Table, delete
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError

__all__ = ["record_once", "record_once_in"]


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


def record_once_in(conn: Connection, table: Table, row: dict[str, Any], *, at: datetime) -> bool:
    """:func:`record_once` in the caller's transaction: a row already there inserts nothing
    (``ON CONFLICT DO NOTHING``) and answers ``False``, so the transaction goes on."""
    conn.execute(delete(table).where(table.c.expires_at < at))
    if conn.dialect.name == "postgresql":
        statement: Any = postgresql.insert(table).values(**row).on_conflict_do_nothing()
    elif conn.dialect.name == "sqlite":
        statement = sqlite.insert(table).values(**row).on_conflict_do_nothing()
    else:  # no portable spelling: a savepoint keeps the caller's transaction alive
        try:
            with conn.begin_nested():
                conn.execute(table.insert().values(**row))
        except IntegrityError:
            return False
        return True
    return bool(conn.execute(statement).rowcount)
