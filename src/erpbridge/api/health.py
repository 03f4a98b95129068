"""Health that tells the truth: ``/readyz``, ``GET /api/v1/status`` and ``/metrics``.

``/healthz`` (in :mod:`erpbridge.api.app`) stays liveness: the process answers and its loops
go round. ``/readyz`` says whether this process should get traffic: the store answers, its
schema is the newest, and (``erpbridge run``) the scheduler and worker are alive. The status
summary says what is failing in the hub (flows, dead deliveries, old backlog, channels down,
firing alerts); ``/metrics`` is the Prometheus exposition (docs/observability.md).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response
from sqlalchemy import text

from erpbridge.api.auth import Principal, require
from erpbridge.api.context import ApiError, Hub, get_hub
from erpbridge.api.scope import read_scope
from erpbridge.store.database import schema_state
from erpbridge.store.read import Scope
from erpbridge.store.read.alerts import alert_history_page, firing_alerts, firing_pairs
from erpbridge.store.read.status import hub_status

__all__ = ["probes", "router", "status_report"]

router = APIRouter(prefix="/api/v1", tags=["health"])
probes = APIRouter(tags=["health"])
HubDep = Annotated[Hub, Depends(get_hub)]
Reader = Annotated[Principal, Depends(require("read"))]
MetricsReader = Annotated[Principal, Depends(require("read", "metrics"))]


def _alert_visible(hub: Hub, scope: Scope | None, rule: str, subject: str) -> bool:
    """Whether a reader limited to ``scope`` sees alert ``rule`` about ``subject``: the
    subject is a channel (``channel_down``) or a flow of one of its channels."""
    if scope is None or scope.unrestricted:
        return True
    kinds = {r.name: r.when for r in hub.config.model.alerts.rules}
    if kinds.get(rule) == "channel_down":
        return scope.sees_channel(subject)
    return subject in scope.flows


def status_report(hub: Hub, who: Principal | None = None) -> dict[str, Any]:
    """The summary of what is failing, within ``who``'s channels (all when ``None``)."""
    scope = read_scope(hub, who) if who is not None else None
    with hub.engine.connect() as conn:
        kwargs: dict[str, Any] = {} if scope is None else {"scope": scope}
        firing = firing_alerts(conn, {rule.name for rule in hub.config.model.alerts.rules})
        return hub_status(
            conn,
            datetime.now(UTC),
            stale_backlog_s=hub.config.model.hub.stale_backlog_s,
            firing=[a for a in firing if _alert_visible(hub, scope, a["rule"], a["subject"])],
            **kwargs,
        ).as_dict()


@router.get("/status")
def get_status(hub: HubDep, who: Reader) -> JSONResponse:
    """What is failing: flows, dead deliveries, old backlog, channels down, firing alerts.

    200 with ``status: ok`` or ``status: failing`` (the answer is the report, not an error)."""
    return JSONResponse(status_report(hub, who))


@router.get("/alerts")
def get_alerts(
    hub: HubDep,
    who: Reader,
    rule: Annotated[str | None, Query(description="Only this rule's history.")] = None,
    limit: Annotated[int, Query(ge=1, le=1000, description="History rows, newest first.")] = 100,
) -> JSONResponse:
    """The alerts firing now and the history of what fired, repeated and resolved (with what
    each notifier answered), within the caller's channels."""
    scope = read_scope(hub, who)
    with hub.engine.connect() as conn:
        firing = firing_alerts(conn)
        history = alert_history_page(conn, rule=rule, limit=limit)
    return JSONResponse(
        {
            "firing": [a for a in firing if _alert_visible(hub, scope, a["rule"], a["subject"])],
            "history": [h for h in history if _alert_visible(hub, scope, h["rule"], h["subject"])],
        }
    )


@probes.get("/readyz")
def readyz(hub: HubDep) -> JSONResponse:
    """200 when this process is ready for traffic, else 503 with the failing checks."""
    checks: dict[str, Any] = {}
    try:
        with hub.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        checks["store"] = "ok"
        state = schema_state(hub.engine)
        checks["migrations"] = (
            "ok" if state.at_head else ("behind" if state.older or not state.current else "ahead")
        )
    except Exception as exc:  # noqa: BLE001 - reported, not raised: this is the probe
        checks["store"] = f"error: {type(exc).__name__}"
        checks["migrations"] = "unknown"
    if hub.health is not None:
        loops = hub.health().get("checks", {})
        for loop in ("scheduler", "worker"):
            if loop in loops:
                checks[loop] = loops[loop]
    ready = all(value in ("ok", "starting") for value in checks.values()) and "starting" not in (
        checks.get("scheduler"),
        checks.get("worker"),
    )
    return JSONResponse(
        {"status": "ready" if ready else "not_ready", "checks": checks},
        status_code=200 if ready else 503,
    )


@probes.get("/metrics", response_class=Response)
async def metrics(hub: HubDep, who: MetricsReader) -> Response:
    """Prometheus text exposition (needs the ``read`` scope on every channel)."""
    from erpbridge.observe.metrics import CONTENT_TYPE_LATEST, exposition

    if read_scope(hub, who).channels is not None:
        raise ApiError(
            403,
            "channel_restricted",
            f"client {who.name!r} is restricted to some channels; /metrics covers every "
            "channel and needs an unrestricted client",
        )
    body = await run_in_threadpool(exposition, hub.engine, firing_pairs)
    return Response(body, media_type=CONTENT_TYPE_LATEST)
