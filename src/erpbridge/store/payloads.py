"""The payloads of given record versions, read for a whole batch in one indexed query.

The worker needs the exact version each claimed delivery names, and claims come in batches:
one ``OR`` of ``(record_id = ? AND version = ?)`` per pair cost ~50 ms per 100 pairs to build,
compile and plan. Here the pairs are one key list joined on the audit trail's
``(record_id, version)`` index: a ``VALUES`` list on SQLite (one cached text per chunk size),
two arrays ``unnest``-ed on PostgreSQL (one cached statement for any count).

This module is the one place that knows where a version's payload is stored: whoever reads
versions by ``(record, version)`` goes through :func:`version_payloads`. The audit row of a
record's current version stores no payload (migration 0025, ``store.tables.AuditPayload``): it
is the record's, read here through ``COALESCE`` with the record joined by its primary key.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from typing import Any, NamedTuple

import orjson
from sqlalchemy import Connection, text

from erpbridge.store.states import is_deleted

__all__ = ["VersionPayload", "version_payloads"]

#: Pairs per statement on SQLite (two bound parameters each, far below its limit).
_SQLITE_CHUNK = 400


class VersionPayload(NamedTuple):
    """One record version as the audit trail holds it."""

    payload: dict[str, Any]
    #: A tombstone (the record was deleted by this version; ``payload`` is its last one).
    deleted: bool


def version_payloads(
    conn: Connection, pairs: Sequence[tuple[int, int]]
) -> dict[tuple[int, int], VersionPayload]:
    """Each of ``pairs`` (record id, version) found in the audit trail, with its payload.

    A pair missing from the answer is not in the audit trail (pruned, or never written).
    """
    wanted = sorted(set(pairs))
    if not wanted:
        return {}
    if conn.dialect.name == "postgresql":
        rows = conn.execute(
            _PG_QUERY,
            {"records": [r for r, _ in wanted], "versions": [v for _, v in wanted]},
        ).all()
    else:
        rows = []
        for start in range(0, len(wanted), _SQLITE_CHUNK):
            chunk = wanted[start : start + _SQLITE_CHUNK]
            flat = [value for pair in chunk for value in pair]
            rows.extend(conn.exec_driver_sql(_sqlite_query(len(chunk)), tuple(flat)))
    return {
        (record_id, version): VersionPayload(orjson.loads(payload), is_deleted(content_hash))
        for record_id, version, payload, content_hash in rows
    }


_SELECT = "SELECT a.record_id, a.version, COALESCE(a.payload, r.payload), a.content_hash"
_JOIN = (
    " JOIN audit AS a ON a.record_id = k.r AND a.version = k.v"
    " JOIN records AS r ON r.id = a.record_id"
)

_PG_QUERY = text(
    f"{_SELECT} FROM unnest(CAST(:records AS bigint[]), CAST(:versions AS integer[])) AS k(r, v)"
    + _JOIN
)


@lru_cache(maxsize=64)
def _sqlite_query(count: int) -> str:
    values = ", ".join(["(?, ?)"] * count)
    return f"WITH k(r, v) AS (VALUES {values}) {_SELECT} FROM k{_JOIN}"
