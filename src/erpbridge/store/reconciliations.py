"""Recording reconciliations: one row per flow compared (``erpbridge reconcile``, scheduled
or through the API), read back by :mod:`erpbridge.store.read.reconciliations`."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import Engine, insert

from erpbridge.store.tables import reconciliations

__all__ = ["record_reconciliation"]


def record_reconciliation(
    engine: Engine, report: Mapping[str, Any], *, channel: str, trigger: str
) -> int:
    """Store one reconciliation's report (its ``as_json`` form) of a flow of ``channel``;
    return its id."""
    counts = report.get("counts") or {}
    with engine.begin() as conn:
        row_id: int = conn.execute(
            insert(reconciliations)
            .values(
                flow=report["flow"],
                channel=channel,
                entity=report["entity"],
                trigger=trigger,
                status=report["status"],
                started_at=datetime.fromisoformat(report["started_at"]),
                duration_s=report.get("duration_s"),
                hub_count=counts.get("hub", 0),
                channel_count=counts.get("channel", 0),
                missing_in_channel=counts.get("missing_in_channel", 0),
                missing_in_hub=counts.get("missing_in_hub", 0),
                differing=counts.get("differing", 0),
                report=orjson.dumps(report).decode(),
                error=report.get("error"),
                repair=report.get("repair"),
                repaired=report.get("repaired") or 0,
            )
            .returning(reconciliations.c.id)
        ).scalar_one()
    return row_id
