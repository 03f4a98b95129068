"""Inbound events: ``POST /api/v1/events/{flow}`` (API clients) and ``POST /hooks/{channel}``
(signed webhooks of a channel's system).

``POST /api/v1/events/{flow}/deletes`` says records were deleted in the channel (tombstones,
``store.tombstones``); a webhook says it with the flow's ``delete_marker``.

Both validate the body through the flow's mapping and store the records and their deliveries in
one transaction (:meth:`FlowRunner.ingest`), answering 202 with the record ids. A record that fails
the mapping fails the whole request with 422 and the field path of each problem; nothing of it is
stored. An ``Idempotency-Key`` makes a retried POST answer exactly as the first one did.

A webhook's signature is spent by the webhook it accepts: the same signed request again while
its timestamp is inside the tolerance is a replay, refused with 409 ``replayed_webhook`` before
anything is stored (:mod:`erpbridge.store.webhooks`). A webhook that is not accepted (422, flow
paused) does not spend its signature.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, Header, Path, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy import Connection, select
from sqlalchemy.exc import IntegrityError
from starlette.concurrency import run_in_threadpool

from erpbridge.api.auth import Principal, client_guard, require
from erpbridge.api.body import parse_json, read_body
from erpbridge.api.context import ApiError, Hub, get_hub
from erpbridge.api.network import allowed, client_address
from erpbridge.config.api import WebhookConfig
from erpbridge.engine.runner import EventRejected, Guard, Ingested
from erpbridge.errors import FlowPaused
from erpbridge.mapping.compiler import getter
from erpbridge.pci import mask_card_numbers, redact_card_numbers
from erpbridge.store.database import reading
from erpbridge.store.runs import now
from erpbridge.store.tables import idempotency_keys
from erpbridge.store.webhooks import claim_signature_in

__all__ = ["hooks", "router"]

router = APIRouter(prefix="/api/v1")
hooks = APIRouter()
HubDep = Annotated[Hub, Depends(get_hub)]
Name = Annotated[str, Path(max_length=128, pattern=r"^[A-Za-z][A-Za-z0-9_.-]*$")]


class RecordRef(BaseModel):
    """A record the event created, changed or found unchanged."""

    key: str
    id: int
    version: int


class Accepted(BaseModel):
    """202: the records are in the hub, their deliveries queued."""

    flow: str
    run_id: int
    created: int
    updated: int
    unchanged: int
    #: Records older than the stored version (the flow's ``version_field``): not applied.
    stale: int
    #: Records the event deleted (tombstone versions).
    deleted: int = 0
    #: Ids of deletes naming no record the channel had sent: nothing to delete (recorded in
    #: the event's run as a warning).
    unknown: list[str] = []
    records: list[RecordRef]


class Problem(BaseModel):
    """One record of the request that failed the mapping."""

    index: int
    field: str
    reason: str


class Rejected(BaseModel):
    """422: nothing of the request was stored."""

    error: dict[str, str]
    problems: list[Problem]


_PUSHED = {
    "status_code": 202,
    "tags": ["events"],
    "responses": {422: {"model": Rejected}, 409: {"description": "flow paused or not an IN flow"}},
}
EventsClient = Annotated[Principal, Depends(require("events", "events"))]
IdempotencyKey = Annotated[str | None, Header(max_length=200)]


@router.post("/events/{flow}", **_PUSHED)  # type: ignore[arg-type]
async def post_event(
    flow: Name,
    request: Request,
    hub: HubDep,
    who: EventsClient,
    idempotency_key: IdempotencyKey = None,
) -> JSONResponse:
    """Push one record (a JSON object) or a batch (a JSON array) into an IN flow."""
    return await _pushed(flow, request, hub, who, idempotency_key, deletes=False)


@router.post("/events/{flow}/deletes", **_PUSHED)  # type: ignore[arg-type]
async def post_deletes(
    flow: Name,
    request: Request,
    hub: HubDep,
    who: EventsClient,
    idempotency_key: IdempotencyKey = None,
) -> JSONResponse:
    """Tell an IN flow that its channel deleted records: one object or an array, each holding
    the flow's ``key`` fields (without a ``key``: what its mapping needs for the business key).
    Each named record gets a tombstone version; ids the hub never had from the channel come back
    in ``unknown`` and change nothing."""
    return await _pushed(flow, request, hub, who, idempotency_key, deletes=True)


async def _pushed(
    flow: str,
    request: Request,
    hub: Hub,
    who: Principal,
    idempotency_key: str | None,
    *,
    deletes: bool,
) -> JSONResponse:
    config = _in_flow(hub, flow)
    who.check_channel(config.channel)
    body = await _body(request, hub)
    # A sender authenticated by a remembered key: its client is read again in the transaction.
    cached = getattr(request.state, "cached_client", None)
    guard = client_guard(hub.keys, cached) if cached is not None else None
    # The store's work runs in a worker thread: the event loop keeps taking requests, and
    # concurrent events of the flow share one transaction (FlowRunner.ingest).
    return await run_in_threadpool(
        _accept_event, hub, flow, who.name, body, idempotency_key, guard, deletes=deletes
    )


def _accept_event(
    hub: Hub,
    flow: str,
    client: str,
    body: bytes,
    idempotency_key: str | None,
    guard: Guard | None = None,
    *,
    deletes: bool = False,
) -> JSONResponse:
    scope = f"{'deletes' if deletes else 'events'}:{client}:{flow}"
    if idempotency_key:
        idempotency_key = mask_card_numbers(idempotency_key)  # stored: never a card number
        earlier = _earlier_answer(hub, scope, idempotency_key, body)
        if earlier is not None:
            return earlier
    items = _records(parse_json(body), None, hub.config.model.hub.api.max_batch)
    answer = _ingest(hub, flow, items, f"event:{client}", guard, deletes=deletes)
    if idempotency_key:
        answer = _remember(hub, scope, idempotency_key, body, answer)
    return answer


@hooks.post(
    "/hooks/{channel}",
    status_code=202,
    tags=["events"],
    response_model=Accepted,
    responses={
        401: {"description": "signature missing, wrong, or signed outside the tolerance"},
        409: {"description": "a replay (this signature was accepted before), or flow paused"},
        422: {"model": Rejected},
    },
)
async def post_hook(channel: Name, request: Request, hub: HubDep) -> JSONResponse:
    """A webhook of the channel's system, verified by its HMAC signature and timestamp; the
    same signed webhook again inside the tolerance is refused as a replay (409)."""
    model = hub.config.model.channels.get(channel)
    hook = model.inbound.webhook if model and model.inbound else None
    if model is None or hook is None:
        raise ApiError(404, "not_found", f"channel {channel!r} takes no webhooks")
    address = client_address(request, hub.config.model.hub.api.trusted_proxies)
    if not allowed(address, model.inbound.allowed_ips if model.inbound else None):
        raise ApiError(
            403, "address_not_allowed", f"address {address} may not send {channel!r} webhooks"
        )
    body = await _body(request, hub)
    secret = model.credentials[hook.secret].get_secret_value()
    signed_at = _verify_signature(hook, request, body, secret, channel)
    _in_flow(hub, hook.flow)
    signature = request.headers.get(hook.signature_header, "").strip()
    guard = _spend(channel, hook, signature, signed_at)
    return await run_in_threadpool(_accept_hook, hub, channel, hook, body, guard)


def _accept_hook(
    hub: Hub, channel: str, hook: WebhookConfig, body: bytes, guard: Guard
) -> JSONResponse:
    items = _records(parse_json(body), hook.records_path, hub.config.model.hub.api.max_batch)
    return _ingest(hub, hook.flow, items, f"hook:{channel}", guard)


def _spend(channel: str, hook: WebhookConfig, signature: str, signed_at: int | None) -> Guard:
    """The guard that spends the signature in the transaction storing the webhook's records, or
    refuses the webhook as a replay. It is kept until its timestamp leaves the tolerance
    (without a timestamp header: the tolerance from now). A webhook that is not stored (422,
    flow paused, a store failure) has not spent it."""
    at = datetime.now(UTC)
    start = at if signed_at is None else datetime.fromtimestamp(signed_at, UTC)
    expires_at = start + timedelta(seconds=hook.tolerance_s)

    def spend(conn: Connection) -> ApiError | None:
        if claim_signature_in(conn, channel, signature, at=at, expires_at=expires_at):
            return None
        return ApiError(
            409,
            "replayed_webhook",
            f"webhook of {channel!r}: this signature was accepted before; a replay is refused",
        )

    return spend


def _in_flow(hub: Hub, name: str) -> Any:
    """The IN flow ``name`` of the configuration (its switch is read where events are stored)."""
    try:
        flow = hub.config.flow(name)
    except KeyError:
        raise ApiError(404, "not_found", f"no flow named {name!r}") from None
    if flow.direction != "in":
        raise ApiError(409, "not_an_in_flow", f"flow {name!r} is an OUT flow: it takes no events")
    return flow


async def _body(request: Request, hub: Hub) -> bytes:
    settings = hub.config.model.hub.api
    return await read_body(request, settings.max_body_mb, settings.body_timeout_s)


def _records(data: Any, path: str | None, max_batch: int) -> list[dict[str, Any]]:
    if path:
        data = getter(path)(data) if isinstance(data, dict) else None
        if data is None:
            raise ApiError(400, "bad_shape", f"the body has nothing at {path!r}")
    items = data if isinstance(data, list) else [data]
    if not items:
        raise ApiError(400, "bad_shape", "the batch is empty")
    if len(items) > max_batch:
        raise ApiError(
            413, "too_large", f"{len(items)} records in one request; at most {max_batch}"
        )
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            raise ApiError(
                400, "bad_shape", f"record {i} is a {type(item).__name__}, not an object"
            )
    return items


def _ingest(
    hub: Hub,
    flow: str,
    items: list[dict[str, Any]],
    origin: str,
    guard: Guard | None = None,
    *,
    deletes: bool = False,
) -> JSONResponse:
    try:
        done: Ingested = hub.runner.ingest(flow, items, origin, guard, deletes=deletes)
    except EventRejected as exc:
        problems = [Problem(index=i, field=path, reason=reason) for i, path, reason in exc.problems]
        body = Rejected(
            error={"code": "rejected", "message": str(exc)},
            problems=problems,
        )
        return JSONResponse(body.model_dump(), status_code=422)
    except FlowPaused as exc:
        raise ApiError(409, "flow_paused", str(exc)) from None
    accepted = Accepted(
        flow=flow,
        run_id=done.run_id,
        created=done.created,
        updated=done.updated,
        unchanged=done.unchanged,
        stale=done.stale,
        deleted=done.deleted,
        unknown=list(done.unknown),
        records=[RecordRef(key=k, id=i, version=v) for k, i, v in done.records],
    )
    return JSONResponse(accepted.model_dump(), status_code=202)


def _verify_signature(
    hook: WebhookConfig, request: Request, body: bytes, secret: str, channel: str
) -> int | None:
    """Check the signature (and the timestamp's tolerance); return the signing time, if any."""
    signed_at: int | None = None
    given = request.headers.get(hook.signature_header, "")
    signed = body
    if hook.timestamp_header:
        stamp = request.headers.get(hook.timestamp_header, "")
        if not (stamp.isascii() and stamp.isdigit() and len(stamp) <= 12):
            raise ApiError(
                401, "bad_signature", f"{hook.timestamp_header} is missing or not a Unix time"
            )
        if abs(time.time() - int(stamp)) > hook.tolerance_s:
            raise ApiError(
                401,
                "stale_signature",
                f"webhook of {channel!r} signed at {stamp}, outside ±{hook.tolerance_s} s: "
                "a replay or a wrong clock",
            )
        signed, signed_at = stamp.encode() + b"." + body, int(stamp)
    expected = (
        hook.signature_prefix
        + hmac.new(secret.encode(), signed, getattr(hashlib, hook.algorithm)).hexdigest()
    )
    # Header values arrive as latin-1 text; compared as bytes, non-ASCII is just a mismatch.
    if not given or not hmac.compare_digest(given.strip().encode("latin-1"), expected.encode()):
        raise ApiError(
            401, "bad_signature", f"webhook of {channel!r}: the signature does not match"
        )
    return signed_at


def _request_hash(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


def _earlier_answer(hub: Hub, scope: str, key: str, body: bytes) -> JSONResponse | None:
    with reading(hub.engine) as conn:
        row = conn.execute(
            select(idempotency_keys).where(
                idempotency_keys.c.scope == scope, idempotency_keys.c.key == key
            )
        ).first()
    if row is None:
        return None
    if row.request_hash != _request_hash(body):
        raise ApiError(
            422,
            "idempotency_key_reused",
            f"Idempotency-Key {key!r} was used before with a different body",
        )
    return JSONResponse(
        orjson.loads(row.response),
        status_code=row.status_code,
        headers={"Idempotent-Replayed": "true"},
    )


def _remember(hub: Hub, scope: str, key: str, body: bytes, answer: JSONResponse) -> JSONResponse:
    try:
        with hub.engine.begin() as conn:
            conn.execute(
                idempotency_keys.insert().values(
                    scope=scope,
                    key=key,
                    request_hash=_request_hash(body),
                    status_code=answer.status_code,
                    response=redact_card_numbers(bytes(answer.body).decode()),
                    created_at=now(),
                )
            )
    except IntegrityError:
        # A concurrent retry stored its answer first; the records were upserted by content
        # hash, so both answers name the same records. Answer as the first one did.
        earlier = _earlier_answer(hub, scope, key, body)
        if earlier is not None:
            return earlier
    return answer
