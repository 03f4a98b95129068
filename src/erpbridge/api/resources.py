"""``/api/v1``: channels, flows, runs, records, deliveries, rejected records, conflicts, the
admin audit.

Every listing and look-up of stored rows goes through the read model (``store.read``) with the
caller's scope: a client restricted to channels sees their rows only, filtered in SQL before
``LIMIT``, and a row outside its scope answers 404 like one that does not exist.
"""

from __future__ import annotations

import threading
from dataclasses import asdict
from datetime import datetime
from typing import Annotated, Any, Literal

import orjson
from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, Field
from sqlalchemy import Row

from erpbridge.api.auth import Principal
from erpbridge.api.context import ApiError, Hub
from erpbridge.api.deps import Admin, HubDep, Limit, Name, Reader, RowId, Stamp, Writer
from erpbridge.api.redact import shown_to
from erpbridge.api.scope import read_scope, visible_flow
from erpbridge.engine.credentials import apply_stored_credentials, stored_names
from erpbridge.engine.diagnose import check_channel
from erpbridge.engine.preview import Preview
from erpbridge.errors import FlowPaused
from erpbridge.moments import BadMoment, parse_moment
from erpbridge.store.deliveries import cancel, retry_deliveries
from erpbridge.store.read import (
    FieldOrigin,
    Version,
    audit_page,
    conflicts_page,
    deliveries_page,
    delivery_by_id,
    diff_payloads,
    field_origins,
    is_deleted,
    record_as_of,
    record_view,
    run_by_id,
    runs_page,
)
from erpbridge.store.runlease import aware, shown_status
from erpbridge.store.runs import now
from erpbridge.store.secretbox import store_credential
from erpbridge.store.states import (
    OPEN_DELIVERY_STATES,
    ConflictStatus,
    DeliveryState,
    RunStatus,
)
from erpbridge.store.switches import (
    check_not_paused,
    flow_enabled,
    flow_switch,
    paused_flows,
    set_flow_enabled,
)
from erpbridge.systems import system_types

__all__ = ["router"]

router = APIRouter(prefix="/api/v1")


class ChannelOut(BaseModel):
    """A channel as the API shows it: never its options' secrets."""

    name: str
    system: str
    transport: str
    description: str
    flows: list[str]


class HealthOut(BaseModel):
    """A connection check."""

    ok: bool
    category: str
    detail: str


class SampleOut(BaseModel):
    """One IN flow's sample read."""

    flow: str
    ok: bool
    category: str
    detail: str


class ChannelTestOut(BaseModel):
    """``channels test``: the connection and a sample per IN flow."""

    channel: str
    ok: bool
    health: HealthOut
    samples: list[SampleOut]


class CredentialIn(BaseModel):
    """A channel credential to store encrypted; never shown again."""

    value: str = Field(min_length=1, max_length=8192)


class FlowOut(BaseModel):
    """A flow and whether it is enabled (config, then any pause or resume)."""

    name: str
    channel: str
    entity: str
    direction: Literal["in", "out"]
    trigger: str
    enabled: bool
    #: Paused or resumed by whom and when (``None``: never switched, the configuration rules).
    switched_by: str | None = None
    switched_at: Stamp | None = None


class RunOut(BaseModel):
    """One run of a flow."""

    id: int
    flow: str
    channel: str
    entity: str
    mode: str
    #: running | succeeded | failed | interrupted (its process went away before closing it)
    status: str
    dry_run: bool
    started_at: Stamp
    finished_at: Stamp | None
    duration_s: float | None
    read: int
    created: int
    updated: int
    unchanged: int
    rejected: int
    #: Records older than the stored version (the flow's ``version_field``): not applied.
    stale: int = 0
    #: Records the channel deleted that became tombstone versions.
    deleted: int = 0
    cursor_before: Any = None
    cursor_after: Any = None
    warnings: list[str] = Field(default_factory=list)
    error: str | None = None
    host: str | None = Field(default=None, description="Host of the process that ran it.")
    pid: int | None = Field(default=None, description="Its process id there.")
    lease_until: Stamp | None = Field(
        default=None, description="While running: alive until then unless its heartbeat renews it."
    )


class FieldDiffOut(BaseModel):
    """A field that would change: the hub's value and the incoming one."""

    path: str = Field(description="Canonical path: name, a.b, lines[0].qty.")
    hub: Any
    incoming: Any
    kind: Literal["added", "removed", "changed"]


class RecordChangeOut(BaseModel):
    """A record the run would create or update, field by field."""

    key: str
    action: Literal["create", "update"]
    version: int | None = Field(description="The stored version it would replace.")
    fields: list[FieldDiffOut]


class DryRunOut(BaseModel):
    """What a dry run found; nothing was committed."""

    run_id: int
    status: str
    read: int
    created: int
    updated: int
    unchanged: int
    rejected: int
    stale: int
    error: str | None
    changes: list[RecordChangeOut] = Field(
        description="The first records that would change (up to 100), field by field."
    )
    changes_truncated: bool = Field(description="More records would change than listed.")


class VersionOut(BaseModel):
    """One version of a record and where it came from (its lineage)."""

    version: int
    action: str
    at: Stamp
    payload: dict[str, Any]
    changed_fields: list[str] | None
    run_id: int | None
    flow: str | None
    channel: str | None
    external_id: str | None
    source_position: str | None
    lineage_withheld: bool = Field(
        default=False,
        description="The version came in through a channel this client may not see: its run, "
        "flow, channel, external id and source position are not shown.",
    )


class FieldOriginOut(BaseModel):
    """Which version, flow and channel last set one field of the record."""

    version: int
    at: Stamp
    flow: str | None
    channel: str | None
    run_id: int | None
    lineage_withheld: bool = False


class BindingOut(BaseModel):
    """The record's id in one channel."""

    channel: str
    external_id: str


class TransitionOut(BaseModel):
    """One status change of a record (the transition log)."""

    version: int = Field(description="The record version it made.")
    workflow: str
    field: str
    from_state: str | None = Field(description="Null: the record's first state.")
    to_state: str
    transition: str | None = Field(
        description="Null: a new record's first state, or a change no transition allows that "
        "an IN flow with status_policy: record took (see note)."
    )
    actor_kind: str = Field(description="client (API), user (back office, CLI) or flow (IN).")
    actor: str
    reason: str | None
    note: str | None
    run_id: int | None
    at: Stamp


def transition_out(row: Row[Any]) -> TransitionOut:
    """A transition log row as the API shows it."""
    return TransitionOut(
        version=row.version,
        workflow=row.workflow,
        field=row.field,
        from_state=row.from_state,
        to_state=row.to_state,
        transition=row.transition,
        actor_kind=row.actor_kind,
        actor=row.actor,
        reason=row.reason,
        note=row.note,
        run_id=row.run_id,
        at=row.at,
    )


class RecordOut(BaseModel):
    """A record: its current payload, bindings and every version with its lineage (for a
    channel-restricted client: the bindings of its channels, lineage of their versions)."""

    entity: str
    key: str
    version: int
    payload: dict[str, Any]
    updated_at: Stamp
    bindings: list[BindingOut]
    versions: list[VersionOut]
    deleted: bool = Field(
        default=False,
        description="Its channel deleted it: this version is a tombstone and the payload the "
        "last one it had. A later record with its key recreates it, history kept.",
    )
    fields: dict[str, FieldOriginOut] = Field(
        default_factory=dict,
        description="Per top-level field of the payload: the version (and the flow and "
        "channel) that last set it, so a merged record shows which source each value is from.",
    )
    transitions: list[TransitionOut] = Field(
        default_factory=list, description="Its status changes (the transition log), oldest first."
    )
    as_of: Stamp | None = Field(
        default=None, description="Asked for as of this moment: the version that stood then."
    )


class FieldChangeOut(BaseModel):
    """One field that differs between two moments (``null``: absent then)."""

    path: str
    before: Any
    after: Any


class RecordDiffOut(BaseModel):
    """What changed in a record between ``start`` and ``end`` (``version_*`` null: it did not
    exist yet)."""

    entity: str
    key: str
    start: Stamp
    end: Stamp
    version_before: int | None
    version_after: int | None
    changes: list[FieldChangeOut]


class DeliveryOut(BaseModel):
    """One entry of the delivery ledger."""

    id: int
    flow: str
    channel: str
    entity: str
    key: str
    version: int
    state: DeliveryState
    attempts: int
    max_attempts: int
    next_attempt_at: Stamp
    external_id: str | None
    last_error: str | None
    created_at: Stamp
    delivered_at: Stamp | None
    #: Its flow is paused and it is open: it waits, held, until the flow is resumed.
    flow_paused: bool = False


class CountOut(BaseModel):
    """How many rows an action changed."""

    changed: int


class RetriedOut(CountOut):
    """A retry: ``changed`` deliveries are due again, ``superseded`` were cancelled instead
    because the flow already delivered a newer version of their record."""

    superseded: int


class ConflictOut(BaseModel):
    """A two-way conflict: a change that came in while the hub's own was on its way out."""

    id: int
    flow: str
    channel: str
    entity: str
    key: str
    hub_version: int
    incoming_payload: dict[str, Any]
    external_id: str | None
    policy: str
    status: ConflictStatus
    winner: str | None
    run_id: int | None
    created_at: Stamp
    resolved_at: Stamp | None


class AuditOut(BaseModel):
    """One administrative action."""

    id: int
    at: Stamp
    actor: str
    address: str | None
    action: str
    target: str | None
    outcome: str
    detail: dict[str, Any] | None


def _channel(hub: Hub, name: str, principal: Principal) -> ChannelOut:
    channels = hub.config.model.channels
    if name not in channels:
        raise ApiError(404, "not_found", f"no channel named {name!r}")
    principal.check_channel(name)
    channel = channels[name]
    return ChannelOut(
        name=name,
        system=channel.system,
        transport=channel.transport or system_types()[channel.system].transport,
        description=channel.description,
        flows=[f.name for f in hub.config.model.flows if f.channel == name],
    )


@router.get("/channels", tags=["channels"])
def list_channels(hub: HubDep, who: Reader) -> list[ChannelOut]:
    """The channels this client may see."""
    return [_channel(hub, n, who) for n in hub.config.model.channels if who.may_channel(n)]


@router.get("/channels/{name}", tags=["channels"])
def show_channel(name: Name, hub: HubDep, who: Reader) -> ChannelOut:
    """One channel (system type, transport, flows); options and secrets are never shown."""
    return _channel(hub, name, who)


@router.get("/channels/{name}/health", tags=["channels"])
def channel_health(name: Name, hub: HubDep, who: Reader) -> HealthOut:
    """Reachability and authentication of the channel, without a sample read."""
    _channel(hub, name, who)
    report = check_channel(hub.config, name, sample=False)
    return HealthOut(
        ok=report.health.ok, category=report.health.category, detail=report.health.detail
    )


@router.post("/channels/{name}/test", tags=["channels"])
def test_channel(name: Name, request: Request, hub: HubDep, who: Admin) -> ChannelTestOut:
    """``erpbridge channels test``: connection, auth and one sample record per IN flow."""
    _channel(hub, name, who)
    report = check_channel(hub.config, name)
    hub.audit(who.name, who.address, "channel.test", name, "ok" if report.ok else "failed")
    health = report.health
    return ChannelTestOut(
        channel=name,
        ok=report.ok,
        health=HealthOut(ok=health.ok, category=health.category, detail=health.detail),
        samples=[
            SampleOut(flow=s.flow, ok=s.ok, category=s.category, detail=s.detail)
            for s in report.samples
        ],
    )


@router.put("/channels/{name}/credentials/{credential}", status_code=204, tags=["channels"])
def put_credential(
    name: Name, credential: Name, body: CredentialIn, hub: HubDep, who: Admin
) -> None:
    """Store a channel credential encrypted at rest; it is never returned or logged.

    Only a credential the configuration declares ``stored`` can be set: another name is a 404,
    one the configuration fills from the environment a 422; nothing is stored then.
    """
    _channel(hub, name, who)
    declared = hub.config.model.channels[name].credentials
    stored = stored_names(hub.config, name)
    if credential not in stored:
        target = f"{name}/{credential}"
        if credential in declared:
            hub.audit(who.name, who.address, "channel.credential", target, "refused")
            raise ApiError(
                422,
                "credential_not_stored",
                f"channel {name!r}: credential {credential!r} is set in the configuration "
                "(from the environment), not `stored`; write `" + credential + ": stored` under "
                "the channel's credentials to set it through the API",
            )
        hub.audit(who.name, who.address, "channel.credential", target, "refused")
        raise ApiError(
            404,
            "not_found",
            f"channel {name!r} has no credential {credential!r} "
            f"(stored credentials: {', '.join(stored) or 'none'})",
        )
    with hub.engine.begin() as conn:
        store_credential(conn, hub.box, name, credential, body.value)
    # This process's channels use it from now on; other processes at their next start.
    apply_stored_credentials(hub.config, hub.engine, hub.box)
    hub.operations.forget(name)
    hub.audit(who.name, who.address, "channel.credential", f"{name}/{credential}")


def _flow_out(hub: Hub, name: str) -> FlowOut:
    flow = hub.config.flow(name)
    trigger = flow.trigger if isinstance(flow.trigger, str) else flow.trigger.model_dump_json()
    with hub.engine.connect() as conn:
        enabled = flow_enabled(conn, flow.name, flow.enabled)
        switch = flow_switch(conn, flow.name)
    return FlowOut(
        name=flow.name,
        channel=flow.channel,
        entity=flow.entity,
        direction=flow.direction,
        trigger=trigger,
        enabled=enabled,
        switched_by=None if switch is None else switch.changed_by,
        switched_at=None if switch is None else switch.changed_at,
    )


def _flow(hub: Hub, name: str, who: Principal) -> FlowOut:
    visible_flow(hub, name, who)
    return _flow_out(hub, name)


@router.get("/flows", tags=["flows"])
def list_flows(hub: HubDep, who: Reader) -> list[FlowOut]:
    """Every flow this client may see, with its enabled state."""
    return [_flow_out(hub, f.name) for f in hub.config.model.flows if who.may_channel(f.channel)]


def _switch(hub: Hub, name: str, who: Principal, enabled: bool, action: str) -> FlowOut:
    _flow(hub, name, who)
    with hub.engine.begin() as conn:
        set_flow_enabled(conn, name, enabled, who.name)
    hub.audit(who.name, who.address, action, name)
    if enabled and hub.wake:
        hub.wake()  # its waiting deliveries go out now, not at the next poll
    return _flow_out(hub, name)


@router.post("/flows/{name}/pause", tags=["flows"])
def pause_flow(name: Name, hub: HubDep, who: Admin) -> FlowOut:
    """Pause a flow: no scheduled runs, no ``run``/``sync``, events answer 409 ``flow_paused``;
    its deliveries wait ``pending`` in the ledger. A run already going finishes."""
    return _switch(hub, name, who, enabled=False, action="flow.pause")


@router.post("/flows/{name}/resume", tags=["flows"])
def resume_flow(name: Name, hub: HubDep, who: Admin) -> FlowOut:
    """Resume a paused flow: scheduled again at its next fire time; waiting deliveries go out."""
    return _switch(hub, name, who, enabled=True, action="flow.resume")


@router.post("/flows/{name}/enable", tags=["flows"])
def enable_flow(name: Name, hub: HubDep, who: Admin) -> FlowOut:
    """Resume a flow (the older name of ``/resume``)."""
    return _switch(hub, name, who, enabled=True, action="flow.enable")


@router.post("/flows/{name}/disable", tags=["flows"])
def disable_flow(name: Name, hub: HubDep, who: Admin) -> FlowOut:
    """Pause a flow (the older name of ``/pause``)."""
    return _switch(hub, name, who, enabled=False, action="flow.disable")


@router.post("/flows/{name}/run", status_code=202, tags=["flows"])
def run_flow(name: Name, hub: HubDep, who: Writer, full: bool = False) -> FlowOut:
    """Start an IN flow now, in the background; follow it under ``/api/v1/runs?flow=``."""
    flow = _flow(hub, name, who)
    if flow.direction != "in":
        raise ApiError(409, "not_an_in_flow", f"flow {name!r} is an OUT flow: workers deliver it")
    with hub.engine.connect() as conn:
        try:
            check_not_paused(conn, name)
        except FlowPaused as exc:
            raise ApiError(409, "flow_paused", str(exc)) from None
    threading.Thread(
        target=hub.runner.run, args=(name,), kwargs={"full": full}, daemon=True
    ).start()
    hub.audit(who.name, who.address, "flow.run", name, detail={"full": full})
    return flow


@router.post("/flows/{name}/dry-run", tags=["flows"])
def dry_run_flow(name: Name, hub: HubDep, who: Writer) -> DryRunOut:
    """Run an IN flow without committing anything; answer with what it would do."""
    flow = _flow(hub, name, who)
    if flow.direction != "in":
        raise ApiError(409, "not_an_in_flow", f"flow {name!r} is an OUT flow")
    result = hub.runner.run(name, dry_run=True)
    preview = result.preview or Preview(flow.entity)
    return DryRunOut(
        run_id=result.run_id,
        status=result.status,
        read=result.read,
        created=result.created,
        updated=result.updated,
        unchanged=result.unchanged,
        rejected=result.rejected,
        stale=result.stale,
        error=shown_to(who, result.error),
        changes=[RecordChangeOut.model_validate(asdict(c)) for c in preview.changes],
        changes_truncated=preview.truncated,
    )


def _run_out(row: Row[Any], who: Principal) -> RunOut:
    data = dict(row._mapping)
    data["status"] = shown_status(row, now())
    for name in ("cursor_before", "cursor_after", "warnings"):
        data[name] = orjson.loads(data[name]) if data[name] else None
    data["warnings"] = [shown_to(who, w) for w in data["warnings"] or []]
    data["error"] = shown_to(who, data["error"])
    return RunOut.model_validate(data)


@router.get("/runs", tags=["runs"])
def list_runs(
    hub: HubDep,
    who: Reader,
    flow: str | None = None,
    status: RunStatus | None = None,
    limit: Limit = 50,
) -> list[RunOut]:
    """Recent runs, newest first."""
    with hub.engine.connect() as conn:
        rows = runs_page(conn, read_scope(hub, who), flow=flow, status=status, limit=limit)
    return [_run_out(r, who) for r in rows]


@router.get("/runs/{run_id}", tags=["runs"])
def show_run(run_id: RowId, hub: HubDep, who: Reader) -> RunOut:
    """One run."""
    with hub.engine.connect() as conn:
        row = run_by_id(conn, read_scope(hub, who), run_id)
    if row is None:
        raise ApiError(404, "not_found", f"no run {run_id}")
    return _run_out(row, who)


@router.get("/records/{entity}/{key}", tags=["records"])
def show_record(
    entity: Name,
    key: str,
    hub: HubDep,
    who: Reader,
    as_of: Annotated[
        str | None,
        Query(max_length=64, description="As it was then (ISO 8601; without a zone: UTC)."),
    ] = None,
) -> RecordOut:
    """A record with its bindings and every version's lineage (run, flow, source position);
    with ``as_of``, as it was then, rebuilt from the audit trail."""
    moment = None if as_of is None else _moment("as_of", as_of)
    with hub.engine.connect() as conn:
        view = record_view(conn, read_scope(hub, who), entity, key)
    if view is None:
        raise ApiError(404, "not_found", f"no {entity} record with key {key!r}")
    row = view.row
    versions, links = view.versions, view.bindings
    if moment is not None:
        versions = [v for v in versions if aware(v.row.at) <= moment]
        if not versions:
            raise ApiError(
                404, "not_found", f"no {entity} record with key {key!r} as of {as_of} "
                f"(created {aware(view.versions[0].row.at).isoformat()})",
            )  # fmt: skip
        row = versions[-1].row
        links = [b for b in links if aware(b.created_at) <= moment]
    return RecordOut(
        entity=entity,
        key=key,
        version=row.version,
        payload=orjson.loads(row.payload),
        updated_at=row.at if moment is not None else row.updated_at,
        bindings=[BindingOut(channel=b.channel, external_id=b.external_id) for b in links],
        versions=[_version_out(v) for v in versions],
        deleted=is_deleted(row.content_hash),
        fields={name: _origin_out(o) for name, o in field_origins(versions).items()},
        transitions=[transition_out(t) for t in view.transitions if t.version <= row.version],
        as_of=moment,
    )


def _moment(name: str, text: str) -> datetime:
    try:
        return parse_moment(name, text)
    except BadMoment as exc:
        raise ApiError(422, "bad_time", str(exc)) from None


@router.get("/records/{entity}/{key}/diff", tags=["records"])
def diff_record(
    entity: Name,
    key: str,
    hub: HubDep,
    who: Reader,
    start: Annotated[str, Query(alias="from", max_length=64, description="ISO 8601.")],
    end: Annotated[
        str | None, Query(alias="to", max_length=64, description="ISO 8601; default: now.")
    ] = None,
) -> RecordDiffOut:
    """What changed in a record between two moments, field by field (dotted paths)."""
    before_at = _moment("from", start)
    after_at = now() if end is None else _moment("to", end)
    if before_at > after_at:
        raise ApiError(422, "bad_range", f"from {start} is after to {end}: swap them")
    scope = read_scope(hub, who)
    with hub.engine.connect() as conn:
        if record_view(conn, scope, entity, key) is None:
            raise ApiError(404, "not_found", f"no {entity} record with key {key!r}")
        before = record_as_of(conn, scope, entity, key, before_at)
        after = record_as_of(conn, scope, entity, key, after_at)
    changes = diff_payloads(
        None if before is None else before.payload, None if after is None else after.payload
    )
    return RecordDiffOut(
        entity=entity,
        key=key,
        start=before_at,
        end=after_at,
        version_before=None if before is None else before.version,
        version_after=None if after is None else after.version,
        changes=[FieldChangeOut(path=c.path, before=c.before, after=c.after) for c in changes],
    )


def _origin_out(origin: FieldOrigin) -> FieldOriginOut:
    return FieldOriginOut(
        version=origin.version,
        at=origin.at,
        flow=origin.flow,
        channel=origin.channel,
        run_id=origin.run_id,
        lineage_withheld=origin.withheld,
    )


def _version_out(version: Version) -> VersionOut:
    h = version.row
    out = VersionOut(
        version=h.version,
        action=h.action,
        at=h.at,
        payload=orjson.loads(h.payload),
        changed_fields=orjson.loads(h.changed_fields) if h.changed_fields else None,
        run_id=h.run_id,
        flow=h.flow,
        channel=h.channel,
        external_id=h.external_id,
        source_position=h.source_position,
    )
    if version.withheld:
        return out.model_copy(
            update=dict.fromkeys(("run_id", "flow", "channel", "external_id", "source_position"))
            | {"lineage_withheld": True}
        )
    return out


@router.get("/deliveries", tags=["deliveries"])
def list_deliveries(
    hub: HubDep,
    who: Reader,
    state: DeliveryState | None = None,
    flow: str | None = None,
    limit: Limit = 50,
) -> list[DeliveryOut]:
    """The delivery ledger, newest first."""
    with hub.engine.connect() as conn:
        rows = deliveries_page(conn, read_scope(hub, who), state=state, flow=flow, limit=limit)
        paused = paused_flows(conn)
    return [
        DeliveryOut.model_validate(
            {
                **r._mapping,
                "last_error": shown_to(who, r.last_error),
                "flow_paused": r.flow in paused and r.state in OPEN_DELIVERY_STATES,
            }
        )
        for r in rows
    ]


def _delivery_channel(hub: Hub, delivery_id: int, who: Principal) -> None:
    with hub.engine.connect() as conn:
        row = delivery_by_id(conn, read_scope(hub, who), delivery_id)
    if row is None:
        raise ApiError(404, "not_found", f"no delivery {delivery_id}")


@router.post("/deliveries/{delivery_id}/retry", tags=["deliveries"])
def retry_delivery(delivery_id: RowId, hub: HubDep, who: Writer) -> RetriedOut:
    """Make a dead, failed or cancelled delivery due again; one older than a version its flow
    already delivered for that record is cancelled as superseded instead."""
    _delivery_channel(hub, delivery_id, who)
    with hub.engine.begin() as conn:
        done = retry_deliveries(conn, [delivery_id], now())
    detail = {"changed": done.due, "superseded": done.superseded}
    hub.audit(who.name, who.address, "delivery.retry", str(delivery_id), detail=detail)
    if hub.wake and done.due:
        hub.wake()
    return RetriedOut(changed=done.due, superseded=done.superseded)


@router.post("/deliveries/{delivery_id}/cancel", tags=["deliveries"])
def cancel_delivery(delivery_id: RowId, hub: HubDep, who: Writer) -> CountOut:
    """Cancel a delivery that has not gone out (kept in the ledger)."""
    _delivery_channel(hub, delivery_id, who)
    with hub.engine.begin() as conn:
        changed = cancel(conn, [delivery_id], now())
    hub.audit(
        who.name, who.address, "delivery.cancel", str(delivery_id), detail={"changed": changed}
    )
    return CountOut(changed=changed)


@router.post("/deliveries/retry-dead", tags=["deliveries"])
def retry_dead(hub: HubDep, who: Admin, flow: str | None = None) -> RetriedOut:
    """Make every dead delivery (of one flow) due again, after the cause was fixed; versions
    older than one their flow already delivered for that record are cancelled as superseded."""
    if flow is not None:
        _flow(hub, flow, who)
    scope = read_scope(hub, who)
    # A channel-restricted admin's "every dead delivery" is every dead delivery of its flows.
    flows = [flow] if flow is not None or scope.unrestricted else sorted(scope.flows)
    with hub.engine.begin() as conn:
        results = [
            retry_deliveries(conn, None, now(), dead_of_flow=name, all_dead=True) for name in flows
        ]
    due, superseded = sum(r.due for r in results), sum(r.superseded for r in results)
    detail = {"changed": due, "superseded": superseded}
    hub.audit(who.name, who.address, "delivery.retry_dead", flow, detail=detail)
    if hub.wake and due:
        hub.wake()
    return RetriedOut(changed=due, superseded=superseded)


@router.get("/conflicts", tags=["conflicts"])
def list_conflicts(
    hub: HubDep,
    who: Reader,
    flow: str | None = None,
    status: ConflictStatus | None = "open",
    limit: Limit = 50,
) -> list[ConflictOut]:
    """Two-way conflicts, newest first (open ones by default; settle them with the CLI)."""
    with hub.engine.connect() as conn:
        rows = conflicts_page(conn, read_scope(hub, who), flow=flow, status=status, limit=limit)
    out = []
    for r in rows:
        data = dict(r._mapping)
        data["incoming_payload"] = orjson.loads(data["incoming_payload"])
        out.append(ConflictOut.model_validate(data))
    return out


@router.get("/audit", tags=["audit"])
def list_audit(
    hub: HubDep,
    who: Admin,
    actor: str | None = None,
    action: str | None = None,
    limit: Limit = 100,
) -> list[AuditOut]:
    """Administrative actions, newest first: who, when, what, from which address (for a
    channel-restricted client: its own actions and those about its channels and flows)."""
    with hub.engine.connect() as conn:
        rows = audit_page(conn, read_scope(hub, who), actor=actor, action=action, limit=limit)
    out = []
    for r in rows:
        data = dict(r._mapping)
        data["detail"] = orjson.loads(data["detail"]) if data["detail"] else None
        out.append(AuditOut.model_validate(data))
    return out
