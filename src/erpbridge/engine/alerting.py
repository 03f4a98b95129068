"""The alert rules at work: evaluated by the scheduler of ``erpbridge run`` every
``alerts.interval_s``, each rule against the hub's tables (:mod:`erpbridge.store.read.health`).

For each rule and subject (a flow or a channel) the evaluation compares what the tables say
now with the stored state (:mod:`erpbridge.store.alerts`):

- condition true, state ok (or none): **fired**, sent to the rule's notifiers;
- condition true, state firing, ``cooldown_s`` passed since the last sending: **repeated**;
- condition false, state firing: **resolved**.

Several ``erpbridge run`` processes on one store send each notification once (compare-and-set
on the state's version). When every notifier of a claim fails, the claim is given back and the
next evaluation sends it again; when some succeed, the others' failures are in the history.

The same pass logs ``channel.state_changed`` when a channel goes down or comes back up.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta

from sqlalchemy import Connection, Engine

from erpbridge.config.alerts import (
    AlertRule,
    BacklogAgeRule,
    ChannelDownRule,
    DeadDeliveriesRule,
    FlowFailingRule,
    ReconcileDifferencesRule,
    RejectionRateRule,
)
from erpbridge.config.loader import LoadedConfig
from erpbridge.observe.events import alert_event, alert_notify_failed, channel_state_changed
from erpbridge.observe.logs import redactor
from erpbridge.observe.notify import Alert, NotifyError, Sender, sender_for
from erpbridge.store.alerts import (
    AlertClaim,
    alert_rows,
    claim_fired,
    claim_repeated,
    claim_resolved,
    record_notified,
    release_claim,
)
from erpbridge.store.read.health import (
    backlog,
    channel_health,
    failing_flows,
    rejection_rates,
)
from erpbridge.store.read.reconciliations import latest_reconciliations
from erpbridge.store.states import OPEN_DELIVERY_STATES
from erpbridge.store.timestamps import aware

__all__ = ["AlertEvaluator", "conditions"]

log = logging.getLogger(__name__)


def _when(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def conditions(conn: Connection, rule: AlertRule, at: datetime) -> dict[str, str]:
    """The subjects for which ``rule`` holds at ``at``, each with a message saying why."""
    found: dict[str, str] = {}
    if isinstance(rule, FlowFailingRule):
        for f in failing_flows(conn):
            if f.streak >= rule.runs and rule.flow in (None, f.flow):
                found[f.flow] = (
                    f"flow {f.flow!r} failed {f.streak} run(s) in a row since {_when(f.since)}; "
                    f"run {f.last_run_id}: {f.error or 'no error recorded'}"
                )
    elif isinstance(rule, DeadDeliveriesRule):
        for b in backlog(conn):
            if b.state == "dead" and b.count >= rule.count and rule.flow in (None, b.flow):
                found[b.flow] = (
                    f"flow {b.flow!r} has {b.count} dead deliveries to channel {b.channel!r} "
                    "(erpbridge deliveries --state dead)"
                )
    elif isinstance(rule, BacklogAgeRule):
        oldest: dict[str, datetime] = {}
        for b in backlog(conn):
            if b.state in OPEN_DELIVERY_STATES and b.oldest is not None:
                oldest[b.flow] = min(oldest.get(b.flow, b.oldest), b.oldest)
        for flow, created in oldest.items():
            age = (at - created).total_seconds()
            if age > rule.older_than_s and rule.flow in (None, flow):
                found[flow] = (
                    f"flow {flow!r}: the oldest delivery on its way is {age:.0f} s old "
                    f"(limit {rule.older_than_s:g} s)"
                )
    elif isinstance(rule, ChannelDownRule):
        for name, health in channel_health(conn, at).items():
            if health.state != "down" or health.since is None or rule.channel not in (None, name):
                continue
            down_s = (at - health.since).total_seconds()
            if down_s >= rule.for_s:
                found[name] = (
                    f"channel {name!r} down since {_when(health.since)} ({down_s:.0f} s): "
                    f"{health.cause or 'no cause recorded'}"
                )
    elif isinstance(rule, RejectionRateRule):
        since = at - timedelta(seconds=rule.window_s)
        for flow, (rejected, read) in rejection_rates(conn, since).items():
            if (
                read >= rule.min_records
                and rejected / read > rule.above
                and rule.flow
                in (
                    None,
                    flow,
                )
            ):
                found[flow] = (
                    f"flow {flow!r} rejected {rejected} of {read} records "
                    f"({rejected / read:.1%}, limit {rule.above:.1%}) in the last "
                    f"{rule.window_s:g} s"
                )
    elif isinstance(rule, ReconcileDifferencesRule):
        for row in latest_reconciliations(conn):
            if rule.flow not in (None, row.flow):
                continue
            differences = row.missing_in_channel + row.missing_in_hub + row.differing
            started = _when(aware(row.started_at) or at)
            if row.status == "failed":
                found[row.flow] = (
                    f"flow {row.flow!r}: reconciliation {row.id} of {started} "
                    f"failed: {row.error or 'no error recorded'}"
                )
            elif differences > rule.above:
                found[row.flow] = (
                    f"flow {row.flow!r}: reconciliation {row.id} of {started} found "
                    f"{differences} difference(s) with channel {row.channel!r}: "
                    f"{row.missing_in_channel} missing in the channel, {row.missing_in_hub} "
                    f"missing in the hub, {row.differing} differing (erpbridge reconcile "
                    f"{row.flow})"
                )
    return found


class AlertEvaluator:
    """Evaluates ``alerts.rules`` and sends what changed; ``tick`` is called by the scheduler
    loop and evaluates at most every ``alerts.interval_s``."""

    def __init__(
        self,
        config: LoadedConfig,
        engine: Engine,
        senders: Mapping[str, Sender] | None = None,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.config = config
        self.engine = engine
        self.alerts = config.model.alerts
        self.senders: dict[str, Sender] = (
            dict(senders)
            if senders is not None
            else {
                name: sender_for(name, notifier, config.base_dir)
                for name, notifier in self.alerts.notifiers.items()
            }
        )
        self.clock = clock or (lambda: datetime.now(UTC))
        self._next = 0.0
        self._channels: dict[str, str] | None = None

    def tick(self) -> list[AlertClaim]:
        """Evaluate if ``alerts.interval_s`` has passed since the last evaluation."""
        if time.monotonic() < self._next:
            return []
        self._next = time.monotonic() + self.alerts.interval_s
        return self.evaluate(self.clock())

    def evaluate(self, at: datetime) -> list[AlertClaim]:
        """One pass over the channels' health and every rule; return the notifications sent."""
        self._watch_channels(at)
        claims: list[AlertClaim] = []
        for rule in self.alerts.rules:
            with self.engine.connect() as conn:
                holding = conditions(conn, rule, at)
                stored = alert_rows(conn, rule.name)
            cooldown = timedelta(seconds=rule.cooldown_s or self.alerts.cooldown_s)
            for subject, message in sorted(holding.items()):
                old = stored.get(subject)
                claim: AlertClaim | None = None
                if old is None or old.state != "firing":
                    claim = claim_fired(self.engine, rule.name, subject, message, at, old)
                elif old.last_sent_at is None:  # its first sending failed: again
                    claim = claim_repeated(self.engine, old, message, at, kind="fired")
                elif at - old.last_sent_at >= cooldown:
                    claim = claim_repeated(self.engine, old, message, at)
                if claim is not None:
                    claims.append(claim)
            for subject, old in sorted(stored.items()):
                if old.state == "firing" and subject not in holding:
                    message = (
                        f"resolved after {(at - old.since).total_seconds():.0f} s; "
                        f"it was: {old.message or ''}"
                    )
                    claim = claim_resolved(self.engine, old, message, at)
                    if claim is not None:
                        claims.append(claim)
            for claim in (c for c in claims if c.rule == rule.name):
                self._send(rule, claim, at)
        return claims

    def _send(self, rule: AlertRule, claim: AlertClaim, at: datetime) -> None:
        """Log the event, call every notifier of ``rule``, record their answers."""
        message = redactor.text(claim.message)
        alert_event(claim.kind, rule=rule.name, subject=claim.subject, message=message)
        alert = Alert(
            rule=rule.name,
            subject=claim.subject,
            kind=claim.kind,
            message=message,
            at=at.astimezone(UTC).isoformat(),
            since=claim.since.astimezone(UTC).isoformat(),
        )
        answers: dict[str, str] = {}
        for name in rule.notify:
            try:
                self.senders[name].send(alert)
            except NotifyError as exc:
                cause = redactor.text(str(exc))
                answers[name] = cause
                alert_notify_failed(rule=rule.name, notifier=name, cause=cause)
            else:
                answers[name] = "ok"
        record_notified(self.engine, claim, answers)
        if answers and all(answer != "ok" for answer in answers.values()):
            release_claim(self.engine, claim)

    def _watch_channels(self, at: datetime) -> None:
        """Log ``channel.state_changed`` for each channel whose state moved since the last pass
        (the first pass logs only channels found down)."""
        with self.engine.connect() as conn:
            health = channel_health(conn, at)
        first = self._channels is None
        previous = self._channels or {}
        for name, h in sorted(health.items()):
            before = previous.get(name, "up")
            if h.state != before and not (first and h.state == "up"):
                channel_state_changed(
                    channel=name,
                    state=h.state,
                    previous="unknown" if first else before,
                    since=h.since.isoformat() if h.since else None,
                    cause=h.cause,
                )
        self._channels = {name: h.state for name, h in health.items()}
