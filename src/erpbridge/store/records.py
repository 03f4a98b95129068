"""Records, bindings and the audit trail: the hub's upsert by business key (the hot path).

One call handles one batch inside the caller's transaction: look up the batch's keys in one
query, insert what is new, update what changed, write nothing for an unchanged content hash,
bind the channel's external ids, and append one audit row per created or updated version.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import Connection, bindparam, update
from sqlalchemy.exc import IntegrityError

from erpbridge.store.bulk import allocate_ids, copy_rows, custom_plans, select_in, timestamp
from erpbridge.store.conflicts import settle, settle_owned
from erpbridge.store.deliveries import Dispatcher, NewVersion, Subscriber, enqueue
from erpbridge.store.merge import FieldRules, merge, restore
from erpbridge.store.ordering import is_older
from erpbridge.store.search import SearchSpec
from erpbridge.store.searchindex import index_changed, index_created
from erpbridge.store.states import TOMBSTONE_HASH
from erpbridge.store.tables import audit, bindings, records
from erpbridge.store.transitions import Move, Refused, StatusGate, log_moves

__all__ = [
    "Incoming",
    "Lineage",
    "UpsertCounts",
    "bind",
    "content_hash",
    "dump_payload",
    "stored_payloads",
    "upsert_records",
]


def dump_payload(payload: Any) -> bytes:
    """Canonical JSON bytes of a payload: sorted keys, so equal content hashes equal."""
    return orjson.dumps(payload, option=orjson.OPT_SORT_KEYS)


def content_hash(blob: bytes) -> str:
    """A 128-bit BLAKE2b digest of the canonical JSON, as 32 hex characters."""
    return hashlib.blake2b(blob, digest_size=16).hexdigest()


@dataclass(slots=True)
class Incoming:
    """One mapped record of a batch, ready for the store."""

    key: str
    payload: dict[str, Any]
    blob: bytes
    hash: str
    external_id: str | None
    position: str


@dataclass(slots=True, kw_only=True)
class UpsertCounts:
    """What one batch did to the store's records.

    The counters every count of the hub shares: a batch's (``store.runs.BatchCounts``) and a
    run's (``engine.runner.RunResult``) extend it, so a counter is declared once and added by
    :meth:`add`.
    """

    created: int = 0
    updated: int = 0
    unchanged: int = 0
    #: Records that became tombstones (``store.tombstones``).
    deleted: int = 0
    #: Changes that met an open delivery to their own channel (two-way conflicts), and
    #: changes of fields another channel owns settled by the flow's conflict policy.
    conflicts: int = 0
    #: Records older than the stored version (``Lineage.version_field``): not applied.
    stale: int = 0
    #: Records whose change of fields another channel owns was not applied (``owners:``).
    overruled: int = 0
    #: Status changes no transition allows, taken because the flow's status_policy is record.
    unsanctioned: int = 0
    #: Versions the workflow refused (``status_policy: enforce``): not stored.
    refused: list[Refused] = field(default_factory=list)

    def add(self, other: UpsertCounts) -> None:
        """Add each counter of ``other`` (and of its own kind) to this one's."""
        for counter in fields(other):
            setattr(self, counter.name, getattr(self, counter.name) + getattr(other, counter.name))


@dataclass(frozen=True, slots=True)
class Lineage:
    """Where a batch came from, written into every audit row it causes."""

    entity: str
    channel: str
    flow: str
    run_id: int | None
    at: datetime
    #: OUT flows of the entity: each new version gets a delivery in the same transaction.
    subscribers: tuple[Subscriber, ...] = ()
    #: The IN flow's two-way conflict policy (see ``store.conflicts``); None: no detection.
    conflict: str | None = None
    #: The entity's search fields (``store.search``); None: not searchable, nothing indexed.
    search: SearchSpec | None = None
    #: The IN flow's ``version_field`` (``store.ordering``): an incoming record older than the
    #: stored one is skipped, never applied. None: every change is applied.
    version_field: str | None = None
    #: The engine's dispatcher hook, handed the new deliveries (``store.deliveries.enqueue``).
    dispatch: Dispatcher | None = None
    #: Which fields the flow changes (``store.merge``); None: it replaces whole records.
    fields: FieldRules | None = None
    #: The entity's workflows, applied to each new version (``store.transitions``); None: the
    #: entity has no workflow.
    gate: StatusGate | None = None


def _rounds(items: list[Incoming]) -> list[list[Incoming]]:
    """Split a batch so that each key appears once per round, keeping source order."""
    rounds: list[list[Incoming]] = []
    seen: dict[str, int] = {}
    for item in items:
        depth = seen.get(item.key, 0)
        seen[item.key] = depth + 1
        if depth == len(rounds):
            rounds.append([])
        rounds[depth].append(item)
    return rounds


_EXISTING_COLUMNS = ("id", "key", "version", "content_hash", "payload")


def _existing(conn: Connection, entity: str, keys: list[str]) -> dict[str, Any]:
    rows = select_in(conn, records, _EXISTING_COLUMNS, {"entity": entity}, "key", keys)
    return {row.key: row for row in rows}


def stored_payloads(conn: Connection, entity: str, keys: list[str]) -> dict[str, tuple[int, str]]:
    """The stored ``(version, payload JSON)`` of those of ``keys`` the hub holds."""
    return {key: (row.version, row.payload) for key, row in _existing(conn, entity, keys).items()}


def _changed_fields(old_payload: str, new: dict[str, Any]) -> list[str]:
    old = orjson.loads(old_payload)
    return sorted(k for k in old.keys() | new.keys() if old.get(k) != new.get(k))


def _incoming(item: Incoming, payload: dict[str, Any]) -> Incoming:
    blob = dump_payload(payload)
    return Incoming(item.key, payload, blob, content_hash(blob), item.external_id, item.position)


def _merged(
    conn: Connection,
    lineage: Lineage,
    rules: FieldRules,
    changed: list[tuple[Incoming, Any]],
    counts: UpsertCounts,
) -> list[tuple[Incoming, Any]]:
    """The changed pairs with each item merged into its stored record (``store.merge``); a
    merge equal to the stored record is counted unchanged and writes nothing."""
    merged: list[tuple[Incoming, Any, dict[str, Any], list[str]]] = []
    for item, row in changed:
        # A deleted record comes back with only what the source sends now.
        stored = {} if row.content_hash == TOMBSTONE_HASH else orjson.loads(row.payload)
        payload, trespassed = merge(rules, stored, item.payload)
        blob = dump_payload(payload)
        if not trespassed and blob == row.payload.encode() and row.content_hash != TOMBSTONE_HASH:
            counts.unchanged += 1  # the stored canonical JSON itself: no hash needed
            continue
        merged.append((Incoming(item.key, payload, blob, content_hash(blob), item.external_id,
                                item.position), row, stored, trespassed))  # fmt: skip
    trespassing = [(item, row, stored) for item, row, stored, fields in merged if fields]
    applied: list[bool] = [False] * len(trespassing)
    if trespassing and lineage.conflict is not None:
        applied = settle_owned(
            conn,
            policy=lineage.conflict,
            flow=lineage.flow,
            channel=lineage.channel,
            entity=lineage.entity,
            run_id=lineage.run_id,
            at=lineage.at,
            trespasses=trespassing,
        )
        counts.conflicts += len(trespassing)
    decisions = iter(applied)
    result: list[tuple[Incoming, Any]] = []
    for item, row, stored, trespassed in merged:
        if trespassed and not next(decisions):
            counts.overruled += 1
            item = _incoming(item, restore(item.payload, stored, trespassed))
        if item.hash == row.content_hash:
            counts.unchanged += 1
        else:
            result.append((item, row))
    return result


def upsert_records(conn: Connection, lineage: Lineage, items: list[Incoming]) -> UpsertCounts:
    """Upsert ``items`` (one entity) and bind their external ids; return the counts."""
    counts = UpsertCounts()
    custom_plans(conn)
    for depth, round_items in enumerate(_rounds(items)):
        if depth == 0 and _unknown(conn, lineage, round_items, counts):
            continue
        if _upsert_round(conn, lineage, round_items, counts, look=True):
            _hopes(conn).add((lineage.entity, lineage.channel))
    return counts


#: ``conn.info`` key: the (entity, channel) pairs whose last batch met no stored key or bound
#: external id (a full pass into an empty entity), whose next batch is written without look-ups.
_HOPES = "erpbridge_unknown_keys"
#: Smaller rounds look up as usual: one clash costs a rolled-back round.
_HOPEFUL_ROUND = 100


def _hopes(conn: Connection) -> set[tuple[str, str]]:
    hopes: set[tuple[str, str]] = conn.info.setdefault(_HOPES, set())
    return hopes


def _unknown(
    conn: Connection, lineage: Lineage, items: list[Incoming], counts: UpsertCounts
) -> bool:
    """Write ``items`` as new records without looking their keys and external ids up, when the
    last batch of this entity and channel met none stored (an initial migration: each look-up
    finds nothing). Inside a savepoint: a key or external id stored after all (the source
    repeats one, another writer came first) fails an insert, the round is rolled back and
    ``False`` returned, and the caller writes it with look-ups, as always."""
    hopes = _hopes(conn)
    pair = (lineage.entity, lineage.channel)
    if pair not in hopes or len(items) < _HOPEFUL_ROUND:
        return False
    if _existing(conn, lineage.entity, [items[0].key, items[-1].key]):
        hopes.discard(pair)  # a pass over stored records (an incremental run): no round wasted
        return False
    trial = UpsertCounts()
    try:
        with conn.begin_nested():
            _upsert_round(conn, lineage, items, trial, look=False)
    except IntegrityError:
        hopes.discard(pair)
        return False
    counts.add(trial)
    return True


def _upsert_round(
    conn: Connection, lineage: Lineage, items: list[Incoming], counts: UpsertCounts, *, look: bool
) -> bool:
    """Write one round (each key once); ``look``: look its keys and external ids up first
    (else they are known to be new). Whether nothing of it was stored or bound before."""
    keys = [i.key for i in items]
    existing = _existing(conn, lineage.entity, keys) if look else {}
    new: list[Incoming] = []
    changed: list[tuple[Incoming, Any]] = []
    ids: dict[str, int] = {}
    for item in items:
        row = existing.get(item.key)
        if row is None:
            new.append(item)
        elif row.content_hash != item.hash:
            changed.append((item, row))
            ids[item.key] = row.id
        else:
            counts.unchanged += 1
            ids[item.key] = row.id
    if lineage.version_field is not None and changed:
        fresh = [
            (item, row)
            for item, row in changed
            if not is_older(lineage.version_field, item.payload, orjson.loads(row.payload))
        ]
        counts.stale += len(changed) - len(fresh)
        changed = fresh
    if lineage.fields is not None and changed:
        changed = _merged(conn, lineage, lineage.fields, changed, counts)
    if lineage.conflict is not None and changed:
        changed, found = settle(conn, policy=lineage.conflict, flow=lineage.flow,
                                channel=lineage.channel, entity=lineage.entity,
                                run_id=lineage.run_id, at=lineage.at, changed=changed)  # fmt: skip
        counts.conflicts += found
    moves: dict[str, list[Move]] = {}
    refused: set[str] = set()
    if lineage.gate is not None and (new or changed):
        new, changed, refused = _gated(lineage.gate, new, changed, moves, counts)
    at = timestamp(conn, lineage.at)
    history: list[tuple[Any, ...]] = []
    if new:
        fresh_ids = allocate_ids(conn, records, len(new))
        rows = []
        for item, record_id in zip(new, fresh_ids, strict=True):
            ids[item.key] = record_id
            payload = item.blob.decode()
            rows.append(
                (
                    record_id,
                    lineage.entity,
                    item.key,
                    1,
                    item.hash,
                    payload,
                    lineage.channel,
                    at,
                    at,
                )
            )
            history.append(_audit_row(lineage, at, record_id, item, 1, "created", None))
        copy_rows(conn, records, _RECORD_COLUMNS, rows)
        if lineage.search is not None:
            index_created(conn, lineage.search, [(ids[i.key], i.key, i.payload) for i in new])
        counts.created += len(new)
    if changed:
        conn.execute(
            update(records)
            .where(records.c.id == bindparam("b_id"))
            .values(
                version=bindparam("b_version"),
                content_hash=bindparam("b_hash"),
                payload=bindparam("b_payload"),
                origin_channel=lineage.channel,
                updated_at=lineage.at,
            ),
            [
                {
                    "b_id": row.id,
                    "b_version": row.version + 1,
                    "b_hash": item.hash,
                    "b_payload": item.blob.decode(),
                }
                for item, row in changed
            ],
        )
        history.extend(
            _audit_row(
                lineage,
                at,
                row.id,
                item,
                row.version + 1,
                *_change_of(row, item),
            )
            for item, row in changed
        )
        if lineage.search is not None:
            index_changed(conn, lineage.search, [(r.id, i.key, i.payload) for i, r in changed])
        recreated = sum(1 for _, row in changed if row.content_hash == TOMBSTONE_HASH)
        counts.created += recreated
        counts.updated += len(changed) - recreated
    copy_rows(conn, audit, _AUDIT_COLUMNS, history)
    if moves:
        _log(conn, lineage, moves, new, changed, ids)
    if lineage.subscribers and history:
        versions = _versions(lineage, history, new, changed, moves)
        enqueue(conn, lineage.subscribers, lineage.channel, versions, lineage.at, lineage.dispatch)
    bound = [i for i in items if i.external_id is not None and i.key not in refused]
    pairs = [(i.external_id, ids[i.key]) for i in bound if i.external_id]
    return not _bind(conn, lineage, at, pairs, look=look) and not existing


def _versions(
    lineage: Lineage,
    history: list[tuple[Any, ...]],
    new: list[Incoming],
    changed: list[tuple[Incoming, Any]],
    moves: Mapping[str, list[Move]],
) -> list[NewVersion]:
    """The versions just written, with their payloads before and after and the transitions
    that made them when a subscriber's ``when:`` needs them (history holds the new records'
    rows first, then the changed ones)."""
    if all(s.when is None for s in lineage.subscribers):
        return [NewVersion(row[0], lineage.entity, row[2], row[3]) for row in history]
    pairs: list[tuple[dict[str, Any] | None, dict[str, Any]]] = [(None, i.payload) for i in new]
    pairs += [(_before(row), i.payload) for i, row in changed]
    return [
        NewVersion(row[0], lineage.entity, row[2], row[3], before, after, _fired(moves, row[2]))
        for row, (before, after) in zip(history, pairs, strict=True)
    ]


def _before(row: Any) -> dict[str, Any] | None:
    """A stored record's payload as the version before a change (``None``: it was deleted)."""
    return None if row.content_hash == TOMBSTONE_HASH else orjson.loads(row.payload)


def _fired(moves: Mapping[str, list[Move]], key: str) -> frozenset[str]:
    return frozenset(m.transition for m in moves.get(key, ()) if m.transition)


def _gated(
    gate: StatusGate,
    new: list[Incoming],
    changed: list[tuple[Incoming, Any]],
    moves: dict[str, list[Move]],
    counts: UpsertCounts,
) -> tuple[list[Incoming], list[tuple[Incoming, Any]], set[str]]:
    """The versions the entity's workflows admit (payloads completed where the gate says), their
    moves by key, and the keys refused (counted in ``counts.refused``)."""
    refused: set[str] = set()

    def admitted(item: Incoming, before: Mapping[str, Any] | None) -> Incoming | None:
        verdict = gate.admit(before, dict(item.payload))
        if verdict.refusal is not None:
            path, reason = verdict.refusal
            counts.refused.append(
                Refused(item.position, item.external_id, item.payload, path, reason)
            )
            refused.add(item.key)
            return None
        if verdict.moves:
            moves[item.key] = verdict.moves
            counts.unsanctioned += sum(1 for m in verdict.moves if m.note)
        return item if verdict.payload == item.payload else _incoming(item, verdict.payload)

    kept_new = [i for i in (admitted(item, None) for item in new) if i is not None]
    kept_changed = []
    for item, row in changed:
        taken = admitted(item, _before(row))
        if taken is None:
            continue
        if taken.hash == row.content_hash:
            counts.unchanged += 1  # only a status the source left out, kept as it was
            moves.pop(item.key, None)
            continue
        kept_changed.append((taken, row))
    return kept_new, kept_changed, refused


def _log(
    conn: Connection,
    lineage: Lineage,
    moves: Mapping[str, list[Move]],
    new: list[Incoming],
    changed: list[tuple[Incoming, Any]],
    ids: Mapping[str, int],
) -> None:
    """The transition log rows of the status changes just written, fired by the IN flow."""
    versions = {i.key: (ids[i.key], 1) for i in new}
    versions.update({i.key: (row.id, row.version + 1) for i, row in changed})
    rows = [
        (versions[key][0], lineage.entity, key, versions[key][1], move)
        for key, found in moves.items()
        if key in versions
        for move in found
    ]
    log_moves(conn, rows, actor_kind="flow", actor=lineage.flow, run_id=lineage.run_id,
              at=lineage.at)  # fmt: skip


_RECORD_COLUMNS = (
    "id",
    "entity",
    "key",
    "version",
    "content_hash",
    "payload",
    "origin_channel",
    "created_at",
    "updated_at",
)
_AUDIT_COLUMNS = (
    "record_id",
    "entity",
    "key",
    "version",
    "action",
    "content_hash",
    "payload",
    "changed_fields",
    "run_id",
    "flow",
    "channel",
    "external_id",
    "source_position",
    "at",
)
_BINDING_COLUMNS = ("channel", "entity", "external_id", "record_id", "created_at", "updated_at")
_BOUND_COLUMNS = ("id", "external_id", "record_id")


def _change_of(row: Any, item: Incoming) -> tuple[str, list[str] | None]:
    """The audit action and changed fields of a new version of a stored record: a tombstone
    comes back ``recreated`` (every field new, as on creation), its history kept."""
    if row.content_hash == TOMBSTONE_HASH:
        return "recreated", None
    return "updated", _changed_fields(row.payload, item.payload)


def _audit_row(
    lineage: Lineage,
    at: Any,
    record_id: int,
    item: Incoming,
    version: int,
    action: str,
    changed: list[str] | None,
) -> tuple[Any, ...]:
    """The audit row of a version just written: no payload, it is the record's current one
    (``store.tables.AuditPayload``; the trigger of migration 0025 moves it here once a later
    version supersedes it)."""
    return (
        record_id,
        lineage.entity,
        item.key,
        version,
        action,
        item.hash,
        None,
        orjson.dumps(changed).decode() if changed is not None else None,
        lineage.run_id,
        lineage.flow,
        lineage.channel,
        item.external_id,
        item.position[:512],
        at,
    )


def bind(conn: Connection, lineage: Lineage, pairs: list[tuple[str, int]]) -> None:
    """Bind external ids of ``lineage.channel`` to records: ``(external id, record id)``."""
    custom_plans(conn)
    _bind(conn, lineage, timestamp(conn, lineage.at), pairs)


def _bind(
    conn: Connection, lineage: Lineage, at: Any, pairs: list[tuple[str, int]], *, look: bool = True
) -> bool:
    """Create or move bindings (channel, entity, external id) → record id (``look``: look the
    external ids up first; else they are known to be unbound). Whether any was bound before."""
    if not pairs:
        return False
    wanted = dict(pairs)
    where = {"channel": lineage.channel, "entity": lineage.entity}
    found = (
        select_in(conn, bindings, _BOUND_COLUMNS, where, "external_id", list(wanted))
        if look
        else []
    )
    current: dict[str, tuple[int, int]] = {
        row.external_id: (row.id, row.record_id) for row in found
    }
    fresh = [
        (lineage.channel, lineage.entity, ext, rid, at, at)
        for ext, rid in wanted.items()
        if ext not in current
    ]
    # The source gave an existing external id another business key: the binding follows it.
    moved = [
        {"b_id": current[ext][0], "b_record": rid}
        for ext, rid in wanted.items()
        if ext in current and current[ext][1] != rid
    ]
    copy_rows(conn, bindings, _BINDING_COLUMNS, fresh)
    if moved:
        conn.execute(
            update(bindings)
            .where(bindings.c.id == bindparam("b_id"))
            .values(record_id=bindparam("b_record"), updated_at=lineage.at),
            moved,
        )
    return bool(current)
