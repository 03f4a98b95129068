"""A full pass into an empty entity writes its batches without looking keys up, and a batch that
meets a stored key or bound external id after all is written with look-ups, as ever: the store
ends up exactly as the look-up path leaves it."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import Engine, event, func, select

from erpbridge.store import open_store
from erpbridge.store.records import (
    Incoming,
    Lineage,
    UpsertCounts,
    content_hash,
    dump_payload,
    upsert_records,
)
from erpbridge.store.tables import audit, bindings, records

AT = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
LINEAGE = Lineage(entity="thing", channel="erp", flow="in", run_id=None, at=AT)


def _item(key: str, n: int, external_id: str | None = None) -> Incoming:
    payload = {"key": key, "n": n}
    blob = dump_payload(payload)
    return Incoming(key, payload, blob, content_hash(blob), external_id or f"x-{key}", key)


def _batch(engine: Engine, items: list[Incoming], looked: list[str] | None = None) -> UpsertCounts:
    """Upsert ``items`` in one transaction; ``looked`` collects its look-ups of bindings."""

    def seen(_conn: object, _cursor: object, statement: str, *_args: object) -> None:
        if looked is not None and "FROM bindings" in statement.replace('"', ""):
            looked.append(statement)

    event.listen(engine, "before_cursor_execute", seen)
    try:
        with engine.begin() as conn:
            return upsert_records(conn, LINEAGE, items)
    finally:
        event.remove(engine, "before_cursor_execute", seen)


def _state(engine: Engine) -> tuple[object, ...]:
    with engine.connect() as conn:
        stored = conn.execute(
            select(records.c.key, records.c.version, records.c.payload).order_by(records.c.key)
        ).all()
        bound = conn.execute(
            select(bindings.c.external_id, records.c.key)
            .join(records, records.c.id == bindings.c.record_id)
            .order_by(bindings.c.external_id)
        ).all()
        versions = conn.execute(select(func.count()).select_from(audit)).scalar_one()
    return [tuple(r) for r in stored], [tuple(r) for r in bound], versions


def test_a_full_pass_with_repeats_ends_as_with_look_ups(hub_url: str) -> None:
    engine = open_store(hub_url)
    try:
        first = _batch(engine, [_item(f"k{i:04}", 1) for i in range(200)])
        looked: list[str] = []
        second = _batch(engine, [_item(f"k{i:04}", 1) for i in range(200, 400)], looked)
        assert looked == []  # the first met nothing stored: the second looks nothing up
        # the source repeats 10 keys (one changed) and gives key k0500 an id bound to k0001
        repeat = [_item(f"k{i:04}", 1) for i in range(390, 400)] + [_item("k0399", 2)]
        moved = [_item("k0500", 1, external_id="x-k0001")]
        third = _batch(engine, repeat + [_item(f"k{i:04}", 1) for i in range(400, 500)] + moved)
        fourth = _batch(engine, [_item(f"k{i:04}", 1) for i in range(600, 800)])
        assert (first.created, second.created, fourth.created) == (200, 200, 200)
        assert (third.created, third.updated, third.unchanged) == (101, 1, 10)
        stored, bound, versions = _state(engine)
        assert len(stored) == 701 and versions == 702
        assert ("k0399", 2, '{"key":"k0399","n":2}') in stored
        assert ("x-k0001", "k0500") in bound and len(bound) == 700
    finally:
        engine.dispose()


def test_a_batch_meeting_a_stored_key_is_rolled_back_whole_and_written_again(
    hub_url: str,
) -> None:
    engine = open_store(hub_url)
    try:
        _batch(engine, [_item(f"k{i:04}", 1) for i in range(200)])
        # the last key of the hopeful batch clashes: everything before it is undone first
        clash = _batch(
            engine, [_item(f"k{i:04}", 1) for i in range(200, 399)] + [_item("k0000", 5)]
        )
        assert (clash.created, clash.updated) == (199, 1)
        stored, bound, versions = _state(engine)
        assert len(stored) == 399 and len(bound) == 399 and versions == 400
        assert ("k0000", 2, '{"key":"k0000","n":5}') in stored
    finally:
        engine.dispose()
