"""Status changes in the store: the transition log, a fired transition's one transaction, and
the gate IN flows' versions pass (``Lineage.gate``).

A fired transition writes the new record version (only if the record is still at the version
it was checked against: optimistic, so of two racing transitions one wins and the other gets
:class:`StaleVersion`), its audit row, its transition log row and every delivery its OUT flows'
``when:`` takes — one transaction, the outbox: all of it, or none.

The rules (which change is allowed) live in :mod:`erpbridge.workflows`; the engine hands the
store a :class:`StatusGate` that applies them, so the store stays below the workflows.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

import orjson
from sqlalchemy import Connection, Row, insert, select, update

from erpbridge.errors import ErpbridgeError
from erpbridge.store.deliveries import Dispatcher, NewVersion, Subscriber, enqueue
from erpbridge.store.search import SearchSpec
from erpbridge.store.searchindex import index_changed
from erpbridge.store.tables import audit, records, transitions

__all__ = [
    "Admission",
    "Fire",
    "Move",
    "Refused",
    "StaleVersion",
    "StatusGate",
    "apply_transition",
    "earlier_fire",
    "log_moves",
]


class StaleVersion(ErpbridgeError):
    """The record changed between the check and the write: another transition (or an IN
    flow) got there first. Nothing was written; ``version`` is the record's version now."""

    def __init__(self, message: str, version: int | None) -> None:
        super().__init__(message)
        self.version = version


@dataclass(frozen=True, slots=True)
class Move:
    """One status change of one record version."""

    workflow: str
    field: str
    before: str | None
    after: str
    #: The transition that allows it; ``None`` for a new record's first state, or for a change
    #: no transition allows that a ``status_policy: record`` flow took (``note`` says so).
    transition: str | None
    note: str | None = None


@dataclass(slots=True)
class Admission:
    """What the gate says about one incoming version: the payload to store (its status kept
    or set to the initial state where it had none) and its moves, or a refusal."""

    payload: dict[str, Any]
    moves: list[Move] = field(default_factory=list)
    #: ``(field path, reason)`` when refused (``status_policy: enforce``).
    refusal: tuple[str, str] | None = None


@dataclass(frozen=True, slots=True)
class Refused:
    """An incoming version the gate refused, for the run's rejections (or the event's 422)."""

    position: str
    external_id: str | None
    payload: Mapping[str, Any]
    field_path: str
    reason: str


class StatusGate(Protocol):
    """The engine's workflow check for an IN flow's versions (``erpbridge.workflows.gate``)."""

    def admit(self, before: Mapping[str, Any] | None, after: dict[str, Any]) -> Admission:
        """Judge the change from ``before`` (``None``: a new record) to ``after``."""
        ...


_LOG_COLUMNS = (
    "record_id", "entity", "key", "version", "workflow", "field", "from_state", "to_state",
    "transition", "actor_kind", "actor", "reason", "note", "run_id", "idempotency_key", "at",
)  # fmt: skip


def log_moves(
    conn: Connection,
    rows: Sequence[tuple[int, str, str, int, Move]],
    *,
    actor_kind: str,
    actor: str,
    run_id: int | None,
    at: datetime,
    reason: str | None = None,
    idempotency_key: str | None = None,
) -> None:
    """Append ``(record id, entity, key, version, move)`` rows to the transition log."""
    if not rows:
        return
    conn.execute(
        insert(transitions),
        [
            dict(zip(_LOG_COLUMNS, (
                record_id, entity, key, version, m.workflow, m.field, m.before, m.after,
                m.transition, actor_kind, actor[:256], reason, m.note, run_id,
                idempotency_key, at,
            ), strict=True))
            for record_id, entity, key, version, m in rows
        ],
    )  # fmt: skip


def earlier_fire(
    conn: Connection, record_id: int, actor: str, idempotency_key: str
) -> Row[Any] | None:
    """The transition log row an earlier fire with this idempotency key wrote, if any."""
    return conn.execute(
        select(transitions).where(
            transitions.c.record_id == record_id,
            transitions.c.actor == actor[:256],
            transitions.c.idempotency_key == idempotency_key,
        )
    ).first()


@dataclass(frozen=True, slots=True)
class Fire:
    """A checked transition, ready to be written."""

    record: Row[Any]
    payload: dict[str, Any]
    blob: bytes
    content_hash: str
    move: Move
    actor_kind: str
    actor: str
    reason: str | None
    idempotency_key: str | None
    at: datetime
    changed_fields: list[str]
    subscribers: tuple[Subscriber, ...] = ()
    search: SearchSpec | None = None
    dispatch: Dispatcher | None = None


def apply_transition(conn: Connection, fire: Fire) -> tuple[int, int]:
    """Write ``fire`` in the caller's transaction: the version, audit row, log row and the
    deliveries its subscribers' ``when:`` take. Return (new version, deliveries written).

    Raise :class:`StaleVersion` when the record is no longer at the version it was checked at.
    """
    row = fire.record
    version = row.version + 1
    stamp = fire.at
    payload = fire.blob.decode()
    done = conn.execute(
        update(records)
        .where(records.c.id == row.id, records.c.version == row.version)
        .values(
            version=version,
            content_hash=fire.content_hash,
            payload=payload,
            origin_channel=None,
            updated_at=stamp,
        )
    )
    if done.rowcount != 1:
        now = conn.execute(select(records.c.version).where(records.c.id == row.id)).scalar()
        raise StaleVersion(
            f"{row.entity} {row.key!r} changed meanwhile (version {now}, checked at "
            f"{row.version}): nothing was written",
            now,
        )
    move = fire.move
    conn.execute(
        insert(audit).values(
            record_id=row.id,
            entity=row.entity,
            key=row.key,
            version=version,
            action="updated",
            content_hash=fire.content_hash,
            payload=None,  # the record's current one (``store.tables.AuditPayload``)
            changed_fields=orjson.dumps(fire.changed_fields).decode(),
            source_position=f"transition {move.transition} by {fire.actor_kind} {fire.actor}"[:512],
            at=stamp,
        )
    )
    if fire.search is not None:
        index_changed(conn, fire.search, [(row.id, row.key, fire.payload)])
    log_moves(
        conn,
        [(row.id, row.entity, row.key, version, move)],
        actor_kind=fire.actor_kind,
        actor=fire.actor,
        run_id=None,
        at=fire.at,
        reason=fire.reason,
        idempotency_key=fire.idempotency_key,
    )
    new = NewVersion(
        row.id,
        row.entity,
        row.key,
        version,
        orjson.loads(row.payload),
        fire.payload,
        frozenset({move.transition}) if move.transition else frozenset(),
    )
    # No channel is the origin of a fired transition: every subscriber may get it.
    queued = enqueue(conn, fire.subscribers, "", [new], fire.at, fire.dispatch)
    return version, queued
