"""The configuration file as pydantic models; ``erpbridge schema`` prints their JSON Schema."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import Field, SecretStr, field_validator

from erpbridge.config.alerts import AlertsConfig
from erpbridge.config.api import InboundConfig
from erpbridge.config.deletes import DeleteMarker, OnDelete
from erpbridge.config.hub import HubSettings
from erpbridge.config.reconcile import ReconcileConfig
from erpbridge.config.strict import Strict
from erpbridge.documents.spec import DocumentSpec
from erpbridge.mapping.spec import MappingSpec
from erpbridge.model.cards import CardSetting
from erpbridge.model.entities import EntitySpec
from erpbridge.schedules import Schedule, parse_interval
from erpbridge.workflows.spec import StatusPolicy, WhenSpec, WorkflowSpec

__all__ = [
    "ChannelConfig",
    "ChannelLimits",
    "ConfigFile",
    "CurrencyRatesConfig",
    "CursorConfig",
    "FlowConfig",
    "HubSettings",
    "IntervalTrigger",
    "RetryPolicy",
    "ScheduleTrigger",
]

_NAME = r"^[A-Za-z][A-Za-z0-9_.-]*$"


class CurrencyRatesConfig(Strict):
    """Exchange rates for the mapping's ``currency`` conversion: ``1 base = rate × currency``."""

    base: str = Field(default="EUR", pattern=r"^[A-Z]{3}$")
    rates: dict[str, Annotated[Decimal, Field(gt=0)]] = Field(default_factory=dict)


class ChannelLimits(Strict):
    """Outbound limits of a channel, shared by every worker on the same hub store."""

    requests_per_second: float | None = Field(
        default=None, gt=0, description="Average rate of requests to the channel; none: unlimited."
    )
    burst: int = Field(
        default=1, ge=1, description="Requests that may go out back to back after a quiet spell."
    )
    max_in_flight: int | None = Field(
        default=None, ge=1, description="Deliveries of the channel being sent at the same time."
    )


class ChannelConfig(Strict):
    """One configured external system: its system type, transport, options and credentials."""

    system: str = Field(description="System type: folder, sql, … (see `erpbridge check`).")
    transport: str | None = Field(default=None, description="Override the system type's transport.")
    description: str = ""
    options: dict[str, Any] = Field(default_factory=dict, description="Transport options.")
    credentials: dict[str, SecretStr] = Field(
        default_factory=dict,
        description="Secrets, each written as a ${ENV_VAR} reference; never a literal value.",
    )
    limits: ChannelLimits | None = Field(
        default=None, description="OUT: request rate and concurrency caps across all workers."
    )
    inbound: InboundConfig | None = Field(
        default=None, description="Webhooks the channel sends, and from which networks."
    )
    operations: dict[str, dict[str, Any]] = Field(
        default_factory=dict,
        description="Real-time operations (name → options): `timeout_s`, `cache_s`, "
        "`description`, plus the transport's own call options.",
    )


class ScheduleTrigger(Strict):
    """Run on a cron schedule (five fields, UTC)."""

    schedule: str = Field(description="Cron expression, e.g. '*/15 * * * *'.")


class IntervalTrigger(Strict):
    """Run every fixed interval."""

    interval: str = Field(pattern=r"^\d+(s|m|h|d)$", description="E.g. '90s', '15m', '12h', '1d'.")


class CursorConfig(Strict):
    """The incremental cursor of a flow: a column plus a unique tiebreaker (see DESIGN.md)."""

    column: str = Field(description="Cursor column, e.g. updated_at or a sequence.")
    tiebreaker: str = Field(description="A unique column (the primary key) breaking ties.")
    safety_window: float | None = Field(
        default=None,
        ge=0,
        description=(
            "Re-read this much before the cursor: seconds for date/time columns (default 300, "
            "so rows committed late are read), units for numbers (default 0)."
        ),
    )


class RetryPolicy(Strict):
    """How an OUT flow retries passing failures: exponential backoff with jitter, then dead."""

    max_attempts: int = Field(default=10, ge=1, le=1000)
    backoff_s: float = Field(default=5, gt=0, description="Delay before the first retry.")
    max_backoff_s: float = Field(default=3600, gt=0, description="The longest delay.")
    min_delay_s: float = Field(
        default=1, ge=0, description="Floor for a target's Retry-After (0 would be a storm)."
    )


class FlowConfig(Strict):
    """One entity, one direction, one channel, one trigger, one mapping."""

    name: str = Field(pattern=_NAME)
    description: str = ""
    channel: str
    entity: str
    direction: Literal["in", "out"] = Field(
        description="'in' moves data from the channel into the hub; 'out' delivers the hub's "
        "record changes to the channel."
    )
    trigger: Literal["manual", "initial", "immediate"] | ScheduleTrigger | IntervalTrigger = (
        "manual"
    )
    enabled: bool = True
    source: dict[str, Any] = Field(
        default_factory=dict, description="IN: the transport's stream options."
    )
    target: dict[str, Any] = Field(
        default_factory=dict, description="OUT: the transport's target options."
    )
    priority: int = Field(
        default=0,
        ge=-100,
        le=100,
        description="OUT: higher goes first, so an urgent flow is not stuck behind a bulk one.",
    )
    retry: RetryPolicy = Field(default_factory=lambda: RetryPolicy())
    backfill: Literal["on_create"] | None = Field(
        default=None,
        description="OUT: 'on_create' queues every record the hub already holds when the flow "
        "first appears (`erpbridge run` starts a backfill run, announced in the log and the run "
        "list); omitted: only changes from then on (`erpbridge backfill` does it by hand).",
    )
    conflict: Literal["source_wins", "target_wins", "newest_wins", "manual"] | None = Field(
        default=None,
        description="IN, two-way: what to do when a change arrives from the channel while the "
        "hub's own change to that record is still on its way out to it.",
    )
    version_field: str | None = Field(
        default=None,
        description="IN: field of the mapped record that orders its versions (`updated_at`, "
        "a version number; dotted for nested): an incoming record older than the stored one is "
        "skipped and counted as stale, never applied.",
    )
    replace: bool = Field(
        default=False,
        description="IN: the source delivers whole records, so a field its mapping leaves "
        "empty is removed from the record; default (false): only the fields the mapping names "
        "change, the others keep their stored values (a merge).",
    )
    echo: bool = Field(
        default=False,
        description="OUT: also deliver record versions that arrived from this same channel.",
    )
    key: str | list[str] | None = Field(
        default=None,
        description="Source path(s) of the channel's own id (the binding's external id); "
        "default: the record's business key.",
    )
    card_numbers: CardSetting = Field(
        default="reject",
        description="What a payment card number (PAN) found in a record does: 'reject' the "
        "record, or 'mask' the number to its first six and last four digits; or a map of "
        "field path to action, '*' for the other fields. Key fields and guarded fields "
        "(no_card_numbers) always reject.",
    )
    cursor: CursorConfig | None = None
    when: WhenSpec | None = Field(
        default=None,
        description="OUT: which new versions the flow delivers (entering a state, a transition, "
        "changed fields, a condition); omitted: every new version of the entity.",
    )
    status_policy: StatusPolicy = Field(
        default="enforce",
        description="IN: a status change the entity's workflow does not allow is rejected "
        "('enforce') or taken with a warning ('record': the channel is master).",
    )
    batch_size: int = Field(default=1000, ge=1, le=100_000)
    mapping: MappingSpec | None = Field(
        default=None,
        description="Canonical field → source path or field mapping; omitted: "
        "fields are taken by their canonical names.",
    )
    reconcile: ReconcileConfig | None = Field(
        default=None,
        description="How `erpbridge reconcile` reads the channel's side and what it compares "
        "(fields, amounts) and when (schedule, interval).",
    )
    document: str | None = Field(
        default=None,
        description="OUT: deliver this document (a `documents:` entry of the flow's entity), "
        "issued once per record version: file channels and the archive get its bytes; other "
        "channels' mappings see it as `document` (number, file_name, media_type, sha256, size, "
        "content_base64).",
    )

    delete_marker: DeleteMarker | None = Field(
        default=None,
        description="IN: the source field saying a record is deleted (soft-delete column, "
        "`active` flag, deleted flag, operation code): such a record becomes a tombstone version "
        "of the hub's record instead of an update.",
    )
    key_sweep: str | None = Field(
        default=None,
        pattern=r"^\d+(s|m|h|d)$",
        description="IN: how often a run compares the source's whole key set with the hub's "
        "(e.g. '1d'): a run due for it reads the source from the start, and the records this "
        "channel had bound that it no longer returns become tombstones (hard deletes). A pass "
        "that fails or returns nothing deletes nothing.",
    )
    on_delete: OnDelete = Field(
        default="ignore",
        description="OUT: what a deleted record does to the channel: 'delete' it there, "
        "'deactivate' it (its last version with the `deactivate` fields set), or 'ignore'.",
    )
    deactivate: dict[str, Any] | None = Field(
        default=None,
        description="OUT, with on_delete: deactivate: the target fields (after the mapping) and "
        "values that mark the record inactive, e.g. {active: false}.",
    )

    def schedule(self) -> Schedule | None:
        """The flow's schedule, for ``schedule`` and ``interval`` triggers."""
        if isinstance(self.trigger, ScheduleTrigger):
            return Schedule(cron=self.trigger.schedule)
        if isinstance(self.trigger, IntervalTrigger):
            return Schedule(interval=parse_interval(self.trigger.interval))
        return None


class ConfigFile(Strict):
    """An erpbridge configuration file."""

    version: Literal[1] = 1
    hub: HubSettings = Field(default_factory=HubSettings)
    currency_rates: CurrencyRatesConfig = Field(default_factory=CurrencyRatesConfig)
    entities: dict[str, EntitySpec] = Field(
        default_factory=dict, description="Entities beyond the built-in ones."
    )
    channels: dict[str, ChannelConfig] = Field(default_factory=dict)
    owners: dict[str, dict[str, list[str]]] = Field(
        default_factory=dict,
        description="Field ownership per entity (built-in or declared): entity → channel → the "
        "top-level fields only that channel's IN flows may change; a change from another "
        "channel is not applied (or is a conflict, per that flow's `conflict` policy).",
    )
    flows: list[FlowConfig] = Field(default_factory=list)
    workflows: dict[str, WorkflowSpec] = Field(
        default_factory=dict,
        description="Status machines: name → the states and named transitions of one "
        "entity's status field.",
    )
    alerts: AlertsConfig = Field(
        default_factory=AlertsConfig,
        description="Alert rules and their notifiers (webhook, e-mail); see docs/observability.md.",
    )

    documents: dict[str, DocumentSpec] = Field(
        default_factory=dict,
        description="Document templates by name: entity, format (xml, csv, json, text, pdf, "
        "edifact), template file, numbering, file name, XSD.",
    )

    @field_validator("entities", "channels", "workflows", "documents")
    @classmethod
    def _names(cls, value: dict[str, Any]) -> dict[str, Any]:
        import re

        for name in value:
            if not re.match(_NAME, name):
                raise ValueError(f"{name!r} is not a valid name (letters, digits, _ . -)")
        return value
