"""The hub's log events: one structured line per thing an operator must be able to find.

Each function writes one event to the ``erpbridge.events`` logger with the fields a search needs
(``flow``, ``channel``, ``run_id`` or ``delivery_id``, ``cause``). The names are stable, listed
in docs/observability.md:

``run.finished``, ``delivery.dead``, ``channel.state_changed``, ``admin.action``,
``config.reloaded``, ``alert.fired`` / ``alert.repeated`` / ``alert.resolved``,
``alert.notify_failed``.
"""

from __future__ import annotations

from typing import Any

import structlog

from erpbridge.observe.logs import EVENTS_LOGGER

__all__ = [
    "admin_action",
    "alert_event",
    "alert_notify_failed",
    "channel_state_changed",
    "config_reloaded",
    "delivery_dead",
    "emit",
    "run_finished",
]

_log = structlog.get_logger(EVENTS_LOGGER)


def emit(event: str, level: str = "info", **fields: Any) -> None:
    """Write event ``event`` at ``level`` with ``fields`` (``None`` fields left out)."""
    getattr(_log, level)(event, **{k: v for k, v in fields.items() if v is not None})


def run_finished(
    *,
    flow: str,
    channel: str,
    run_id: int,
    status: str,
    mode: str,
    duration_s: float,
    counts: dict[str, int],
    error: str | None = None,
) -> None:
    """A run ended (``succeeded``, ``failed``, ``interrupted``); a failure is an error line."""
    level = "info" if status == "succeeded" else ("warning" if status == "interrupted" else "error")
    emit(
        "run.finished",
        level,
        flow=flow,
        channel=channel,
        run_id=run_id,
        status=status,
        mode=mode,
        duration_s=round(duration_s, 3),
        cause=error,
        **counts,
    )


def delivery_dead(
    *, flow: str, channel: str, delivery_id: int, key: str, attempts: int, cause: str
) -> None:
    """A delivery went to the dead letters: it waits for ``erpbridge retry``."""
    emit(
        "delivery.dead",
        "error",
        flow=flow,
        channel=channel,
        delivery_id=delivery_id,
        key=key,
        attempts=attempts,
        cause=cause,
    )


def channel_state_changed(
    *, channel: str, state: str, previous: str, since: str | None, cause: str | None
) -> None:
    """A channel went ``down`` or came back ``up`` (as the ledger and the runs show it)."""
    level = "warning" if state == "down" else "info"
    emit(
        "channel.state_changed",
        level,
        channel=channel,
        state=state,
        previous=previous,
        since=since,
        cause=cause,
    )


def admin_action(
    *,
    actor: str,
    address: str | None,
    action: str,
    target: str | None,
    outcome: str,
    detail: dict[str, Any] | None = None,
) -> None:
    """An administrative action, as written to the admin audit."""
    emit(
        "admin.action",
        actor=actor,
        address=address,
        action=action,
        target=target,
        outcome=outcome,
        detail=detail,
    )


def config_reloaded(
    *,
    path: str,
    outcome: str,
    version: str | int | None = None,
    actor: str | None = None,
    cause: str | None = None,
) -> None:
    """A configuration reload was asked for: ``ok`` (now running ``version``) or ``refused``
    (``cause``: the problems; the old configuration stays)."""
    emit(
        "config.reloaded",
        "info" if outcome == "ok" else "error",
        path=path,
        outcome=outcome,
        version=version,
        actor=actor,
        cause=cause,
    )


def alert_event(kind: str, *, rule: str, subject: str, message: str, **fields: Any) -> None:
    """An alert ``fired``, ``repeated`` (after its cooldown) or ``resolved``."""
    level = "info" if kind == "resolved" else "warning"
    emit(f"alert.{kind}", level, rule=rule, subject=subject, cause=message, **fields)


def alert_notify_failed(*, rule: str, notifier: str, cause: str) -> None:
    """A notifier could not send an alert (it is tried again on the next evaluation)."""
    emit("alert.notify_failed", "error", rule=rule, notifier=notifier, cause=cause)
