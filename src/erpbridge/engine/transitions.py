"""Firing a transition: the one function the API, the command line and the back office call.

``fire_transition`` checks the transition against the record as it is inside a write
transaction (state, who, required fields, guards, reason), then writes the new version, its
audit and transition log rows and every delivery the OUT flows' ``when:`` take, in that same
transaction (``store.transitions.apply_transition``). Of two transitions racing on one record,
the second finds the state the first left (SQLite serialises writers) or a version that moved
(PostgreSQL: the optimistic update), and is refused with the current state. A retry with the
same ``Idempotency-Key`` answers with what the first fire did.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import Engine, select

from erpbridge.config.loaded import LoadedConfig
from erpbridge.engine.dispatcher import ledger_dispatcher
from erpbridge.engine.runner import subscribers_of
from erpbridge.errors import DataError, ErpbridgeError
from erpbridge.pci import has_card_number
from erpbridge.store.records import content_hash, dump_payload
from erpbridge.store.runs import now
from erpbridge.store.search import SearchSpec
from erpbridge.store.tables import records
from erpbridge.store.transitions import Fire, Move, StaleVersion, apply_transition, earlier_fire
from erpbridge.suggest import did_you_mean
from erpbridge.workflows.machine import Actor, TransitionRefused, Workflow

__all__ = [
    "CardNumberInReason",
    "Fired",
    "IdempotencyKeyReused",
    "InvalidFields",
    "RecordNotFound",
    "StaleVersion",
    "fire_transition",
]


class RecordNotFound(ErpbridgeError):
    """No record of the entity has the key (or the entity has no workflow)."""


class IdempotencyKeyReused(ErpbridgeError):
    """The idempotency key was used before on this record for another transition."""


class CardNumberInReason(ErpbridgeError):
    """The reason holds what looks like a payment card number: the hub stores none."""


class InvalidFields(ErpbridgeError):
    """The fields given with a transition fail the entity's field rules; ``path`` names one."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(message)
        self.path = path


@dataclass(frozen=True, slots=True)
class Fired:
    """What a fire did (or, ``replayed``, what the first fire with its key did)."""

    entity: str
    key: str
    transition: str
    workflow: str
    before: str | None
    after: str
    version: int
    at: datetime
    actor: str
    reason: str | None
    #: Deliveries written with it (0 on a replay: they were written by the first).
    deliveries: int
    replayed: bool = False


def workflow_with(config: LoadedConfig, entity: str, name: str) -> Workflow:
    """The workflow of ``entity`` that has transition ``name``; :class:`TransitionRefused`
    (unknown transition, with "did you mean") or :class:`RecordNotFound` (no workflow)."""
    workflows = config.workflows_of(entity)
    if not workflows:
        raise RecordNotFound(f"entity {entity!r} has no workflow")
    for workflow in workflows:
        if name in workflow.transitions:
            return workflow
    known = [t for w in workflows for t in w.transitions]
    raise TransitionRefused(
        "unknown_transition",
        f"{entity} has no transition {name!r}{did_you_mean(name, known)} "
        f"(transitions: {', '.join(known)})",
        None,
        [],
    )


def fire_transition(
    engine: Engine,
    config: LoadedConfig,
    entity: str,
    key: str,
    name: str,
    actor: Actor,
    *,
    reason: str | None = None,
    fields: Mapping[str, Any] | None = None,
    expected_version: int | None = None,
    idempotency_key: str | None = None,
    on_queued: Callable[[], None] | None = None,
) -> Fired:
    """Fire transition ``name`` on record ``entity``/``key`` as ``actor``.

    ``fields`` are set on the record with the transition (say, ``approved_amount``), before its
    required fields and guards are checked. Raise :class:`TransitionRefused`,
    :class:`RecordNotFound`, :class:`InvalidFields`, :class:`StaleVersion` or
    :class:`IdempotencyKeyReused`; nothing is written then.
    """
    workflow = workflow_with(config, entity, name)
    reason = reason.strip() if reason and reason.strip() else None
    if reason is not None and has_card_number(reason):
        raise CardNumberInReason(
            "reason: holds what looks like a payment card number; the hub stores none (the "
            "transition log is kept for good): write the reason without it"
        )
    try:
        return _fire(engine, config, workflow, entity, key, name, actor, reason, fields,
                     expected_version, idempotency_key, on_queued)  # fmt: skip
    except StaleVersion as exc:
        raise _raced(engine, workflow, entity, key, exc) from None


def _raced(
    engine: Engine, workflow: Workflow, entity: str, key: str, exc: StaleVersion
) -> StaleVersion:
    """``exc`` told with the state the record is in now and what may fire from it."""
    with engine.connect() as conn:
        row = conn.execute(
            select(records.c.payload, records.c.version).where(
                records.c.entity == entity, records.c.key == key
            )
        ).first()
    if row is None:
        return exc
    state = workflow.state_of(orjson.loads(row.payload))
    allowed = ", ".join(workflow.allowed_from(state)) or "none"
    return StaleVersion(
        f"{exc}; {entity} {key!r} is now {state} (version {row.version}); allowed: {allowed}",
        row.version,
    )


def _fire(
    engine: Engine,
    config: LoadedConfig,
    workflow: Workflow,
    entity: str,
    key: str,
    name: str,
    actor: Actor,
    reason: str | None,
    fields: Mapping[str, Any] | None,
    expected_version: int | None,
    idempotency_key: str | None,
    on_queued: Callable[[], None] | None,
) -> Fired:
    """:func:`fire_transition` once the reason is checked: one transaction."""
    spec = config.entities[entity]
    with engine.begin() as conn:
        row = conn.execute(
            select(records).where(records.c.entity == entity, records.c.key == key)
        ).first()
        if row is None:
            raise RecordNotFound(f"no {entity} record with key {key!r}")
        if idempotency_key is not None:
            earlier = earlier_fire(conn, row.id, actor.name, idempotency_key)
            if earlier is not None:
                return _replayed(earlier, name, idempotency_key)
        if expected_version is not None and expected_version != row.version:
            raise StaleVersion(
                f"{entity} {key!r} is at version {row.version}, not {expected_version}",
                row.version,
            )
        before = orjson.loads(row.payload)
        after = _with_fields(before, fields or {}, workflow, spec.key, spec.validate_payload)
        transition = workflow.check(name, after, actor, reason)
        state = workflow.state_of(before)
        after[workflow.field] = transition.to
        blob = dump_payload(after)
        at = now()
        changed = sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))
        version, queued = apply_transition(
            conn,
            Fire(
                record=row,
                payload=after,
                blob=blob,
                content_hash=content_hash(blob),
                move=Move(workflow.name, workflow.field, state, transition.to, name),
                actor_kind=actor.kind,
                actor=actor.name,
                reason=reason,
                idempotency_key=idempotency_key,
                at=at,
                changed_fields=changed,
                subscribers=subscribers_of(config, entity),
                search=SearchSpec.of(entity, spec),
                dispatch=ledger_dispatcher(engine.dialect.name),
            ),
        )
    if queued and on_queued is not None:
        on_queued()
    return Fired(entity, key, name, workflow.name, state, transition.to, version, at,
                 actor.name, reason, queued)  # fmt: skip


def _with_fields(
    before: dict[str, Any],
    fields: Mapping[str, Any],
    workflow: Workflow,
    key: Sequence[str],
    validate: Callable[[Mapping[str, Any]], dict[str, Any]],
) -> dict[str, Any]:
    """The record with ``fields`` set, checked by the entity's field rules."""
    if workflow.field in fields:
        raise InvalidFields(
            workflow.field, f"{workflow.field!r} changes only by a transition, not as a field"
        )
    if not fields:
        return dict(before)
    for name in key:
        if name in fields and fields[name] != before.get(name):
            raise InvalidFields(name, f"{name!r} is part of the record's key: it cannot change")
    try:
        after = validate({**before, **fields})
    except DataError as exc:
        raise InvalidFields(exc.path, f"{exc.path}: {exc.reason}") from None
    unknown = sorted(set(fields) - set(after))
    if unknown:
        raise InvalidFields(unknown[0], f"{unknown[0]!r} is not a field of the entity")
    return after


def _replayed(earlier: Any, name: str, idempotency_key: str) -> Fired:
    if earlier.transition != name:
        raise IdempotencyKeyReused(
            f"Idempotency-Key {idempotency_key!r} was used before on this record for "
            f"{earlier.transition!r}, not {name!r}"
        )
    return Fired(
        earlier.entity,
        earlier.key,
        name,
        earlier.workflow,
        earlier.from_state,
        earlier.to_state,
        earlier.version,
        earlier.at,
        earlier.actor,
        earlier.reason,
        0,
        replayed=True,
    )
