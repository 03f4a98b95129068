"""``erpbridge records ENTITY --as-of T [--diff-from T0]``: the hub as it was, and what changed."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

import orjson
from rich.table import Table

from erpbridge.cli.common import console, fail

if TYPE_CHECKING:
    from sqlalchemy import Engine

__all__ = ["print_as_of", "print_diff"]


def _when(moment: datetime) -> str:
    return f"{moment:%Y-%m-%d %H:%M:%S} UTC"


def print_as_of(engine: Engine, entity: str, key: str | None, at: datetime, limit: int) -> None:
    """One record (``key``) or the first ``limit`` records of ``entity`` as of ``at``."""
    from erpbridge.store.read import EVERYTHING, record_as_of, records_as_of

    with engine.connect() as conn:
        if key is not None:
            found = record_as_of(conn, EVERYTHING, entity, key, at)
            if found is None:
                raise fail(
                    f"no {entity} record with key {key!r} as of {_when(at)} (not yet created)"
                )
            console.print(
                f"[bold]{entity} {key}[/] v{found.version} as of {_when(at)} "
                f"(written {_when(found.at)})"
            )
            console.print_json(orjson.dumps(found.payload).decode())
            return
        rows = records_as_of(conn, EVERYTHING, entity, at, limit)
    table = Table(title=f"{entity} as of {_when(at)}: {len(rows)} record(s) shown")
    for column in ("key", "version", "written", "payload"):
        table.add_column(column)
    for r in rows:
        table.add_row(r.key, str(r.version), _when(r.at), orjson.dumps(r.payload).decode()[:80])
    console.print(table)


def print_diff(
    engine: Engine, entity: str, key: str | None, start: datetime, end: datetime, limit: int
) -> None:
    """Field by field, what changed in one record (``key``), or in each record of ``entity``
    changed between ``start`` and ``end`` (the first ``limit``)."""
    from erpbridge.store.read import EVERYTHING, changed_between, diff_payloads, record_as_of

    with engine.connect() as conn:
        keys = (
            [key]
            if key is not None
            else changed_between(conn, EVERYTHING, entity, start, end, limit)
        )
        table = Table(title=f"{entity}: changes from {_when(start)} to {_when(end)}")
        for column in ("key", "field", "before", "after"):
            table.add_column(column)
        for k in keys:
            before = record_as_of(conn, EVERYTHING, entity, k, start)
            after = record_as_of(conn, EVERYTHING, entity, k, end)
            for change in diff_payloads(
                None if before is None else before.payload, None if after is None else after.payload
            ):
                table.add_row(
                    k, change.path, orjson.dumps(change.before).decode(),
                    orjson.dumps(change.after).decode(),
                )  # fmt: skip
    console.print(table)
