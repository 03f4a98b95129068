"""Keeping the search help's index (``store.search``) in step with the records, in bulk.

The record upsert calls :func:`index_created` and :func:`index_changed` inside its own
transaction, so a record and its index row commit together. PostgreSQL keeps its trigram index
itself. On SQLite each searchable entity has its own FTS5 table, made here when its first
record is indexed and written with one ``executemany`` per batch: kept by triggers instead it
cost 5x more (120 µs against 23 µs a row, measured), because each row's statement savepoint
made FTS5 flush a tiny segment.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import orjson
from sqlalchemy import Connection, bindparam, delete, func, select, update

from erpbridge.store.bulk import copy_rows
from erpbridge.store.search import SearchSpec, fts_table
from erpbridge.store.states import TOMBSTONE_HASH
from erpbridge.store.tables import records, search_index

__all__ = ["count_indexed", "index_changed", "index_created", "rebuild_index", "unindex"]

Document = tuple[int, str, str, str]  # record id, key_folded, label_folded, text
_COLUMNS = ("record_id", "entity", "key_folded", "label_folded", "text")
# SQLite caps bound parameters per statement; PostgreSQL takes any number.
_CHUNK = 500


def _documents(
    spec: SearchSpec, rows: Iterable[tuple[int, str, Mapping[str, Any]]]
) -> list[Document]:
    return [(rid, *spec.document(key, payload)) for rid, key, payload in rows]


def _fts_create(conn: Connection, entity: str) -> None:
    # Contentless: the text is stored once, in search_index.
    conn.exec_driver_sql(
        f"CREATE VIRTUAL TABLE IF NOT EXISTS {fts_table(entity)} "
        "USING fts5(text, content='', tokenize='trigram')"
    )


def _fts_insert(conn: Connection, entity: str, rows: list[tuple[int, str]]) -> None:
    sql = f"INSERT INTO {fts_table(entity)} (rowid, text) VALUES (?, ?)"
    conn.exec_driver_sql(sql, rows)


def _fts_delete(conn: Connection, entity: str, rows: list[tuple[int, str]]) -> None:
    # A contentless FTS5 table forgets a row only when given the exact text it indexed.
    table = fts_table(entity)
    sql = f"INSERT INTO {table} ({table}, rowid, text) VALUES ('delete', ?, ?)"
    conn.exec_driver_sql(sql, rows)


def _insert(conn: Connection, entity: str, docs: list[Document]) -> None:
    if not docs:
        return
    copy_rows(conn, search_index, _COLUMNS, [(rid, entity, *rest) for rid, *rest in docs])
    if conn.dialect.name == "sqlite":
        _fts_create(conn, entity)
        _fts_insert(conn, entity, [(rid, body) for rid, _, _, body in docs])


def index_created(
    conn: Connection, spec: SearchSpec, rows: Iterable[tuple[int, str, Mapping[str, Any]]]
) -> None:
    """Index new records, ``(record id, key, payload)``, in one bulk insert."""
    _insert(conn, spec.entity, _documents(spec, rows))


def index_changed(
    conn: Connection, spec: SearchSpec, rows: Iterable[tuple[int, str, Mapping[str, Any]]]
) -> None:
    """Re-index changed records, ``(record id, key, payload)``. A change outside the search
    fields writes nothing; a record without a row (stored before its entity became searchable)
    gets one."""
    docs = _documents(spec, rows)
    ids = [doc[0] for doc in docs]
    current: dict[int, tuple[str, str, str]] = {}
    for start in range(0, len(ids), _CHUNK):
        query = select(
            search_index.c.record_id,
            search_index.c.key_folded,
            search_index.c.label_folded,
            search_index.c.text,
        ).where(search_index.c.record_id.in_(ids[start : start + _CHUNK]))
        current.update((rid, (key, label, body)) for rid, key, label, body in conn.execute(query))
    _insert(conn, spec.entity, [doc for doc in docs if doc[0] not in current])
    moved = [doc for doc in docs if doc[0] in current and doc[1:] != current[doc[0]]]
    if not moved:
        return
    conn.execute(
        update(search_index)
        .where(search_index.c.record_id == bindparam("b_id"))
        .values(
            key_folded=bindparam("b_key"),
            label_folded=bindparam("b_label"),
            text=bindparam("b_text"),
        ),
        [{"b_id": rid, "b_key": k, "b_label": lab, "b_text": body} for rid, k, lab, body in moved],
    )
    if conn.dialect.name == "sqlite":
        _fts_delete(conn, spec.entity, [(doc[0], current[doc[0]][2]) for doc in moved])
        _fts_insert(conn, spec.entity, [(doc[0], doc[3]) for doc in moved])


def unindex(conn: Connection, entity: str, record_ids: list[int]) -> None:
    """Take records out of the index (deleted: a search help does not offer them); one that
    comes back is indexed again by :func:`index_changed`."""
    found: list[tuple[int, str]] = []
    for start in range(0, len(record_ids), _CHUNK):
        chunk = record_ids[start : start + _CHUNK]
        query = select(search_index.c.record_id, search_index.c.text)
        found += [
            (rid, body)
            for rid, body in conn.execute(query.where(search_index.c.record_id.in_(chunk)))
        ]
        conn.execute(delete(search_index).where(search_index.c.record_id.in_(chunk)))
    if found and conn.dialect.name == "sqlite":
        _fts_delete(conn, entity, found)


def rebuild_index(conn: Connection, spec: SearchSpec, batch_size: int = 5000) -> int:
    """Index every record of ``spec.entity`` afresh (after its search fields changed, or for
    records stored before it had any); return how many."""
    conn.execute(delete(search_index).where(search_index.c.entity == spec.entity))
    if conn.dialect.name == "sqlite":
        conn.exec_driver_sql(f"DROP TABLE IF EXISTS {fts_table(spec.entity)}")
    query = (
        select(records.c.id, records.c.key, records.c.payload)
        .where(records.c.entity == spec.entity, records.c.content_hash != TOMBSTONE_HASH)
        .order_by(records.c.id)
    )
    done = 0
    result = conn.execution_options(yield_per=batch_size).execute(query)
    for part in result.partitions():
        index_created(conn, spec, [(r.id, r.key, orjson.loads(r.payload)) for r in part])
        done += len(part)
    return done


def count_indexed(conn: Connection, entity: str) -> int:
    """How many records of ``entity`` the index holds."""
    query = select(func.count()).select_from(search_index).where(search_index.c.entity == entity)
    return int(conn.execute(query).scalar_one())
