"""``hub.retention``: how long the hub keeps what only history needs.

Every age is ``<n>s``, ``<n>m``, ``<n>h``, ``<n>d`` or ``off`` (kept forever). What a rule may
delete never includes what the hub still works with: open deliveries, each key's newest delivered
version, each flow's latest run, open rejections, each record's current version.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from erpbridge.schedules import parse_interval

__all__ = ["RetentionPolicy"]

Age = Annotated[str, Field(pattern=r"^([1-9]\d*(s|m|h|d)|off)$")]


class RetentionPolicy(BaseModel):
    """Ages after which history is pruned, by a scheduled job in bounded batches."""

    model_config = ConfigDict(extra="forbid")

    every: str = Field(
        default="1h",
        pattern=r"^[1-9]\d*(s|m|h|d)$",
        description="How often the scheduler (of `erpbridge run`) prunes; one process at a time.",
    )
    batch_size: int = Field(
        default=1000,
        ge=10,
        le=100_000,
        description="Rows deleted per transaction: short transactions never hold the workers up.",
    )
    deliveries: Age = Field(
        default="30d",
        description="Delivered and cancelled deliveries (with their attempts) older than this; "
        "each key's newest delivered version is kept (a retry of an older one is refused by it).",
    )
    attempts: Age = Field(
        default="30d",
        description="Attempts older than this of deliveries still kept; the latest of each stays.",
    )
    runs: Age = Field(
        default="90d", description="Finished runs older than this; each flow's latest run stays."
    )
    rejections: Age = Field(
        default="90d", description="Replayed or superseded rejections resolved longer ago; "
        "open ones are never pruned.",
    )  # fmt: skip
    audit: Age = Field(
        default="off",
        description="Record versions older than this; each record's current version stays. "
        "Off by default: the audit trail is the hub's history (records --as-of reads it).",
    )
    idempotency_keys: Age = Field(
        default="1d",
        description="Answers kept for API requests with an Idempotency-Key; a retry later than "
        "this is a new request.",
    )
    schedule_fires: Age = Field(default="7d", description="Claimed fire times of scheduled flows.")
    alert_history: Age = Field(
        default="90d",
        description="What alerts fired, repeated and resolved; each alert's latest entry stays.",
    )
    admin_audit: Age = Field(
        default="off", description="Administrative actions (who paused, who added a client)."
    )
    reconciliations: Age = Field(
        default="90d",
        description="Stored reconciliations (erpbridge reconcile); each flow's newest stays.",
    )

    def ages(self) -> dict[str, timedelta | None]:
        """Rule name (``store.retention.RULES``) → its age, ``None`` when it is off."""
        return {
            name: None if value == "off" else parse_interval(value)
            for name, value in self.model_dump(exclude={"every", "batch_size"}).items()
        }

    def interval(self) -> timedelta:
        return parse_interval(self.every)
