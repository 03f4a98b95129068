"""Firing transitions: ``POST /api/v1/records/{entity}/{key}/transitions/{name}``, and the
record's transition log: ``GET /api/v1/records/{entity}/{key}/transitions``.

The caller (an API client with the ``write`` scope) is the actor. A refusal answers with the
record's current state and the transitions allowed from it: 409 when the state does not allow
it (or another change got there first), 422 when the record does not meet it (guard, required
field, reason, fields given), 403 when the client may not fire it, 404 for no such record or
transition. An ``Idempotency-Key`` makes a retried POST answer as the first one did (header
``Idempotent-Replayed: true``), without firing again.
"""

from __future__ import annotations

from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Header, Path
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from erpbridge.api.context import ApiError, Hub
from erpbridge.api.deps import HubDep, Name, Reader, Writer
from erpbridge.api.resources import TransitionOut, transition_out
from erpbridge.api.scope import read_scope
from erpbridge.engine.transitions import (
    CardNumberInReason,
    Fired,
    IdempotencyKeyReused,
    InvalidFields,
    RecordNotFound,
    StaleVersion,
    fire_transition,
)
from erpbridge.pci import mask_card_numbers, redact_card_numbers
from erpbridge.store.read import EVERYTHING, record_transitions, visible_record
from erpbridge.workflows.machine import Actor, TransitionRefused

__all__ = ["router"]

router = APIRouter(prefix="/api/v1")
Key = Annotated[str, Path(max_length=512)]

#: The answer to each refusal.
_STATUS = {
    "unknown_transition": 404,
    "illegal_transition": 409,
    "not_allowed": 403,
    "guard_failed": 422,
    "required_missing": 422,
    "reason_required": 422,
}


class FireIn(BaseModel):
    """What may come with a transition; every part is optional."""

    model_config = ConfigDict(extra="forbid")

    reason: str | None = Field(default=None, max_length=4000, description="Why (logged).")
    fields: dict[str, Any] = Field(
        default_factory=dict,
        description="Fields set on the record with the transition (checked by the entity's "
        "field rules) before its required fields and guards are checked.",
    )
    version: int | None = Field(
        default=None, ge=1, description="Fire only if the record is still at this version."
    )


class FiredOut(BaseModel):
    """200: the transition fired (or, replayed, had fired with this Idempotency-Key)."""

    entity: str
    key: str
    transition: str
    workflow: str
    from_state: str | None
    to_state: str
    version: int
    actor: str
    reason: str | None
    deliveries: int = Field(description="Deliveries written with it (0 on a replay).")


class RefusedOut(BaseModel):
    """403, 404, 409 or 422: nothing was written."""

    error: dict[str, str]
    state: str | None = Field(default=None, description="The record's state now.")
    version: int | None = Field(default=None, description="The record's version now.")
    allowed: list[str] = Field(
        default_factory=list, description="The transitions allowed from that state."
    )


def _fired_out(fired: Fired) -> dict[str, Any]:
    return FiredOut(
        entity=fired.entity,
        key=fired.key,
        transition=fired.transition,
        workflow=fired.workflow,
        from_state=fired.before,
        to_state=fired.after,
        version=fired.version,
        actor=fired.actor,
        reason=fired.reason,
        deliveries=fired.deliveries,
    ).model_dump()


@router.post(
    "/records/{entity}/{key}/transitions/{name}",
    tags=["records"],
    response_model=FiredOut,
    responses={s: {"model": RefusedOut} for s in (403, 404, 409, 422)},
)
def fire(
    entity: Name,
    key: Key,
    name: Name,
    hub: HubDep,
    who: Writer,
    body: FireIn | None = None,
    idempotency_key: Annotated[str | None, Header(max_length=200)] = None,
) -> JSONResponse:
    """Fire transition ``name`` on a record, as the calling client."""
    body = body or FireIn()
    with hub.engine.connect() as conn:
        found = visible_record(conn, read_scope(hub, who), entity, key)
    if found is None:
        raise ApiError(404, "not_found", f"no {entity} record with key {key!r}")
    actor = Actor("client", who.name, who.scopes)
    if idempotency_key:
        idempotency_key = mask_card_numbers(idempotency_key)
    try:
        fired = fire_transition(
            hub.engine,
            hub.config,
            entity,
            key,
            name,
            actor,
            reason=body.reason,
            fields=body.fields,
            expected_version=body.version,
            idempotency_key=idempotency_key or None,
            on_queued=hub.wake,
        )
    except TransitionRefused as exc:
        return _refused(hub, entity, key, _STATUS[exc.code], exc.code, str(exc))
    except StaleVersion as exc:
        return _refused(hub, entity, key, 409, "conflict", str(exc))
    except CardNumberInReason as exc:
        return _refused(hub, entity, key, 422, "card_number", str(exc))
    except InvalidFields as exc:
        return _refused(hub, entity, key, 422, "invalid_fields", str(exc))
    except IdempotencyKeyReused as exc:
        return _refused(hub, entity, key, 422, "idempotency_key_reused", str(exc))
    except RecordNotFound as exc:
        raise ApiError(404, "not_found", str(exc)) from None
    headers = {"Idempotent-Replayed": "true"} if fired.replayed else None
    return JSONResponse(_fired_out(fired), headers=headers)


def _refused(hub: Hub, entity: str, key: str, status: int, code: str, message: str) -> JSONResponse:
    """The refusal, with the record's state and version now and what may fire from it."""
    state, version, allowed = None, None, []
    with hub.engine.connect() as conn:
        row = visible_record(conn, EVERYTHING, entity, key)
    workflows = hub.config.workflows_of(entity)
    if row is not None and workflows:
        payload = orjson.loads(row.payload)
        version = row.version
        state = workflows[0].state_of(payload)
        allowed = [t for w in workflows for t in w.allowed_from(w.state_of(payload))]
    body = RefusedOut(
        error={"code": code, "message": redact_card_numbers(message)},
        state=state,
        version=version,
        allowed=allowed,
    )
    return JSONResponse(body.model_dump(), status_code=status)


@router.get("/records/{entity}/{key}/transitions", tags=["records"])
def list_transitions(entity: Name, key: Key, hub: HubDep, who: Reader) -> list[TransitionOut]:
    """The record's status changes (the transition log), oldest first."""
    with hub.engine.connect() as conn:
        rows = record_transitions(conn, read_scope(hub, who), entity, key)
    if rows is None:
        raise ApiError(404, "not_found", f"no {entity} record with key {key!r}")
    return [transition_out(row) for row in rows]
