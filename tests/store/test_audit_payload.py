"""The audit keeps a record's current payload once (migration 0025, ``store.tables.AuditPayload``).

An existing hub is upgraded with its history, and every reader still sees each version's whole
payload: the audit row of a record's current version stores none (the record holds it), and a
superseded version's payload moves into its audit row when the record changes, whoever writes it.
"""

from __future__ import annotations

from datetime import UTC, datetime

import orjson
from sqlalchemy import Connection, select, text, update

from erpbridge.store import open_store
from erpbridge.store.database import create_hub_engine, migrate
from erpbridge.store.payloads import version_payloads
from erpbridge.store.records import Incoming, Lineage, content_hash, dump_payload, upsert_records
from erpbridge.store.tables import audit, records

AT = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def _stored(conn: Connection) -> dict[tuple[int, int], str | None]:
    """The audit's payload column as stored, by (record id, version)."""
    rows = conn.execute(text("SELECT record_id, version, payload FROM audit"))
    return {(r.record_id, r.version): r.payload for r in rows}


def _read(conn: Connection) -> dict[tuple[int, int], dict[str, object]]:
    """The audit's payloads as every reader sees them."""
    rows = conn.execute(select(audit.c.record_id, audit.c.version, audit.c.payload))
    return {(r.record_id, r.version): orjson.loads(r.payload) for r in rows}


def _old_hub_rows(conn: Connection) -> None:
    """Two records as a hub at 0024 wrote them: "a" at version 2 (two audit rows with their
    payloads), "b" at version 1."""
    stamp = "2026-01-01 00:00:00.000000"
    for rid, key, version, payload in ((1, "a", 2, '{"n":2}'), (2, "b", 1, '{"n":1}')):
        conn.execute(
            text(
                "INSERT INTO records (id, entity, key, version, content_hash, payload, "
                "created_at, updated_at) VALUES (:id, 'thing', :key, :v, :h, :p, :at, :at)"
            ),
            {"id": rid, "key": key, "v": version, "h": "h" * 32, "p": payload, "at": AT},
        )
    for rid, key, version, payload in ((1, "a", 1, '{"n":1}'), (1, "a", 2, '{"n":2}'),
                                       (2, "b", 1, '{"n":1}')):  # fmt: skip
        conn.execute(
            text(
                "INSERT INTO audit (record_id, entity, key, version, action, content_hash, "
                "payload, at) VALUES (:id, 'thing', :key, :v, 'updated', :h, :p, :at)"
            ),
            {"id": rid, "key": key, "v": version, "h": "h" * 32, "p": payload, "at": stamp},
        )


def test_an_existing_hub_is_upgraded_with_its_history_readable(hub_url: str) -> None:
    engine = create_hub_engine(hub_url)
    migrate(engine, "0024")
    with engine.begin() as conn:
        _old_hub_rows(conn)
    engine.dispose()
    engine = open_store(hub_url, upgrade=True)
    try:
        with engine.begin() as conn:
            # the current versions' copies are gone; the superseded one kept
            assert _stored(conn) == {(1, 1): '{"n":1}', (1, 2): None, (2, 1): None}
            assert _read(conn) == {(1, 1): {"n": 1}, (1, 2): {"n": 2}, (2, 1): {"n": 1}}
            # any writer of a record moves the version it supersedes into the audit
            changed = update(records).where(records.c.id == 2).values(version=2, payload="{}")
            conn.execute(changed)
            assert _stored(conn)[(2, 1)] == '{"n":1}'
    finally:
        engine.dispose()


def test_versions_written_by_the_hub_are_read_whole(hub_url: str) -> None:
    engine = open_store(hub_url)
    lineage = Lineage(entity="thing", channel="erp", flow="in", run_id=None, at=AT)

    def incoming(key: str, n: int) -> Incoming:
        payload = {"n": n}
        blob = dump_payload(payload)
        return Incoming(key, payload, blob, content_hash(blob), f"x-{key}", f"row {key}")

    try:
        with engine.begin() as conn:
            upsert_records(conn, lineage, [incoming("a", 1), incoming("b", 1)])
        with engine.begin() as conn:
            # twice in one batch: two versions in one call
            upsert_records(conn, lineage, [incoming("a", 2), incoming("a", 3)])
        with engine.begin() as conn:
            ids = {r.key: r.id for r in conn.execute(select(records.c.key, records.c.id))}
            a, b = ids["a"], ids["b"]
            assert _stored(conn) == {(a, 1): '{"n":1}', (a, 2): '{"n":2}', (a, 3): None,
                                     (b, 1): None}  # fmt: skip
            assert _read(conn) == {(a, 1): {"n": 1}, (a, 2): {"n": 2}, (a, 3): {"n": 3},
                                   (b, 1): {"n": 1}}  # fmt: skip
            # the worker's read of versions by (record, version)
            found = version_payloads(conn, [(a, 1), (a, 2), (a, 3), (b, 1), (b, 9)])
            assert {pair: v.payload for pair, v in found.items()} == {
                (a, 1): {"n": 1}, (a, 2): {"n": 2}, (a, 3): {"n": 3}, (b, 1): {"n": 1}
            }  # fmt: skip
    finally:
        engine.dispose()
