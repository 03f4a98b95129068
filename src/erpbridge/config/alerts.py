"""``alerts:``: rules over the hub's health, and the notifiers that tell someone.

A rule watches one condition per subject (a flow or a channel) and names its notifiers::

    alerts:
      cooldown_s: 3600          # repeat a firing alert this often (default for every rule)
      notifiers:
        ops-hook:
          webhook: {url: "https://ops.example.com/erpbridge", secret: "${ALERT_HOOK_SECRET}"}
        ops-mail:
          email:
            host: smtp.example.com
            port: 587
            username: alerts@example.com
            password: ${SMTP_PASSWORD}
            sender: alerts@example.com
            to: [ops@example.com]
      rules:
        - {name: orders-failing, when: flow_failing, flow: orders, runs: 3, notify: [ops-mail]}
        - {name: dead, when: dead_deliveries, notify: [ops-hook]}
        - {name: backlog, when: backlog_age, older_than_s: 900, notify: [ops-hook]}
        - {name: erp-down, when: channel_down, channel: erp, for_s: 300, notify: [ops-hook]}
        - {name: rejects, when: rejection_rate, above: 0.05, window_s: 3600, notify: [ops-hook]}
        - {name: erp-differs, when: reconcile_differences, flow: orders-to-erp, notify: [ops-mail]}
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import ConfigDict, Field, SecretStr

from erpbridge.config.problems import Problems
from erpbridge.config.strict import Strict

__all__ = [
    "AlertRule",
    "AlertsConfig",
    "BacklogAgeRule",
    "ChannelDownRule",
    "DeadDeliveriesRule",
    "EmailNotifier",
    "FlowFailingRule",
    "NotifierConfig",
    "ReconcileDifferencesRule",
    "RejectionRateRule",
    "WebhookNotifier",
    "check_alerts",
]

_NAME = r"^[A-Za-z][A-Za-z0-9_.-]*$"


class WebhookNotifier(Strict):
    """POST the alert as JSON, signed: ``X-Erpbridge-Signature: t=<unix time>,v1=<hex>`` where
    ``<hex>`` is HMAC-SHA256 of ``<unix time>.<body>`` with ``secret``."""

    url: str = Field(pattern=r"^https?://", description="Where to POST (http or https).")
    secret: SecretStr = Field(description="The signing key, as a ${ENV_VAR} reference.")
    timeout_s: float = Field(default=10.0, gt=0, le=120, description="Seconds per request.")
    ca_file: str | None = Field(
        default=None, description="Trust this CA (PEM) for https, beside the system's."
    )


class EmailNotifier(Strict):
    """Send the alert by mail over SMTP, upgraded with STARTTLS (never sent in clear)."""

    host: str = Field(min_length=1, description="SMTP server.")
    port: int = Field(default=587, ge=1, le=65535, description="SMTP port (submission: 587).")
    username: str | None = Field(default=None, description="Login, if the server wants one.")
    password: SecretStr | None = Field(default=None, description="As a ${ENV_VAR} reference.")
    sender: str = Field(min_length=3, description="From: address.")
    to: list[str] = Field(min_length=1, description="Recipients.")
    timeout_s: float = Field(default=15.0, gt=0, le=120, description="Seconds per exchange.")
    ca_file: str | None = Field(
        default=None, description="Trust this CA (PEM) for the STARTTLS certificate."
    )


class NotifierConfig(Strict):
    """One notifier: exactly one of ``webhook`` or ``email``."""

    webhook: WebhookNotifier | None = None
    email: EmailNotifier | None = None


class _Rule(Strict):
    name: str = Field(pattern=_NAME, description="The rule's name (in notifications, history).")
    notify: list[str] = Field(min_length=1, description="Notifier names.")
    cooldown_s: float | None = Field(
        default=None, gt=0, description="Repeat while firing this often; default alerts.cooldown_s."
    )


class FlowFailingRule(_Rule):
    """A flow's newest ``runs`` finished runs all failed."""

    when: Literal["flow_failing"]
    flow: str | None = Field(default=None, description="Only this flow; default every flow.")
    runs: int = Field(default=1, ge=1, description="Failed runs in a row.")


class DeadDeliveriesRule(_Rule):
    """A flow has at least ``count`` dead deliveries."""

    when: Literal["dead_deliveries"]
    flow: str | None = Field(default=None, description="Only this flow; default every flow.")
    count: int = Field(default=1, ge=1, description="Dead deliveries at least.")


class BacklogAgeRule(_Rule):
    """A flow's oldest delivery still on its way is older than ``older_than_s``."""

    when: Literal["backlog_age"]
    flow: str | None = Field(default=None, description="Only this flow; default every flow.")
    older_than_s: float = Field(gt=0, description="Seconds.")


class ChannelDownRule(_Rule):
    """A channel has been down (its newest run or attempt failed) for ``for_s``."""

    when: Literal["channel_down"]
    channel: str | None = Field(default=None, description="Only this channel; default all.")
    for_s: float = Field(default=0, ge=0, description="Seconds down before it fires.")


class RejectionRateRule(_Rule):
    """A flow rejected more than ``above`` (a fraction) of what it read in ``window_s``."""

    when: Literal["rejection_rate"]
    flow: str | None = Field(default=None, description="Only this flow; default every flow.")
    above: float = Field(gt=0, lt=1, description="Fraction of records read, e.g. 0.05.")
    window_s: float = Field(default=3600, gt=0, description="Seconds looked back.")
    min_records: int = Field(default=1, ge=1, description="Records read at least, to judge.")


class ReconcileDifferencesRule(_Rule):
    """A flow's newest reconciliation found more than ``above`` differences, or failed."""

    when: Literal["reconcile_differences"]
    flow: str | None = Field(default=None, description="Only this flow; default every flow.")
    above: int = Field(default=0, ge=0, description="Differences tolerated (keys that differ).")


AlertRule = Annotated[
    FlowFailingRule
    | DeadDeliveriesRule
    | BacklogAgeRule
    | ChannelDownRule
    | RejectionRateRule
    | ReconcileDifferencesRule,
    Field(discriminator="when"),
]


def _rules_as_any_of(schema: dict[str, Any]) -> None:
    """The rules' tagged union as plain ``anyOf`` in the JSON Schema: the ``when:`` tags
    exclude each other already, and editors (and the schema's own checks) know ``anyOf``."""
    items = schema.get("properties", {}).get("rules", {}).get("items", {})
    if "oneOf" in items:
        items["anyOf"] = items.pop("oneOf")
        items.pop("discriminator", None)


class AlertsConfig(Strict):
    """Alert rules, evaluated by the scheduler (``erpbridge run``) on a tick."""

    model_config = ConfigDict(
        extra="forbid", populate_by_name=True, json_schema_extra=_rules_as_any_of
    )

    cooldown_s: float = Field(
        default=3600, gt=0, description="Repeat a firing alert this often (seconds)."
    )
    interval_s: float = Field(
        default=30, gt=0, description="Seconds between two evaluations of the rules."
    )
    notifiers: dict[str, NotifierConfig] = Field(default_factory=dict)
    rules: list[AlertRule] = Field(default_factory=list)


def check_alerts(
    alerts: AlertsConfig, flows: set[str], channels: set[str], problems: Problems
) -> None:
    """Cross-checks: notifier kinds, rule names unique, every name a rule refers to exists."""
    for name, notifier in alerts.notifiers.items():
        if (notifier.webhook is None) == (notifier.email is None):
            problems.add(
                ("alerts", "notifiers", name), "give exactly one of `webhook:` or `email:`"
            )
    seen: set[str] = set()
    for index, rule in enumerate(alerts.rules):
        where = ("alerts", "rules", index)
        if rule.name in seen:
            problems.add((*where, "name"), f"rule {rule.name!r} is declared twice")
        seen.add(rule.name)
        for position, wanted in enumerate(rule.notify):
            if wanted not in alerts.notifiers:
                known = ", ".join(sorted(alerts.notifiers)) or "none declared"
                problems.add(
                    (*where, "notify", position),
                    f"unknown notifier {wanted!r} (notifiers: {known})",
                )
        flow = getattr(rule, "flow", None)
        if flow is not None and flow not in flows:
            problems.add((*where, "flow"), f"unknown flow {flow!r}")
        channel = getattr(rule, "channel", None)
        if channel is not None and channel not in channels:
            problems.add((*where, "channel"), f"unknown channel {channel!r}")
