"""The ``hub:`` block: where the hub keeps its store, its API, and how long it keeps history.

A module of its own so that a command that only opens the store (``erpbridge runs``) can read
this block without building the models of the whole file (:mod:`erpbridge.config.outline`).
"""

from __future__ import annotations

from pydantic import Field

from erpbridge.config.api import ApiSettings
from erpbridge.config.retention import RetentionPolicy
from erpbridge.config.strict import Strict

__all__ = ["HubSettings"]


class HubSettings(Strict):
    """Where the hub keeps its store. ``ERPBRIDGE_DATABASE_URL`` overrides ``database_url``."""

    database_url: str | None = Field(
        default=None,
        description="SQLAlchemy URL of the hub store; default: erpbridge.db (SQLite, WAL) beside "
        "the configuration file.",
    )
    api: ApiSettings = Field(default_factory=ApiSettings, description="The REST API.")
    store_retry_s: float = Field(
        default=60.0,
        ge=0,
        description="Seconds a run, worker or scheduler keeps retrying (with backoff) when the "
        "hub store is unreachable or unwritable before giving up; ERPBRIDGE_STORE_RETRY_S "
        "overrides it.",
    )
    auto_upgrade: bool = Field(
        default=False,
        description="Upgrade an older hub schema when a command opens the store, instead of "
        "refusing to run until 'erpbridge db upgrade' has; for a single embedded process. "
        "ERPBRIDGE_AUTO_UPGRADE=1 sets it.",
    )
    retention: RetentionPolicy = Field(
        default_factory=RetentionPolicy,
        description="How long history is kept (deliveries, attempts, runs, rejections, audit, "
        "idempotency keys, fire times, admin audit) before the scheduled prune deletes it.",
    )
    stale_backlog_s: float = Field(
        default=900.0,
        gt=0,
        description="Seconds after which a delivery still on its way makes `erpbridge status` "
        "and GET /api/v1/status report an old backlog.",
    )
    run_lease_s: float = Field(
        default=30.0,
        gt=0,
        description="Seconds a run (and its flow's run lock) stays alive without a heartbeat; "
        "a run whose process died shows as interrupted after it. ERPBRIDGE_RUN_LEASE_S "
        "overrides it.",
    )
